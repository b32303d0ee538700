"""The month index page ({prefix}/{yyyymm}/index.html) and the links artifacts give to browsers."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from config.settings import S3Settings, VocSettings
from flows import storage_layout as layout
from flows.adapters.storage import LocalStorage
from flows.monthly import BuildingResult, _index_entry, update_month_index
from flows.resources import browser_link
from voc.months import Month

M = Month.parse("2019-11")


def _result(bid: str, name: str, rows: int, reviewed: int = 0, low: int = 0) -> BuildingResult:
    drift = ["주제 비중 증가: 도시재생국"] if bid == "1" else []
    return BuildingResult(bid, name, rows=rows, reviewed=reviewed, low_confidence=low, drift=drift)


def test_each_run_updates_its_buildings_and_keeps_the_others(tmp_path: Path) -> None:
    settings = VocSettings(storage=str(tmp_path))
    prefix = settings.prefix
    entries = [_index_entry(prefix, M, _result("1", "본청", 41, low=32)), _index_entry(prefix, M, _result("2", "영종", 4))]
    page = update_month_index.fn(settings, M, entries, "full_1")
    # a rerun of building 2 alone (refresh) replaces its line and keeps building 1's
    update_month_index.fn(settings, M, [_index_entry(prefix, M, _result("2", "영종", 4, reviewed=4))], "refresh_2")
    listed = json.loads((tmp_path / layout.month_index_data_key(prefix, M)).read_text("utf-8"))
    assert sorted(listed) == ["1", "2"]
    assert listed["1"]["n_low_confidence_unreviewed"] == 32 and listed["2"]["n_reviewed"] == 4
    assert listed["1"]["dashboard_href"] == "1/dashboard_1_201911.html"
    html = Path(page).read_text("utf-8")
    assert "본청" in html and "영종" in html and 'href="1/dashboard_1_201911.html"' in html
    assert 'href="2/dashboard_2_201911.html"' in html and "refresh_2" in html


def test_index_marks_guessed_tags_and_pre_review_share(tmp_path: Path, sample_df) -> None:
    """The index entry carries the keyword-guess counts of what the dashboard shows; the page
    labels them 추정, and an unreviewed building says 검수 전 with its low-confidence share."""
    import polars as pl

    from flows.monthly import estimated_counts

    month = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == "2019-11")
    b1 = month.filter(pl.col("building_id") == "1").with_columns(subject_source=pl.lit("model"), work_source=pl.lit("keyword"))
    assert estimated_counts(b1) == {"subject": 0, "work": 41}
    assert estimated_counts(b1.drop("subject_source", "work_source")) == {"subject": 0, "work": 0}
    settings = VocSettings(storage=str(tmp_path))
    r = BuildingResult("1", "본청", rows=41, low_confidence=30, estimated=estimated_counts(b1))
    entry = _index_entry(settings.prefix, M, r)
    assert entry["n_estimated"] == {"subject": 0, "work": 41}
    page = Path(update_month_index.fn(settings, M, [entry], "full_1")).read_text("utf-8")
    assert "작업유형 41건 (추정)" in page and "검수 전 (저신뢰 73%)" in page


def test_a_rerun_merges_only_buildings_with_finished_reviews(sample_df) -> None:
    """has_done_reviews: a building's rows in the sheet with 검수완료 done (any spelling
    voc.review.is_done accepts, ids compared as text without spaces) make a rerun merge."""
    import polars as pl

    from flows.monthly import has_done_reviews
    from voc.review import COL_DONE, COL_VOC_ID

    ids = pl.Series(["101", "102"])
    sheet = pl.DataFrame({COL_VOC_ID: ["101", " 102 ", "900"], COL_DONE: ["N", "", "Y"]})
    assert not has_done_reviews(None, ids) and not has_done_reviews(sheet, ids)  # only another building's row is done
    assert has_done_reviews(sheet.with_columns(pl.Series(COL_DONE, ["N", "예", "Y"])), ids)
    assert not has_done_reviews(sheet.drop(COL_DONE), ids) and not has_done_reviews(sheet.clear(), ids)


def test_artifacts_say_pre_review_and_mark_guesses(tmp_path: Path, monkeypatch) -> None:
    """The run's table and summary artifacts: 검수 전 with the low-confidence share before any
    review, 검수 반영 after, and keyword-guessed counts as 추정."""
    from flows import monthly

    made: list[tuple[str, dict]] = []
    for name in ("create_table_artifact", "create_link_artifact", "create_markdown_artifact"):
        monkeypatch.setattr(monthly, name, lambda _n=name, **kw: made.append((_n, kw)))
    results = [
        BuildingResult("1", "본청", rows=41, low_confidence=30, estimated={"subject": 0, "work": 41}),
        BuildingResult("2", "영종", rows=4, reviewed=4, estimated={"subject": 0, "work": 4}),
    ]
    summary = {"mode": "full", "month": "2019-11", "run_id": "full_1", "model": "linear_x", "rows": 45, "failed": []}
    monthly._publish_artifacts(VocSettings(storage=str(tmp_path)), summary, results)
    table = next(kw["table"] for k, kw in made if k == "create_table_artifact")
    assert [r["검수"] for r in table] == ["검수 전 · 저신뢰 30/41건 (73%)", "검수 반영 4/4건 (100%)"]
    assert [r["추정"] for r in table] == ["작업유형 41건 (추정)", "작업유형 4건 (추정)"]
    md = next(kw["markdown"] for k, kw in made if k == "create_markdown_artifact")
    assert "- 검수 반영 4/45건 (9%) · 저신뢰 미검수 30건" in md
    assert "- 키워드 추정 태그 작업유형 45건 (추정): 학습된 모델 없이 짐작한 값, 신뢰도 없음" in md


def test_links_open_in_a_browser(tmp_path: Path) -> None:
    key = layout.latest_dashboard_key("stat/voc-dev", M, "1")
    local = LocalStorage(tmp_path)
    assert browser_link(VocSettings(storage=str(tmp_path)), local, key) == (tmp_path / key).resolve().as_uri()
    public = VocSettings(storage=str(tmp_path), public_base_url="https://voc.internal/files/")
    assert browser_link(public, local, key) == f"https://voc.internal/files/{key}"


def test_s3_links_are_presigned_https_urls(aws_test_env) -> None:
    from flows.adapters.s3 import S3Storage

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
