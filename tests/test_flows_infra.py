"""The monthly cycle on real infrastructure: VOCs from PostgreSQL, outputs in S3 (moto over
HTTP with injected faults), Prefect flows for real.

* train → full → simulated review → refresh for 2019-11 from postgres to s3;
* ``voc_classification`` holds the month's 45 VOCs with the source priorities honoured;
* S3 failing twice then succeeding is absorbed by retries;
* a building whose uploads fail for good fails alone: the other completes, the run names it,
  and a rerun with only that building completes the month;
* reruns are idempotent (no new classification rows, no reviewer cell changed).

Training runs once (its own database and bucket); every test then gets its own bucket with a copy
of the trained models, its own database with the sample and a fault injector without rules
(:func:`tenant`), so the tests pass alone and in any order.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import polars as pl
import psycopg
import pytest
from infra import MotoS3, moto_s3_server, pg_available, temp_database

pytestmark = pytest.mark.slow

TRAIN_BUCKET = "voc-flows-train"
TENANT = "tenant-a"
ENV_PREFIX = f"{TENANT}/stat/voc-dev"  # VOC_ENV=dev under the storage URL's path
MONTH = "2019-11"


@contextmanager
def _sample_db(prefix: str) -> Iterator[str]:
    """A throwaway database, migrated, holding the sample."""
    from config.settings import sample_csv_path
    from flows.adapters.db import apply_migrations, load_csv

    if pg_available() is not None:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {pg_available()}")
    with temp_database(prefix=prefix) as url:
        apply_migrations(url)
        load_csv(url, sample_csv_path())
        yield url


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    """One moto server; every test writes to buckets of its own."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    with moto_s3_server() as server:
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=server.endpoint_url,  # the standard variable: no project setting needed
        )
        try:
            yield server
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def trained(moto, prefect_server) -> dict[str, Any]:
    """``voc_train`` once, from a database of its own into a bucket of its own (read-only after)."""
    from flows.train import voc_train

    boto3.client("s3").create_bucket(Bucket=TRAIN_BUCKET)
    with _sample_db("voc_flows_train") as dsn:
        return voc_train(until=MONTH, storage=f"s3://{TRAIN_BUCKET}/{TENANT}", source=dsn)


@dataclass
class Tenant:
    """One test's own world: a bucket holding a copy of the trained models, a database holding
    the sample, and a fault injector without rules or recorded requests."""

    bucket: str
    dsn: str
    moto: MotoS3

    @property
    def storage(self) -> str:
        return f"s3://{self.bucket}/{TENANT}"

    def keys(self, under: str = "") -> list[str]:
        return _keys(self.bucket, f"{ENV_PREFIX}/{under}")


@pytest.fixture
def tenant(trained, moto) -> Iterator[Tenant]:
    assert trained["status"] == "champion", trained
    s3 = boto3.client("s3")
    bucket = f"voc-flows-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    for key in _keys(TRAIN_BUCKET, f"{ENV_PREFIX}/models/"):
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": TRAIN_BUCKET, "Key": key})
    moto.faults.clear()
    try:
        with _sample_db("voc_flows") as dsn:
            yield Tenant(bucket, dsn, moto)
    finally:
        moto.faults.clear()


def _keys(bucket: str, prefix: str = "") -> list[str]:
    s3 = boto3.client("s3")
    out, token = [], None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
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


def _month_ids(sample_df: pl.DataFrame) -> list[str]:
    return sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == MONTH)["voc_id"].to_list()


def test_training_from_postgres_stores_the_champion_in_s3(trained) -> None:
    keys = _keys(TRAIN_BUCKET, f"{ENV_PREFIX}/models/")
    assert trained["status"] == "champion"
    assert f"{ENV_PREFIX}/models/{trained['model']}/meta.json" in keys
    assert f"{ENV_PREFIX}/models/champion.json" in keys


def test_full_from_postgres_to_s3(tenant, sample_df):
    from flows.monthly import voc_monthly

    tenant.moto.faults.fail("PUT", "/201911/1/tagged_", times=2, status=500)  # transient: retried
    full = voc_monthly(mode="full", month=MONTH, storage=tenant.storage, source=tenant.dsn)
    assert full["failed"] == [] and full["rows"] == 45
    assert tenant.moto.faults.count("PUT", "/201911/1/tagged_") >= 3  # two injected failures, then success
    keys = tenant.keys()
    for b in ("1", "2"):
        assert any(k.startswith(f"{ENV_PREFIX}/201911/{b}/tagged_{b}_201911_full_") for k in keys)
        assert f"{ENV_PREFIX}/201911/{b}/dashboard_{b}_201911.html" in keys
    assert f"{ENV_PREFIX}/201911/review_201911.xlsx" in keys
    rows = _classifications(tenant.dsn, _month_ids(sample_df))
    assert len(rows) == 45
    # the 44 rows loaded with (subject) labels are human-reviewed: the batch never overwrote them
    assert sum(1 for r in rows.values() if r[1] == "reviewed" and r[2]) == 44
    assert sum(1 for r in rows.values() if r[1] == "batch" and not r[2]) == 1


def test_one_building_failing_for_good_leaves_the_other(tenant):
    from flows.monthly import MonthlyRunError, voc_monthly

    tenant.moto.faults.fail("PUT", "/201911/2/", times=None, status=500)
    with pytest.raises(MonthlyRunError) as e:
        voc_monthly(mode="tagging-only", month=MONTH, storage=tenant.storage, source=tenant.dsn)
    summary = e.value.summary
    assert summary["failed"] == ["2"] and "2" in str(e.value)
    ok = [b for b in summary["buildings"] if b["status"] == "ok"]
    assert [b["building_id"] for b in ok] == ["1"] and ok[0]["rows"] == 41
    assert not tenant.keys("201911/2/")  # nothing of building 2 reached the bucket
    tenant.moto.faults.clear()
    again = voc_monthly(mode="tagging-only", month=MONTH, building_ids=["2"], storage=tenant.storage, source=tenant.dsn)
    assert again["failed"] == [] and again["rows"] == 4


def test_refresh_marks_reviewed_and_reruns_are_idempotent(tenant, sample_df):
    from openpyxl import load_workbook

    from flows.monthly import voc_monthly
    from flows.review_flow import simulate_month_review

    assert voc_monthly(mode="full", month=MONTH, storage=tenant.storage, source=tenant.dsn)["failed"] == []
    sim = simulate_month_review(month=MONTH, storage=tenant.storage, source=tenant.dsn)
    assert sim["reviewed"] >= 40
    ref = voc_monthly(mode="refresh", month=MONTH, storage=tenant.storage, source=tenant.dsn)
    assert ref["failed"] == []
    assert sum("/reviewed_" in k for k in tenant.keys("201911/")) == 2
    ids = _month_ids(sample_df)
    after_refresh = _classifications(tenant.dsn, ids)
    assert len(after_refresh) == 45
    assert sum(1 for r in after_refresh.values() if r[1] == "reviewed" and r[2]) >= 44

    def workbook():
        key = f"{ENV_PREFIX}/201911/review_201911.xlsx"
        body = boto3.client("s3").get_object(Bucket=tenant.bucket, Key=key)["Body"].read()
        return [tuple(r) for r in load_workbook(io.BytesIO(body)).worksheets[0].iter_rows(values_only=True)]

    before = workbook()
    rerun = voc_monthly(mode="full", month=MONTH, storage=tenant.storage, source=tenant.dsn)
    assert rerun["failed"] == []
    assert _classifications(tenant.dsn, ids) == after_refresh  # batch never overwrites reviewed rows
    after = workbook()
    header = before[0]
    rev = [i for i, h in enumerate(header) if h and str(h).startswith("검수")]
    key = header.index("voc_id")
    assert len(after) == len(before)
    assert {r[key]: [r[i] for i in rev] for r in after[1:]} == {r[key]: [r[i] for i in rev] for r in before[1:]}
