"""XlsxReviewBackend: round trip, dropdowns, layout, formula injection, a reviewer editing in Excel.

Workbooks are written with the backend and re-opened with openpyxl (what Excel/LibreOffice
users edit); the tagged rows come from the real sample (see ``test_review.make_tagged``).
"""

from __future__ import annotations

import io

import openpyxl
import polars as pl
import pytest
from openpyxl.utils import get_column_letter
from test_review import HOSTILE, make_tagged, reorg_taxonomy, set_cells

from flows.review_backends import (
    GUIDE_SHEET,
    TAXONOMY_SHEET,
    ReviewBackend,
    ReviewBackendError,
    XlsxReviewBackend,
    dropdown_lists,
    list_name,
)
from flows.resources import open_review_backend
from config.settings import VocSettings
from flows.storage import LocalStorage
from voc.review import (
    COL_DONE,
    COL_MEMO,
    COL_TITLE,
    COL_VOC_ID,
    MODEL_COLUMNS,
    REVIEW_COLUMNS,
    REVIEWER_COLUMNS,
    REVIEWER_LABEL_COLUMNS,
    build_review_rows,
    is_done,
    merge_into_sheet,
    merge_reviews,
)
from voc.taxonomy import default_taxonomy

MONTH = "2019-11"
S_MAJ, S_MIN = REVIEWER_LABEL_COLUMNS["subject"]
W_MIN = REVIEWER_LABEL_COLUMNS["work"][1]


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


@pytest.fixture(scope="module")
def rows(sample_df):
    return build_review_rows(make_tagged(sample_df), threshold=0.5)


@pytest.fixture()
def backend(tmp_path):
    return XlsxReviewBackend(LocalStorage(tmp_path), "stat/voc-dev")


def hostile_sheet(rows: pl.DataFrame) -> pl.DataFrame:
    """Hostile texts in 제목 and 검수 메모 of the first rows, reviewer edits on others."""
    ids = rows[COL_VOC_ID].to_list()
    edits = {ids[i]: {COL_TITLE: h, COL_MEMO: h} for i, h in enumerate(HOSTILE)}
    edits[ids[6]] = {S_MAJ: "시설", S_MIN: "승강기", COL_DONE: "Y", COL_MEMO: "여러 줄\n메모"}
    return set_cells(rows, edits)


def load(backend: XlsxReviewBackend, month: str = MONTH) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(backend.storage.read_bytes(backend.key(month))))


def defined_values(wb: openpyxl.Workbook, name: str) -> list[str]:
    """The cell values a workbook-level defined name refers to (one column of 분류체계)."""
    sheet, cells = wb.defined_names[name].attr_text.rsplit("!", 1)
    return [c.value for row in wb[sheet.strip("'")][cells.replace("$", "")] for c in row]


def test_key_location_and_missing_month(backend, tmp_path):
    assert isinstance(backend, ReviewBackend)
    assert backend.key("2019-11") == backend.key(201911) == "stat/voc-dev/201911/review_201911.xlsx"
    assert backend.location(MONTH) == str(tmp_path / "stat/voc-dev/201911/review_201911.xlsx")
    assert backend.read_month(MONTH) is None


def test_round_trip_is_exact(backend, rows, tax):
    sheet = hostile_sheet(rows)
    uri = backend.write_month(MONTH, sheet, tax)
    assert uri == backend.location(MONTH)
    back = backend.read_month(MONTH)
    assert back.columns == list(REVIEW_COLUMNS)
    assert all(dt == pl.Utf8 for dt in back.dtypes)
    assert back.equals(sheet)


def test_hostile_cells_are_strings_not_formulas(backend, rows, tax):
    backend.write_month(MONTH, hostile_sheet(rows), tax)
    ws = load(backend)["201911"]
    header = [c.value for c in ws[1]]
    for col_name in (COL_TITLE, COL_MEMO):
        col = header.index(col_name) + 1
        for i, text in enumerate(HOSTILE):
            cell = ws.cell(row=i + 2, column=col)
            assert cell.data_type == "s", (text, cell.data_type)
            assert cell.value == text
            assert cell.quotePrefix, "Excel keeps it text even when the reviewer edits the cell"
    # nothing in the workbook is a formula
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)


def test_frozen_header_styling_and_flat_lists(backend, rows, tax):
    backend.write_month(MONTH, rows, tax)
    wb = load(backend)
    ws = wb["201911"]
    assert wb.sheetnames == ["201911", GUIDE_SHEET, TAXONOMY_SHEET]
    assert wb[TAXONOMY_SHEET].sheet_state == "hidden"
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{get_column_letter(len(REVIEW_COLUMNS))}{rows.height + 1}"
    header = [c.value for c in ws[1]]
    assert header == list(REVIEW_COLUMNS)
    assert all(c.font.bold for c in ws[1])
    letter = {name: get_column_letter(j + 1) for j, name in enumerate(header)}
    for name in MODEL_COLUMNS:
        assert ws[f"{letter[name]}2"].fill.fgColor.rgb == "FFE7E6E6"
    for name in REVIEWER_COLUMNS:
        assert ws[f"{letter[name]}2"].fill.fgColor.rgb == "FFFFF2CC"
    assert ws.column_dimensions[letter["model_version"]].hidden
    assert ws.column_dimensions[letter["요청내용"]].width == 60

    lists = dropdown_lists(tax)  # the default taxonomy: nothing retired, every class offered, sorted
    assert sorted(lists[S_MAJ]) == sorted(tax.majors("subject")) and lists[S_MAJ][-1] == "기타"
    assert sorted(lists[S_MIN]) == sorted(tax.minors("subject")) and lists[S_MIN][-1] == "기타"
    assert lists[S_MIN][:-1] == sorted(lists[S_MIN][:-1])
    dvs = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    for dim in ("subject", "work"):
        col = letter[REVIEWER_LABEL_COLUMNS[dim][0]]
        dv = dvs[f"{col}2:{col}{rows.height + 1}"]
        assert dv.type == "list" and dv.showErrorMessage and dv.formula1 == list_name(dim)
        assert defined_values(wb, list_name(dim)) == lists[REVIEWER_LABEL_COLUMNS[dim][0]]
        assert defined_values(wb, list_name(dim, 0)) == lists[REVIEWER_LABEL_COLUMNS[dim][1]]
    for name in (COL_DONE, "묶음 적용"):
        dv = dvs[f"{letter[name]}2:{letter[name]}{rows.height + 1}"]
        assert dv.formula1 == '"Y,N"'
    # numbers and dates are real Excel types, ids are text
    assert isinstance(ws[f"{letter['신뢰도']}2"].value, (int, float))  # 0.00 comes back as 0
    assert ws[f"{letter['신뢰도']}2"].number_format == "0.00"
    assert ws[f"{letter['등록일']}2"].is_date
    assert ws[f"{letter['voc_id']}2"].data_type == "s"


def test_reviewer_edits_in_excel_survive_a_rerun(backend, rows, tax, sample_df):
    """A manager edits the workbook (typing TRUE / 1 into 검수완료, as Excel stores them), the
    monthly rerun merges new model tags, and the edits are still there."""
    backend.write_month(MONTH, rows, tax)
    wb = load(backend)
    ws = wb["201911"]
    header = [c.value for c in ws[1]]
    col = {name: header.index(name) + 1 for name in header}
    ws.cell(row=2, column=col[S_MIN]).value = "승강기"
    ws.cell(row=2, column=col[COL_DONE]).value = True  # Excel boolean
    ws.cell(row=3, column=col[COL_DONE]).value = 1  # a number
    ws.cell(row=4, column=col[COL_MEMO]).value = "=잘못 입력"
    buf = io.BytesIO()
    wb.save(buf)
    backend.storage.write_bytes(backend.key(MONTH), buf.getvalue())

    read = backend.read_month(MONTH)
    r = read.to_dicts()
    assert r[0][S_MIN] == "승강기" and r[0][COL_DONE] == "TRUE" and is_done(r[0][COL_DONE])
    assert r[1][COL_DONE] == "1" and is_done(r[1][COL_DONE])

    new_rows = build_review_rows(make_tagged(sample_df, seed=3, shift=2), threshold=0.5)
    merged, st = merge_into_sheet(read, new_rows)
    assert st.kept_reviewed == 2 and st.appended == 0
    backend.write_month(MONTH, merged, tax)
    again = backend.read_month(MONTH)
    assert again.equals(merged)
    for before, after in zip(read.iter_rows(named=True), again.iter_rows(named=True)):
        assert all(after[c] == before[c] for c in REVIEWER_COLUMNS)
    reviewed, stats = merge_reviews(make_tagged(sample_df), again, tax)  # the tags the reviewer saw
    assert stats.n_reviewed == 2 and not stats.issues
    # against the rerun's tags, empty cells confirm nothing the reviewer did not see
    reviewed, stats = merge_reviews(make_tagged(sample_df, seed=3, shift=2), again, tax)
    assert stats.n_reviewed == 1 and reviewed["subject_reviewed"].sum() == 1 and not reviewed["work_reviewed"].any()
    assert {i.code for i in stats.issues} == {"tag_changed"}


def test_unreadable_workbook_raises(backend, tax):
    backend.storage.write_bytes(backend.key(MONTH), b"not a zip")
    with pytest.raises(ReviewBackendError, match="review_201911.xlsx"):
        backend.read_month(MONTH)


def test_write_rejects_frame_without_review_columns(backend, rows, tax):
    with pytest.raises(ReviewBackendError, match="검수완료"):
        backend.write_month(MONTH, rows.drop(COL_DONE), tax)


def test_open_review_backend_defaults_to_xlsx_in_storage(tmp_path):
    settings = VocSettings(storage=str(tmp_path), env="stg")
    b = open_review_backend(settings)
    assert isinstance(b, XlsxReviewBackend)
    assert b.location("2019-11") == str(tmp_path / "stat/voc-stg/201911/review_201911.xlsx")


def test_keyword_guess_marker_round_trips_and_is_never_a_value(backend, tax, sample_df):
    """Keyword-only work tags are shown as guesses (추정) in the grey model cells; the workbook
    keeps the marker exactly, and refresh treats the marked cell as the model's keyword guess:
    a done row with empty cells does not confirm it, a picked value does, and the marker never
    reaches a tag or a label."""
    from voc.review import GUESS_MARK, split_guess

    tagged = make_tagged(sample_df).with_columns(pl.lit("keyword").alias("work_source"))
    rows = build_review_rows(tagged, threshold=0.5)
    backend.write_month(MONTH, rows, tax)
    wb = load(backend)
    ws = wb["201911"]
    header = [c.value for c in ws[1]]
    col = {name: header.index(name) + 1 for name in header}
    cell = ws.cell(row=2, column=col["작업유형 중분류"])
    assert cell.data_type == "s" and cell.value.endswith(f"({GUESS_MARK})")
    assert not ws.cell(row=2, column=col["주제 중분류"]).value.endswith(f"({GUESS_MARK})"), "trained-model tag unmarked"
    w_min = REVIEWER_LABEL_COLUMNS["work"][1]
    ws.cell(row=2, column=col[COL_DONE]).value = "Y"  # confirms the subject only
    ws.cell(row=3, column=col[w_min]).value = split_guess(ws.cell(row=3, column=col["작업유형 중분류"]).value)[0]
    ws.cell(row=3, column=col[COL_DONE]).value = "Y"  # picks the guessed work type: a label
    buf = io.BytesIO()
    wb.save(buf)
    backend.storage.write_bytes(backend.key(MONTH), buf.getvalue())

    back = backend.read_month(MONTH)
    assert back.select(MODEL_COLUMNS).equals(rows.select(MODEL_COLUMNS)), "the marker reads back exactly"
    reviewed, st = merge_reviews(tagged, back, tax)
    o = {r["voc_id"]: r for r in reviewed.iter_rows(named=True)}
    t = {r["voc_id"]: r for r in tagged.iter_rows(named=True)}
    first, second = back[COL_VOC_ID][0], back[COL_VOC_ID][1]
    assert (o[first]["subject_reviewed"], o[first]["work_reviewed"]) == (True, False)
    assert o[first]["work_source"] == "keyword" and o[first]["work_minor"] == t[first]["work_minor"]
    assert (o[second]["work_reviewed"], o[second]["reviewed_work_minor"]) == (True, t[second]["work_minor"])
    assert not st.issues
    for c in ("work_major", "work_minor", "reviewed_work_minor", "model_work_minor"):
        assert not any(GUESS_MARK in str(v) for v in reviewed[c].to_list() if v is not None), c
    # a rerun keeps the marker on untouched rows and the reviewer's cells everywhere
    merged, _ = merge_into_sheet(back, rows)
    assert merged.select(MODEL_COLUMNS).equals(rows.select(MODEL_COLUMNS))


@pytest.fixture(scope="module")
def reorg_tax(sample_df):
    return reorg_taxonomy(sample_df)


def test_dependent_dropdowns_protection_wrapping_and_guide(backend, reorg_tax, sample_df):
    from voc.review import COL_REQUEST, COLUMN_GUIDE, TEXT_COLUMNS

    rows = build_review_rows(make_tagged(sample_df), threshold=0.5)
    backend.write_month(MONTH, rows, reorg_tax)
    wb = load(backend)
    ws = wb["201911"]
    letter = {name: get_column_letter(j + 1) for j, name in enumerate(c.value for c in ws[1])}
    last = rows.height + 1

    # named lists: only offered classes (active, major not retired), sorted
    majors = defined_values(wb, list_name("subject"))
    assert "국제도시건설국" in majors and "도시재생국" in majors
    assert not {"국제도시국", "도시관리국", "지역개발국", "총무국"} & set(majors), "retired majors are never offered"
    assert majors == sorted(majors) and len(majors) == len(set(majors))
    offered = {r.label for r in reorg_tax.offered_rows("subject")}
    every = defined_values(wb, list_name("subject", 0))
    assert every == sorted(every) and set(every) == {lab.split(">")[1] for lab in offered}
    assert len(every) < len(reorg_tax.labels("subject")) == 73

    # 검수_주제 중분류: INDIRECT of the list named after the row's 검수_주제 대분류
    dvs = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    dv = dvs[f"{letter[S_MIN]}2:{letter[S_MIN]}{last}"]
    major_cell = f'IF(${letter[S_MAJ]}2="",${letter["주제 대분류"]}2,${letter[S_MAJ]}2)'  # the pick, else the model's
    match = f"MATCH({major_cell},{list_name('subject')},0)"
    assert dv.type == "list" and dv.showErrorMessage
    assert dv.formula1 == f'IF(ISNA({match}),{list_name("subject", 0)},INDIRECT("VOC_S_"&{match}))'
    # what Excel evaluates for a chosen major: MATCH → k → the named list VOC_S_k
    for major in ("국제도시건설국", "도시재생국", "보건소"):
        k = majors.index(major) + 1
        assert defined_values(wb, f"VOC_S_{k}") == sorted(reorg_tax.minors("subject", major)), major
    assert defined_values(wb, f"VOC_S_{majors.index('국제도시건설국') + 1}") == ["교통과", "기반시설과", "도시공원과"]
    w_dv = dvs[f"{letter[W_MIN]}2:{letter[W_MIN]}{last}"]
    assert "INDIRECT(" in w_dv.formula1 and f"${letter[REVIEWER_LABEL_COLUMNS['work'][0]]}2" in w_dv.formula1

    # protection without a password: model columns locked, reviewer columns unlocked
    assert ws.protection.sheet and not ws.protection.password
    assert ws.protection.autoFilter is False, "filtering stays allowed"
    for r in (2, last):
        for name in REVIEW_COLUMNS:
            assert ws[f"{letter[name]}{r}"].protection.locked == (name not in REVIEWER_COLUMNS), (name, r)
    assert wb[TAXONOMY_SHEET].protection.sheet

    # long texts wrap; rows grow with them, up to six lines
    for name in TEXT_COLUMNS:
        assert ws[f"{letter[name]}2"].alignment.wrap_text, name
    assert not ws[f"{letter['voc_id']}2"].alignment.wrap_text
    longest = max(range(rows.height), key=lambda i: len(rows[COL_REQUEST][i]))
    assert len(rows[COL_REQUEST][longest]) > 1000
    assert ws.row_dimensions[longest + 2].height == 90
    assert all(15 <= ws.row_dimensions[r].height <= 90 for r in range(2, last + 1))

    # 검수 안내 explains every column in Korean
    guide = wb[GUIDE_SHEET]
    table = {r[0]: r[2] for r in guide.iter_rows(values_only=True) if r[0] in REVIEW_COLUMNS}
    assert table == {c: COLUMN_GUIDE[c] for c in REVIEW_COLUMNS}
    assert guide.protection.sheet and backend.read_month(MONTH).equals(rows), "the data sheet is still the one read"
