"""The rendered dashboard in a real headless Chromium (Debian's /usr/bin/chromium via Playwright):
offline, no console errors, charts drawn by the vendored plotly.js partial bundle, Hangul font
loaded, hostile text inert, 주요 이슈 shown, the compact page of a 4-VOC building, the month index
and its relative links."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from test_dashboard import (
    BUILDING,
    GENERATED_AT,
    HOSTILE_TITLES,
    MONTH,
    RUN_ID,
    issues_of,
    make_tagged,
    month_rows,
    with_hostile_rows,
)

from voc import dashboard as d

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def pages_dir(sample_df, tokenizer, tmp_path_factory) -> Path:
    """Rendered pages: the sample's 2019-11 of building 1 (with three hostile rows, history,
    keywords, word cloud, review status, 주요 이슈) in ``1/``, building 2 (4 VOCs: compact) in
    ``2/``, an empty month, and the month's index linking the two buildings."""
    tagged = make_tagged(sample_df)
    month = with_hostile_rows(month_rows(tagged))
    kw = d.keyword_counts(tokenizer.keyword_nouns_batch(d.keyword_texts(month)))
    out = tmp_path_factory.mktemp("dash")
    (out / "1").mkdir()
    (out / "2").mkdir()
    full = d.render_dashboard(
        month,
        d.DashboardContext(BUILDING, "본청", MONTH, RUN_ID, GENERATED_AT, source_credit=d.SAMPLE_SOURCE_CREDIT),
        d.DashboardContent(
            history=tagged, keywords=kw, wordcloud_png=d.render_wordcloud_png(dict(kw)),
            review_status=d.ReviewStatus(41, 12, 5), drift=["새 분류: 시설>승강기"], reviewed=True,
            issues=issues_of(month),
        ),
    )
    (out / "full.html").write_text(full, encoding="utf-8")
    (out / "1" / "dashboard_1_201911.html").write_text(full, encoding="utf-8")
    small = month_rows(tagged, building="2")
    (out / "2" / "dashboard_2_201911.html").write_text(
        d.render_dashboard(
            small,
            d.DashboardContext("2", "", MONTH, RUN_ID, GENERATED_AT, source_credit="데이터 출처: " + d.SAMPLE_SOURCE_CREDIT),
            d.DashboardContent(history=tagged, issues=issues_of(month)[1:]),
        ),
        encoding="utf-8",
    )
    (out / "index.html").write_text(
        d.render_month_index(
            MONTH,
            [
                {"building_id": "1", "building_name": "본청", "n_vocs": 41, "n_reviewed": 12,
                 "n_low_confidence_unreviewed": 5, "dashboard_href": "1/dashboard_1_201911.html"},
                {"building_id": "2", "building_name": "", "n_vocs": small.height, "n_reviewed": 0,
                 "n_low_confidence_unreviewed": 1, "dashboard_href": "2/dashboard_2_201911.html"},
            ],
            run_id=RUN_ID, generated_at=GENERATED_AT,
        ),
        encoding="utf-8",
    )
    (out / "empty.html").write_text(
        d.render_dashboard(
            month.clear(), d.DashboardContext(BUILDING, "본청", MONTH, RUN_ID, GENERATED_AT),
            d.DashboardContent(history=tagged),
        ),
        encoding="utf-8",
    )
    return out


def _open(browser, path: Path, *, charts: bool = True):
    """Open ``path`` with every request recorded and everything but file:/data: aborted;
    ``charts``: wait until the page's drawing script has run (dashboards)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = {"requests": [], "blocked": [], "console": [], "dialogs": []}

    def route(r):
        url = r.request.url
        log["requests"].append(url)
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            log["blocked"].append(url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: log["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: log["console"].append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: log["blocked"].append(r.url) if not r.url.startswith(("file:", "data:")) else None)

    def dialog(dl):
        log["dialogs"].append(dl.message)
        dl.dismiss()

    page.on("dialog", dialog)
    page.goto(path.as_uri(), wait_until="load")
    if charts:
        page.wait_for_selector("body[data-charts-ready]", state="attached", timeout=30_000)
    page.wait_for_timeout(300)
    return page, log


def test_full_dashboard_offline_and_drawn(browser, pages_dir, tmp_path):
    page, log = _open(browser, pages_dir / "full.html")
    try:
        assert log["blocked"] == []
        assert all(u.startswith(("file:", "data:")) for u in log["requests"])
        assert log["console"] == []
        assert log["dialogs"] == []
        assert page.evaluate("window.__pwned") is None

        assert page.evaluate("window.Plotly.version").startswith("4.")
        assert "basic" in page.evaluate("document.scripts[0].textContent.slice(0, 80)")
        n_plots = page.locator(".js-plotly-plot").count()
        assert n_plots == 8
        drawn = page.evaluate(
            """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
                id: el.id,
                svg: el.querySelectorAll('svg.main-svg').length,
                bars: Array.from(el.querySelectorAll('.trace.bars .point path'))
                      .filter(p => p.getBBox().width > 0 && p.getBBox().height > 0).length,
                ticks: el.querySelectorAll('.ytick text, .xtick text').length,
            }))"""
        )
        for fig in drawn:
            assert fig["svg"] >= 1 and fig["bars"] >= 1 and fig["ticks"] >= 2, fig

        # the Hangul font embedded in the page is loaded and used by the chart labels
        assert page.evaluate("document.fonts.check(\"12px 'VOC NanumGothic'\", '가')")
        assert page.evaluate(
            "Array.from(document.fonts).some(f => f.family.includes('VOC NanumGothic') && f.status === 'loaded')"
        )
        assert "VOC NanumGothic" in page.evaluate(
            "getComputedStyle(document.querySelector('#fig-subject-major .ytick text')).fontFamily"
        )

        img = page.locator("#wordcloud")
        assert img.evaluate("i => i.complete && i.naturalWidth") == 800
        assert img.evaluate("i => i.getBoundingClientRect().width") > 300

        assert "본청 (1) VOC 월간 대시보드" in page.inner_text("h1")
        assert page.locator("#review-status").is_visible()
        assert "5건" in page.inner_text("#review-status")
        assert "검수 반영" in page.inner_text("header")
        table = page.inner_text("#voc-table")
        for t in HOSTILE_TITLES[:1]:
            assert t in table  # displayed as text, not executed
        assert "도시재생국" in table and "주제 대분류" in table
        subject_labels = page.eval_on_selector_all(
            "#fig-subject-major .ytick text", "els => els.map(e => e.textContent)"
        )
        assert "</script><scrip…" in [s.strip() for s in subject_labels]  # text, cut to 16 chars

        # 주요 이슈: the groups in order, each with its size, period and tags
        issues = page.locator("#issues li")
        assert page.locator("#issues").is_visible() and issues.count() == 2
        first = issues.first.inner_text()
        assert first.split("건")[0].strip().isdigit() and "~" in first and "대표 VOC" in first
        assert page.locator("#issues .size").first.evaluate("e => getComputedStyle(e).fontWeight") == "800"
        assert page.inner_text("#source-credit").count("데이터 출처") == 1

        # a <details> opens to the full request text
        page.locator("#voc-table details summary").first.click()
        assert page.locator("#voc-table details[open] .full").first.is_visible()

        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        _check_screenshot(shot, min_height=3000)
    finally:
        page.close()


def test_empty_month_page(browser, pages_dir, tmp_path):
    page, log = _open(browser, pages_dir / "empty.html")
    try:
        assert log["blocked"] == [] and log["console"] == [] and log["dialogs"] == []
        assert page.locator("#empty-month").is_visible()
        assert page.inner_text("#empty-month") == "이번 달 VOC 없음"
        assert page.locator(".js-plotly-plot").count() == 0  # compact: no charts, no plotly.js
        assert page.evaluate("typeof window.Plotly") == "undefined"
        assert page.get_attribute("body", "data-charts-ready") == "0"
        assert "전월 대비" in page.inner_text(".kpis")
        assert page.locator("#voc-table").count() == 0
        shot = tmp_path / "empty.png"
        page.screenshot(path=str(shot), full_page=True)
        _check_screenshot(shot, min_height=800, min_bytes=20_000, min_colors=50)
    finally:
        page.close()


def _check_screenshot(path: Path, *, min_height: int, min_bytes: int = 50_000, min_colors: int = 200) -> None:
    """Not a blank page: size, height and colours (charts, text and word cloud on full pages;
    anti-aliased Hangul text on text-only pages)."""
    from PIL import Image

    data = path.read_bytes()
    assert len(data) > min_bytes
    im = Image.open(io.BytesIO(data)).convert("RGB")
    assert im.width == 1280 and im.height >= min_height
    small = im.resize((im.width // 4, im.height // 4))
    assert len(set(small.get_flattened_data())) > min_colors


def test_compact_page_of_a_small_building(browser, pages_dir, tmp_path):
    page, log = _open(browser, pages_dir / "2" / "dashboard_2_201911.html")
    try:
        assert log["blocked"] == [] and log["console"] == [] and log["dialogs"] == []
        assert page.evaluate("typeof window.Plotly") == "undefined"
        assert page.locator(".chart, #wordcloud, #keyword-table").count() == 0
        kpis = page.inner_text(".kpis")
        assert "총 VOC" in kpis and "4건" in kpis and "일평균" not in kpis
        assert page.locator("#compact-note").is_visible()
        for dim in ("subject", "work"):
            assert page.locator(f"#counts-{dim}").is_visible()
            counts = page.eval_on_selector_all(f"#counts-{dim} td.num", "els => els.map(e => parseInt(e.textContent))")
            assert sum(counts) == 4
        assert page.locator("#voc-table tbody tr").count() == 4
        assert page.locator("#issues li").count() == 1
        assert page.inner_text("#source-credit").count("데이터 출처") == 1
        assert page.evaluate("document.fonts.check(\"12px 'VOC NanumGothic'\", '가')")
        shot = tmp_path / "compact.png"
        page.screenshot(path=str(shot), full_page=True)
        _check_screenshot(shot, min_height=700, min_bytes=20_000, min_colors=50)
    finally:
        page.close()


def test_month_index_links_open_the_dashboards(browser, pages_dir):
    page, log = _open(browser, pages_dir / "index.html", charts=False)
    try:
        assert log["blocked"] == [] and log["console"] == [] and log["dialogs"] == []
        assert "VOC 월간 대시보드 목록" in page.inner_text("h1")
        rows = page.locator("#buildings tbody tr")
        assert rows.count() == 2
        assert "본청 (1)" in rows.first.inner_text() and "12 / 41건" in rows.first.inner_text()
        # relative links: the folder works wherever it is copied
        page.locator("#buildings a").first.click()
        page.wait_for_selector("body[data-charts-ready]", state="attached", timeout=30_000)
        assert page.url.endswith("/1/dashboard_1_201911.html")
        assert page.locator(".js-plotly-plot").count() == 8
        page.go_back()
        page.locator("#buildings a").nth(1).click()
        page.wait_for_selector("body[data-charts-ready]", state="attached", timeout=30_000)
        assert page.url.endswith("/2/dashboard_2_201911.html") and page.locator("#counts-subject").count() == 1
        assert log["blocked"] == [] and log["console"] == []
    finally:
        page.close()
