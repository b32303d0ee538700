"""The production loop through the deployments: ``tests/test_cycle.py``'s four months (2019-09 …
2019-12: ``full`` → partial review → ``refresh`` → ``train``), but on the production stack — the
real ``prefect.yaml`` deployed (``prefect --no-prompt deploy --all``) to a local ``prefect server
start`` and run by a process worker, VOCs in PostgreSQL (a throwaway database: ``voc db init`` +
``voc db load-csv``), outputs, models and review workbooks in S3 (moto over HTTP).

The worker's environment carries the configuration, as on the production host (systemd
``Environment=``): ``VOC_SOURCE=postgres`` + ``VOC_DB__DSN`` (so the DSN never is a flow-run
parameter), ``VOC_STORAGE=s3://…``, ``VOC_S3__*``; no ``VOC_ENV``, so the prefix is the default
``stat/voc-dev``. The reviewer works from this process on the same S3 workbook
(``flows.adapters.review_backends.open_review_backend``).

To keep CI time down the source holds only the VOCs registered from 2019-01 on (229 VOCs, 134
subject labels before 2019-09, 35 classes) instead of the whole sample (996 VOCs from 2012):
every ``voc-train`` run analyses each source text with Kiwi (taxonomy keywords) and the
champion's evaluation again, so the source size is what the five training runs cost
(``SOURCE_FROM``). The subject labels of the four loop months are removed (new months arrive
unlabelled), so every label the loop gains comes from the review workbook.

Per month the test asserts what ``test_cycle.py`` asserts (every VOC once in the tagged and
reviewed CSVs, a dashboard per building, the invalid cell reported and never a label, the
training set growing by exactly the committed labels, the champion decision recorded in the
model's ``meta.json`` and the ``voc-train-summary`` artifact) plus ``voc_classification`` in
PostgreSQL: the committed subjects as human-reviewed rows (``subject_reviewed``), every other
VOC of the month a machine (batch) row, no work type ever a label (``work_reviewed``), the
invalid value nowhere.

Measured on 2 shared cores: see the figures the test prints (``-s``): per month the VOCs tagged,
the labels added, the champion decision, and the seconds of every flow run.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import psycopg
import pytest
from cycle_support import INVALID, next_month, review_month_partially
from infra import (
    flow_run_logs,
    moto_s3_server,
    pg_available,
    prefect_cli,
    prefect_server,
    prefect_worker,
    run_deployment,
    temp_database,
)
from pydantic import SecretStr
from typer.testing import CliRunner

from config.settings import VocSettings
from flows import storage_layout as layout
from flows.adapters.s3 import S3Storage
from flows.cli.main import app
from flows.resources import open_review_backend
from voc.mdtext import md_escape
from voc.taxonomy import Taxonomy

_reason = pg_available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

REPO = Path(__file__).resolve().parents[1]
MONTHS = ["2019-09", "2019-10", "2019-11", "2019-12"]
SOURCE_FROM = "2019-01"  # CI time: the source starts here, not in 2012 (module docstring)
BUCKET = "voc-cycle"
PREFIX = "stat/voc-dev"  # no VOC_ENV anywhere: the default environment
AWS = {"region": "us-east-1", "key": "testing", "secret": "testing"}
RUN_TIMEOUT_S = 420


def _voc(*args: str, env: dict[str, str]) -> str:
    """``voc ARGS`` in-process with ``env`` set; its output."""
    res = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert res.exit_code == 0, f"voc {' '.join(args)} exited {res.exit_code}:\n{res.output[-3000:]}"
    return res.output


def _outputs(storage: S3Storage, month: str, kind: str) -> tuple[pl.DataFrame, list[str]]:
    """The newest ``{kind}_*.csv`` of every building of the month in S3, concatenated; and the
    building ids."""
    ks = storage.list(layout.month_dir(PREFIX, month) + "/")
    buildings = sorted({k.split("/")[-2] for k in ks if k.count("/") == layout.month_dir(PREFIX, month).count("/") + 2})
    frames = []
    for b in buildings:
        key = layout.latest_output([k for k in ks if k.split("/")[-2] == b], kind)
        assert key, f"building {b}: no {kind} CSV in {storage.uri(layout.building_dir(PREFIX, month, b))}"
        frames.append(pl.read_csv(io.BytesIO(storage.read_bytes(key)), infer_schema=False))
    assert frames, f"no {kind} CSV under {storage.uri(layout.month_dir(PREFIX, month))}"
    return pl.concat(frames, how="diagonal"), buildings


def _artifacts(env: dict[str, str], flow_run_id: str) -> dict[str, Any]:
    """The flow run's artifacts by key (``data`` of a table artifact decoded)."""
    r = httpx.post(
        f"{env['PREFECT_API_URL']}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        timeout=10,
    )
    r.raise_for_status()
    out = {}
    for a in r.json():
        data = a.get("data")
        if a.get("type") == "table" and isinstance(data, str):
            data = json.loads(data)
        out[a.get("key")] = data
    return out


_DB_COLUMNS = ("voc_id", "subject_major", "subject_minor", "classify_source", "subject_reviewed", "work_reviewed")


def _classifications(dsn: str, ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """``voc_classification`` rows (of ``ids``, else all) by ``voc_id``."""
    q = f"SELECT {', '.join(_DB_COLUMNS)} FROM voc_classification"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(q + (" WHERE voc_id = ANY(%s)" if ids is not None else ""), (ids,) if ids is not None else ()).fetchall()
    return {r[0]: dict(zip(_DB_COLUMNS, r, strict=True)) for r in rows}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A throwaway PostgreSQL database, a moto S3 bucket and a Prefect server (scheduler off)
    with the ``voc-gpu`` process pool and the repository's deployments."""
    import boto3

    t0 = time.monotonic()
    with temp_database(prefix="voc_cycle") as dsn, moto_s3_server() as s3:
        boto3.client(
            "s3", endpoint_url=s3.endpoint_url, region_name=AWS["region"],
            aws_access_key_id=AWS["key"], aws_secret_access_key=AWS["secret"],
        ).create_bucket(Bucket=BUCKET)
        with prefect_server(tmp_path / "prefect-home") as env:
            prefect_cli(env, "work-pool", "create", "voc-gpu", "--type", "process")
            out = prefect_cli(env, "--no-prompt", "deploy", "--all", cwd=REPO)
            assert "voc-monthly/full" in out and "voc-train/train" in out, out
            yield {"dsn": dsn, "s3": s3, "env": env, "setup_s": time.monotonic() - t0}


def test_four_months_through_deployments(stack: dict[str, Any], tmp_path: Path, sample_raw, sample_df) -> None:
    t_start = time.monotonic()
    dsn, env = stack["dsn"], stack["env"]
    endpoint = stack["s3"].endpoint_url

    # the source: VOCs from SOURCE_FROM on, the loop months' subject labels removed
    month_of = pl.col("created_at").str.slice(0, 7)
    src = tmp_path / "voc.csv"
    sample_raw.filter(month_of >= SOURCE_FROM).with_columns(
        [pl.when(month_of >= MONTHS[0]).then(None).otherwise(pl.col(c)).alias(c) for c in ("subject_major", "subject_minor")]
    ).write_csv(src)
    in_source = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") >= SOURCE_FROM)
    n_labels0 = in_source.filter(
        (pl.col("created_at").dt.strftime("%Y-%m") < MONTHS[0]) & pl.col("reviewed_subject_minor").is_not_null()
    ).height
    cli_env = {"VOC_DB__DSN": dsn}  # the environment variable, not --dsn (visible in ps)
    assert "applied migration" in _voc("db", "init", env=cli_env)
    loaded = _voc("db", "load-csv", str(src), env=cli_env)
    assert f"loaded {in_source.height} VOCs and {n_labels0} reviewed labels" in loaded, loaded

    # this process (the reviewer, the checks) sees the same storage as the worker
    settings = VocSettings(
        _env_file=None,
        source="postgres",
        storage=f"s3://{BUCKET}",
        db={"dsn": SecretStr(dsn)},
        s3={"endpoint_url": endpoint, "region_name": AWS["region"],
            "aws_access_key_id": SecretStr(AWS["key"]), "aws_secret_access_key": SecretStr(AWS["secret"])},
    )
    assert settings.prefix == PREFIX
    storage = S3Storage.from_settings(settings)
    worker_env = {
        "VOC_HOME": str(REPO),
        "VOC_SOURCE": "postgres",
        "VOC_DB__DSN": dsn,
        "VOC_STORAGE": f"s3://{BUCKET}",
        "VOC_S3__ENDPOINT_URL": endpoint,
        "VOC_S3__REGION_NAME": AWS["region"],
        "VOC_S3__AWS_ACCESS_KEY_ID": AWS["key"],
        "VOC_S3__AWS_SECRET_ACCESS_KEY": AWS["secret"],
        "VOC_MODEL__CACHE_DIR": str(tmp_path / "worker-model-cache"),
    }
    worker_log = tmp_path / "worker.log"
    timings: dict[str, float] = {}

    def deploy_run(name: str, params: dict[str, str]) -> dict[str, Any]:
        t0 = time.monotonic()
        fr = run_deployment(env, name, params, timeout_s=RUN_TIMEOUT_S)
        timings[f"{name} {params}"] = round(time.monotonic() - t0, 1)
        assert fr["state"]["type"] == "COMPLETED", (
            f"{name} {params}: {fr['state']}\n{flow_run_logs(env, fr['id'])}\n{worker_log.read_text()[-3000:]}"
        )
        # configuration comes from the worker's environment: no DSN, no storage among the parameters
        assert "postgres" not in json.dumps(fr["parameters"]), fr["parameters"]
        assert fr["parameters"].get("source") is None and fr["parameters"].get("storage") is None
        return fr

    def models() -> set[str]:
        # a model version's own meta.json, not its variants' (registration/meta.json)
        root = layout.models_dir(PREFIX) + "/"
        return {k[len(root):].split("/")[0] for k in storage.list(root)
                if k.endswith("/meta.json") and k[len(root):].count("/") == 1}

    def champion_taxonomy() -> Taxonomy:
        name = json.loads(storage.read_bytes(layout.champion_key(PREFIX)))["name"]
        meta = json.loads(storage.read_bytes(f"{layout.models_dir(PREFIX)}/{name}/meta.json"))
        return Taxonomy.from_records(meta["taxonomy"])

    def train(until: str) -> dict[str, Any]:
        before = models()
        fr = deploy_run("voc-train/train", {"until": until})
        (name,) = models() - before
        meta = json.loads(storage.read_bytes(f"{layout.models_dir(PREFIX)}/{name}/meta.json"))
        md = _artifacts(env, fr["id"])["voc-train-summary"]
        assert f"`{name}` → **{meta['status']}**" in md and md_escape(meta["decision"]) in md, md
        champion = json.loads(storage.read_bytes(layout.champion_key(PREFIX)))
        assert (champion["name"] == name) == (meta["status"] == "champion")
        assert meta["until"] == until and meta["source"].startswith("postgresql://")
        return meta

    figures = []
    with prefect_worker(env, "voc-gpu", worker_log, **worker_env):
        meta = train(MONTHS[0])
        labels = meta["labels"]["subject"]
        assert labels == n_labels0 and meta["labels"]["work"] == 0 and meta["status"] == "champion"
        for i, month in enumerate(MONTHS):
            month_ids = sorted(in_source.filter(pl.col("created_at").dt.strftime("%Y-%m") == month)["voc_id"].to_list())

            fr = deploy_run("voc-monthly/full", {"month": month})
            tagged, buildings = _outputs(storage, month, "tagged")
            assert sorted(tagged["voc_id"].to_list()) == month_ids, "every VOC exactly once in the tagged CSVs"
            table = _artifacts(env, fr["id"])["voc-full-buildings"]
            assert sorted(r["building_id"] for r in table) == buildings and sum(r["rows"] for r in table) == len(month_ids)
            for b in buildings:
                assert storage.exists(layout.latest_dashboard_key(PREFIX, month, b)), f"no dashboard of building {b}"
            db_rows = _classifications(dsn, month_ids)
            assert sorted(db_rows) == month_ids and all(
                r["classify_source"] == "batch" and not r["subject_reviewed"] and not r["work_reviewed"]
                for r in db_rows.values()
            ), "the month's tags as machine (batch) rows"

            # the reviewer, on the S3 workbook (tests/cycle_support.py): 60 % reviewed with the
            # true labels, the rest open, one open row committed with a subject outside the taxonomy
            taxonomy = champion_taxonomy()  # what refresh validates the workbook against
            truth = sample_df.filter(pl.col("voc_id").is_in(month_ids))
            bad, expected_new = review_month_partially(
                open_review_backend(settings, storage), month, month_ids, truth, taxonomy, seed=i
            )

            fr = deploy_run("voc-monthly/refresh", {"month": month})
            table = _artifacts(env, fr["id"])["voc-refresh-buildings"]
            assert sum(r["review_issues"] for r in table) >= 1, "the invalid cell is reported"
            assert sum(r["reviewed"] for r in table) == expected_new
            reviewed, _ = _outputs(storage, month, "reviewed")
            assert sorted(reviewed["voc_id"].to_list()) == month_ids, "every VOC exactly once in the reviewed CSVs"
            row = reviewed.filter(pl.col("voc_id") == bad).row(0, named=True)
            assert row["subject_source"] == "model" and row["is_reviewed"] == "false" and row["subject_reviewed"] == "false"
            assert (reviewed["work_reviewed"] == "false").all(), "keyword guesses of the work type are never confirmed"
            assert INVALID not in reviewed["subject_minor"].to_list() + reviewed["reviewed_subject_minor"].to_list()
            for b in buildings:
                assert storage.exists(layout.latest_dashboard_key(PREFIX, month, b))

            # PostgreSQL: the committed subjects as human-reviewed rows, the rest of the month
            # machine (batch) rows; no work type became a label; the invalid value nowhere
            done = {
                r["voc_id"]: (r["reviewed_subject_major"], r["reviewed_subject_minor"])
                for r in reviewed.filter(pl.col("subject_reviewed") == "true").iter_rows(named=True)
            }
            assert len(done) == expected_new
            assert set(done) == set(reviewed.filter(pl.col("is_reviewed") == "true")["voc_id"].to_list())
            db_rows = _classifications(dsn, month_ids)
            assert sorted(db_rows) == month_ids
            assert {v for v, r in db_rows.items() if r["subject_reviewed"]} == set(done)
            assert not any(r["work_reviewed"] for r in db_rows.values())
            for v, r in db_rows.items():
                if v in done:
                    assert r["classify_source"] == "reviewed" and (r["subject_major"], r["subject_minor"]) == done[v], r
                else:
                    assert r["classify_source"] == "batch", r
            assert db_rows[bad]["subject_minor"] != INVALID and not db_rows[bad]["subject_reviewed"]
            assert all(r["subject_minor"] != INVALID for r in _classifications(dsn).values())

            meta = train(next_month(month))
            assert meta["labels"]["subject"] == labels + expected_new, "the training set grows by exactly the reviewed labels"
            assert meta["labels"]["work"] == 0, "keyword guesses of the work type never become labels"
            assert meta["status"] in ("champion", "candidate") and meta["decision"]
            figures.append(
                {"month": month, "vocs": len(month_ids), "labels_added": expected_new, "labels_total": meta["labels"]["subject"],
                 "model": meta["name"], "status": meta["status"], "decision": meta["decision"]}
            )
            labels = meta["labels"]["subject"]

    assert not any(k.startswith("stat/voc/") or k.startswith("stat/voc-stg/") for k in storage.list("stat/"))
    wall = time.monotonic() - t_start
    print("\ncycle through deployments, figures:\n" + "\n".join(json.dumps(f, ensure_ascii=False) for f in figures))
    print("flow runs (s, wait included):\n" + "\n".join(f"  {v:6.1f}  {k}" for k, v in timings.items()))
    print(f"wall time: setup (database, S3, server, deploy) {stack['setup_s']:.0f} s, loop {wall:.0f} s")
