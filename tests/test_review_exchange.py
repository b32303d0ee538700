"""Review where reviewers are (issue 22): ``voc review pull`` / ``push`` round trips of the
XLSX workbook in local storage, and links that open (month index, run summary, artifacts).

Review rows come from the real sample's November 2019 VOCs (``test_review.make_tagged``).
The S3 link test runs against the local moto server (slow tier).
"""

from __future__ import annotations

import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import openpyxl
import polars as pl
import pytest
from test_review import make_tagged
from typer.testing import CliRunner

from config.settings import ReviewSettings, S3Settings, VocSettings
from flows import links
from flows import storage_layout as layout
from flows.adapters.review_backends import XlsxReviewBackend
from flows.adapters.storage import LocalStorage
from flows.cli.main import app
from flows.monthly import BuildingResult, _index_entry, _publish_artifacts, update_month_index, update_portfolio
from flows.review_exchange import PULL_SHEET, push_review
from voc import dashboard as d
from voc.months import Month
from voc.review import (
    COL_BUILDING_ID,
    COL_DONE,
    COL_MEMO,
    COL_VOC_ID,
    REVIEWER_LABEL_COLUMNS,
    build_review_rows,
    merge_reviews,
)
from voc.taxonomy import default_taxonomy, split_label

MONTH = "2019-11"
M = Month.parse(MONTH)
PREFIX = "stat/voc-dev"
S_MAJ, S_MIN = REVIEWER_LABEL_COLUMNS["subject"]


@pytest.fixture()
def store(tmp_path: Path, sample_df: pl.DataFrame) -> tuple[Path, pl.DataFrame, pl.DataFrame]:
    """A storage root holding the month's review workbook (45 VOCs, buildings 1 and 2)."""
    tagged = make_tagged(sample_df)
    rows = build_review_rows(tagged, threshold=0.5)
    root = tmp_path / "store"
    XlsxReviewBackend(LocalStorage(root), PREFIX).write_month(MONTH, rows, default_taxonomy())
    return root, tagged, rows


def stored_sheet(root: Path) -> pl.DataFrame:
    sheet = XlsxReviewBackend(LocalStorage(root), PREFIX).read_month(MONTH)
    assert sheet is not None
    return sheet


def row_of(sheet: pl.DataFrame, vid: str) -> dict[str, str]:
    hit = sheet.filter(pl.col(COL_VOC_ID) == vid)
    assert hit.height == 1
    return hit.row(0, named=True)


def other_subject(current_major: str) -> tuple[str, str]:
    """An active subject label whose major differs from ``current_major``."""
    for label in default_taxonomy().labels("subject"):
        a, b = split_label(label)
        if a != current_major:
            return a, b
    raise AssertionError("one major only")


def edit(path: Path, edits: dict[str, dict[str, str]], *, add: list[dict[str, str]] = ()) -> None:
    """What a reviewer does in Excel: type into cells (openpyxl writes ``=…`` as a formula)."""
    wb = openpyxl.load_workbook(path)
    ws = wb[M.yyyymm]
    col = {c.value: c.column for c in ws[1]}
    for r in range(2, ws.max_row + 1):
        for name, value in edits.get(str(ws.cell(r, col[COL_VOC_ID]).value), {}).items():
            ws.cell(r, col[name]).value = value
    for extra in add:
        r = ws.max_row + 1
        for name, value in extra.items():
            ws.cell(r, col[name]).value = value
    wb.save(path)


def voc(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_pull_edit_push_then_refresh_picks_up_the_edits(store, tmp_path: Path) -> None:
    root, tagged, rows = store
    file = tmp_path / "mine.xlsx"
    code, out = voc("review", "pull", "--month", MONTH, "-o", str(file), "--storage", str(root))
    assert code == 0, out
    assert "45 rows" in out and file.is_file()
    # the file is the stored workbook (+ a hidden pull record): same frame as stored
    wb = openpyxl.load_workbook(file)
    assert wb[PULL_SHEET].sheet_state == "hidden" and wb.sheetnames[0] == "201911"
    assert XlsxReviewBackend._frame(str(file), MONTH, file.read_bytes()).equals(stored_sheet(root))
    # pulling again over it is refused: it may hold unsent edits
    code, out = voc("review", "pull", "--month", MONTH, "-o", str(file), "--storage", str(root))
    assert code == 2 and "exists" in out

    ids = rows[COL_VOC_ID].to_list()
    good, bad, formula, pending, moved = ids[:5]
    fix = other_subject(row_of(rows, good)["주제 대분류"])
    edit(file, {
        good: {S_MAJ: fix[0], S_MIN: fix[1], COL_DONE: "Y", COL_MEMO: "주제 수정"},
        bad: {S_MAJ: "없는대분류", COL_DONE: "Y"},
        formula: {S_MIN: '=VLOOKUP(B2,분류체계!A:B,2,FALSE)', COL_DONE: "Y"},
        pending: {S_MAJ: fix[0], S_MIN: fix[1]},  # not done yet: stored, noted
        moved: {"주제 대분류": "바뀐대분류", COL_DONE: "Y"},  # a model cell edited
    }, add=[{COL_VOC_ID: "99999999", COL_BUILDING_ID: "1", COL_DONE: "Y"}])
    code, out = voc("review", "push", str(file), "--storage", str(root))
    assert code == 1, out  # some rows rejected; the accepted ones are stored all the same
    assert "accepted 2 row(s)" in out and f"({good})" in out and f"({pending})" in out
    assert "rejected 4 row(s)" in out
    assert f"voc_id={bad}" in out and "없는대분류" in out
    assert f"voc_id={formula}" in out and "수식" in out
    assert "voc_id=99999999" in out and "이번 달 태그된 민원에 없습니다" in out
    assert f"voc_id={moved}" in out and "모델 태그가 저장된 시트와 다릅니다" in out
    assert "note:" in out and "검수완료가 Y가 아니어서" in out

    after = stored_sheet(root)
    assert after.height == 45  # no row added
    assert (row_of(after, good)[S_MAJ], row_of(after, good)[S_MIN], row_of(after, good)[COL_DONE]) == (*fix, "Y")
    assert row_of(after, good)[COL_MEMO] == "주제 수정"
    assert row_of(after, pending)[S_MAJ] == fix[0] and row_of(after, pending)[COL_DONE] in ("", "N")
    for vid in (bad, formula, moved):  # rejected rows keep the stored cells
        assert row_of(after, vid)[S_MAJ] == "" and row_of(after, vid)[COL_DONE] == row_of(rows, vid)[COL_DONE]
    assert row_of(after, moved)["주제 대분류"] == row_of(rows, moved)["주제 대분류"]  # model cells never taken

    # refresh (the pure merge it runs) applies the accepted review
    reviewed, stats = merge_reviews(tagged, after, default_taxonomy())
    r = reviewed.filter(pl.col("voc_id") == good).row(0, named=True)
    assert (r["subject_major"], r["subject_minor"], r["subject_reviewed"]) == (*fix, True)
    assert stats.n_reviewed == 1

    # pushing the same file again changes nothing
    code, out = voc("review", "push", str(file), "--storage", str(root), "--json")
    assert '"accepted": []' in out and '"written": false' in out


def test_pull_one_building_and_push_it_back(store, tmp_path: Path) -> None:
    root, _, rows = store
    code, out = voc("review", "pull", "--month", MONTH, "--building-id", "2", "-o", str(tmp_path), "--storage", str(root))
    assert code == 0, out
    file = tmp_path / "review_201911_2.xlsx"
    frame = XlsxReviewBackend._frame(str(file), MONTH, file.read_bytes())
    assert frame.height == 4 and set(frame[COL_BUILDING_ID].to_list()) == {"2"}
    wb = openpyxl.load_workbook(file)
    assert wb["201911"].protection.sheet and wb["201911"].data_validations.dataValidation  # laid out like the stored one
    vid = frame[COL_VOC_ID][0]
    edit(file, {vid: {COL_DONE: "Y", COL_MEMO: "확인"}})
    code, out = voc("review", "push", str(file), "--storage", str(root))
    assert code == 0, out
    assert "accepted 1 row(s)" in out and "unchanged 3 row(s)" in out and "rejected 0 row(s)" in out
    after = stored_sheet(root)
    assert row_of(after, vid)[COL_DONE] == "Y" and row_of(after, vid)[COL_MEMO] == "확인"
    assert after.drop(COL_DONE, COL_MEMO).equals(stored_sheet_before(rows).drop(COL_DONE, COL_MEMO))
    code, out = voc("review", "pull", "--month", MONTH, "--building-id", "77", "-o", str(tmp_path / "x.xlsx"), "--storage", str(root))
    assert code == 2 and "no row" in out


def stored_sheet_before(rows: pl.DataFrame) -> pl.DataFrame:
    """The sheet frame the store fixture wrote, as the backend reads it back."""
    from flows.adapters.review_backends import _check_frame

    return _check_frame(rows)


def test_concurrent_pushes_of_one_row_report_a_conflict(store, tmp_path: Path) -> None:
    root, _, rows = store
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    for f in (a, b):
        assert voc("review", "pull", "--month", MONTH, "-o", str(f), "--storage", str(root))[0] == 0
    ids = rows[COL_VOC_ID].to_list()
    x, y = ids[0], ids[1]
    fa = other_subject(row_of(rows, x)["주제 대분류"])
    edit(a, {x: {S_MAJ: fa[0], S_MIN: fa[1], COL_DONE: "Y"}})
    edit(b, {x: {COL_DONE: "Y", COL_MEMO: "B의 판단"}, y: {COL_DONE: "Y"}})
    assert voc("review", "push", str(a), "--storage", str(root))[0] == 0
    code, out = voc("review", "push", str(b), "--storage", str(root))
    assert code == 1
    assert "accepted 1 row(s)" in out and f"({y})" in out
    assert f"voc_id={x}" in out and "다른 검수자" in out
    after = stored_sheet(root)
    assert row_of(after, x)[S_MAJ] == fa[0] and row_of(after, x)[COL_MEMO] == ""  # A's edit stands
    assert row_of(after, y)[COL_DONE] == "Y"  # B's other row landed


def test_a_push_landing_between_read_and_write_is_merged_then_reported(store, tmp_path: Path, monkeypatch) -> None:
    """The compare-and-swap: A's push lands after B's push read the workbook; B's write fails,
    B reads again and decides again: its row that A changed is a conflict, nothing is lost."""
    root, _, rows = store
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    for f in (a, b):
        assert voc("review", "pull", "--month", MONTH, "-o", str(f), "--storage", str(root))[0] == 0
    x, y = rows[COL_VOC_ID][0], rows[COL_VOC_ID][1]
    edit(a, {x: {COL_DONE: "Y", COL_MEMO: "A"}})
    edit(b, {x: {COL_DONE: "Y", COL_MEMO: "B"}, y: {COL_DONE: "Y", COL_MEMO: "B"}})
    settings = VocSettings(storage=str(root))
    original = LocalStorage.write_if
    calls: list[str] = []

    def racing_write_if(self, key, data, *, version, content_type=None):
        calls.append(key)
        if len(calls) == 1:  # B's first write: A's push gets in first
            push_review(settings, a)
        return original(self, key, data, version=version, content_type=content_type)

    monkeypatch.setattr(LocalStorage, "write_if", racing_write_if)
    res = push_review(settings, b)
    assert len(calls) == 3  # B's write (failed), A's write, B's second write
    assert res.written and res.accepted == [(3, y)]  # y is data row 1: spreadsheet row 3
    assert [(r.voc_id, r.codes) for r in res.rejected] == [(x, ("conflict",))]
    after = stored_sheet(root)
    assert row_of(after, x)[COL_MEMO] == "A" and row_of(after, y)[COL_MEMO] == "B"


# --------------------------------------------------------------------------------------------
# links


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href"]


def hrefs(html: str) -> list[str]:
    p = _Links()
    p.feed(html)
    return p.hrefs


def _entries() -> list[dict]:
    return [_index_entry(PREFIX, M, BuildingResult("1", "본청", rows=41)), _index_entry(PREFIX, M, BuildingResult("2", "영종", rows=4))]


def test_local_index_links_are_relative_and_link_the_workbook(store) -> None:
    root, _, _ = store
    settings = VocSettings(storage=str(root))
    page = update_month_index.fn(settings, M, _entries(), "full_1")
    html = Path(page).read_text("utf-8")
    assert hrefs(html) == ["review_201911.xlsx", "1/dashboard_1_201911.html", "2/dashboard_2_201911.html"]
    assert (Path(page).parent / "review_201911.xlsx").is_file()  # the relative link resolves
    assert "links-expiry" not in html  # local links do not expire
    link = links.review_link(settings, LocalStorage(root), M)
    assert link == (root / layout.review_workbook_key(PREFIX, M)).resolve().as_uri()


def test_artifacts_and_summary_link_the_review_workbook(store, monkeypatch) -> None:
    import flows.monthly as monthly

    root, _, _ = store
    settings = VocSettings(storage=str(root))
    made: dict[str, list] = {"link": [], "markdown": []}
    monkeypatch.setattr(monthly, "create_table_artifact", lambda **kw: None)
    monkeypatch.setattr(monthly, "create_link_artifact", lambda **kw: made["link"].append(kw))
    monkeypatch.setattr(monthly, "create_markdown_artifact", lambda **kw: made["markdown"].append(kw))
    link = links.review_link(settings, LocalStorage(root), M)
    summary = {"mode": "full", "month": MONTH, "run_id": "full_1", "rows": 0, "failed": [], "review_link": link}
    _publish_artifacts(settings, summary, [])
    assert [a["link"] for a in made["link"] if a["key"] == "review-sheet-201911"] == [link]
    assert link in made["markdown"][0]["markdown"]


def test_month_index_link_rules() -> None:
    row = {"building_id": "1", "building_name": "", "n_vocs": 1, "n_reviewed": 0, "n_low_confidence_unreviewed": 0,
           "dashboard_href": "1/dashboard_1_201911.html"}
    signed = "https://b.s3.amazonaws.com/stat/voc-dev/201911/1/dashboard_1_201911.html?X-Amz-Signature=ab&X-Amz-Expires=60"
    html = d.render_month_index(MONTH, [{**row, "dashboard_url": signed}], embed_font=False,
                                review_href="https://b.s3.amazonaws.com/r.xlsx?X-Amz-Signature=cd",
                                links_valid_until="2019-12-08 02:00 KST")
    assert hrefs(html) == ["https://b.s3.amazonaws.com/r.xlsx?X-Amz-Signature=cd", signed]
    assert "2019-12-08 02:00 KST까지 유효" in html
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "//host/x", "https:///nohost"):
        with pytest.raises(ValueError, match=r"buildings\[0\]\.dashboard_url must be an absolute http"):
            d.render_month_index(MONTH, [{**row, "dashboard_url": bad}], embed_font=False)
        if not bad.startswith("//"):
            with pytest.raises(ValueError, match="review_href"):
                d.render_month_index(MONTH, [row], embed_font=False, review_href=bad)


def test_review_link_expiry_setting_is_bounded_by_sigv4(monkeypatch) -> None:
    monkeypatch.setenv("VOC_REVIEW__LINK_EXPIRY_S", "3600")
    assert VocSettings().review.link_expiry_s == 3600
    assert ReviewSettings().link_expiry_s == 7 * 24 * 3600
    with pytest.raises(ValueError):
        ReviewSettings(link_expiry_s=7 * 24 * 3600 + 1)


@pytest.mark.slow
def test_s3_index_links_are_signed_and_open(aws_test_env, store) -> None:
    """On a private bucket the index's links must be absolute presigned URLs: fetched with a
    plain HTTP GET (no credentials), each answers 200 with the stored bytes."""
    import boto3
    from infra import moto_s3_server

    from flows.adapters.s3 import S3Storage

    root, _, _ = store
    workbook = (root / layout.review_workbook_key(PREFIX, M)).read_bytes()
    with moto_s3_server() as moto:
        boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1").create_bucket(Bucket="voc-links")
        settings = VocSettings(
            storage="s3://voc-links/tenant", s3=S3Settings(endpoint_url=moto.endpoint_url, presign_expiry_s=3600),
            review=ReviewSettings(link_expiry_s=7200),
        )
        storage = S3Storage.from_settings(settings)
        stored = {layout.review_workbook_key(PREFIX, M): workbook}
        for bid in ("1", "2"):
            stored[layout.latest_dashboard_key(PREFIX, M, bid)] = f"<html><body>대시보드 {bid}</body></html>".encode()
        for k, v in stored.items():
            storage.write_bytes(k, v)
        update_month_index.fn(settings, M, _entries(), "full_1")
        html = storage.read_bytes(layout.month_index_key(PREFIX, M)).decode("utf-8")
        got = hrefs(html)
        assert len(got) == 3 and "까지 유효합니다" in html
        expected = [stored[layout.review_workbook_key(PREFIX, M)], stored[layout.latest_dashboard_key(PREFIX, M, "1")],
                    stored[layout.latest_dashboard_key(PREFIX, M, "2")]]
        for url, body in zip(got, expected):
            u = urlparse(url)
            q = parse_qs(u.query)
            assert u.scheme in ("http", "https") and u.netloc and "X-Amz-Signature" in q, url
            with urllib.request.urlopen(url, timeout=30) as resp:  # no credentials: the signature is the key
                assert resp.status == 200 and resp.read() == body
        assert parse_qs(urlparse(got[0]).query)["X-Amz-Expires"] == ["7200"]
        assert parse_qs(urlparse(got[1]).query)["X-Amz-Expires"] == ["3600"]
        # the portfolio page (issue 24) links the month index and the dashboards the same way
        update_portfolio.fn(settings, M, "full_1")
        page = storage.read_bytes(layout.portfolio_key(PREFIX)).decode("utf-8")
        wanted = {storage.read_bytes(layout.month_index_key(PREFIX, M))} | set(expected[1:])
        opened = set()
        for url in hrefs(page):
            assert "X-Amz-Signature" in parse_qs(urlparse(url).query), url
            with urllib.request.urlopen(url, timeout=30) as resp:
                opened.add(resp.read())
        assert opened == wanted
        # the run summary's link is the same kind of link
        link = links.review_link(settings, storage, M)
        with urllib.request.urlopen(link, timeout=30) as resp:
            assert resp.read() == workbook
