"""The monthly cycle on real infrastructure: VOCs from PostgreSQL, outputs in S3 (moto over
HTTP with injected faults), Prefect flows for real.

* train → full → simulated review → refresh for 2019-11 from postgres to s3;
* ``voc_classification`` holds the month's 45 VOCs with the source priorities honoured;
* S3 failing twice then succeeding is absorbed by retries;
* a building whose uploads fail for good fails alone: the other completes, the run names it,
  and a rerun with only that building completes the month;
* reruns are idempotent (no new classification rows, no reviewer cell changed).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import boto3
import polars as pl
import psycopg
import pytest
from infra import MotoS3, moto_s3_server, pg_available, temp_database

pytestmark = pytest.mark.slow

BUCKET = "voc-flows"
MONTH = "2019-11"


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    if pg_available() is not None:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {pg_available()}")
    from flows.adapters.db import apply_migrations, load_csv
    from config.settings import sample_csv_path

    with temp_database(prefix="voc_flows") as url:
        apply_migrations(url)
        load_csv(url, sample_csv_path())
        yield url


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    with moto_s3_server() as server:
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=server.endpoint_url,  # the standard variable: no project setting needed
        )
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        try:
            yield server
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _keys(prefix: str = "") -> list[str]:
    s3 = boto3.client("s3")
    out, token = [], None
    while True:
        kw = {"Bucket": BUCKET, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        r = s3.list_objects_v2(**kw)
        out += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            return sorted(out)
        token = r["NextContinuationToken"]


def _classifications(dsn: str, ids: list[str]) -> dict[str, tuple]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT voc_id, subject_minor, classify_source, subject_reviewed FROM voc_classification WHERE voc_id = ANY(%s)",
            (ids,),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.fixture(scope="module")
def cycle(dsn, moto, prefect_server, sample_df):
    """train + full (with two transient S3 failures) for the month."""
    from flows.monthly import voc_monthly
    from flows.train import voc_train

    storage = f"s3://{BUCKET}/tenant-a"
    t = voc_train(until=MONTH, storage=storage, source=dsn)
    assert t["status"] == "champion"
    moto.faults.clear()
    moto.faults.fail("PUT", "/201911/1/tagged_", times=2, status=500)  # transient: retried
    full = voc_monthly(mode="full", month=MONTH, storage=storage, source=dsn)
    return storage, t, full


def test_full_from_postgres_to_s3(cycle, dsn, moto, sample_df):
    storage, _, full = cycle
    assert full["failed"] == [] and full["rows"] == 45
    assert moto.faults.count("PUT", "/201911/1/tagged_") >= 3  # two injected failures, then success
    keys = _keys("tenant-a/stat/voc-dev/")
    for b in ("1", "2"):
        assert any(k.startswith(f"tenant-a/stat/voc-dev/201911/{b}/tagged_{b}_201911_full_") for k in keys)
        assert f"tenant-a/stat/voc-dev/201911/{b}/dashboard_{b}_201911.html" in keys
    assert "tenant-a/stat/voc-dev/201911/review_201911.xlsx" in keys
    assert f"tenant-a/stat/voc-dev/models/{cycle[1]['model']}/meta.json" in keys
    ids = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == MONTH)["voc_id"].to_list()
    rows = _classifications(dsn, ids)
    assert len(rows) == 45
    # the 44 rows loaded with (subject) labels are human-reviewed: the batch never overwrote them
    assert sum(1 for r in rows.values() if r[1] == "reviewed" and r[2]) == 44
    assert sum(1 for r in rows.values() if r[1] == "batch" and not r[2]) == 1


def test_one_building_failing_for_good_leaves_the_other(cycle, dsn, moto):
    from flows.monthly import MonthlyRunError, voc_monthly

    storage, _, _ = cycle
    moto.faults.clear()
    moto.faults.fail("PUT", "/201911/2/", times=None, status=500)
    with pytest.raises(MonthlyRunError) as e:
        voc_monthly(mode="tagging-only", month=MONTH, storage=storage, source=dsn)
    summary = e.value.summary
    assert summary["failed"] == ["2"] and "2" in str(e.value)
    ok = [b for b in summary["buildings"] if b["status"] == "ok"]
    assert [b["building_id"] for b in ok] == ["1"] and ok[0]["rows"] == 41
    moto.faults.clear()
    again = voc_monthly(mode="tagging-only", month=MONTH, building_ids=["2"], storage=storage, source=dsn)
    assert again["failed"] == [] and again["rows"] == 4


def test_refresh_marks_reviewed_and_reruns_are_idempotent(cycle, dsn, moto, sample_df):
    from openpyxl import load_workbook

    from flows.monthly import voc_monthly
    from flows.review_flow import simulate_month_review

    storage, _, _ = cycle
    moto.faults.clear()
    sim = simulate_month_review(month=MONTH, storage=storage, source=dsn)
    assert sim["reviewed"] >= 40
    ref = voc_monthly(mode="refresh", month=MONTH, storage=storage, source=dsn)
    assert ref["failed"] == []
    keys = _keys("tenant-a/stat/voc-dev/201911/")
    assert sum("/reviewed_" in k for k in keys) == 2
    ids = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == MONTH)["voc_id"].to_list()
    after_refresh = _classifications(dsn, ids)
    assert len(after_refresh) == 45
    assert sum(1 for r in after_refresh.values() if r[1] == "reviewed" and r[2]) >= 44

    def workbook():
        body = boto3.client("s3").get_object(Bucket=BUCKET, Key="tenant-a/stat/voc-dev/201911/review_201911.xlsx")["Body"].read()
        return [tuple(r) for r in load_workbook(io.BytesIO(body)).worksheets[0].iter_rows(values_only=True)]

    before = workbook()
    rerun = voc_monthly(mode="full", month=MONTH, storage=storage, source=dsn)
    assert rerun["failed"] == []
    assert _classifications(dsn, ids) == after_refresh  # batch never overwrites reviewed rows
    after = workbook()
    header = before[0]
    rev = [i for i, h in enumerate(header) if h and str(h).startswith("검수")]
    key = header.index("voc_id")
    assert len(after) == len(before)
    assert {r[key]: [r[i] for i in rev] for r in after[1:]} == {r[key]: [r[i] for i in rev] for r in before[1:]}
