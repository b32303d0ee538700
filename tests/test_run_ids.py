"""Run ids keep the layout's ``{mode}_{yyyymmdd}_{hhmmss}`` and never collide: two runs started
in the same second get different ids (the second takes the next second), reserved by an
exclusive marker in storage (``flows.storage_layout.reserve_run_id``), so neither overwrites the other's
run-scoped files."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import boto3
import polars as pl
import pytest
from infra import MotoS3, moto_s3_server

import flows.storage_layout
from config.settings import S3Settings
from flows.adapters.s3 import S3Storage
from flows.adapters.storage import LocalStorage
from flows.storage_layout import RunIdError, new_run_id, reserve_run_id, run_marker_key
from voc.months import KST

PREFIX = "stat/voc-dev"
T0 = datetime(2026, 12, 1, 2, 0, 0, 250_000, tzinfo=KST)


def _reserve_concurrently(storage, n: int = 4) -> list[str]:
    """``n`` threads reserve at the same instant with a clock frozen at ``T0``."""
    barrier = threading.Barrier(n)
    out: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait(timeout=30)
        rid = reserve_run_id(storage, PREFIX, "full", clock=lambda: T0, sleep=lambda s: None, info={"who": "t"})
        with lock:
            out.append(rid)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_same_second_local_runs_get_consecutive_ids(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    ids = _reserve_concurrently(storage)
    assert sorted(ids) == [f"full_20261201_02000{i}" for i in range(4)]
    for rid in ids:
        assert storage.exists(run_marker_key(PREFIX, rid))
    assert new_run_id("full", T0) == "full_20261201_020000"


def test_waits_for_the_next_second_when_taken(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    now = {"t": T0}
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now["t"] = now["t"].replace(microsecond=0).replace(second=now["t"].second + 1)

    a = reserve_run_id(storage, PREFIX, "refresh", clock=lambda: now["t"], sleep=sleep)
    b = reserve_run_id(storage, PREFIX, "refresh", clock=lambda: now["t"], sleep=sleep)
    assert (a, b) == ("refresh_20261201_020000", "refresh_20261201_020001")
    assert slept == [pytest.approx(0.75)], "waited until the next second began"
    with pytest.raises(RunIdError):
        reserve_run_id(storage, PREFIX, "refresh", clock=lambda: T0, sleep=lambda s: None, attempts=2)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    with moto_s3_server() as server:
        yield server


def test_same_second_s3_runs_get_distinct_ids(moto: MotoS3, aws_test_env: None) -> None:
    boto3.client("s3", endpoint_url=moto.endpoint_url).create_bucket(Bucket="voc-run-ids")
    storage = S3Storage.from_uri("s3://voc-run-ids/t", S3Settings(endpoint_url=moto.endpoint_url))
    ids = _reserve_concurrently(storage)
    assert sorted(ids) == [f"full_20261201_02000{i}" for i in range(4)]
    assert sorted(k for k in storage.list(f"{PREFIX}/runs")) == sorted(run_marker_key(PREFIX, i) for i in ids)


@pytest.mark.slow
def test_two_monthly_runs_in_the_same_second_keep_their_own_files(
    prefect_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ``tagging-only`` runs whose clocks read the same second: different run ids, and both
    runs' tagged CSVs are in storage, each with its own run id inside."""
    from flows.monthly import voc_monthly

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return T0 if tz is None else T0.astimezone(tz)

    monkeypatch.setattr(flows.storage_layout, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOC_MODEL__ALLOW_KEYWORD_ONLY", "true")
    monkeypatch.setenv("VOC_MODEL__CACHE_DIR", str(tmp_path / "model-cache"))
    store = tmp_path / "store"
    a = voc_monthly(mode="tagging-only", month="2019-11", building_ids=["2"], storage=str(store))
    b = voc_monthly(mode="tagging-only", month="2019-11", building_ids=["2"], storage=str(store))
    assert a["run_id"] == "tagging-only_20261201_020000"
    assert b["run_id"] == "tagging-only_20261201_020001", "the second run waited for the next second"
    tagged = sorted((store / PREFIX / "201911" / "2").glob("tagged_*.csv"))
    assert [p.name for p in tagged] == [f"tagged_2_201911_{a['run_id']}.csv", f"tagged_2_201911_{b['run_id']}.csv"]
    for p, rid in zip(tagged, (a["run_id"], b["run_id"])):
        assert set(pl.read_csv(p, infer_schema=False)["run_id"].to_list()) == {rid}
    assert sorted(p.name for p in (store / PREFIX / "runs").iterdir()) == [f"{a['run_id']}.json", f"{b['run_id']}.json"]
