"""The monthly cycle runs on its own: the deployments of the real ``prefect.yaml`` on a real
``prefect server start`` with its scheduler ON, following deployments/README.md step by step
(``@pytest.mark.slow``).

1. ``test_scheduler_creates_the_monthly_runs``: after ``prefect deploy --all`` the server's
   scheduler creates SCHEDULED runs of ``voc-monthly/full``, ``voc-monthly/refresh`` and
   ``voc-train/train`` at their next cron time in Asia/Seoul (none for the on-demand
   ``tagging-only``), and the server log has no ``Traceback``/``Error`` line.
2. ``test_a_due_cron_run_completes_through_the_worker``: a test-only deployment ``due-soon`` (a
   copy of ``voc-monthly/tagging-only`` from a temporary prefect.yaml: same pull step, pool, job
   variables and concurrency; month 2019-11; its own work queue) whose cron fires at the next
   minute (Asia/Seoul); while the minute comes, a model is trained with the CLI (``voc train
   --until 2019-11 --storage DIR``, same ``VOC_ENV`` as the worker); the run the scheduler created
   is picked up by a process worker (``VOC_HOME`` = this checkout, ``VOC_ENV``/``VOC_STORAGE``
   in the worker's environment) and COMPLETES, tagging the real 2019-11 VOCs with the champion.

The only test-specific speed-up is a Prefect setting:
``PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS=5`` (default 60) for the main scheduler loop.
Newly deployed schedules are picked up by Prefect's recent-deployments scheduler (every 5 s by
default) anyway; the worker polls every second (``tests/infra.py prefect_worker``).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import yaml
from infra import (
    api_deployments,
    error_lines,
    filter_flow_runs,
    flow_run_logs,
    prefect_cli,
    prefect_server,
    prefect_worker,
    wait_for_flow_run,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KST = ZoneInfo("Asia/Seoul")
SCHEDULED = {"full": (1, 2), "refresh": (15, 2), "train": (20, 4)}  # deployment → (day, hour) KST
VOC_ENV = "stg"  # neither the CLI default (dev) nor the old hard-coded prd: both sides must agree


@pytest.fixture(scope="module")
def scheduled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """deployments/README.md, steps "server", "work pool" and "deployments": a ``prefect server
    start`` (this environment's Prefect, scheduler on), the ``voc-gpu`` process pool with
    concurrency 1, and ``prefect --no-prompt deploy --all`` of the real prefect.yaml from the
    repository root. Yields the client env and the server log path."""
    home = tmp_path_factory.mktemp("prefect-sched")
    with prefect_server(home, scheduler=True, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5") as env:
        prefect_cli(env, "work-pool", "create", "voc-gpu", "--type", "process")
        prefect_cli(env, "work-pool", "set-concurrency-limit", "voc-gpu", "1")
        out = prefect_cli(env, "--no-prompt", "deploy", "--all", cwd=REPO)
        assert "voc-monthly/full" in out and "voc-train/train" in out, out
        yield env, home / "server.log"


def _next_monthly(day: int, hour: int, now: datetime) -> datetime:
    """The next ``0 {hour} {day} * *`` in KST strictly after ``now``."""
    now = now.astimezone(KST)
    at = now.replace(day=day, hour=hour, minute=0, second=0, microsecond=0)
    if at <= now:
        y, m = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        at = at.replace(year=y, month=m)
    return at


def _when(fr: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(fr["expected_start_time"].replace("Z", "+00:00"))


def _assert_log_clean(log: Path) -> None:
    bad = error_lines(log)
    assert not bad, "server log has Traceback/Error lines:\n" + "\n".join(bad[:40])


def test_scheduler_creates_the_monthly_runs(scheduled_server: tuple[dict[str, str], Path]) -> None:
    env, log = scheduled_server
    deps = api_deployments(env)
    assert set(SCHEDULED) | {"tagging-only"} <= set(deps), sorted(deps)
    ids = {deps[n]["id"]: n for n in (*SCHEDULED, "tagging-only")}
    deadline = time.monotonic() + 120
    while True:
        runs = filter_flow_runs(
            env, {"deployment_id": {"any_": list(ids)}, "state": {"type": {"any_": ["SCHEDULED"]}}}
        )
        by_dep: dict[str, list[dict[str, Any]]] = {}
        for fr in runs:
            by_dep.setdefault(ids[fr["deployment_id"]], []).append(fr)
        if set(SCHEDULED) <= set(by_dep) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert set(SCHEDULED) <= set(by_dep), f"scheduled runs after 120 s: { {k: len(v) for k, v in by_dep.items()} }"
    assert "tagging-only" not in by_dep  # on demand only
    now = datetime.now(KST)
    for name, (day, hour) in SCHEDULED.items():
        first = min(by_dep[name], key=_when)
        assert _when(first) == _next_monthly(day, hour, now), (name, first["expected_start_time"])
        assert first["auto_scheduled"] is True
        assert first["work_pool_name"] == "voc-gpu"
        if name != "train":
            assert first["parameters"]["mode"] == name
            assert first["parameters"].get("month") is None  # resolved to the previous month at run time

    # deployments/README.md "check the schedules": the operator's commands show the same
    listed = prefect_cli(env, "deployment", "ls")
    assert all(f in listed for f in ("voc-monthly/full", "voc-monthly/refresh", "voc-train/train")), listed
    inspected = prefect_cli(env, "deployment", "inspect", "voc-monthly/full")
    assert "Asia/Seoul" in inspected and "0 2 1 * *" in inspected, inspected
    cli_runs = json.loads(prefect_cli(env, "flow-run", "ls", "--state-type", "SCHEDULED", "--limit", "50", "-o", "json"))
    assert {r["id"] for r in runs} <= {r["id"] for r in cli_runs}
    (log.parent / "cli-check.txt").write_text(listed + inspected + json.dumps(cli_runs[:2], indent=1))
    _assert_log_clean(log)


def _due_soon_yaml(path: Path, at: datetime) -> None:
    """A prefect.yaml with one deployment: ``voc-monthly/tagging-only`` as shipped (pull step,
    pool, job variables, concurrency) renamed ``due-soon``, month 2019-11, cron ``at`` (KST),
    on its own work queue so that the test's worker takes no other run."""
    cfg = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    (dep,) = [copy.deepcopy(d) for d in cfg["deployments"] if d["name"] == "tagging-only"]
    dep["name"] = "due-soon"
    dep["parameters"] = dict(dep["parameters"], month="2019-11")
    dep["schedules"] = [{"cron": f"{at.minute} {at.hour} * * *", "timezone": "Asia/Seoul", "active": True}]
    dep["work_pool"] = dict(dep["work_pool"], work_queue_name="due-soon")
    cfg["deployments"] = [dep]
    cfg.pop("definitions", None)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")


def test_a_due_cron_run_completes_through_the_worker(
    scheduled_server: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, log = scheduled_server
    store = tmp_path / "store"
    voc_env = {"VOC_ENV": VOC_ENV, "VOC_MODEL__CACHE_DIR": str(tmp_path / "model-cache")}

    # a test-only deployment whose cron fires at the next whole minute at least 40 s away
    at = (datetime.now(KST) + timedelta(seconds=40 + 59)).replace(second=0, microsecond=0)
    prefect_file = tmp_path / "prefect.yaml"
    _due_soon_yaml(prefect_file, at)
    prefect_cli(env, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file), cwd=REPO)
    dep = api_deployments(env)["due-soon"]
    deadline = time.monotonic() + 30
    while not (runs := filter_flow_runs(env, {"deployment_id": {"any_": [dep["id"]]}})):
        assert time.monotonic() < deadline, "the scheduler created no run of due-soon in 30 s"
        time.sleep(1)
    first = min(runs, key=_when)
    assert _when(first) == at, (first["expected_start_time"], at.isoformat())
    assert first["auto_scheduled"] is True and first["parameters"]["month"] == "2019-11"
    assert first["state"]["type"] == "SCHEDULED"

    # deployments/README.md "first training", while the minute comes: `voc train` against the
    # same server and storage, with the VOC_ENV the worker gets
    t = subprocess.run(
        [sys.executable, "-m", "flows.cli", "train", "--until", "2019-11", "--storage", str(store), "--json"],
        env=dict(env, **voc_env),
        cwd=tmp_path,  # no checkout's .env: VOC_ENV only from the environment, as the worker's
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert t.returncode == 0, t.stdout[-2000:] + t.stderr[-4000:]
    champion = json.loads((store / "stat" / "voc-stg" / "models" / "champion.json").read_text())

    # the worker (README "worker"): a run already due (a slow training) is picked up late
    worker_log = tmp_path / "worker.log"
    with prefect_worker(
        env, "voc-gpu", worker_log, work_queues=("due-soon",), VOC_HOME=str(REPO), VOC_STORAGE=str(store), **voc_env
    ):
        wait = max(0.0, (at - datetime.now(KST)).total_seconds()) + 180
        fr = wait_for_flow_run(env, first["id"], timeout_s=wait, what="due-soon")
    assert fr["state"]["type"] == "COMPLETED", (
        f"{fr['state']}\n{flow_run_logs(env, fr['id'])}\n{worker_log.read_text()[-3000:]}"
    )
    assert datetime.fromisoformat(fr["start_time"].replace("Z", "+00:00")) >= at

    month_dir = store / "stat" / "voc-stg" / "201911"  # the worker's VOC_ENV, like the CLI's
    tagged = sorted(month_dir.glob("*/tagged_*_201911_tagging-only_*.csv"))
    assert {p.parent.name for p in tagged} == {"1", "2"}, sorted(p.name for p in month_dir.rglob("*"))
    df = pl.concat([pl.read_csv(p, infer_schema=False) for p in tagged])
    assert df.height == 45  # the real 2019-11 VOCs of the sample
    assert set(df["model_version"]) == {f"{champion['kind']}_{champion['version']}"}
    assert not list(month_dir.glob("*/dashboard_*"))  # tagging-only: no dashboards
    assert (month_dir / "review_201911.xlsx").is_file()
    _assert_log_clean(log)
