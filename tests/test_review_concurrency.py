"""Nothing right gets lost: a reviewer's upload (or typing) that lands between a run's read of
the review sheet and its write is merged, never overwritten.

* XLSX in local storage and in S3 (moto over HTTP): the run's ``sync-review-sheet`` task reads
  the workbook, a reviewer uploads an edited copy right after that read (a hook on the storage
  read), the run's write is a compare-and-swap that fails, and the run merges again on top of
  the upload (``flows.adapters.review_backends.XlsxReviewBackend.update_month``);
* Google Sheets (the local stand-in): a reviewer types after the first read, and after the last
  read before the write; only changed cells are written, so both edits stay.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import gspread
import polars as pl
import pytest
from infra import MotoS3, moto_s3_server
from sheets_standin import SheetsStandIn
from test_review import make_tagged, row_of, set_cells

import flows.monthly
from config.settings import ReviewSettings, S3Settings, VocSettings
from flows.adapters.review_backends import (
    GSheetsReviewBackend,
    ReviewConflictError,
    XlsxReviewBackend,
    build_workbook,
)
from flows.adapters.s3 import S3Storage
from flows.adapters.storage import LocalStorage
from voc.review import (
    COL_DONE,
    COL_MEMO,
    COL_RUN_ID,
    COL_VOC_ID,
    REVIEW_COLUMNS,
    REVIEWER_LABEL_COLUMNS,
    build_review_rows,
    merge_into_sheet,
)
from voc.taxonomy import default_taxonomy

MONTH = "2019-11"
PREFIX = "stat/voc-dev"
KEY = f"{PREFIX}/201911/review_201911.xlsx"
BUCKET = "voc-review-cas"
S_MAJ, S_MIN = REVIEWER_LABEL_COLUMNS["subject"]
NEW_RUN = "full_20261201_020002"  # run_id of make_tagged(seed=2)


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


@pytest.fixture(scope="module")
def first_rows(sample_df):
    return build_review_rows(make_tagged(sample_df, seed=0), threshold=0.5)


@pytest.fixture(scope="module")
def rerun_tagged(sample_df):
    """The run under test: other model tags, run_id ``full_20261201_020002``."""
    return make_tagged(sample_df, seed=2, shift=4)


def reviewer_edit(sheet: pl.DataFrame) -> tuple[str, dict[str, str]]:
    """What the reviewer does: fixes the subject of the third row, marks it done, writes a memo."""
    vid = sheet[COL_VOC_ID][2]
    return vid, {S_MAJ: "시설", S_MIN: "승강기", COL_DONE: "Y", COL_MEMO: "동시 업로드"}


def check_nothing_lost(final: pl.DataFrame, first: pl.DataFrame, vid: str, edit: dict[str, str]) -> None:
    assert sorted(final[COL_VOC_ID].to_list()) == sorted(first[COL_VOC_ID].to_list())
    mine = row_of(final, vid)
    assert {c: mine[c] for c in edit} == edit, "the reviewer's upload was lost"
    assert mine[COL_RUN_ID] == row_of(first, vid)[COL_RUN_ID], "a reviewed row keeps what the reviewer judged"
    others = final.filter(pl.col(COL_VOC_ID) != vid)
    assert set(others[COL_RUN_ID].to_list()) == {NEW_RUN}, "the run's own update was lost"


def run_sync(monkeypatch: pytest.MonkeyPatch, storage: Any, settings: VocSettings, tagged: pl.DataFrame, tax) -> dict:
    """The monthly flow's ``sync-review-sheet`` task body, on ``storage``."""
    from flows.resources import Resources

    bundle = Resources(settings)
    bundle._storage = storage  # the adapters of this run, on the test's storage
    monkeypatch.setattr(flows.monthly, "resources", lambda _settings: bundle)
    return flows.monthly.sync_review_sheet.fn(settings, MONTH, tagged, tax, {"subject": 0.5, "work": 0.5})


# --------------------------------------------------------------------------------------------
# local storage


def test_local_upload_between_read_and_write_is_merged(tmp_path, monkeypatch, tax, first_rows, rerun_tagged):
    storage = LocalStorage(tmp_path)
    backend = XlsxReviewBackend(storage, PREFIX)
    backend.write_month(MONTH, first_rows, tax)
    original_read = storage.read_bytes
    state: dict[str, Any] = {"reads": 0}

    def read_then_reviewer_uploads(key: str) -> bytes:
        data = original_read(key)
        state["reads"] += key == KEY
        if key == KEY and state["reads"] == 1:  # the run has read the workbook: now the reviewer
            vid, edit = reviewer_edit(first_rows)
            state["edit"] = (vid, edit)
            storage.write_bytes(KEY, build_workbook(set_cells(first_rows, {vid: edit}), tax, title="201911"))
        return data

    monkeypatch.setattr(storage, "read_bytes", read_then_reviewer_uploads)
    out = run_sync(monkeypatch, storage, VocSettings(storage=str(tmp_path)), rerun_tagged, tax)
    assert out["location"] == str(tmp_path / KEY)
    monkeypatch.setattr(storage, "read_bytes", original_read)
    check_nothing_lost(backend.read_month(MONTH), first_rows, *state["edit"])
    assert state["reads"] >= 2, "the run re-read the workbook after its write was refused"
    assert not [p for p in (tmp_path / PREFIX / "201911").iterdir() if p.name.endswith(".part")]


def test_local_concurrent_runs_keep_every_row(tmp_path, tax, sample_df):
    """Four writers merge different buildings' rows into one workbook at the same moment: every
    row arrives (a lost update would drop a writer's rows)."""
    storage = LocalStorage(tmp_path)
    tagged = make_tagged(sample_df, seed=1)
    parts = [tagged[i::4] for i in range(4)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(part: pl.DataFrame) -> None:
        backend = XlsxReviewBackend(storage, PREFIX)
        rows = build_review_rows(part, threshold=0.5)

        def change(existing):
            barrier_wait()
            return merge_into_sheet(existing, rows)

        try:
            backend.update_month(MONTH, change, tax, attempts=10)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    waited = threading.local()

    def barrier_wait() -> None:
        if not getattr(waited, "done", False):  # only the first round: all four read the same state
            waited.done = True
            barrier.wait(timeout=60)

    threads = [threading.Thread(target=writer, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    final = XlsxReviewBackend(storage, PREFIX).read_month(MONTH)
    assert sorted(final[COL_VOC_ID].to_list()) == sorted(tagged["voc_id"].to_list())


def test_local_gives_up_without_overwriting_when_the_sheet_never_settles(tmp_path, tax, first_rows, rerun_tagged):
    storage = LocalStorage(tmp_path)
    backend = XlsxReviewBackend(storage, PREFIX)
    backend.write_month(MONTH, first_rows, tax)
    rows = build_review_rows(rerun_tagged, threshold=0.5)
    n = {"uploads": 0}

    def change(existing):
        n["uploads"] += 1  # a reviewer uploads during every round
        vid = first_rows[COL_VOC_ID][n["uploads"]]
        storage.write_bytes(KEY, build_workbook(set_cells(existing, {vid: {COL_MEMO: f"upload {n['uploads']}"}}), tax, title="201911"))
        return merge_into_sheet(existing, rows)

    with pytest.raises(ReviewConflictError, match="nothing was overwritten"):
        backend.update_month(MONTH, change, tax, attempts=3)
    final = backend.read_month(MONTH)
    assert row_of(final, first_rows[COL_VOC_ID][3])[COL_MEMO] == "upload 3", "the last upload stands"
    assert set(final[COL_RUN_ID].to_list()) == set(first_rows[COL_RUN_ID].to_list())


# --------------------------------------------------------------------------------------------
# S3 (moto over HTTP: conditional PutObject with If-Match / If-None-Match)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    with moto_s3_server() as server:
        yield server


@pytest.fixture()
def s3(moto: MotoS3, aws_test_env: None, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    raw = boto3.client("s3", endpoint_url=moto.endpoint_url)
    if BUCKET not in [b["Name"] for b in raw.list_buckets().get("Buckets", [])]:
        raw.create_bucket(Bucket=BUCKET)
    root = f"t{threading.get_ident() % 10_000}-{id(monkeypatch) % 10_000}"
    return S3Storage.from_uri(f"s3://{BUCKET}/{root}", S3Settings(endpoint_url=moto.endpoint_url))


def test_s3_upload_between_read_and_write_is_merged(s3, monkeypatch, tax, first_rows, rerun_tagged):
    backend = XlsxReviewBackend(s3, PREFIX)
    backend.write_month(MONTH, first_rows, tax)
    full_key = f"{s3.root}/{KEY}"
    original_get = s3.client.get_object
    state: dict[str, Any] = {"reads": 0}

    def get_then_reviewer_uploads(**kw: Any) -> dict[str, Any]:
        obj = original_get(**kw)
        if kw.get("Key") != full_key:
            return obj
        state["reads"] += 1
        data = obj["Body"].read()
        if state["reads"] == 1:  # the run has the workbook; the reviewer uploads theirs over it
            vid, edit = reviewer_edit(first_rows)
            state["edit"] = (vid, edit)
            s3.client.put_object(
                Bucket=BUCKET, Key=full_key, Body=build_workbook(set_cells(first_rows, {vid: edit}), tax, title="201911")
            )
        return {**obj, "Body": io.BytesIO(data)}

    monkeypatch.setattr(s3.client, "get_object", get_then_reviewer_uploads)
    settings = VocSettings(storage=f"s3://{BUCKET}/{s3.root}")
    out = run_sync(monkeypatch, s3, settings, rerun_tagged, tax)
    assert out["location"] == f"s3://{BUCKET}/{full_key}"
    monkeypatch.setattr(s3.client, "get_object", original_get)
    check_nothing_lost(backend.read_month(MONTH), first_rows, *state["edit"])
    assert state["reads"] >= 2, "the run re-read the workbook after S3 refused its conditional write"


def test_s3_first_write_of_a_month_does_not_clobber_a_concurrent_first_write(s3, tax, first_rows, rerun_tagged):
    """No workbook yet when the run reads; another writer creates one meanwhile: the run's
    ``If-None-Match: *`` write is refused and it merges into the other one."""
    backend = XlsxReviewBackend(s3, PREFIX)
    rows = build_review_rows(rerun_tagged, threshold=0.5)
    vid, edit = reviewer_edit(first_rows)
    calls = {"n": 0}

    def change(existing):
        calls["n"] += 1
        if calls["n"] == 1:
            assert existing is None
            backend.write_month(MONTH, set_cells(first_rows, {vid: edit}), tax)
        return merge_into_sheet(existing, rows)

    backend.update_month(MONTH, change, tax)
    assert calls["n"] == 2
    check_nothing_lost(backend.read_month(MONTH), first_rows, vid, edit)


# --------------------------------------------------------------------------------------------
# Google Sheets (local stand-in)


@pytest.fixture(scope="module")
def standin():
    with SheetsStandIn() as s:
        yield s


def _gsheets(standin: SheetsStandIn, title: str) -> GSheetsReviewBackend:
    cfg = ReviewSettings(backend="gsheets", sheets_api_url=standin.url, spreadsheet_title_template=title)
    return GSheetsReviewBackend(cfg, backoff_s=0.001, max_backoff_s=0.01)


@pytest.mark.parametrize("typed_after_read", [1, 2], ids=["after-first-read", "after-last-read"])
def test_gsheets_typing_during_a_run_is_kept(standin, monkeypatch, tax, first_rows, rerun_tagged, typed_after_read):
    title = f"VOC 검수 {{yyyymm}} concurrent {typed_after_read}"
    b = _gsheets(standin, title)
    b.write_month(MONTH, first_rows, tax)
    sid = b._ids[title.format(yyyymm="201911")]
    col = {c: j for j, c in enumerate(REVIEW_COLUMNS)}
    vid, edit = reviewer_edit(first_rows)
    row = first_rows[COL_VOC_ID].to_list().index(vid) + 1
    original = gspread.worksheet.Worksheet.get_all_values
    reads = {"n": 0}

    def read_then_type(ws, *a: Any, **kw: Any):
        values = original(ws, *a, **kw)
        reads["n"] += 1
        if reads["n"] == typed_after_read:  # the reviewer types in the browser right now
            for c, v in edit.items():
                standin.set_cell(sid, "201911", row, col[c], v)
        return values

    monkeypatch.setattr(gspread.worksheet.Worksheet, "get_all_values", read_then_type)
    rows = build_review_rows(rerun_tagged, threshold=0.5)
    standin.reset_log()
    url, stats = b.update_month(MONTH, lambda existing: merge_into_sheet(existing, rows), tax)
    assert url.startswith(f"https://docs.google.com/spreadsheets/d/{sid}")
    assert not [r for r in standin.log if r.method == "PUT" and "/values/" in r.path], "no whole-sheet rewrite"
    monkeypatch.setattr(gspread.worksheet.Worksheet, "get_all_values", original)
    final = b.read_month(MONTH)
    mine = row_of(final, vid)
    assert {c: mine[c] for c in edit} == edit, "the reviewer's typing was lost"
    others = final.filter(pl.col(COL_VOC_ID) != vid)
    assert set(others[COL_RUN_ID].to_list()) == {NEW_RUN}
    if typed_after_read == 1:  # seen by the second read: merged as a reviewed row, kept whole
        assert mine[COL_RUN_ID] == row_of(first_rows, vid)[COL_RUN_ID] and stats.kept_reviewed == 1
    # what a reviewer sees otherwise is unchanged: every reviewer cell of every other row is as before
    for c in (S_MAJ, S_MIN, COL_DONE, COL_MEMO):
        assert others[c].to_list() == first_rows.filter(pl.col(COL_VOC_ID) != vid)[c].to_list()


@pytest.mark.parametrize("configured_key", [False, True], ids=["new-spreadsheet", "new-worksheet"])
def test_gsheets_update_of_a_month_without_sheet_writes_it_whole(standin, tax, first_rows, configured_key):
    if configured_key:
        key = standin.create_spreadsheet("VOC 검수 (one spreadsheet)")
        cfg = ReviewSettings(backend="gsheets", sheets_api_url=standin.url, spreadsheet_key=key)
        b = GSheetsReviewBackend(cfg, backoff_s=0.001, max_backoff_s=0.01)
    else:
        b = _gsheets(standin, "VOC 검수 {yyyymm} brand new")
    assert b.read_month(MONTH) is None
    seen: list[Any] = []

    def change(existing):
        seen.append(existing)
        return merge_into_sheet(existing, first_rows)

    b.update_month(MONTH, change, tax)
    assert seen == [None]
    assert b.read_month(MONTH).equals(first_rows)


# --------------------------------------------------------------------------------------------
# the storage-level pieces: update_with_cas and the local directory lock


def test_update_with_cas_redoes_the_change_on_a_fresh_read_and_gives_up_without_overwriting(tmp_path):
    from flows.adapters.storage import StorageConflict, update_with_cas

    storage = LocalStorage(tmp_path)
    seen: list[bytes | None] = []

    def append_after_a_rival(current: bytes | None) -> tuple[bytes, int]:
        seen.append(current)
        if len(seen) == 1:  # another writer lands between this read and the write
            storage.write_bytes("m/index.json", b"rival;")
        return (current or b"") + b"mine;", len(seen)

    uri, rounds = update_with_cas(storage, "m/index.json", append_after_a_rival)
    assert (uri, rounds) == (str(tmp_path / "m/index.json"), 2)
    assert seen == [None, b"rival;"] and storage.read_bytes("m/index.json") == b"rival;mine;"

    rivals: list[bytes] = []

    def always_beaten(current: bytes | None) -> tuple[bytes, None]:
        rivals.append(f"theirs {len(rivals)}".encode())
        storage.write_bytes("m/index.json", rivals[-1])
        return b"mine", None

    with pytest.raises(StorageConflict, match="changed during each of 3 attempts"):
        update_with_cas(storage, "m/index.json", always_beaten, attempts=3)
    assert len(rivals) == 3 and storage.read_bytes("m/index.json") == b"theirs 2"


def test_local_lock_times_out_into_a_transient_storage_error(tmp_path, monkeypatch):
    from filelock import Timeout

    import flows.adapters.storage as storage_module
    from flows.adapters.retries import is_transient
    from flows.adapters.storage import StorageError

    storage = LocalStorage(tmp_path)
    monkeypatch.setattr(storage_module, "LOCK_TIMEOUT_S", 0.3)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with storage._locked(tmp_path / "m" / "a.json"):
            held.set()
            release.wait(timeout=30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(timeout=30)
        with pytest.raises(StorageError, match=r"m/b.json: its directory is still locked after 0.3 s") as e:
            storage.write_bytes("m/b.json", b"x")  # same directory: same lock
        assert isinstance(e.value.__cause__, Timeout) and is_transient(e.value)
        assert storage.write_bytes("other/c.json", b"y")  # another directory is not blocked
    finally:
        release.set()
        t.join(timeout=30)
    storage.write_bytes("m/b.json", b"x")
    assert storage.list("") == ["m/b.json", "other/c.json"]  # the lock files are no keys
    with pytest.raises(StorageError, match="lock directory"):
        storage.read_bytes(".locks/anything.lock")
