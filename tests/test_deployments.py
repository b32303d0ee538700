"""prefect.yaml: its declarations, a deploy to a real local Prefect server with a process worker
(stand-in flows with the documented signatures), and the real ``voc-monthly`` full → refresh
through deployments (``@pytest.mark.slow``)."""

from __future__ import annotations

import inspect
import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from infra import flow_run_logs, prefect_cli, prefect_server, prefect_worker, run_deployment

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "prefect.yaml"

EXPECTED: dict[str, dict[str, Any]] = {
    "full": {"entrypoint": "flows/monthly.py:voc_monthly", "cron": "0 2 1 * *", "mode": "full"},
    "refresh": {"entrypoint": "flows/monthly.py:voc_monthly", "cron": "0 2 15 * *", "mode": "refresh"},
    "tagging-only": {"entrypoint": "flows/monthly.py:voc_monthly", "cron": None, "mode": "tagging-only"},
    "train": {"entrypoint": "flows/train.py:voc_train", "cron": "0 4 20 * *", "mode": None},
}
FLOW_NAMES = {"flows/monthly.py:voc_monthly": "voc-monthly", "flows/train.py:voc_train": "voc-train"}


def _config() -> dict[str, Any]:
    return yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))


def _deployments() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in _config()["deployments"]}


def test_prefect_yaml_declarations() -> None:
    cfg = _config()
    deps = _deployments()
    assert set(deps) == set(EXPECTED)
    (step,) = cfg["pull"]
    assert step == {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $VOC_HOME }}"}}
    for name, want in EXPECTED.items():
        d = deps[name]
        assert d["entrypoint"] == want["entrypoint"]
        crons = list(d.get("schedules") or [])
        if want["cron"] is None:
            assert crons == []
        else:
            assert crons == [{"cron": want["cron"], "timezone": "Asia/Seoul", "active": True}]
        assert d["work_pool"]["name"] == "voc-gpu"
        env = d["work_pool"]["job_variables"]["env"]
        # VOC_ENV comes from the worker's environment / VOC_HOME/.env, like the CLI's on that host
        assert "VOC_ENV" not in env and "CUDA_VISIBLE_DEVICES" in env
        assert d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        params = d["parameters"]
        if want["mode"] is not None:
            assert params["mode"] == want["mode"]
            assert params["month"] is None  # None → previous month (KST) at run time
        for v in env.values():
            assert isinstance(v, str)  # env values must be strings for the process worker


def test_entrypoints_import_with_declared_parameters() -> None:
    from prefect.flows import load_flow_from_entrypoint

    files = {d["entrypoint"].split(":")[0] for d in _deployments().values()}
    missing = sorted(p for p in files if not (REPO / p).is_file())
    assert not missing, f"prefect.yaml names flow files that do not exist: {missing}"
    for name, d in _deployments().items():
        flow = load_flow_from_entrypoint(str(REPO / d["entrypoint"]))
        assert flow.name == FLOW_NAMES[d["entrypoint"]], name
        sig = inspect.signature(flow.fn)
        assert set(d["parameters"]) <= set(sig.parameters), (name, set(d["parameters"]) - set(sig.parameters))
        for p in ("storage", "source"):
            assert p in sig.parameters, (name, p)


# --------------------------------------------------------------------------------------------
# a real Prefect server


STUB_MONTHLY = """
import json, os
from pathlib import Path
from prefect import flow

@flow(name="voc-monthly")
def voc_monthly(mode: str = "full", month: str | int | None = None, building_ids: list[str] | None = None,
                storage: str | None = None, source: str | None = None) -> str:
    out = Path(storage) / f"{mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mode": mode, "month": month, "building_ids": building_ids, "cwd": os.getcwd(),
                               "VOC_ENV": os.environ.get("VOC_ENV"),
                               "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}))
    return str(out)
"""
STUB_TRAIN = """
from prefect import flow

@flow(name="voc-train")
def voc_train(until: str | None = None, model: str | None = None, storage: str | None = None,
              source: str | None = None) -> None:
    return None
"""


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A local ``prefect server start`` (scheduler off) with the ``voc-gpu`` process pool."""
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(home) as env:
        prefect_cli(env, "work-pool", "create", "voc-gpu", "--type", "process")
        yield env


def _api_deployments(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}, timeout=10)
    r.raise_for_status()
    return {d["name"]: d for d in r.json()}


@pytest.mark.slow
def test_prefect_yaml_deploys_and_runs_through_a_process_worker(prefect_api: dict[str, str], tmp_path: Path) -> None:
    """`prefect deploy --all` of the real prefect.yaml (with stand-in flows of the documented
    signatures) registers schedules, timezone, pool, concurrency and job variables; a worker with
    VOC_HOME and VOC_ENV runs `voc-monthly/refresh` in the checkout with the worker's VOC_ENV and
    the deployment's job variables."""
    project = tmp_path / "checkout"
    (project / "flows").mkdir(parents=True)
    shutil.copy(PREFECT_YAML, project / "prefect.yaml")
    (project / "flows" / "monthly.py").write_text(textwrap.dedent(STUB_MONTHLY))
    (project / "flows" / "train.py").write_text(textwrap.dedent(STUB_TRAIN))
    out = prefect_cli(prefect_api, "--no-prompt", "deploy", "--all", cwd=project)
    assert "voc-monthly/refresh" in out and "voc-train/train" in out

    got = _api_deployments(prefect_api)
    assert set(got) == set(EXPECTED)
    for name, want in EXPECTED.items():
        d = got[name]
        assert d["entrypoint"] == want["entrypoint"]
        assert d["work_pool_name"] == "voc-gpu"
        crons = [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in d["schedules"]]
        assert crons == ([] if want["cron"] is None else [(want["cron"], "Asia/Seoul")])
        assert d["global_concurrency_limit"]["limit"] == 1
        assert d["concurrency_options"]["collision_strategy"] == "ENQUEUE"
        assert "VOC_ENV" not in d["job_variables"]["env"]  # the worker's, not the deployment's
        assert d["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] == "0"
        assert d["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $VOC_HOME }}"}}
        ]
        if want["mode"]:
            assert d["parameters"]["mode"] == want["mode"]

    store = tmp_path / "store"
    # the worker's environment (systemd Environment= / EnvironmentFile=) reaches the flow run
    with prefect_worker(prefect_api, "voc-gpu", tmp_path / "worker.log", VOC_HOME=str(project), VOC_ENV="prd"):
        fr = run_deployment(
            prefect_api,
            "voc-monthly/refresh",
            {"month": "2019-11", "storage": str(store), "building_ids": '["2"]'},
            timeout_s=180,
        )
    assert fr["state"]["type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
    marker = json.loads((store / "refresh.json").read_text())
    assert marker == {
        "mode": "refresh",
        "month": "2019-11",
        "building_ids": ["2"],
        "cwd": str(project),
        "VOC_ENV": "prd",
        "CUDA_VISIBLE_DEVICES": "0",
    }


@pytest.mark.slow
def test_deploy_and_run_refresh(prefect_api: dict[str, str], tmp_path: Path) -> None:
    """The real flows: deploy prefect.yaml from the repository; through a process worker whose
    environment sets VOC_ENV=prd, train (voc-train/train, until 2019-11), then run
    voc-monthly/full and voc-monthly/refresh for 2019-11 into one storage, all under the
    worker's prefix stat/voc."""
    missing = [p for p in ("flows/monthly.py", "flows/train.py") if not (REPO / p).is_file()]
    assert not missing, f"flow files missing: {missing}"
    prefect_cli(prefect_api, "--no-prompt", "deploy", "--all", cwd=REPO)
    store = tmp_path / "store"
    log = tmp_path / "worker.log"
    worker_env = {"VOC_HOME": str(REPO), "VOC_ENV": "prd", "VOC_MODEL__CACHE_DIR": str(tmp_path / "model-cache")}
    runs = [
        ("voc-train/train", {"until": "2019-11", "storage": str(store)}),
        ("voc-monthly/full", {"month": "2019-11", "storage": str(store)}),
        ("voc-monthly/refresh", {"month": "2019-11", "storage": str(store)}),
    ]
    with prefect_worker(prefect_api, "voc-gpu", log, **worker_env):
        for name, params in runs:
            fr = run_deployment(prefect_api, name, params, timeout_s=540)
            assert fr["state"]["type"] == "COMPLETED", (
                f"{name}: {fr['state']}\n{flow_run_logs(prefect_api, fr['id'])}\n{log.read_text()[-3000:]}"
            )
    root = store / "stat" / "voc"  # VOC_ENV=prd from the worker's environment
    assert (root / "models" / "champion.json").is_file(), sorted(p.name for p in store.rglob("*"))
    assert not (store / "stat" / "voc-dev").exists()  # the CLI default did not leak in
    month_dir = root / "201911"
    for building in ("1", "2"):
        names = [p.name for p in (month_dir / building).iterdir()]
        assert any(n.startswith(f"tagged_{building}_201911_full_") for n in names), names
        assert f"dashboard_{building}_201911.html" in names, names
    assert any("refresh_" in p.name for p in month_dir.rglob("*")), sorted(p.name for p in month_dir.rglob("*"))
