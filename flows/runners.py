"""The Prefect task runner the per-building tasks run on, chosen by ``VOC_TASK_RUNNER``.

* ``thread`` (default): Prefect's :class:`~prefect.task_runners.ThreadPoolTaskRunner` with
  ``VOC_BUILDING_WORKERS`` threads in the flow process — storage and database I/O of several
  buildings overlap; tagging runs one building at a time (one process, one CPU-bound model).
* ``dask``: ``prefect-dask``'s :class:`~prefect_dask.DaskTaskRunner` on a temporary local
  cluster of ``VOC_DASK_WORKERS`` worker processes (default one per CPU core), one thread each:
  buildings are tagged in parallel, one model load per worker process.
* ``tcp://scheduler:8786``: the same runner on an existing Dask cluster (any number of
  machines). Its workers must have this project installed, the same ``VOC_*`` settings and
  ``PREFECT_API_URL`` pointing at the Prefect server (deployments/README.md).

Only plain data crosses the task boundary (settings, frames, :class:`flows.resources.ModelRef`);
each worker opens its adapters once (:func:`flows.resources.resources`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from config.settings import VocSettings

__all__ = ["make_task_runner", "describe_task_runner", "SINGLE_THREAD_ENV"]

SINGLE_THREAD_ENV = {"POLARS_MAX_THREADS": "1"}
"""Environment of a single-threaded Dask worker process: polars sizes its thread pool to the
machine's cores when imported, so N one-thread workers on N cores would each start N polars
threads. Measured on 2 cores, 2 workers, 60 × 40 VOCs (docs/benchmarks.md): 91.4 → 81.5 s, the
workers' CPU seconds 127 → 111. (Dask's nanny already sets ``OMP_NUM_THREADS`` and the BLAS
variables to 1; Kiwi gets one thread when the model is loaded, :mod:`flows.resources`.)"""


def _prefect_api_url() -> str | None:
    """The API URL this flow run talks to — also the ephemeral server's, which worker processes
    would otherwise each start anew (20–40 s apiece on a busy 2-core machine)."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            return str(client.api_url)
    except Exception:  # noqa: BLE001 - no client: workers use their own configuration
        return None


def make_task_runner(settings: VocSettings) -> Any:
    """A new, not yet started task runner for ``settings.task_runner``; use it as a context
    manager inside the flow (``with runner: runner.submit(task, parameters)``).

    Raises
    ------
    ValueError
        ``settings.task_runner`` names no runner (also refused when the settings are read).
    """
    spec = settings.task_runner
    if spec == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=settings.building_workers)
    from prefect_dask.task_runners import DaskTaskRunner

    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask's per-worker INFO chatter
    if spec == "dask":
        env = {"PREFECT_API_URL": url} if (url := _prefect_api_url()) else {}
        env.update(SINGLE_THREAD_ENV)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": settings.dask_workers or os.cpu_count() or 1,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "silence_logs": logging.WARNING,
                "env": env,
            }
        )
    if spec.startswith(("tcp://", "tls://")):
        return DaskTaskRunner(address=spec)
    raise ValueError(f"VOC_TASK_RUNNER must be 'thread', 'dask' or 'tcp://host:port', got {spec!r}")


def describe_task_runner(settings: VocSettings) -> str:
    """``thread×4``, ``dask×2 (local)`` or ``dask tcp://…``: for logs and run summaries."""
    spec = settings.task_runner
    if spec == "thread":
        return f"thread×{settings.building_workers}"
    if spec == "dask":
        return f"dask×{settings.dask_workers or os.cpu_count() or 1} (local)"
    return f"dask {spec}"
