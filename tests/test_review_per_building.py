"""One review workbook per building (``VOC_REVIEW__PER_BUILDING=true``,
:class:`flows.adapters.review_backends.PerBuildingXlsxReviewBackend`, issue 22): ``full`` writes
``{prefix}/{yyyymm}/{building_id}/review_{building_id}_{yyyymm}.xlsx``, ``refresh`` reads them all,
pull/push of one building touch its workbook only. Local storage, the real sample's November
2019 VOCs (``test_review.make_tagged``: buildings 1 (41 VOCs) and 2 (4 VOCs))."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from test_review import make_tagged

from config.settings import VocSettings
from flows.adapters.review_backends import PerBuildingXlsxReviewBackend, XlsxReviewBackend, _check_frame
from flows.adapters.storage import LocalStorage
from flows.resources import open_review_backend
from flows.review_exchange import pull_review_bytes, push_review_bytes
from voc.review import (
    COL_BUILDING_ID,
    COL_DONE,
    COL_MEMO,
    COL_VOC_ID,
    build_review_rows,
    merge_into_sheet,
    merge_reviews,
)
from voc.taxonomy import default_taxonomy

MONTH = "2019-11"
PREFIX = "stat/voc-dev"


@pytest.fixture()
def setup(tmp_path: Path, sample_df: pl.DataFrame, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VOC_REVIEW__PER_BUILDING", "true")
    root = tmp_path / "store"
    settings = VocSettings(storage=str(root))
    backend = open_review_backend(settings)
    tagged = make_tagged(sample_df)
    rows = build_review_rows(tagged, threshold=0.5)
    # what `full` does (flows.monthly.sync_review_sheet): a compare-and-swap merge into the sheet
    backend.update_month(MONTH, lambda existing: merge_into_sheet(existing, rows), default_taxonomy())
    return root, settings, backend, tagged, rows


def by_id(frame: pl.DataFrame) -> pl.DataFrame:
    return _check_frame(frame).sort(COL_VOC_ID)


def test_full_writes_one_workbook_per_building_and_refresh_reads_them_all(setup) -> None:
    root, _, backend, _, rows = setup
    assert isinstance(backend, PerBuildingXlsxReviewBackend)
    month_dir = root / PREFIX / "201911"
    assert sorted(p.relative_to(month_dir).as_posix() for p in month_dir.rglob("*.xlsx")) == [
        "1/review_1_201911.xlsx", "2/review_2_201911.xlsx",
    ]
    assert not (month_dir / "review_201911.xlsx").exists()  # no monthly workbook
    two = XlsxReviewBackend._frame("b2", MONTH, (month_dir / "2" / "review_2_201911.xlsx").read_bytes())
    assert two.height == 4 and set(two[COL_BUILDING_ID]) == {"2"}
    wb = openpyxl.load_workbook(month_dir / "2" / "review_2_201911.xlsx")
    assert wb["201911"].protection.sheet and wb["201911"].data_validations.dataValidation  # the usual layout
    whole = backend.read_month(MONTH)
    assert whole is not None and whole.height == 45
    assert by_id(whole).equals(by_id(merge_into_sheet(None, rows)[0]))  # the frame a monthly workbook gives
    assert backend.read_month("2019-10") is None


def test_rerun_keeps_reviews_and_rewrites_nothing_unchanged(setup) -> None:
    root, _, backend, _, rows = setup
    f1 = root / PREFIX / "201911" / "1" / "review_1_201911.xlsx"
    before = f1.read_bytes()
    backend.update_month(MONTH, lambda existing: merge_into_sheet(existing, rows), default_taxonomy())
    assert f1.read_bytes() == before  # same rows: building 1's workbook not rewritten


def test_pull_and_push_one_building_then_refresh_applies_it(setup) -> None:
    root, settings, backend, tagged, _ = setup
    f1 = root / PREFIX / "201911" / "1" / "review_1_201911.xlsx"
    before1 = f1.read_bytes()
    got = pull_review_bytes(settings, MONTH, building_id="2")
    assert got.rows == 4 and got.location.endswith("2/review_2_201911.xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(got.data))
    ws = wb["201911"]
    col = {c.value: c.column for c in ws[1]}
    vid = str(ws.cell(2, col[COL_VOC_ID]).value)
    ws.cell(2, col[COL_DONE]).value = "Y"
    ws.cell(2, col[COL_MEMO]).value = "건물별"
    out = io.BytesIO()
    wb.save(out)
    res = push_review_bytes(settings, out.getvalue(), source="b2.xlsx", buildings=frozenset({"2"}))
    assert res.accepted == [(2, vid)] and not res.rejected and res.written
    assert f1.read_bytes() == before1  # building 1's workbook untouched
    sheet = backend.read_month(MONTH)
    hit = sheet.filter(pl.col(COL_VOC_ID) == vid).row(0, named=True)
    assert (hit[COL_DONE], hit[COL_MEMO]) == ("Y", "건물별")
    _, stats = merge_reviews(tagged, sheet, default_taxonomy())
    assert stats.n_reviewed == 1
    with pytest.raises(Exception, match="77"):
        pull_review_bytes(settings, MONTH, building_id="77")


def test_a_row_without_building_has_no_workbook(tmp_path: Path, sample_df: pl.DataFrame) -> None:
    from flows.adapters.review_backends import ReviewBackendError

    rows = build_review_rows(make_tagged(sample_df), threshold=0.5)
    bad = rows.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("")).otherwise(pl.col(COL_BUILDING_ID)).alias(COL_BUILDING_ID))
    with pytest.raises(ReviewBackendError, match=r"row 5 .*empty building_id"):
        PerBuildingXlsxReviewBackend(LocalStorage(tmp_path), PREFIX).write_month(MONTH, bad, default_taxonomy())


def test_default_stays_one_workbook_per_month(tmp_path: Path) -> None:
    assert type(open_review_backend(VocSettings(storage=str(tmp_path)))) is XlsxReviewBackend
