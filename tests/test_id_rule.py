"""One id rule, applied everywhere: any safe id (:func:`voc.schema.id_problem` — printable Unicode
without path separators, control or format characters) works in every key, link, artifact and
run-stamp parse. Ids come from the whole allowed alphabet (Hypothesis) plus the measured hostile
ones (``javascript:x``, ``a:b``, ids that look like run ids or stamps). Local storage, fast."""

from __future__ import annotations

import io
import json
import re
import tempfile
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import VocSettings
from flows import storage_layout as layout
from flows.adapters.storage import LocalStorage
from flows.monthly import BuildingResult, _index_entry, _md, _slug, update_month_index
from flows.train import reviewed_overlay
from voc.months import KST, Month
from voc.schema import MAX_ID_BYTES, REQUIRED_COLUMNS, building_sort_key, id_problem

M = Month.parse("2019-11")
PREFIX = "stat/voc-dev"
PROPS = settings(derandomize=True, database=None, deadline=None, max_examples=40,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

HOSTILE = [
    "javascript:x", "a:b", "JAVASCRIPT:alert(1)", "http:", "mailto:x@y.z", "data:text", "full_20990101_000000",
    "x_full_20991231_235959.y", "a_20991231_235959", "refresh_20991231_235959.csv", "full_20990101_000000.csv",
    "#3", "a?b=1", "100%", "%2F", "%", "a b", "..x", "x..", "models", "reviewed_x", "tagged_1", "runs", "index", "index.htm",
    "review_2019.xlsx",
    "²", "١٢", "본관 A-1", "😀", "e\u0301", "<b>", "[x](javascript:y)", "a&b", "'\"", "~", "C:",
    "가" * (MAX_ID_BYTES // 3),
]
# every printable character the rule allows: all categories but Cc, Cf, Zl, Zp, Cs; no / or \
allowed_char = st.characters(exclude_categories=("Cc", "Cf", "Zl", "Zp", "Cs"), exclude_characters="/\\")
any_id = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(allowed_char, min_size=1, max_size=24).filter(lambda s: id_problem(s) is None),
)


def test_the_strategy_draws_only_safe_ids() -> None:
    assert all(id_problem(h) is None for h in HOSTILE)
    # the month folder's own files are no building folder
    for name in ("index.html", "index.json", "INDEX.HTML", "review_201911.xlsx"):
        assert "month folder" in id_problem(name)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v is not None]


def _resolve(index_file: Path, href: str) -> Path:
    """Where a browser goes from ``index_file`` for a relative ``href`` (RFC 3986 §5.2 for a
    path-only reference; the segments percent-decoded as a file URL would be)."""
    u = urlsplit(href)
    assert not (u.scheme or u.netloc or u.query or u.fragment), href
    return index_file.parent.joinpath(*[unquote(seg) for seg in u.path.split("/")])


@PROPS
@given(st.lists(any_id, min_size=1, max_size=3, unique=True))
def test_month_index_updates_and_every_link_opens_its_dashboard(bids: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s = VocSettings(storage=str(root))
        storage = LocalStorage(root)
        for bid in bids:
            storage.write_bytes(layout.latest_dashboard_key(s.prefix, M, bid), f"dashboard of {bid}".encode())
        # one run per building, as refresh of single buildings does: each keeps the others
        for bid in bids:
            page = update_month_index.fn(s, M, [_index_entry(s.prefix, M, BuildingResult(bid, "", rows=3))], "full_20191201_020000")
        index_file = Path(page)
        listed = json.loads((root / layout.month_index_data_key(s.prefix, M)).read_text("utf-8"))
        assert sorted(listed) == sorted(bids)  # nothing lost
        p = _Links()
        p.feed(index_file.read_text("utf-8"))
        dashboards = [h for h in p.hrefs if "dashboard_" in h]  # (a review-sheet link may come too)
        assert len(dashboards) == len(bids)
        opened = [_resolve(index_file, h).read_text() for h in dashboards]
        assert sorted(opened) == sorted(f"dashboard of {b}" for b in bids)


def test_an_index_written_with_raw_links_is_repaired(tmp_path: Path) -> None:
    """index.json from before links were encoded (``a:b/…`` reads as a URL scheme and stopped
    every later update): the next run rewrites every link and the page renders."""
    s = VocSettings(storage=str(tmp_path))
    old = {"building_id": "a:b", "building_name": "", "n_vocs": 1, "n_reviewed": 0, "n_low_confidence_unreviewed": 0,
           "dashboard_href": "a:b/dashboard_a:b_201911.html"}
    (tmp_path / layout.month_index_data_key(s.prefix, M)).parent.mkdir(parents=True)
    (tmp_path / layout.month_index_data_key(s.prefix, M)).write_text(json.dumps({"a:b": old}), "utf-8")
    page = update_month_index.fn(s, M, [_index_entry(s.prefix, M, BuildingResult("1", "", rows=2))], "refresh_1")
    html = Path(page).read_text("utf-8")
    assert 'href="a%3Ab/dashboard_a%3Ab_201911.html"' in html and 'href="1/dashboard_1_201911.html"' in html


@PROPS
@given(any_id, st.lists(st.integers(0, 10**6), min_size=1, max_size=5, unique=True),
       st.sampled_from(["full", "refresh", "tagging-only"]))
def test_the_newest_output_is_picked_whatever_the_building_id(bid: str, seconds: list[int], mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(tmp)
        run_ids = [layout.new_run_id(mode, datetime(2019, 12, 1, tzinfo=KST) + timedelta(seconds=s)) for s in seconds]
        for rid in run_ids:
            for key_of in (layout.tagged_key, layout.reviewed_key, layout.dashboard_key):
                key = key_of(PREFIX, M, bid, rid)
                storage.write_bytes(key, rid.encode())
        storage.write_bytes(layout.latest_dashboard_key(PREFIX, M, bid), b"latest")
        listed = storage.list(layout.building_dir(PREFIX, M, bid))
        newest = max(run_ids, key=lambda r: r.split("_", 1)[1])
        for kind in ("tagged", "reviewed"):
            key = layout.latest_output(listed, kind)
            assert key is not None and storage.read_bytes(key) == newest.encode(), (kind, key)
        # every output parses back to its own building, kind and run (nothing lost, nothing borrowed)
        parsed = [layout.parse_output_key(k) for k in listed]
        assert sum(p is None for p in parsed) == 1  # the latest dashboard has no run id
        assert {(p.building_id, p.yyyymm, p.prefix) for p in parsed if p} == {(bid, "201911", PREFIX)}
        assert sorted(p.run_id for p in parsed if p and p.kind == "tagged") == sorted(run_ids)


def test_a_building_id_that_looks_like_a_newer_stamp_does_not_win() -> None:
    for bid in ("full_20990101_000000", "x_full_20991231_235959.y", "full_20990101_000000.csv"):
        old, new = layout.tagged_key(PREFIX, M, bid, "full_20191122_020000"), layout.tagged_key(PREFIX, M, bid, "refresh_20191123_020000")
        assert layout.latest_output([new, old], "tagged") == new and layout.latest_output([old, new], "tagged") == new
        assert layout.run_stamp(old) == "20191122_020000"


def _reviewed_csv(bid: str, label: str) -> bytes:
    row = {c: "" for c in REQUIRED_COLUMNS} | {
        "voc_id": bid, "building_id": bid, "created_at": "2019-11-02", "title": "누수",  # any valid id, even 160 bytes
        "is_reviewed": "true", "subject_reviewed": "true", "reviewed_subject_major": "시설", "reviewed_subject_minor": label,
    }
    buf = io.BytesIO()
    pl.DataFrame([row]).write_csv(buf)
    return buf.getvalue()


@PROPS
@given(st.lists(any_id, min_size=1, max_size=3, unique=True))
def test_training_reads_the_newest_review_of_every_building(bids: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(tmp)
        for bid in bids:
            storage.write_bytes(layout.reviewed_key(PREFIX, M, bid, "refresh_20191202_020000"), _reviewed_csv(bid, "새"))
            storage.write_bytes(layout.reviewed_key(PREFIX, M, bid, "refresh_20191201_020000"), _reviewed_csv(bid, "옛"))
        out = reviewed_overlay(storage, PREFIX)
        assert out is not None
        assert sorted(out["building_id"].to_list()) == sorted(bids)  # a building named "models" is kept
        assert set(out["reviewed_subject_minor"].to_list()) == {"새"}


@PROPS
@given(st.lists(any_id, min_size=1, max_size=6, unique=True))
def test_artifact_keys_sorting_and_markdown_take_any_id(bids: list[str]) -> None:
    slugs = [_slug(b) for b in bids]
    assert all(re.fullmatch(r"[a-z0-9-]+", s) for s in slugs) and len(set(slugs)) == len(bids)
    assert sorted(sorted(bids, key=building_sort_key), key=building_sort_key) == sorted(bids, key=building_sort_key)
    for b in bids:
        md = _md(b)
        assert not re.search(r"(?<!\\)[\[\]()<>`*_#:]", md), md  # every markup character escaped


@pytest.mark.parametrize("bid", ["가" * (MAX_ID_BYTES // 3), "😀" * (MAX_ID_BYTES // 4), "x" * 128])
def test_the_longest_ids_fit_a_file_name(bid: str, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for rid in ("tagging-only_20191231_235959", "refresh_20191231_235959"):
        for key in (layout.dashboard_key(PREFIX, M, bid, rid), layout.reviewed_key(PREFIX, M, bid, rid)):
            storage.write_bytes(key, b"x")
    assert id_problem("가" * (MAX_ID_BYTES // 3 + 1)) is not None
