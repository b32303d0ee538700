"""The rendered dashboard in a real headless Chromium (Debian's /usr/bin/chromium via Playwright):
offline, no console errors, charts drawn, Hangul font loaded, hostile text inert."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from voc import dashboard as d

from test_dashboard import (  # noqa: E402  (tests/ is on sys.path under pytest's default import mode)
    BUILDING,
    GENERATED_AT,
    HOSTILE_TITLES,
    MONTH,
    RUN_ID,
    make_tagged,
    month_rows,
    with_hostile_rows,
)

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
    """Two rendered pages: the sample's 2019-11 of building 1 (with three hostile rows,
    history, keywords, word cloud, review status) and an empty month."""
    tagged = make_tagged(sample_df)
    month = with_hostile_rows(month_rows(tagged))
    kw = d.keyword_counts(tokenizer.keyword_nouns_batch(d.keyword_texts(month)))
    out = tmp_path_factory.mktemp("dash")
    (out / "full.html").write_text(
        d.render_dashboard(
            month, building_id=BUILDING, building_name="본청", month=MONTH, history=tagged,
            keywords=kw, wordcloud_png=d.render_wordcloud_png(dict(kw)), run_id=RUN_ID,
            generated_at=GENERATED_AT, review_status=d.ReviewStatus(41, 12, 5),
            drift=["새 분류: 시설>승강기"], source_credit=d.SAMPLE_SOURCE_CREDIT, reviewed=True,
        ),
        encoding="utf-8",
    )
    (out / "empty.html").write_text(
        d.render_dashboard(
            month.clear(), building_id=BUILDING, building_name="본청", month=MONTH,
            history=tagged, run_id=RUN_ID, generated_at=GENERATED_AT,
        ),
        encoding="utf-8",
    )
    return out


def _open(browser, path: Path):
    """Open ``path`` with every request recorded and everything but file:/data: aborted."""
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
    page.wait_for_selector("body[data-charts-ready]", timeout=30_000)
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
        assert page.locator(".js-plotly-plot").count() == 2  # history charts only
        assert page.locator("#voc-table").count() == 0
        shot = tmp_path / "empty.png"
        page.screenshot(path=str(shot), full_page=True)
        _check_screenshot(shot, min_height=800)
    finally:
        page.close()


def _check_screenshot(path: Path, *, min_height: int) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert len(data) > 50_000
    im = Image.open(io.BytesIO(data)).convert("RGB")
    assert im.width == 1280 and im.height >= min_height
    small = im.resize((im.width // 4, im.height // 4))
    assert len(set(small.getdata())) > 200  # charts, text and word cloud, not a blank page
