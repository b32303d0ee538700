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

from config.settings import VocSettings
from flows.adapters.review_backends import (
    COLUMN_WIDTHS,
    DONE_CHOICES,
    GUIDE_SHEET,
    SCREEN_WIDTH,
    SHEET_ZOOM,
    TAXONOMY_SHEET,
    ReviewBackend,
    ReviewBackendError,
    XlsxReviewBackend,
    build_workbook,
    dropdown_lists,
    frozen_columns,
    list_name,
)
from flows.adapters.storage import LocalStorage
from flows.resources import open_review_backend
from voc.replies import SuggestedReply
from voc.review import (
    AID_COLUMNS,
    COL_DONE,
    COL_EVIDENCE,
    COL_MEMO,
    COL_REPEAT,
    COL_REPLY_DRAFT,
    COL_TITLE,
    COL_URGENT,
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
    assert ws.freeze_panes == f"{get_column_letter(REVIEW_COLUMNS.index(S_MAJ) + 1)}2" == "V2"
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
    assert ws.column_dimensions[letter["요청내용"]].width == 30

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
        assert dv.formula1 == '"' + ",".join(DONE_CHOICES) + '"'
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
    with pytest.raises(ReviewBackendError, match=r"review_201911\.xlsx"):
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
    model_major = f'SUBSTITUTE(${letter["주제 대분류"]}2," (추정)","")'  # a guess without its marker
    major_cell = f'IF(${letter[S_MAJ]}2="",{model_major},${letter[S_MAJ]}2)'  # the pick, else the model's
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


def test_formulas_errors_dates_numbers_in_reviewer_cells_are_issues_not_labels(backend, rows, tax, sample_df):
    """Issue 21. openpyxl (like pandas and scripts) saves a formula without a cached value: read
    with values only it was an empty cell, and a done row with empty 검수_ cells confirmed the
    model's tag. Now each such cell is read as typed and reported; nothing is confirmed by it."""
    import datetime as dt

    backend.write_month(MONTH, rows, tax)
    wb = load(backend)
    ws = wb["201911"]
    header = [c.value for c in ws[1]]
    col = {name: header.index(name) + 1 for name in header}
    ws.cell(row=1, column=len(header) + 1).value = "메모2"  # a helper column a reviewer added
    found = {  # sheet row → (column, cell value, what the sheet frame holds, issue code)
        2: (S_MIN, "=VLOOKUP(B2,분류체계!A:B,2,FALSE)", "=VLOOKUP(B2,분류체계!A:B,2,FALSE)", "formula"),
        3: (S_MAJ, "#N/A", "#N/A", "error_value"),
        4: (W_MIN, dt.datetime(2019, 11, 3), "2019-11-03", "date_value"),
        5: (S_MIN, 3, "3", "number_value"),
        6: (COL_DONE, '=IF(A6="","Y","N")', '=IF(A6="","Y","N")', "formula"),
    }
    for r, (c, v, _, _) in found.items():
        ws.cell(row=r, column=col[c]).value = v
        if c != COL_DONE:
            ws.cell(row=r, column=col[COL_DONE]).value = "Y"
    ws.cell(row=7, column=col[COL_DONE]).value = "Y"  # a plain confirmation, for contrast
    ws.cell(row=2, column=len(header) + 1).value = "=LEN(I2)"  # helper formula: its (missing) cached value
    buf = io.BytesIO()
    wb.save(buf)
    backend.storage.write_bytes(backend.key(MONTH), buf.getvalue())

    read = backend.read_month(MONTH)
    assert [read[c][r - 2] for r, (c, _, _, _) in found.items()] == [text for _, _, text, _ in found.values()]
    assert read["메모2"][0] == ""
    tagged = make_tagged(sample_df)
    out, st = merge_reviews(tagged, read, tax)
    assert [(i.sheet_row, i.column, i.code) for i in st.issues] == [(r, c, code) for r, (c, _, _, code) in found.items()]
    reviewed = {r["voc_id"]: r for r in out.iter_rows(named=True)}
    ids = read[COL_VOC_ID].to_list()
    for r, (c, _, _, _) in found.items():
        row = reviewed[ids[r - 2]]
        dim = "work" if c == W_MIN else "subject"
        assert not row[f"{dim}_reviewed"], f"row {r}: {c} confirmed the model's tag"
    assert reviewed[ids[2]]["subject_reviewed"] and not reviewed[ids[2]]["work_reviewed"]  # row 4: only the date's dimension
    assert not reviewed[ids[4]]["is_reviewed"]  # row 6: a formula in 검수완료 is not done
    assert reviewed[ids[5]]["subject_reviewed"] and reviewed[ids[5]]["work_reviewed"]  # row 7: Y alone confirms
    # a rerun's merge keeps the cells as their text; they stay reported, never written as formulas
    merged, _ = merge_into_sheet(read, rows)
    backend.write_month(MONTH, merged, tax)
    again = backend.read_month(MONTH)
    assert again[S_MIN][0] == found[2][2]
    assert load(backend)["201911"].cell(row=2, column=col[S_MIN]).data_type == "s"
    assert [i.code for i in merge_reviews(tagged, again, tax)[1].issues] == [code for _, _, _, code in found.values()]


def test_layout_fits_one_screen_frozen_at_the_first_reviewer_column(backend, rows, tax):
    """Issue 22: the panes freeze at the first 검수_ column, so voc_id, 제목, 요청내용 and the
    model's tags stay beside the reviewer cells; the frozen part plus the 검수 columns through
    검수완료 fit one screen (337 units stood left of the first reviewer column before)."""
    backend.write_month(MONTH, rows, tax)
    ws = load(backend)["201911"]
    header = [c.value for c in ws[1]]
    k = frozen_columns(header)
    assert header[k] == S_MAJ and ws.freeze_panes == f"{get_column_letter(k + 1)}2"
    assert {COL_VOC_ID, COL_TITLE, "요청내용", *MODEL_COLUMNS} <= set(header[:k])
    width = {name: ws.column_dimensions[get_column_letter(j + 1)].width for j, name in enumerate(header)}
    assert width == {name: COLUMN_WIDTHS[name] for name in header}
    on_screen = header[: header.index(COL_DONE) + 1]
    assert sum(width[c] for c in on_screen) <= SCREEN_WIDTH, sum(width[c] for c in on_screen)
    for name in header:  # headers wrap between words, never inside one
        from flows.adapters.review_backends import _display_width

        assert all(_display_width(w) <= width[name] - 1 for w in name.split()), name
    assert ws.sheet_view.zoomScale == SHEET_ZOOM
    assert ws[f"{get_column_letter(header.index(S_MAJ) + 1)}1"].alignment.wrap_text
    assert ws.row_dimensions[1].height >= 30, "two-line headers"
    # printed: landscape, one page wide, the header row on every page
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.print_title_rows == "$1:$1"


def test_done_dropdown_and_validation_accept_what_refresh_reads(backend, rows, tax):
    """검수완료 / 묶음 적용: the list (= what the validation lets through) is exactly the values
    ``voc refresh`` reads as done or not done, Y and N first."""
    import unicodedata

    from voc.review import DONE_VALUES, NOT_DONE_VALUES

    assert DONE_CHOICES[:2] == ("Y", "N")
    norm = {unicodedata.normalize("NFKC", v).strip().casefold() for v in DONE_CHOICES}
    assert norm == (DONE_VALUES | NOT_DONE_VALUES) - {""} and len(norm) == len(DONE_CHOICES)
    assert {v for v in DONE_CHOICES if is_done(v)} == {"Y", "예", "O", "✓", "1", "TRUE"}
    backend.write_month(MONTH, rows, tax)
    ws = load(backend)["201911"]
    header = [c.value for c in ws[1]]
    dvs = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    for name in (COL_DONE, "묶음 적용"):
        col = get_column_letter(header.index(name) + 1)
        dv = dvs[f"{col}2:{col}{rows.height + 1}"]
        assert dv.type == "list" and dv.showErrorMessage
        assert dv.formula1.strip('"').split(",") == list(DONE_CHOICES)
        assert len(dv.formula1) <= 255, "Excel's limit for an inline list"


def test_minor_dropdown_of_a_guessed_major_strips_the_marker(backend, tax, sample_df):
    """A keyword guess shows ``시설 (추정)``; the dependent 중분류 list looks it up without the
    marker (``SUBSTITUTE``), so the reviewer gets that major's minors, not every minor."""
    from voc.review import GUESS_SUFFIX

    tagged = make_tagged(sample_df).with_columns(pl.lit("keyword").alias("work_source"))
    guessed = build_review_rows(tagged, threshold=0.5)
    backend.write_month(MONTH, guessed, tax)
    wb = load(backend)
    ws = wb["201911"]
    header = [c.value for c in ws[1]]
    letter = {name: get_column_letter(j + 1) for j, name in enumerate(header)}
    model_major = ws[f"{letter['작업유형 대분류']}2"].value
    assert model_major.endswith(GUESS_SUFFIX)
    dv = {str(d.sqref): d for d in ws.data_validations.dataValidation}[f"{letter[W_MIN]}2:{letter[W_MIN]}{guessed.height + 1}"]
    assert f'SUBSTITUTE(${letter["작업유형 대분류"]}2,"{GUESS_SUFFIX}","")' in dv.formula1
    assert dv.formula1.count("SUBSTITUTE(") == 2 and len(dv.formula1) <= 255
    # what the formula evaluates to: MATCH of the bare major in VOC_W_MAJORS names VOC_W_k
    majors = defined_values(wb, list_name("work"))
    bare = model_major.replace(GUESS_SUFFIX, "")
    k = majors.index(bare) + 1
    assert defined_values(wb, list_name("work", k)) == sorted(tax.minors("work", bare), key=lambda m: (m == "기타", m))


@pytest.mark.slow
def test_workbook_renders_in_libreoffice_with_id_title_and_review_headers_on_page_one(backend, tax, sample_df, tmp_path):
    """LibreOffice (headless) opens the workbook: page 1 of its PDF shows the id/title headers
    and the 검수 headers (one page wide), page 1 renders to a PNG, and LibreOffice's own
    evaluation of the 중분류 list formula gives a guessed major's minors, not every minor."""
    import shutil
    import subprocess

    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None or shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None:
        pytest.skip("needs LibreOffice (apt-get install -y libreoffice-calc) and poppler-utils")
    tagged = make_tagged(sample_df).with_columns(pl.lit("keyword").alias("work_source"))
    rows = build_review_rows(tagged, threshold=0.5)
    backend.write_month(MONTH, rows, tax)
    xlsx = tmp_path / "review.xlsx"
    xlsx.write_bytes(backend.storage.read_bytes(backend.key(MONTH)))
    profile = f"-env:UserInstallation=file://{tmp_path}/lo-profile"

    def convert(src, fmt: str) -> None:
        subprocess.run(
            [soffice, profile, "--headless", "--convert-to", fmt, "--outdir", str(tmp_path), str(src)],
            check=True, timeout=240, capture_output=True,
        )

    convert(xlsx, "pdf")
    pdf = tmp_path / "review.pdf"
    assert pdf.stat().st_size > 0
    page1 = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    compact = "".join(page1.split())
    for head in (COL_VOC_ID, COL_TITLE, "검수완료", "검수_주제", "검수_작업유형"):
        assert head in compact, (head, page1[:400])
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pngs = sorted(tmp_path.glob("page*.png"))
    assert pngs and pngs[0].stat().st_size > 1000

    # LibreOffice evaluates the 중분류 validation formula of row 2 (a guessed work major)
    wb = openpyxl.load_workbook(xlsx)
    ws = wb["201911"]
    header = [c.value for c in ws[1]]
    col = get_column_letter(header.index(W_MIN) + 1)
    dv = next(d for d in ws.data_validations.dataValidation if str(d.sqref).startswith(f"{col}2:"))
    check = wb.create_sheet("check", 0)
    check["A1"] = "=ROWS(" + dv.formula1.replace("$", "'201911'!$") + ")"
    wb.active = 0
    probe = tmp_path / "probe.xlsx"
    wb.save(probe)
    convert(probe, "csv")
    n_listed = int(float((tmp_path / "probe.csv").read_text(encoding="utf-8").splitlines()[0].strip('"')))
    bare = ws[f"{get_column_letter(header.index('작업유형 대분류') + 1)}2"].value.split(" (")[0]
    assert n_listed == len(tax.minors("work", bare)) < len(dropdown_lists(tax)[W_MIN])


# --------------------------------------------------------------------------------------------
# 긴급, 반복, 답변 초안 (issues 24–25)

DRAFT = SuggestedReply("69001", 0.7234, "도시재생국>건축과", "[날짜]까지 [담당자] 주무관이 현장을 확인하겠습니다.")
DRAFT_CELL = "[유사 0.72 · voc_id 69001]\n[날짜]까지 [담당자] 주무관이 현장을 확인하겠습니다."
URGENT_FILL = "FFF8CBAD"


def alert_case(sample_df: pl.DataFrame, *, urgent_at: int = 3) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, str]]:
    """The month's tagged frame with exactly one urgent VOC, one repeat of an earlier VOC and one
    drafted reply; its review rows; and those ``voc_id`` values (``urgent``, ``repeat``,
    ``earlier``, ``drafted``)."""
    tagged = make_tagged(sample_df)
    ids = tagged["voc_id"].to_list()
    who = {"urgent": ids[urgent_at], "repeat": ids[5], "earlier": ids[4], "drafted": ids[7]}
    tagged = tagged.with_columns(
        (pl.col("voc_id") == who["urgent"]).alias("urgent"),
        pl.when(pl.col("voc_id") == who["repeat"]).then(pl.lit(who["earlier"])).otherwise(None).alias("repeat_of"),
    )
    rows = build_review_rows(tagged, threshold=0.5, reply_drafts=[DRAFT if v == who["drafted"] else None for v in ids])
    return tagged, rows, who


def filled(frame: pl.DataFrame, column: str) -> dict[str, str]:
    return {r[COL_VOC_ID]: r[column] for r in frame.iter_rows(named=True) if r[column]}


def test_urgent_repeat_and_reply_draft_columns(backend, tax, sample_df):
    """Issues 24–25: 긴급 and 반복 right after 검토 우선, 답변 초안 right after 유사 검수 VOC, with
    the tagged frame's values and the best draft; locked machine cells under the filter; the
    urgent row's machine cells light red (grey model and yellow reviewer cells keep their colour)."""
    _, rows, who = alert_case(sample_df)
    assert list(REVIEW_COLUMNS[1:3]) == [COL_URGENT, COL_REPEAT]
    assert REVIEW_COLUMNS[REVIEW_COLUMNS.index(COL_EVIDENCE) + 1] == COL_REPLY_DRAFT
    backend.write_month(MONTH, rows, tax)
    back = backend.read_month(MONTH)
    assert back.equals(rows)
    assert filled(back, COL_URGENT) == {who["urgent"]: "긴급"}
    assert filled(back, COL_REPEAT) == {who["repeat"]: who["earlier"]}
    assert filled(back, COL_REPLY_DRAFT) == {who["drafted"]: DRAFT_CELL}

    ws = load(backend)["201911"]
    header = [c.value for c in ws[1]]
    letter = {name: get_column_letter(j + 1) for j, name in enumerate(header)}
    at = {vid: i + 2 for i, vid in enumerate(back[COL_VOC_ID].to_list())}
    assert ws.protection.sheet and ws.auto_filter.ref == f"A1:{get_column_letter(len(header))}{rows.height + 1}"
    for name in AID_COLUMNS:
        assert all(ws[f"{letter[name]}{r}"].protection.locked for r in at.values()), name
    assert ws[f"{letter[COL_REPLY_DRAFT]}{at[who['drafted']]}"].alignment.wrap_text
    u = at[who["urgent"]]
    assert [r for r in at.values() if ws[f"{letter[COL_VOC_ID]}{r}"].fill.fgColor.rgb == URGENT_FILL] == [u]
    for name in (COL_URGENT, COL_REPEAT, COL_VOC_ID, COL_TITLE, COL_REPLY_DRAFT):
        assert ws[f"{letter[name]}{u}"].fill.fgColor.rgb == URGENT_FILL, name
    assert ws[f"{letter[MODEL_COLUMNS[0]]}{u}"].fill.fgColor.rgb == "FFE7E6E6"
    assert ws[f"{letter[S_MAJ]}{u}"].fill.fgColor.rgb == "FFFFF2CC" and not ws[f"{letter[S_MAJ]}{u}"].protection.locked
    assert ws[f"{letter[COL_URGENT]}{u}"].font.bold and ws[f"{letter[COL_URGENT]}{u}"].font.color.rgb == "FFC00000"


def test_aid_columns_are_never_labels_and_old_workbooks_still_work(backend, tax, sample_df):
    """긴급, 반복 and 답변 초안 are read by nobody: refresh (merge_reviews) and push take nothing
    from them, typed over or not; a workbook written before them reads, takes a push, and a
    rerun's merge fills them in — on reviewed rows too."""
    from flows.review_exchange import push_review_bytes

    tagged, rows, who = alert_case(sample_df)
    label = tax.labels("subject")[0].split(">")
    done = {who["drafted"]: {S_MAJ: label[0], S_MIN: label[1], COL_DONE: "Y"}}
    tampered = {who["urgent"]: {COL_URGENT: "", COL_REPEAT: who["drafted"]},
                who["drafted"]: {COL_REPLY_DRAFT: f"{label[0]}>{label[1]}"}}
    sheet = set_cells(rows, done)
    want, _ = merge_reviews(tagged, sheet, tax)
    got, _ = merge_reviews(tagged, set_cells(sheet, tampered), tax)
    assert got.equals(want)
    assert got.filter(pl.col("urgent"))["voc_id"].to_list() == [who["urgent"]]  # from the tagged frame
    assert got.filter(pl.col("voc_id") == who["repeat"])["repeat_of"].to_list() == [who["earlier"]]

    # an old workbook (before the three columns) reads as it is, and refresh reads it
    old_rows = rows.drop(list(AID_COLUMNS))
    backend.storage.write_bytes(backend.key(MONTH), build_workbook(old_rows, tax, title="201911"))
    old = backend.read_month(MONTH)
    assert old.equals(old_rows)
    assert merge_reviews(tagged, set_cells(old, done), tax)[0].equals(want)
    # push of an old-format file into the old workbook: the reviewer cells, nothing else
    settings = VocSettings(storage=str(backend.storage.root), env="dev")
    upload = build_workbook(set_cells(old_rows, done), tax, title="201911")
    res = push_review_bytes(settings, upload, source="old.xlsx", month=MONTH)
    assert [vid for _, vid in res.accepted] == [who["drafted"]] and not res.rejected
    stored = backend.read_month(MONTH)
    assert stored.select(old_rows.columns).equals(set_cells(old_rows, done))
    # a rerun merges the new rows in: every row gets 긴급/반복/답변 초안, the reviewed one too
    merged, stats = merge_into_sheet(stored, rows)
    assert merged.columns == list(REVIEW_COLUMNS) and stats.kept_reviewed == 1
    assert filled(merged, COL_URGENT) == {who["urgent"]: "긴급"}
    assert filled(merged, COL_REPEAT) == {who["repeat"]: who["earlier"]}
    assert filled(merged, COL_REPLY_DRAFT) == {who["drafted"]: DRAFT_CELL}
    assert merged.filter(pl.col(COL_VOC_ID) == who["drafted"])[COL_DONE].to_list() == ["Y"]
    backend.write_month(MONTH, merged, tax)
    # a push with the machine cells typed over takes only its reviewer cells
    file = set_cells(merged, {**tampered, who["urgent"]: {**tampered[who["urgent"]], COL_MEMO: "확인"}})
    res = push_review_bytes(settings, build_workbook(file, tax, title="201911"), source="new.xlsx", month=MONTH)
    assert [vid for _, vid in res.accepted] == [who["urgent"]] and not res.rejected
    after = backend.read_month(MONTH)
    assert after.drop(COL_MEMO).equals(merged.drop(COL_MEMO))
    assert filled(after, COL_MEMO) == {who["urgent"]: "확인"}
