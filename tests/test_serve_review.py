"""The reviewers' upload page of ``voc serve`` (flows/service/review_upload.py, issue 22): HTTP Basic with
reviewer keys per building, download of a building's workbook, upload of the filled one through
``review_exchange``'s push (same checks and compare-and-swap), other buildings' rows rejected,
401 / 403 / 404 / 413. In-process (TestClient), on the real sample's November 2019 VOCs
(``test_review.make_tagged``: 45 VOCs, buildings 1 and 2); no model is needed.

The headless-Chromium test (slow tier) opens the page in a real browser.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openpyxl
import polars as pl
import pytest
from fastapi.testclient import TestClient
from infra import free_port
from pydantic import SecretStr
from test_review import make_tagged

from config.settings import ServeSettings, VocSettings
from flows.adapters.review_backends import XlsxReviewBackend
from flows.adapters.storage import LocalStorage
from flows.review_exchange import PULL_SHEET, pull_review_bytes
from flows.service.app import create_app
from voc.months import Month
from voc.review import COL_BUILDING_ID, COL_DONE, COL_MEMO, COL_VOC_ID, build_review_rows
from voc.taxonomy import default_taxonomy

MONTH = "2019-11"
M = Month.parse(MONTH)
PREFIX = "stat/voc-dev"
KEYS = {"rk-one-secret": ["1"], "rk-two-secret": ["2"]}
TWO = ("reviewer", "rk-two-secret")  # HTTP Basic: any user name, the key as password
LIMIT = 1024 * 1024


@pytest.fixture()
def root(tmp_path: Path, sample_df: pl.DataFrame) -> Path:
    rows = build_review_rows(make_tagged(sample_df), threshold=0.5)
    root = tmp_path / "store"
    XlsxReviewBackend(LocalStorage(root), PREFIX).write_month(MONTH, rows, default_taxonomy())
    return root


def settings_for(root: Path, tmp: Path, **serve: object) -> VocSettings:
    conf = {"api_keys": [SecretStr("api-key")], "reload_interval_s": 3600.0, "reviewer_keys": SecretStr(json.dumps(KEYS)),
            "max_upload_bytes": LIMIT, **serve}
    return VocSettings(storage=str(root), model={"cache_dir": tmp / "cache"}, serve=ServeSettings(**conf))


@pytest.fixture()
def client(root: Path, tmp_path: Path) -> TestClient:
    return TestClient(create_app(settings_for(root, tmp_path)))  # no lifespan: no model needed


def stored(root: Path) -> pl.DataFrame:
    sheet = XlsxReviewBackend(LocalStorage(root), PREFIX).read_month(MONTH)
    assert sheet is not None
    return sheet


def row_of(sheet: pl.DataFrame, vid: str) -> dict[str, str]:
    return sheet.filter(pl.col(COL_VOC_ID) == vid).row(0, named=True)


def edited(data: bytes, edits: dict[str, dict[str, str]]) -> bytes:
    """What a reviewer does in Excel: type into the 검수 cells of the rows named by voc_id."""
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[M.yyyymm]
    col = {c.value: c.column for c in ws[1]}
    for r in range(2, ws.max_row + 1):
        for name, value in edits.get(str(ws.cell(r, col[COL_VOC_ID]).value), {}).items():
            ws.cell(r, col[name]).value = value
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def upload(client: TestClient, data: bytes, *, auth=TWO, json_answer: bool = False, headers: dict | None = None) -> httpx.Response:
    headers = {**({"Accept": "application/json"} if json_answer else {}), **(headers or {})}
    return client.post("/review/201911", files={"file": ("mine.xlsx", data, "application/octet-stream")}, auth=auth, headers=headers)


def test_routes_are_absent_without_reviewer_keys(root: Path, tmp_path: Path) -> None:
    c = TestClient(create_app(settings_for(root, tmp_path, reviewer_keys=None)))
    assert c.get("/review", auth=TWO).status_code == 404
    assert c.get("/review/201911/2.xlsx", auth=TWO).status_code == 404
    assert c.post("/review/201911", auth=TWO).status_code == 404


def test_reviewer_keys_setting_is_a_secret_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOC_SERVE__REVIEWER_KEYS", '{"k-a": ["1", 2], "k-b": ["3"]}')
    conf = VocSettings().serve
    assert conf.reviewer_buildings() == {"k-a": frozenset({"1", "2"}), "k-b": frozenset({"3"})}
    assert "k-a" not in repr(conf) and "k-a" not in str(conf.model_dump())
    for bad in ('["k-a"]', '{"k-a": []}', '{"k-a": "1"}', "{not json"):
        monkeypatch.setenv("VOC_SERVE__REVIEWER_KEYS", bad)
        with pytest.raises(ValueError, match="VOC_SERVE__REVIEWER_KEYS") as e:
            VocSettings()
        assert "k-a\"" not in str(e.value).replace('"k-a": ', "")  # the key is never repeated


@pytest.mark.parametrize("auth", [None, ("reviewer", "wrong"), ("reviewer", "")])
def test_no_or_wrong_key_is_401_with_a_basic_challenge(client: TestClient, auth) -> None:
    for r in (client.get("/review", auth=auth), client.get("/review/201911/2.xlsx", auth=auth), upload(client, b"x", auth=auth)):
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith('Basic realm="voc review"')


def test_page_lists_only_the_reviewers_buildings(client: TestClient) -> None:
    r = client.get("/review?month=2019-11", auth=TWO)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "VOC 검수 시트 올리기" in page and 'lang="ko"' in page
    assert 'href="/review/201911/2.xlsx"' in page and "/review/201911/1.xlsx" not in page
    assert 'action="/review/201911"' in page and 'enctype="multipart/form-data"' in page
    assert "<script" not in page and "http" not in page.split("<body>")[1]  # self-contained: nothing fetched elsewhere


def test_download_is_the_buildings_rows_with_a_pull_record(client: TestClient) -> None:
    r = client.get("/review/201911/2.xlsx", auth=TWO)
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"] and r.headers["cache-control"] == "no-store"
    frame = XlsxReviewBackend._frame("dl", MONTH, r.content)
    assert frame.height == 4 and set(frame[COL_BUILDING_ID]) == {"2"}
    assert openpyxl.load_workbook(io.BytesIO(r.content))[PULL_SHEET].sheet_state == "hidden"
    assert client.get("/review/201911/1.xlsx", auth=TWO).status_code == 403  # another reviewer's building
    assert client.get("/review/201911/2.xlsx", auth=("x", "rk-one-secret")).status_code == 403
    assert client.get("/review/209901/2.xlsx", auth=TWO).status_code == 404  # no workbook that month
    assert client.get("/review/2019-11/2.xlsx", auth=TWO).status_code == 404


def test_upload_of_an_edited_workbook_is_merged(client: TestClient, root: Path) -> None:
    data = client.get("/review/201911/2.xlsx", auth=TWO).content
    vid = XlsxReviewBackend._frame("dl", MONTH, data)[COL_VOC_ID][0]
    r = upload(client, edited(data, {vid: {COL_DONE: "Y", COL_MEMO: "확인함"}}))
    assert r.status_code == 200, r.text
    assert "반영 1행" in r.text and "반영 안 됨 0행" in r.text and vid in r.text
    after = row_of(stored(root), vid)
    assert (after[COL_DONE], after[COL_MEMO]) == ("Y", "확인함")
    # the same file again: nothing to write (JSON answer for scripts)
    again = upload(client, edited(data, {vid: {COL_DONE: "Y", COL_MEMO: "확인함"}}), json_answer=True)
    assert again.json()["accepted"] == [] and again.json()["written"] is False


def test_rows_of_other_buildings_are_rejected_with_a_reason(client: TestClient, root: Path, tmp_path: Path) -> None:
    whole = pull_review_bytes(settings_for(root, tmp_path), MONTH).data  # the whole month: buildings 1 and 2
    frame = XlsxReviewBackend._frame("m", MONTH, whole)
    mine = frame.filter(pl.col(COL_BUILDING_ID) == "2")[COL_VOC_ID][0]
    theirs = frame.filter(pl.col(COL_BUILDING_ID) == "1")[COL_VOC_ID][0]
    r = upload(client, edited(whole, {mine: {COL_DONE: "Y"}, theirs: {COL_DONE: "Y", COL_MEMO: "남의 건물"}}), json_answer=True)
    assert r.status_code == 200, r.text
    got = r.json()
    assert [a["voc_id"] for a in got["accepted"]] == [mine]
    other = [x for x in got["rejected"] if x["voc_id"] == theirs]
    assert other and other[0]["codes"] == ["other_building"] and "맡은 건물" in other[0]["reasons"][0]
    assert all(x["codes"] == ["other_building"] for x in got["rejected"])  # every building-1 row, none of 2
    assert len(got["rejected"]) == frame.filter(pl.col(COL_BUILDING_ID) == "1").height
    sheet = stored(root)
    assert row_of(sheet, mine)[COL_DONE] == "Y"
    assert row_of(sheet, theirs)[COL_MEMO] == "" and row_of(sheet, theirs)[COL_DONE] != "Y"
    # the HTML answer names the reason too
    page = upload(client, edited(whole, {theirs: {COL_DONE: "Y"}})).text
    assert "반영하지 않은 행" in page and "other_building" in page


def test_body_over_the_limit_is_413_and_nothing_is_written(client: TestClient, root: Path) -> None:
    before = (root / PREFIX / "201911" / "review_201911.xlsx").read_bytes()
    r = upload(client, b"\0" * (LIMIT + 1))
    assert r.status_code == 413
    # a body without a Content-Length (chunked) is counted, not trusted
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 65536 + 2):
            yield b"\0" * 65536

    r = client.post("/review/201911", content=chunks(), auth=TWO, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413
    assert (root / PREFIX / "201911" / "review_201911.xlsx").read_bytes() == before


def test_bad_uploads_are_named(client: TestClient) -> None:
    assert upload(client, b"not a workbook").status_code == 422
    assert "xlsx" in upload(client, b"not a workbook").text
    assert client.post("/review/201911", data={"x": "1"}, auth=TWO).status_code == 400  # no file field
    cross = upload(client, b"x", headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403


# --------------------------------------------------------------------------------------------
# slow: a real browser


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (scripts/system-deps.sh)")
def test_headless_chromium_downloads_and_uploads_through_the_page(root: Path, tmp_path: Path) -> None:
    """The page under a real uvicorn server in headless Chromium (Playwright, as
    tests/test_dashboard_browser.py drives it), the key given as the browser's HTTP Basic
    credentials: the form loads, the download link gives the building's workbook, the edited
    workbook uploaded through the file input is merged and the answer page shows the row."""
    import uvicorn
    from playwright.sync_api import sync_playwright
    from test_dashboard_browser import CHROMIUM_ARGS

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings_for(root, tmp_path)), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                ctx = browser.new_context(http_credentials={"username": "reviewer", "password": "rk-two-secret"}, accept_downloads=True)
                page = ctx.new_page()
                assert page.goto(f"http://127.0.0.1:{port}/review?month=2019-11").status == 200
                assert page.locator("form#upload input[type=file]").count() == 1
                with page.expect_download() as dl:
                    page.click('a[href="/review/201911/2.xlsx"]')
                got = tmp_path / "dl.xlsx"
                dl.value.save_as(got)
                vid = XlsxReviewBackend._frame("dl", MONTH, got.read_bytes())[COL_VOC_ID][0]
                filled = tmp_path / "filled.xlsx"
                filled.write_bytes(edited(got.read_bytes(), {vid: {COL_DONE: "Y", COL_MEMO: "브라우저"}}))
                page.set_input_files("form#upload input[type=file]", str(filled))
                with page.expect_navigation():
                    page.click("form#upload button[type=submit]")
                assert "반영 1행" in page.content() and vid in page.inner_text("#accepted")
                browser_ok = True
            finally:
                browser.close()
        assert browser_ok
        assert row_of(stored(root), vid)[COL_MEMO] == "브라우저"
    finally:
        server.should_exit = True
        t.join(timeout=10)
