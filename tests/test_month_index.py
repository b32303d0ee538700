"""The month index page ({prefix}/{yyyymm}/index.html) and the links artifacts give to browsers."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from config.settings import S3Settings, VocSettings
from flows import keys
from flows.monthly import BuildingResult, _index_entry, update_month_index
from flows.resources import browser_link
from flows.storage import LocalStorage
from voc.months import Month

M = Month.parse("2019-11")


def _result(bid: str, name: str, rows: int, reviewed: int = 0, low: int = 0) -> BuildingResult:
    return BuildingResult(bid, name, rows=rows, reviewed=reviewed, low_confidence=low, drift=["주제 비중 증가: 도시재생국"] if bid == "1" else [])


def test_each_run_updates_its_buildings_and_keeps_the_others(tmp_path: Path) -> None:
    settings = VocSettings(storage=str(tmp_path))
    prefix = settings.prefix
    page = update_month_index.fn(settings, M, [_index_entry(prefix, M, _result("1", "본청", 41, low=32)), _index_entry(prefix, M, _result("2", "영종", 4))], "full_1")
    # a rerun of building 2 alone (refresh) replaces its line and keeps building 1's
    update_month_index.fn(settings, M, [_index_entry(prefix, M, _result("2", "영종", 4, reviewed=4))], "refresh_2")
    listed = json.loads((tmp_path / keys.month_index_data_key(prefix, M)).read_text("utf-8"))
    assert sorted(listed) == ["1", "2"]
    assert listed["1"]["n_low_confidence_unreviewed"] == 32 and listed["2"]["n_reviewed"] == 4
    assert listed["1"]["dashboard_href"] == "1/dashboard_1_201911.html"
    html = Path(page).read_text("utf-8")
    assert "본청" in html and "영종" in html and 'href="1/dashboard_1_201911.html"' in html
    assert 'href="2/dashboard_2_201911.html"' in html and "refresh_2" in html


def test_links_open_in_a_browser(tmp_path: Path) -> None:
    key = keys.latest_dashboard_key("stat/voc-dev", M, "1")
    local = LocalStorage(tmp_path)
    assert browser_link(VocSettings(storage=str(tmp_path)), local, key) == (tmp_path / key).resolve().as_uri()
    public = VocSettings(storage=str(tmp_path), public_base_url="https://voc.internal/files/")
    assert browser_link(public, local, key) == f"https://voc.internal/files/{key}"


def test_s3_links_are_presigned_https_urls(aws_test_env) -> None:
    from flows.s3 import S3Storage

    settings = VocSettings(
        storage="s3://voc-bucket/tenant-a",
        s3=S3Settings(endpoint_url="https://s3.example.internal", presign_expiry_s=3600),
    )
    storage = S3Storage.from_settings(settings)
    url = browser_link(settings, storage, "stat/voc-dev/201911/1/dashboard_1_201911.html")
    u = urlparse(url)
    q = parse_qs(u.query)
    assert u.scheme == "https" and u.path.endswith("/tenant-a/stat/voc-dev/201911/1/dashboard_1_201911.html")
    assert q["X-Amz-Expires"] == ["3600"] and "X-Amz-Signature" in q
    assert "X-Amz-Credential" in q and not any("secret" in v.lower() for vs in q.values() for v in vs)
