"""GSheetsReviewBackend with the REAL gspread client against a LOCAL STAND-IN (not Google).

``tests/sheets_standin.py`` serves the few Sheets v4 / Drive v3 endpoints gspread calls, in
memory on 127.0.0.1; :func:`flows.adapters.review_backends.routed_http_client` points gspread's requests
at it. What is checked here is our use of the API (requests, bodies, RAW input, retries), not
Google's own behaviour.
"""

from __future__ import annotations

import json
import logging

import gspread
import polars as pl
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gspread.exceptions import APIError
from pydantic import SecretStr
from sheets_standin import SheetsStandIn
from test_review import HOSTILE, make_tagged, set_cells
from test_review_xlsx import DRAFT_CELL, alert_case, filled

from config.settings import ReviewSettings, VocSettings
from flows.adapters.review_backends import (
    DONE_CHOICES,
    GUIDE_SHEET,
    PROTECTION_NOTE,
    GSheetsReviewBackend,
    ReviewBackend,
    ReviewBackendError,
    dropdown_lists,
    make_gspread_client,
    routed_http_client,
)
from flows.resources import open_review_backend
from voc.review import (
    AID_COLUMNS,
    COL_DONE,
    COL_MEMO,
    COL_REPEAT,
    COL_REPLY_DRAFT,
    COL_TITLE,
    COL_URGENT,
    COL_VOC_ID,
    MODEL_COLUMNS,
    MODEL_TAG_COLUMNS,
    REVIEW_COLUMNS,
    REVIEWER_COLUMNS,
    REVIEWER_LABEL_COLUMNS,
    build_review_rows,
    merge_into_sheet,
)
from voc.taxonomy import default_taxonomy

MONTH = "2019-11"
S_MAJ, S_MIN = REVIEWER_LABEL_COLUMNS["subject"]


@pytest.fixture(scope="module")
def standin():
    with SheetsStandIn() as s:
        yield s


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


@pytest.fixture(scope="module")
def rows(sample_df):
    return build_review_rows(make_tagged(sample_df), threshold=0.5)


def make_backend(standin: SheetsStandIn, **settings: object) -> GSheetsReviewBackend:
    cfg = ReviewSettings(backend="gsheets", sheets_api_url=standin.url, **settings)
    return GSheetsReviewBackend(cfg, backoff_s=0.001, max_backoff_s=0.01)


def hostile_sheet(rows: pl.DataFrame) -> pl.DataFrame:
    ids = rows[COL_VOC_ID].to_list()
    edits = {ids[i]: {COL_TITLE: h, COL_MEMO: h} for i, h in enumerate(HOSTILE)}
    edits[ids[6]] = {S_MIN: "승강기", COL_DONE: "Y"}
    return set_cells(rows, edits)


def row_lists(requests: list, column: int) -> dict[int, list[str]]:
    """Data row (1-based grid row) → the ONE_OF_LIST values validating ``column`` there."""
    out: dict[int, list[str]] = {}
    for r in requests:
        dv = r.get("setDataValidation")
        if dv and dv["range"]["startColumnIndex"] == column:
            values = [v["userEnteredValue"] for v in dv["rule"]["condition"]["values"]]
            for row in range(dv["range"]["startRowIndex"], dv["range"]["endRowIndex"]):
                assert row not in out, f"row {row} validated twice"
                out[row] = values
    return out


def api_calls(standin: SheetsStandIn, method: str, fragment: str) -> list:
    return [r for r in standin.log if r.method == method and fragment in r.path]


def test_write_read_round_trip_with_layout_requests(standin, rows, tax):
    b = make_backend(standin, spreadsheet_title_template="VOC 검수 {yyyymm} round-trip")
    assert isinstance(b, ReviewBackend)
    assert b.read_month(MONTH) is None
    assert b.location(MONTH) == "gsheets:VOC 검수 201911 round-trip"
    sheet = hostile_sheet(rows)
    standin.reset_log()
    url = b.write_month(MONTH, sheet, tax)
    sid = next(k for k, v in standin.spreadsheets.items() if v.title == "VOC 검수 201911 round-trip")
    assert url == f"https://docs.google.com/spreadsheets/d/{sid}#gid=0"
    assert b.location(MONTH) == f"https://docs.google.com/spreadsheets/d/{sid}"

    # one values update (RAW) and one batchUpdate per write
    puts = api_calls(standin, "PUT", "/values/")
    assert len(puts) == 1 and puts[0].query["valueInputOption"] == ["RAW"]
    assert len(api_calls(standin, "POST", ":batchUpdate")) == 1
    (_, requests), = standin.batch_updates
    kinds = [next(iter(r)) for r in requests]
    props = requests[0]["updateSheetProperties"]["properties"]
    assert props["title"] == "201911" and props["gridProperties"]["frozenRowCount"] == 1
    # issue 22: the columns left of the first 검수_ column stay put (voc_id, 제목, the model's tags)
    assert props["gridProperties"]["frozenColumnCount"] == REVIEW_COLUMNS.index(REVIEWER_COLUMNS[0]) == 21
    assert props["gridProperties"]["rowCount"] == rows.height + 1
    assert props["gridProperties"]["columnCount"] == len(REVIEW_COLUMNS)
    lists = dropdown_lists(tax)
    validations = {
        r["setDataValidation"]["range"]["startColumnIndex"]: r["setDataValidation"]["rule"]
        for r in requests if "setDataValidation" in r
    }
    for name in (REVIEWER_LABEL_COLUMNS["subject"][0], REVIEWER_LABEL_COLUMNS["work"][0], COL_DONE, "묶음 적용"):
        rule = validations[REVIEW_COLUMNS.index(name)]
        assert rule["condition"]["type"] == "ONE_OF_LIST" and rule["strict"] and rule["showCustomUi"]
        assert [v["userEnteredValue"] for v in rule["condition"]["values"]] == lists[name]
    assert [v["userEnteredValue"] for v in validations[REVIEW_COLUMNS.index(COL_DONE)]["condition"]["values"]] == list(DONE_CHOICES)
    # 중분류: one list per data row, the minors of that row's (model) major
    for dim in ("subject", "work"):
        per_row = row_lists(requests, REVIEW_COLUMNS.index(REVIEWER_LABEL_COLUMNS[dim][1]))
        assert sorted(per_row) == list(range(1, rows.height + 1)), "every data row, once"
        for i, r in enumerate(sheet.iter_rows(named=True), start=1):
            assert per_row[i] == sorted(tax.minors(dim, r[MODEL_TAG_COLUMNS[dim][0]]), key=lambda m: (m == "기타", m))
    # text wraps, model columns warn before an edit, reviewer columns do not
    wrapped = [r["repeatCell"]["range"] for r in requests
               if r.get("repeatCell", {}).get("cell", {}).get("userEnteredFormat", {}).get("wrapStrategy") == "WRAP"]
    assert any(g["startColumnIndex"] <= REVIEW_COLUMNS.index("요청내용") < g["endColumnIndex"] and g["startRowIndex"] == 1
               for g in wrapped)
    meta = standin.spreadsheets[sid].sheet(title="201911").protected
    assert len(meta) == 1 and meta[0]["warningOnly"] and meta[0]["description"] == PROTECTION_NOTE
    open_cols = {j for g in meta[0]["unprotectedRanges"] for j in range(g["startColumnIndex"], g["endColumnIndex"])}
    assert open_cols == {REVIEW_COLUMNS.index(c) for c in REVIEWER_COLUMNS}
    guide = standin.values(sid, GUIDE_SHEET)
    assert {r[0] for r in guide if r} >= set(REVIEW_COLUMNS)
    assert "repeatCell" in kinds and "setBasicFilter" in kinds
    hidden = [r["updateDimensionProperties"]["range"]["startIndex"] for r in requests
              if r.get("updateDimensionProperties", {}).get("properties", {}).get("hiddenByUser")]
    assert hidden == [REVIEW_COLUMNS.index("model_version"), REVIEW_COLUMNS.index("run_id")]

    # hostile texts are stored as plain strings (RAW), never formulas, and read back equal
    stored = standin.values(sid, "201911")
    title_col = REVIEW_COLUMNS.index(COL_TITLE)
    assert [stored[i + 1][title_col] for i in range(len(HOSTILE))] == HOSTILE
    assert all(not isinstance(v, dict) for row in stored for v in row)
    assert isinstance(stored[1][REVIEW_COLUMNS.index("신뢰도")], float), "confidences are numbers in Sheets"
    back = b.read_month(MONTH)
    assert back.columns == list(REVIEW_COLUMNS)
    assert back.equals(sheet)


def test_standin_would_turn_user_entered_text_into_formulas(standin):
    """Sanity check of the stand-in: the RAW test above would catch USER_ENTERED."""
    sid = standin.create_spreadsheet("user-entered check")
    client = gspread.Client(None, session=requests.Session(), http_client=routed_http_client(standin.url))
    ws = client.open_by_key(sid).sheet1
    ws.update([[HOSTILE[0]]], "A1", raw=False)
    assert standin.values(sid, "Sheet1") == [[{"formula": HOSTILE[0]}]]
    assert ws.get_all_values() == [[""]]


def test_rerun_is_idempotent_and_keeps_reviewer_edits(standin, rows, tax, sample_df):
    b = make_backend(standin, spreadsheet_title_template="VOC 검수 {yyyymm} rerun")
    b.write_month(MONTH, rows, tax)
    sid = b._ids["VOC 검수 201911 rerun"]
    # same model rows again: nothing changes
    read = b.read_month(MONTH)
    merged, st = merge_into_sheet(read, rows)
    assert merged.equals(read) and st.unchanged == rows.height
    b.write_month(MONTH, merged, tax)
    assert b.read_month(MONTH).equals(read)
    # a reviewer edits two rows in the browser; a rerun brings different model tags
    col = {c: j for j, c in enumerate(REVIEW_COLUMNS)}
    standin.set_cell(sid, "201911", 1, col[S_MIN], "승강기")
    standin.set_cell(sid, "201911", 1, col[COL_DONE], "Y")
    standin.set_cell(sid, "201911", 2, col[COL_MEMO], "확인 필요")
    read = b.read_month(MONTH)
    new_rows = build_review_rows(make_tagged(sample_df, seed=2, shift=4), threshold=0.5)
    merged, st = merge_into_sheet(read, new_rows)
    assert st.kept_reviewed == 1 and st.appended == 0
    b.write_month(MONTH, merged, tax)
    final = b.read_month(MONTH)
    assert final.equals(merged)
    assert final.row(0, named=True)[S_MIN] == "승강기" and final.row(0, named=True)[COL_DONE] == "Y"
    assert final.row(0, named=True)["run_id"] == rows.row(0, named=True)["run_id"], "reviewed row kept"
    assert final.row(1, named=True)[COL_MEMO] == "확인 필요"
    assert final.row(1, named=True)["run_id"] == "full_20261201_020002", "untouched row updated"
    for before, after in zip(read.iter_rows(named=True), final.iter_rows(named=True)):
        assert all(after[c] == before[c] for c in REVIEWER_COLUMNS)
    # the per-month spreadsheet was created once
    assert [s.title for s in standin.spreadsheets.values()].count("VOC 검수 201911 rerun") == 1


def test_429_twice_then_success_recovers(standin, rows, tax):
    b = make_backend(standin, spreadsheet_title_template="VOC 검수 {yyyymm} retry")
    b.write_month(MONTH, rows, tax)
    standin.reset_log()
    standin.fail_next(2, status=429)
    back = b.read_month(MONTH)
    assert back is not None and back.height == rows.height
    assert len(standin.log) >= 3 and standin.log[0].path == standin.log[2].path, "same call retried"
    standin.fail_next(1, status=503)
    b.write_month(MONTH, back, tax)
    assert b.read_month(MONTH).equals(back)


def test_drive_rate_limit_403_is_retried_and_create_is_not_repeated(standin, rows, tax):
    b = make_backend(standin, spreadsheet_title_template="VOC {yyyymm} create-once")
    standin.reset_log()
    standin.fail_next(1, status=403, reason="userRateLimitExceeded", path="/drive/v3/files")
    standin.fail_next(2, status=503, path="/v4/spreadsheets/")  # the open right after the create
    b.write_month(MONTH, rows.head(4), tax)
    assert [s.title for s in standin.spreadsheets.values()].count("VOC 201911 create-once") == 1
    assert len(api_calls(standin, "POST", "/drive/v3/files")) == 1
    assert b.read_month(MONTH).equals(rows.head(4))


def test_retries_give_up_after_max_attempts_and_do_not_retry_4xx(standin, rows, tax):
    b = GSheetsReviewBackend(
        ReviewSettings(backend="gsheets", sheets_api_url=standin.url, spreadsheet_title_template="VOC {yyyymm} giveup"),
        max_attempts=2,
        backoff_s=0.001,
    )
    standin.reset_log()
    standin.fail_next(3, status=429)
    with pytest.raises(APIError) as e:
        b.read_month(MONTH)
    assert e.value.response.status_code == 429 and len(standin.log) == 2
    standin.reset_log()
    standin.clear_failures()
    for status, reason in ((400, None), (403, None), (404, None)):
        standin.reset_log()
        standin.fail_next(1, status=status, reason=reason)
        with pytest.raises(APIError):
            b.read_month(MONTH)
        assert len(standin.log) == 1, status


def test_configured_spreadsheet_gets_a_worksheet_per_month(standin, rows, tax):
    key = standin.create_spreadsheet("관리사무소 VOC 검수")
    b = make_backend(standin, spreadsheet_key=key)
    assert b.read_month(MONTH) is None
    assert b.location(MONTH) == f"https://docs.google.com/spreadsheets/d/{key}"
    b.write_month(MONTH, rows.head(5), tax)
    b.write_month("2019-12", rows.tail(3), tax)
    titles = [s.title for s in standin.spreadsheets[key].sheets]
    assert titles == ["Sheet1", "201911", GUIDE_SHEET, "201912"], "one guide for all months"
    assert b.read_month(MONTH).equals(rows.head(5))
    assert b.read_month("201912").equals(rows.tail(3))
    missing = make_backend(standin, spreadsheet_key="no-such-key")
    with pytest.raises(ReviewBackendError, match="no-such-key"):
        missing.read_month(MONTH)


def test_new_spreadsheet_is_shared(standin, rows, tax):
    b = make_backend(standin, spreadsheet_title_template="VOC {yyyymm} shared", share_with=["manager@example.com"])
    b.write_month(MONTH, rows.head(2), tax)
    ss = next(v for v in standin.spreadsheets.values() if v.title == "VOC 201911 shared")
    assert [(p["emailAddress"], p["role"], p["type"]) for p in ss.permissions] == [
        ("manager@example.com", "writer", "user")
    ]


def _service_account_json(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps({
        "type": "service_account",
        "project_id": "voc-test",
        "private_key_id": "test-key-1",
        "private_key": pem,
        "client_email": "voc-review@voc-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    })


def test_service_account_client_authenticates_and_never_logs_the_secret(standin, rows, tax, caplog):
    secret = _service_account_json(standin.url + "/token")
    settings = ReviewSettings(
        backend="gsheets",
        service_account_json=SecretStr(secret),
        sheets_api_url=standin.url,
        spreadsheet_title_template="VOC {yyyymm} service-account",
    )
    assert "PRIVATE KEY" not in repr(settings) and "PRIVATE KEY" not in str(settings.model_dump())
    caplog.set_level(logging.DEBUG)
    standin.reset_log()
    b = GSheetsReviewBackend(settings, backoff_s=0.001)
    b.write_month(MONTH, rows.head(3), tax)
    assert b.read_month(MONTH).equals(rows.head(3))
    assert standin.log[0].path == "/token"
    api = [r for r in standin.log if r.path != "/token"]
    assert api and all(r.authorization == "Bearer standin-token" for r in api)
    assert "PRIVATE KEY" not in caplog.text and "test-key-1" not in repr(b)


def test_client_configuration_errors_do_not_leak_the_secret():
    with pytest.raises(ReviewBackendError, match="service_account_json"):
        make_gspread_client(ReviewSettings(backend="gsheets"))
    leaky = "{not json -----BEGIN PRIVATE KEY----- abc"
    with pytest.raises(ReviewBackendError) as e:
        make_gspread_client(ReviewSettings(backend="gsheets", service_account_json=SecretStr(leaky)))
    assert "PRIVATE" not in str(e.value) and e.value.__cause__ is None and e.value.__suppress_context__
    with pytest.raises(ReviewBackendError, match="not a Google service-account key"):
        make_gspread_client(ReviewSettings(backend="gsheets", service_account_json=SecretStr('{"type": "x"}')))


def test_routed_http_client_rewrites_both_google_origins():
    cls = routed_http_client("http://127.0.0.1:9/v4/spreadsheets/")
    assert cls.routed_base == "http://127.0.0.1:9"
    assert issubclass(cls, gspread.http_client.HTTPClient)


def test_open_review_backend_picks_gsheets(standin, tmp_path):
    settings = VocSettings(storage=str(tmp_path), review=ReviewSettings(backend="gsheets", sheets_api_url=standin.url))
    assert isinstance(open_review_backend(settings), GSheetsReviewBackend)
    with pytest.raises(ReviewBackendError):
        open_review_backend(VocSettings(storage=str(tmp_path), review=ReviewSettings(backend="gsheets")))


def test_keyword_guess_marker_round_trips_and_is_never_a_value(standin, tax, sample_df):
    """The 추정 marker of keyword-only tags is plain text in Sheets (RAW) and reads back exactly;
    refresh treats it as the model's keyword guess, never as a reviewer value."""
    from voc.review import GUESS_MARK, MODEL_COLUMNS, merge_reviews, split_guess

    tagged = make_tagged(sample_df).with_columns(pl.lit("keyword").alias("work_source"))
    rows = build_review_rows(tagged, threshold=0.5)
    b = make_backend(standin, spreadsheet_title_template="VOC 검수 {yyyymm} guesses")
    b.write_month(MONTH, rows, tax)
    sid = b._ids["VOC 검수 201911 guesses"]
    stored = standin.values(sid, "201911")
    col = {c: j for j, c in enumerate(REVIEW_COLUMNS)}
    assert stored[1][col["작업유형 중분류"]].endswith(f"({GUESS_MARK})")
    standin.set_cell(sid, "201911", 1, col[COL_DONE], "Y")  # empty cells: confirms the subject only
    guessed = split_guess(stored[2][col["작업유형 중분류"]])[0]
    standin.set_cell(sid, "201911", 2, col[REVIEWER_LABEL_COLUMNS["work"][1]], guessed)
    standin.set_cell(sid, "201911", 2, col[COL_DONE], "Y")
    back = b.read_month(MONTH)
    assert back.select(MODEL_COLUMNS).equals(rows.select(MODEL_COLUMNS))
    reviewed, st = merge_reviews(tagged, back, tax)
    o = {r["voc_id"]: r for r in reviewed.iter_rows(named=True)}
    first, second = back[COL_VOC_ID][0], back[COL_VOC_ID][1]
    assert (o[first]["subject_reviewed"], o[first]["work_reviewed"], o[first]["work_source"]) == (True, False, "keyword")
    assert (o[second]["work_reviewed"], o[second]["reviewed_work_minor"]) == (True, guessed)
    assert not st.issues
    assert not any(GUESS_MARK in str(v) for c in ("work_minor", "reviewed_work_minor") for v in reviewed[c].to_list() if v)


def test_per_row_minor_lists_follow_the_rows_major(standin, sample_df):
    """Each row's 검수_주제 중분류 list holds the minors of that row's 대분류: the reviewer's pick
    once there is one (after the next update), else the model's; a retired model major stands
    for its successor; rows without a usable major get every offered minor. The protection is
    replaced, not piled up, by the update."""
    from test_review import reorg_taxonomy

    from voc.review import merge_into_sheet

    tax = reorg_taxonomy(sample_df)
    month = sample_df.filter(pl.col("created_at").dt.strftime("%Y%m") == "201911")
    tagged = make_tagged(sample_df).with_columns(
        pl.Series("subject_major", [a or "기타" for a in month["reviewed_subject_major"].to_list()]),
        pl.Series("subject_minor", [b or "기타" for b in month["reviewed_subject_minor"].to_list()]),
    )
    ids = tagged["voc_id"].to_list()
    retired_row, picked_row = ids[0], ids[1]
    tagged = tagged.with_columns(
        pl.when(pl.col("voc_id") == retired_row).then(pl.lit("국제도시국")).otherwise(pl.col("subject_major")).alias("subject_major")
    )
    rows = build_review_rows(tagged, threshold=0.5)
    b = make_backend(standin, spreadsheet_title_template="VOC 검수 {yyyymm} per-row")
    b.write_month(MONTH, rows, tax)
    col = REVIEW_COLUMNS.index(S_MIN)
    per_row = row_lists(standin.batch_updates[-1][1], col)
    order = rows[COL_VOC_ID].to_list()
    offered = {r.major: sorted(m.minor for m in tax.offered_rows("subject") if m.major == r.major) for r in tax.offered_rows("subject")}
    assert per_row[order.index(retired_row) + 1] == offered["국제도시건설국"] == ["교통과", "기반시설과", "도시공원과"]
    building = [order.index(v) + 1 for v, m in zip(tagged["voc_id"], tagged["subject_major"]) if m == "도시재생국"]
    assert len(building) > 25 and all(per_row[r] == offered["도시재생국"] for r in building)
    unknown = [order.index(v) + 1 for v, m in zip(tagged["voc_id"], tagged["subject_major"]) if m == "기타"]
    assert unknown and all(per_row[r] == dropdown_lists(tax)[S_MIN] for r in unknown), "no usable major: every minor"

    # the reviewer picks another 대분류 on one row; the next update lists that major's minors
    sid = b._ids["VOC 검수 201911 per-row"]
    standin.set_cell(sid, "201911", order.index(picked_row) + 1, REVIEW_COLUMNS.index(S_MAJ), "보건소")
    b.update_month(MONTH, lambda old: merge_into_sheet(old, rows), tax)
    per_row = row_lists(standin.batch_updates[-1][1], col)
    assert per_row[order.index(picked_row) + 1] == offered["보건소"]
    rules = [r["setDataValidation"]["rule"] for r in standin.batch_updates[-1][1]
             if r.get("setDataValidation", {}).get("range", {}).get("startColumnIndex") == col]
    assert not any(r["strict"] for r in rules), "a changed 대분류 must not block typing the right 중분류"
    sheets = standin.spreadsheets[sid]
    assert len(sheets.sheet(title="201911").protected) == 1 and len(sheets.sheet(title=GUIDE_SHEET).protected) == 1


def test_formula_in_a_reviewer_cell_is_read_as_its_formula_and_reported(standin, rows, tax, sample_df):
    """Issue 21. Sheets returns a formula's computed value (the stand-in: ``""``, nothing is
    evaluated) in formatted reads; a done row then confirmed the model's tag. The backend also
    reads ``valueRenderOption=FORMULA`` and gives the formula text, which validation reports;
    a rerun's update leaves the reviewer's formula where it is."""
    from voc.review import merge_reviews

    title = "VOC {yyyymm} formulas"
    b = make_backend(standin, spreadsheet_title_template=title)
    b.write_month(MONTH, rows, tax)
    sid = b._ids[title.format(yyyymm="201911")]
    col = {c: j for j, c in enumerate(REVIEW_COLUMNS)}
    formula = '=VLOOKUP(B2,분류체계!A:B,2,FALSE)'
    standin.set_cell(sid, "201911", 1, col[S_MIN], {"formula": formula})
    standin.set_cell(sid, "201911", 1, col[COL_DONE], "Y")
    standin.set_cell(sid, "201911", 2, col[COL_DONE], {"formula": '=IF(A3="","Y","N")'})
    back = b.read_month(MONTH)
    assert back[S_MIN][0] == formula and back[COL_DONE][1] == '=IF(A3="","Y","N")'
    assert back[COL_TITLE].to_list() == rows[COL_TITLE].to_list()  # other cells: formatted values as before
    tagged = make_tagged(sample_df)
    out, st = merge_reviews(tagged, back, tax)
    assert [(i.sheet_row, i.column, i.value, i.code) for i in st.issues] == [
        (2, S_MIN, formula, "formula"),
        (3, COL_DONE, '=IF(A3="","Y","N")', "formula"),
    ]
    first = out.filter(pl.col("voc_id") == back[COL_VOC_ID][0]).row(0, named=True)
    assert not first["subject_reviewed"] and first["work_reviewed"]
    assert not out.filter(pl.col("voc_id") == back[COL_VOC_ID][1])["is_reviewed"][0]
    b.update_month(MONTH, lambda existing: merge_into_sheet(existing, rows), tax)
    assert standin.values(sid, "201911")[1][col[S_MIN]] == {"formula": formula}, "the reviewer's formula was overwritten"


URGENT_RGB = {"red": 0xF8 / 255, "green": 0xCB / 255, "blue": 0xAD / 255}


def urgent_paint(requests: list) -> tuple[set[int], set[int], set[int]]:
    """Grid rows painted light red, the columns painted, and grid rows whose fill was cleared
    first, by a layout's ``repeatCell`` requests."""
    red_rows: set[int] = set()
    red_cols: set[int] = set()
    cleared: set[int] = set()
    for r in requests:
        rc = r.get("repeatCell")
        if not rc or rc["fields"] != "userEnteredFormat.backgroundColor":
            continue
        g, fmt = rc["range"], rc["cell"]["userEnteredFormat"]
        rows = set(range(g["startRowIndex"], g["endRowIndex"]))
        if fmt == {}:
            assert not red_rows, "cleared after painting"
            cleared |= rows
        elif fmt["backgroundColor"] == pytest.approx(URGENT_RGB):
            red_rows |= rows
            red_cols |= set(range(g["startColumnIndex"], g["endColumnIndex"]))
    return red_rows, red_cols, cleared


def test_urgent_rows_painted_aid_columns_protected_and_repainted_after_a_rerun(standin, tax, sample_df):
    """Issues 24–25 in Sheets: 긴급/반복/답변 초안 round trip; the urgent row's machine cells are
    painted light red after every data row's fill is cleared (so a rerun, or a reviewer's
    re-sorting, leaves no stale red); the three columns are under the warning-only protection and
    the filter; the draft wraps."""
    _, rows, who = alert_case(sample_df)
    b = make_backend(standin, spreadsheet_title_template="VOC 검수 {yyyymm} alerts")
    standin.reset_log()
    b.write_month(MONTH, rows, tax)
    assert b.read_month(MONTH).equals(rows)
    (_, requests), = standin.batch_updates
    col = {c: j for j, c in enumerate(REVIEW_COLUMNS)}
    at = {vid: i + 1 for i, vid in enumerate(rows[COL_VOC_ID].to_list())}
    red_rows, red_cols, cleared = urgent_paint(requests)
    assert red_rows == {at[who["urgent"]]} and cleared == set(range(1, rows.height + 1))
    assert {col[c] for c in (COL_URGENT, COL_REPEAT, COL_VOC_ID, COL_TITLE, COL_REPLY_DRAFT)} <= red_cols
    assert not red_cols & {col[c] for c in (*MODEL_COLUMNS, *REVIEWER_COLUMNS)}
    sid = b._ids["VOC 검수 201911 alerts"]
    meta = standin.spreadsheets[sid].sheet(title="201911").protected
    open_cols = {j for g in meta[0]["unprotectedRanges"] for j in range(g["startColumnIndex"], g["endColumnIndex"])}
    assert not open_cols & {col[c] for c in AID_COLUMNS}
    (filt,) = [r["setBasicFilter"]["filter"]["range"] for r in requests if "setBasicFilter" in r]
    assert (filt["startColumnIndex"], filt["endColumnIndex"]) == (0, len(REVIEW_COLUMNS))
    wrapped = [r["repeatCell"]["range"] for r in requests
               if r.get("repeatCell", {}).get("cell", {}).get("userEnteredFormat", {}).get("wrapStrategy") == "WRAP"]
    assert any(g["startColumnIndex"] <= col[COL_REPLY_DRAFT] < g["endColumnIndex"] and g["startRowIndex"] == 1 for g in wrapped)

    # a rerun in which another VOC is the urgent one: only that row is red now
    _, rows2, who2 = alert_case(sample_df, urgent_at=9)
    standin.reset_log()
    b.update_month(MONTH, lambda old: merge_into_sheet(old, rows2), tax)
    (_, requests), = standin.batch_updates
    final = b.read_month(MONTH)
    at = {vid: i + 1 for i, vid in enumerate(final[COL_VOC_ID].to_list())}
    red_rows, _, cleared = urgent_paint(requests)
    assert red_rows == {at[who2["urgent"]]} != {at[who["urgent"]]} and cleared >= set(range(1, final.height + 1))
    assert filled(final, COL_URGENT) == {who2["urgent"]: "긴급"}


def test_old_worksheet_without_aid_columns_reads_and_a_rerun_adds_them(standin, tax, sample_df):
    """A worksheet written before 긴급/반복/답변 초안 reads as it is; refresh ignores the columns;
    the next run's merge adds them (the reviewed row gets them too) and keeps the reviewer's cells."""
    tagged, rows, who = alert_case(sample_df)
    old_rows = set_cells(rows.drop(list(AID_COLUMNS)), {who["drafted"]: {S_MIN: "승강기", COL_DONE: "Y"}})
    sid = standin.create_spreadsheet("VOC 검수 201911 old")
    client = gspread.Client(None, session=requests.Session(), http_client=routed_http_client(standin.url))
    sh = client.open_by_key(sid)
    ws = sh.sheet1
    grid = {"rowCount": old_rows.height + 1, "columnCount": len(old_rows.columns)}
    sh.batch_update({"requests": [{"updateSheetProperties": {
        "properties": {"sheetId": ws.id, "gridProperties": grid},
        "fields": "gridProperties.rowCount,gridProperties.columnCount",
    }}]})
    ws.update([old_rows.columns, *old_rows.rows()], "A1", raw=True)
    b = make_backend(standin, spreadsheet_title_template="VOC 검수 {yyyymm} old")
    old = b.read_month(MONTH)
    assert old.equals(old_rows)
    from voc.review import merge_reviews

    reviewed, _ = merge_reviews(tagged, old, tax)
    assert reviewed.filter(pl.col("urgent"))["voc_id"].to_list() == [who["urgent"]]
    b.update_month(MONTH, lambda sheet: merge_into_sheet(sheet, rows), tax)
    final = b.read_month(MONTH)
    assert final.columns == list(REVIEW_COLUMNS)
    assert filled(final, COL_URGENT) == {who["urgent"]: "긴급"} and filled(final, COL_REPEAT) == {who["repeat"]: who["earlier"]}
    assert filled(final, COL_REPLY_DRAFT) == {who["drafted"]: DRAFT_CELL}
    assert final.filter(pl.col(COL_VOC_ID) == who["drafted"]).select(S_MIN, COL_DONE).row(0) == ("승강기", "Y")
