"""The per-building tasks on a 2-process local Dask cluster produce exactly what the thread runner
produces (VOC_TASK_RUNNER=dask vs thread), on the real sample month, through the real flow."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from config.settings import VocSettings
from flows.runners import describe_task_runner, make_task_runner

MONTH = "2019-11"


def test_runner_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    t = make_task_runner(VocSettings(task_runner="thread", building_workers=3))
    assert isinstance(t, ThreadPoolTaskRunner) and t._max_workers == 3
    d = make_task_runner(VocSettings(task_runner="dask", dask_workers=2))
    assert isinstance(d, DaskTaskRunner) and d.cluster_kwargs["n_workers"] == 2 and d.cluster_kwargs["processes"]
    assert d.cluster_kwargs["env"]["POLARS_MAX_THREADS"] == "1"  # one polars thread per single-threaded worker
    r = make_task_runner(VocSettings(task_runner="tcp://10.0.0.5:8786"))
    assert isinstance(r, DaskTaskRunner) and r.address == "tcp://10.0.0.5:8786"
    assert describe_task_runner(VocSettings(task_runner="dask", dask_workers=2)) == "dask×2 (local)"
    monkeypatch.setenv("VOC_TASK_RUNNER", "threads")
    with pytest.raises(ValueError, match="threads"):
        VocSettings()


def _tagged(storage: Path, run_id: str) -> dict[str, pl.DataFrame]:
    month_dir = storage / "stat" / "voc-dev" / MONTH.replace("-", "")
    return {p.parent.name: pl.read_csv(p, infer_schema=False) for p in month_dir.glob(f"*/tagged_*_{run_id}.csv")}


@pytest.mark.slow
def test_dask_cluster_and_threads_write_identical_outputs(tmp_path, prefect_server, monkeypatch) -> None:
    from flows.monthly import voc_monthly
    from flows.train import voc_train

    monkeypatch.setenv("VOC_MODEL__CACHE_DIR", str(tmp_path / "cache"))
    storage = str(tmp_path / "out")
    assert voc_train(until=MONTH, storage=storage)["status"] == "champion"

    monkeypatch.setenv("VOC_TASK_RUNNER", "thread")
    threads = voc_monthly(mode="full", month=MONTH, storage=storage)
    monkeypatch.setenv("VOC_TASK_RUNNER", "dask")
    monkeypatch.setenv("VOC_DASK_WORKERS", "2")
    dask = voc_monthly(mode="full", month=MONTH, storage=storage)

    assert threads["task_runner"].startswith("thread") and dask["task_runner"] == "dask×2 (local)"
    assert threads["failed"] == dask["failed"] == [] and threads["rows"] == dask["rows"] == 45
    a, b = _tagged(Path(storage), threads["run_id"]), _tagged(Path(storage), dask["run_id"])
    assert sorted(a) == sorted(b) == ["1", "2"]
    for bid in a:
        assert a[bid]["run_id"].unique().to_list() == [threads["run_id"]]
        assert b[bid]["run_id"].unique().to_list() == [dask["run_id"]]
        assert a[bid].drop("run_id").write_csv() == b[bid].drop("run_id").write_csv()  # byte-identical
    for r in dask["buildings"]:
        html = Path(r["outputs"]["dashboard_latest"]).read_text("utf-8")
        assert dask["run_id"] in html  # the Dask run's dashboard replaced the thread run's

    # the refresh runs on the cluster too (sheet and model reach the workers as plain data)
    refreshed = voc_monthly(mode="refresh", month=MONTH, storage=storage)
    assert refreshed["failed"] == [] and refreshed["rows"] == 45
