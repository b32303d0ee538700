"""The portfolio page ({prefix}/index.html, voc.portfolio) from stored month indexes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from config.settings import VocSettings
from flows import storage_layout as layout
from flows.monthly import BuildingResult, _index_entry, update_month_index, update_portfolio
from voc.months import Month
from voc.portfolio import build_portfolio, index_extras, render_portfolio
from voc.schema import validate_voc_frame

SAMPLE = Path(__file__).resolve().parents[1] / "voc/datasets/incheon_junggu_minwon/voc.csv"


def _sample_months() -> dict[str, dict[str, dict]]:
    """Month indexes as the runs would store them, from the shipped sample's counts."""
    df = validate_voc_frame(pl.read_csv(SAMPLE, infer_schema_length=0))
    counts = df.group_by(pl.col("created_at").dt.strftime("%Y%m").alias("m"), "building_id").len()
    months: dict[str, dict[str, dict]] = {}
    for m, b, n in counts.iter_rows():
        months.setdefault(m, {})[b] = {
            "building_id": b, "building_name": "본청 010-1234-5678" if b == "1" else "", "n_vocs": n,
            "n_reviewed": 0, "n_low_confidence_unreviewed": n // 2, "dashboard_href": f"{b}/dashboard_{b}_{m}.html",
        }
    return months


def test_sample_portfolio_finds_the_campaign_month_rise_and_masks_names() -> None:
    months = {m: v for m, v in _sample_months().items() if m <= "201911"}
    data = build_portfolio(months)
    assert data["latest"] == "201911" and len(data["heatmap_months"]) == 12
    # 2019-11: building 1's 28-post campaign against the 신선초 construction is a significant rise
    assert [r["building_id"] for r in data["rises"]] == ["1"] and data["rises"][0]["p_value"] < 0.05
    html = render_portfolio(data, generated_at="2019-12-01 02:00 KST", embed_font=False)
    assert "010-1234-5678" not in html and "[전화번호]" in html
    assert 'href="201911/1/dashboard_1_201911.html"' in html and 'href="201911/index.html"' in html
    assert "<script" not in html and "cdn" not in html.lower()


def test_index_extras_keep_groups_of_five_and_escape_titles() -> None:
    frame = pl.DataFrame({"urgent": [True, False, True], "repeat_of": [None, "7", None]})
    issues = [{"size": 27, "representative": {"voc_id": "1", "title": "<script>x</script> 010-2222-3333"}, "top_subject": [("a>b", 20)]},
              {"size": 3, "representative": {"voc_id": "2", "title": "small"}, "top_subject": []}]
    ex = index_extras(frame, issues)
    assert ex["n_urgent"] == 2 and ex["n_repeat"] == 1 and len(ex["mass_issues"]) == 1
    data = build_portfolio({"201911": {"1": {"n_vocs": 30, "n_low_confidence_unreviewed": 0, **ex}}})
    html = render_portfolio(data, embed_font=False)
    assert "&lt;script&gt;" in html and "[전화번호]" in html and "27건" in html


def test_monthly_run_writes_the_portfolio_next_to_the_months(tmp_path: Path) -> None:
    settings = VocSettings(storage=str(tmp_path))
    for ym, n in (("2019-10", 5), ("2019-11", 40)):
        m = Month.parse(ym)
        r = BuildingResult("a:b", "본청", rows=n, low_confidence=2)
        r.review_aids["index"] = {"n_urgent": 1, "n_repeat": 0, "mass_issues": []}
        update_month_index.fn(settings, m, [_index_entry(settings.prefix, m, r)], "full_1")
    page = update_portfolio.fn(settings, Month.parse("2019-11"), "full_1")
    html = Path(page).read_text("utf-8")
    assert Path(page) == tmp_path / layout.portfolio_key(settings.prefix)
    assert 'href="201911/a%3Ab/dashboard_a%3Ab_201911.html"' in html and 'href="201910/index.html"' in html
    data = json.loads((tmp_path / layout.portfolio_data_key(settings.prefix)).read_text("utf-8"))
    assert data["latest"] == "201911" and data["alerts"][0]["n_urgent"] == 1


def test_artifacts_link_the_portfolio_and_count_alerts_and_new_topics(tmp_path: Path, monkeypatch) -> None:
    """The run's artifacts: 긴급/반복 per building in the table, totals, the portfolio link and the
    신규 주제 후보 in the summary; the month index keeps the candidates and the portfolio shows them."""
    from flows import monthly

    made: list[tuple[str, dict]] = []
    for name in ("create_table_artifact", "create_link_artifact", "create_markdown_artifact"):
        monkeypatch.setattr(monthly, name, lambda _n=name, **kw: made.append((_n, kw)))
    settings = VocSettings(storage=str(tmp_path))
    m = Month.parse("2019-11")
    results = [BuildingResult("1", "본청", rows=41), BuildingResult("2", "영종", rows=4)]
    results[0].review_aids["index"] = {"n_urgent": 2, "n_repeat": 1, "mass_issues": []}
    results[1].review_aids["index"] = {"n_urgent": 1, "n_repeat": 0, "mass_issues": []}
    topics = [{"keywords": ["킥보드", "방치", "[x](javascript:1)"], "size": 4, "buildings": ["1", "2"],
               "examples": [{"voc_id": "p1", "building_id": "1", "title": "킥보드 방치 010-1234-5678"}], "voc_ids": ["p1"]}]
    update_month_index.fn(settings, m, [_index_entry(settings.prefix, m, r) for r in results], "full_1", new_topics=topics)
    update_month_index.fn(settings, m, [_index_entry(settings.prefix, m, results[1])], "refresh_2")  # keeps them
    listed = json.loads((tmp_path / layout.month_index_data_key(settings.prefix, m)).read_text("utf-8"))
    assert listed["new_topics"][0]["size"] == 4 and sorted(k for k in listed if k != "new_topics") == ["1", "2"]
    page = update_portfolio.fn(settings, m, "full_1")
    html = Path(page).read_text("utf-8")
    assert "신규 주제 후보" in html and "자동으로 분류에 추가되지 않습니다" in html and "킥보드, 방치" in html
    assert "010-1234-5678" not in html and "javascript:1" not in html.split("신규 주제 후보")[0]
    summary = {"mode": "full", "month": "2019-11", "run_id": "full_1", "model": "linear_x", "rows": 45, "failed": [],
               "portfolio": page, "new_topics": topics}
    monthly._publish_artifacts(settings, summary, results)
    table = next(kw["table"] for k, kw in made if k == "create_table_artifact")
    assert [(r["긴급"], r["반복"]) for r in table] == [(2, 1), (1, 0)]
    link = next(kw for k, kw in made if k == "create_link_artifact" and kw["key"] == "voc-portfolio")
    assert link["link"] == (tmp_path / layout.portfolio_key(settings.prefix)).resolve().as_uri()
    md = next(kw["markdown"] for k, kw in made if k == "create_markdown_artifact")
    assert "- 긴급 VOC 3건 · 30일 내 반복 1건" in md and f"]({link['link']})" in md
    assert "신규 주제 후보 (4건)" in md and "\\[전화번호\\]" in md and "](javascript" not in md and "010-1234" not in md
    assert "자동으로 분류에 추가되지 않습니다" in md


@pytest.mark.parametrize("href", ["javascript:alert(1)", "file:///etc/passwd", "/etc/passwd", "data:text/html,x"])
def test_a_link_that_leaves_the_stored_pages_is_refused(href: str) -> None:
    """Links are relative, or http(s) URLs (presigned on a private bucket); any other scheme or a
    path from the root is refused before a page is written."""
    data = build_portfolio({"201911": {"1": {"n_vocs": 3, "n_low_confidence_unreviewed": 0, "dashboard_href": "1/d.html"}}},
                           dashboard_hrefs={"201911": {"1": href}})
    with pytest.raises(ValueError, match="neither relative nor an http"):
        render_portfolio(data, embed_font=False)
    signed = "https://b.s3.amazonaws.com/stat/201911/1/d.html?X-Amz-Signature=ab"
    ok = build_portfolio({"201911": {"1": {"n_vocs": 3, "n_low_confidence_unreviewed": 0, "dashboard_href": "1/d.html"}}},
                         dashboard_hrefs={"201911": {"1": signed}})
    assert f'href="{signed}"' in render_portfolio(ok, embed_font=False)
