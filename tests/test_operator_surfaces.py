"""What an operator sees of a run, for real (issue 22, operator items):

* a failed flow run's **state message is the one-line reason** (``run mode=full for 2019-11
  first``), read back from the Prefect API, not a generic "Flow run encountered an exception";
* task runs are named by what they do and for whom (``tag-building-2``, ``store-tagged-2``,
  ``sync-review-sheet-201911``), not ``store-object-55c``;
* the bucket and database snippets of deployments/README.md run as written (moto S3, a throwaway
  PostgreSQL database), in and outside us-east-1;
* the Prefect UI served on a random port with ``PREFECT_UI_API_URL`` shows a flow run in headless
  Chromium;
* ``prefect worker start`` stopped the way deployments/README.md documents exits within 10 s.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from infra import free_port, moto_s3_server, pg_available, prefect_cli, prefect_server, temp_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_README = ROOT / "deployments" / "README.md"


def _task_run_names(flow_run_id: object) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200)
    return sorted(r.name for r in runs)


def _flow_run_state(flow_run_id: object) -> tuple[str, str]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        st = client.read_flow_run(flow_run_id).state
    return st.type.value, st.message or ""


def test_task_runs_are_named_and_a_failed_run_states_its_reason(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.monthly import MonthlyRunError, voc_monthly
    from flows.train import voc_train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOC_MODEL__ALLOW_KEYWORD_ONLY", "true")
    monkeypatch.setenv("VOC_MODEL__CACHE_DIR", str(tmp_path / "model-cache"))
    store = tmp_path / "store"

    state = voc_monthly(mode="full", month="2019-11", building_ids=["2"], storage=str(store), return_state=True)
    assert state.is_completed(), state.message
    names = _task_run_names(state.state_details.flow_run_id)
    for expected in (
        "read-month-201911", "tag-building-2", "read-history-2", "store-tagged-2",
        "store-dashboard-2", "sync-review-sheet-201911", "read-review-sheet-201911",
        "reserve-run-id-full", "update-month-index-201911", "resolve-model", "load-model-keyword_default",
    ):
        assert expected in names, (expected, names)
    assert not [n for n in names if n.startswith(("store-object", "tag_building"))], names
    # threads share the flow process's loaded model: no per-building load-model task run (issue 21)
    assert "load-model-2" not in names and names.count("store-dashboard-2") == 1, names

    # refresh of a month never tagged in this storage: Failed, and the message is the reason
    state = voc_monthly(mode="refresh", month="2019-10", storage=str(store), return_state=True)
    kind, message = _flow_run_state(state.state_details.flow_run_id)
    assert kind == "FAILED"
    assert message.startswith("voc-monthly refresh 2019-10: no tagged CSV under "), message
    assert message.endswith("run mode=full for 2019-10 first") and "\n" not in message, message
    with pytest.raises(MonthlyRunError, match="run mode=full for 2019-10 first"):  # a direct call still raises it
        voc_monthly(mode="refresh", month="2019-10", storage=str(store))

    # any other error: "Type: text" on one line
    state = voc_train(until="2019-13", storage=str(store), return_state=True)
    kind, message = _flow_run_state(state.state_details.flow_run_id)
    assert (kind, message) == ("FAILED", "ValueError: month out of range: '2019-13'"), message


# --------------------------------------------------------------------------------------------
# deployments/README.md snippets


def _snippet(marker: str) -> str:
    """The ```bash block of deployments/README.md whose first line is ``# {marker}``."""
    blocks = re.findall(r"```bash\n(.*?)```", DEPLOY_README.read_text(encoding="utf-8"), flags=re.S)
    found = [b for b in blocks if b.startswith(f"# {marker}\n")]
    assert len(found) == 1, f"deployments/README.md: one ```bash block starting with '# {marker}' expected"
    return found[0]


def _bash(script: str, env: dict[str, str], cwd: Path) -> str:
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"snippet exited {r.returncode}:\n{script}\n---\n{out[-3000:]}"
    return out


def _voc_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOC_", "AWS_", "PREFECT_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # voc, python of this venv
    env["PYTHONPATH"] = str(ROOT)
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", **extra)
    return env


@pytest.mark.parametrize("region", ["ap-northeast-2", "us-east-1"])
def test_bucket_snippet_creates_the_bucket_in_its_region(tmp_path: Path, region: str) -> None:
    import boto3

    script = _snippet("the output bucket")
    with moto_s3_server() as s3:
        bucket = f"voc-outputs-{region}"  # moto's buckets outlive one server
        env = _voc_env(tmp_path, VOC_STORAGE=f"s3://{bucket}", VOC_S3__ENDPOINT_URL=s3.endpoint_url, VOC_S3__REGION_NAME=region)
        out = _bash(script, env, tmp_path)
        assert f"created s3://{bucket} in {region}" in out, out
        again = _bash(script, env, tmp_path)  # run twice: no error (us-east-1 answers 200 again, others "already owned")
        assert f"s3://{bucket} in {region}" in again, again
        client = boto3.client(
            "s3", endpoint_url=s3.endpoint_url, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        where = client.get_bucket_location(Bucket=bucket)["LocationConstraint"]
        assert (where or "us-east-1") == region


def test_database_snippet_loads_the_vocs_into_a_new_database(tmp_path: Path, sample_csv: Path) -> None:
    import psycopg

    if (why := pg_available()) is not None:
        pytest.skip(why)
    script = _snippet("the database")
    shutil.copy(sample_csv, tmp_path / "vocs.csv")  # the customer's export in the VOC CSV schema
    with temp_database(prefix="voc_readme") as dsn:
        out = _bash(script, _voc_env(tmp_path, VOC_DB__DSN=dsn), tmp_path)
        import polars as pl

        distinct = pl.read_csv(sample_csv, infer_schema=False)["voc_id"].n_unique()  # 996: a few ids repeat
        assert f"loaded {distinct} VOCs" in out, out
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM voc").fetchone()[0] == distinct
        again = _bash(script, _voc_env(tmp_path, VOC_DB__DSN=dsn), tmp_path)  # idempotent: run on every release
        assert "loaded " in again


# --------------------------------------------------------------------------------------------
# the Prefect UI on any port


def test_prefect_ui_on_a_random_port_shows_a_flow_run(tmp_path: Path) -> None:
    import httpx
    import prefect

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/system-deps.sh)")
    if not (Path(prefect.__file__).parent / "server" / "ui" / "index.html").exists():
        pytest.skip("the Prefect UI bundle is not installed with this prefect")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    with prefect_server(
        tmp_path / "home", port=port, PREFECT_SERVER_UI_ENABLED="true", PREFECT_UI_API_URL=api, startup_timeout_s=300
    ) as env:
        flow = httpx.post(f"{api}/flows/", json={"name": "ui-probe"}, timeout=30).json()
        run = httpx.post(f"{api}/flow_runs/", json={"flow_id": flow["id"], "name": "operator-sees-this-run"}, timeout=30).json()
        assert env["PREFECT_API_URL"] == api
        r = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=30000", "--dump-dom", f"http://127.0.0.1:{port}/runs/flow-run/{run['id']}"],
            capture_output=True, text=True, timeout=240,
        )
        assert "operator-sees-this-run" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


# --------------------------------------------------------------------------------------------
# the worker and SIGTERM


def test_worker_stops_within_10_s_of_sigterm(tmp_path: Path) -> None:
    """``prefect worker start`` answers SIGTERM by sending itself SIGINT (Prefect 3.8.8,
    ``setup_signal_handlers_worker``); that usually stops it within a second, but the interrupt
    can be lost (the worker then polls on for minutes), and a second SIGTERM makes it SIGKILL
    itself. deployments/README.md step 6 therefore stops it with SIGTERM, then SIGTERM again after
    5 s (systemd: ``TimeoutStopSec=10``); this is that procedure, timed."""
    home = tmp_path / "home"
    with prefect_server(home, startup_timeout_s=300) as env:
        prefect_cli(env, "work-pool", "create", "voc-gpu", "--type", "process")
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", "voc-gpu"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            try:
                deadline = time.monotonic() + 300
                while b"started" not in log_path.read_bytes():
                    assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.2)
                time.sleep(2)  # polling
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGTERM)  # the documented second SIGTERM
                    proc.wait(timeout=10)
                assert time.monotonic() - t0 <= 10, log_path.read_text()
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
