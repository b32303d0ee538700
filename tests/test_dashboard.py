"""voc.dashboard on real rows of the shipped sample (Incheon Jung-gu office complaint board, via
2hy03/Civil_Complaint): numbers in the figures, escaping, offline-ness, word cloud, keywords."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from markupsafe import escape
import polars as pl
import pytest

from voc import dashboard as d
from voc.schema import TAGGED_COLUMNS

MONTH = "2019-11"
BUILDING = "1"
RUN_ID = "full_20191201_020000"
GENERATED_AT = "2019-12-01 02:00 KST"

HOSTILE_TITLES = (
    "<script>alert(1)</script>",
    "정상 제목 </script><script>window.__pwned=1</script> 끝",
    '"><img src=x onerror="window.__pwned=2">',
)


# --------------------------------------------------------------------------------------------
# helpers shared with test_dashboard_browser.py


def make_tagged(vocs: pl.DataFrame, *, seed: int = 0) -> pl.DataFrame:
    """A tagged frame (TAGGED_COLUMNS) from validated sample rows: subject = the sample's
    reviewed department labels, work type = the default taxonomy's keyword scorer,
    confidences seeded-uniform in [0.2, 1)."""
    from voc.classify.keyword import KeywordClassifier
    from voc.taxonomy import default_taxonomy, split_label

    rng = np.random.default_rng(seed)
    clf = KeywordClassifier(default_taxonomy().rows_of("work")).fit()
    texts = (vocs["title"] + "\n" + vocs["request_contents"]).to_list()
    tags = clf.predict_tags(texts)
    majors = [split_label(lab)[0] for lab in tags.labels]
    minors = [split_label(lab)[1] for lab in tags.labels]
    n = vocs.height
    return vocs.with_columns(
        yyyymm=pl.col("created_at").dt.strftime("%Y%m"),
        subject_major=pl.col("reviewed_subject_major"),
        subject_minor=pl.col("reviewed_subject_minor"),
        subject_confidence=pl.Series(rng.uniform(0.2, 1.0, n).round(4)),
        subject_source=pl.lit("model"),
        work_major=pl.Series(majors, dtype=pl.Utf8),
        work_minor=pl.Series(minors, dtype=pl.Utf8),
        work_confidence=pl.Series(rng.uniform(0.2, 1.0, n).round(4)),
        work_source=pl.lit("keyword"),
        classify_source=pl.lit("batch"),
        model_version=pl.lit("hybrid_20191201"),
        flags=pl.col("input_flags"),
        run_id=pl.lit(RUN_ID),
    ).select(TAGGED_COLUMNS)


def month_rows(tagged: pl.DataFrame, month: str = MONTH, building: str = BUILDING) -> pl.DataFrame:
    return tagged.filter((pl.col("yyyymm") == month.replace("-", "")) & (pl.col("building_id") == building))


def with_hostile_rows(month: pl.DataFrame) -> pl.DataFrame:
    """The month with the first rows' texts and one subject label replaced by attacks."""
    titles = month["title"].to_list()
    req = month["request_contents"].to_list()
    reply = month["reply"].to_list()
    major = month["subject_major"].to_list()
    for i, t in enumerate(HOSTILE_TITLES):
        titles[i] = t
    req[0] = "본문 <b>굵게</b> </script><script>window.__pwned=3</script>"
    reply[1] = '<a href="javascript:alert(1)">답변</a>'
    major[2] = "</script><script>window.__pwned=4</script><b>주제</b>"
    return month.with_columns(
        pl.Series("title", titles), pl.Series("request_contents", req), pl.Series("reply", reply),
        pl.Series("subject_major", major),
    )


def figures_of(page: str) -> dict[str, dict]:
    """{figure id: plotly figure dict} from the page's JSON block."""
    m = re.search(r'<script type="application/json" id="voc-figures">(.*?)</script>', page, re.S)
    assert m, "figure JSON block missing"
    return {f["id"]: f["figure"] for f in json.loads(m.group(1))}


def strip_plotlyjs(page: str) -> str:
    """The page without the inline plotly.js bundle (which names URLs in its own code)."""
    import plotly.offline

    js = plotly.offline.get_plotlyjs()
    assert page.count(js) == 1
    return page.replace(js, "")


class _Collector(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: Counter[str] = Counter()
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attrs += [(tag, k, v) for k, v in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] in ("script", "style"):
            return
        self.text.append(data)


def parse(page: str) -> _Collector:
    c = _Collector()
    c.feed(page)
    c.close()
    return c


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def tagged(sample_df: pl.DataFrame) -> pl.DataFrame:
    return make_tagged(sample_df)


@pytest.fixture(scope="module")
def month(tagged: pl.DataFrame) -> pl.DataFrame:
    m = month_rows(tagged)
    assert m.height == 41  # building 1 in 2019-11 (45 across buildings 1 and 2)
    return m


@pytest.fixture(scope="module")
def keywords(month: pl.DataFrame, tokenizer) -> list[tuple[str, int]]:
    return d.keyword_counts(tokenizer.keyword_nouns_batch(d.keyword_texts(month)), top_k=50)


@pytest.fixture(scope="module")
def wordcloud_png(keywords) -> bytes:
    return d.render_wordcloud_png(dict(keywords), width=600, height=300)


@pytest.fixture(scope="module")
def page(month, tagged, keywords, wordcloud_png) -> str:
    return d.render_dashboard(
        month,
        building_id=BUILDING,
        building_name="본청",
        month=MONTH,
        history=tagged,  # all buildings and months: the renderer picks its window
        keywords=keywords,
        wordcloud_png=wordcloud_png,
        run_id=RUN_ID,
        generated_at=GENERATED_AT,
        review_status=d.ReviewStatus(n_total=41, n_reviewed=12, n_low_confidence_unreviewed=5),
        drift=["새 분류: 시설>승강기"],
        source_credit=d.SAMPLE_SOURCE_CREDIT,
    )


# --------------------------------------------------------------------------------------------
# font


def test_hangul_font_has_hangul_glyphs():
    from fontTools.ttLib import TTFont

    for bold in (False, True):
        path = d.hangul_font_path(bold=bold)
        assert path.is_file() and path.name.startswith("NanumGothic") and path.suffix == ".ttf"
        cmap = TTFont(str(path)).getBestCmap()
        assert all(ord(c) in cmap for c in "가힣주차장민원검수")
    assert d.hangul_font_path().name == "NanumGothic.ttf"
    assert d.hangul_font_path(bold=True).name == "NanumGothicBold.ttf"


def test_hangul_font_missing_names_package(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(FileNotFoundError, match="koreanize-matplotlib"):
        d.hangul_font_path()


def test_font_lookup_does_not_import_koreanize():
    import subprocess
    import sys

    code = (
        "import sys; from voc import dashboard as d; d.hangul_font_path(); "
        "d.render_wordcloud_png({'주차장': 3}); print('koreanize_matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# word cloud


def test_wordcloud_is_deterministic_png(wordcloud_png, keywords):
    from PIL import Image

    im = Image.open(io.BytesIO(wordcloud_png))
    assert im.format == "PNG" and im.size == (600, 300)
    assert len(set(im.convert("RGB").getdata())) > 20  # coloured words on white, anti-aliased
    assert d.render_wordcloud_png(dict(keywords), width=600, height=300) == wordcloud_png
    assert d.render_wordcloud_png(dict(keywords), width=600, height=300, random_state=1) != wordcloud_png


def _ink(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("L")) < 240  # anything not white


def test_wordcloud_draws_hangul_glyphs():
    """Two different Hangul words give different pictures with NanumGothic; with wordcloud's
    bundled Latin font both are the same row of 'missing glyph' boxes."""
    from wordcloud.wordcloud import FONT_PATH

    a = _ink(d.render_wordcloud_png({"가나다": 1}, width=300, height=150))
    b = _ink(d.render_wordcloud_png({"라마바": 1}, width=300, height=150))
    assert a.sum() > 500 and b.sum() > 500
    assert (a != b).sum() > 200

    latin = Path(FONT_PATH)
    ta = _ink(d.render_wordcloud_png({"가나다": 1}, width=300, height=150, font_path=latin))
    tb = _ink(d.render_wordcloud_png({"라마바": 1}, width=300, height=150, font_path=latin))
    assert (ta != tb).sum() == 0  # tofu: the test above would catch a font without Hangul


def test_wordcloud_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one word"):
        d.render_wordcloud_png({})
    with pytest.raises(ValueError, match="at least one word"):
        d.render_wordcloud_png({"주차": 0, " ": 3})
    with pytest.raises(FileNotFoundError):
        d.render_wordcloud_png({"주차": 1}, font_path=tmp_path / "none.ttf")


# --------------------------------------------------------------------------------------------
# keywords


def test_keyword_counts_counts_documents_and_drops_stopwords():
    nouns = [["주차", "주차", "주차", "민원"], ["주차", "소음"], ["소음", "문의"], ["엘리베이터"]]
    assert d.keyword_counts(nouns) == [("소음", 2), ("주차", 2), ("엘리베이터", 1)]
    assert d.keyword_counts(nouns, stopwords=()) == [
        ("소음", 2), ("주차", 2), ("문의", 1), ("민원", 1), ("엘리베이터", 1)
    ]
    assert d.keyword_counts(nouns, top_k=1) == [("소음", 2)]
    assert d.keyword_counts(nouns, stopwords={"주차"}, top_k=None) == [
        ("소음", 2), ("문의", 1), ("민원", 1), ("엘리베이터", 1)
    ]
    assert d.keyword_counts(nouns, min_count=2) == [("소음", 2), ("주차", 2)]
    assert d.keyword_counts([]) == []
    assert d.keyword_counts([["", "  "], []]) == []
    with pytest.raises(ValueError):
        d.keyword_counts(nouns, top_k=0)
    with pytest.raises(ValueError):
        d.keyword_counts(nouns, min_count=0)


def test_keyword_counts_on_real_month(month, keywords, tokenizer):
    nouns = tokenizer.keyword_nouns_batch(d.keyword_texts(month))
    assert len(nouns) == month.height
    assert len(keywords) == 50
    assert not set(w for w, _ in keywords) & d.DEFAULT_STOPWORDS
    counts = [c for _, c in keywords]
    assert counts == sorted(counts, reverse=True) and counts[0] <= month.height
    for word, c in keywords[:10]:
        assert c == sum(word in set(doc) for doc in nouns)
    # the month is dominated by complaints about a construction next to an elementary school
    top = {w for w, _ in keywords[:10]}
    assert {"공사", "학교"} <= top
    assert "민원" in {w for doc in nouns for w in doc}  # present in the text, removed as stopword


def test_keyword_texts_use_title_and_request_not_reply(month):
    texts = d.keyword_texts(month)
    row = month.row(0, named=True)
    assert texts[0].startswith(row["title"]) and row["request_contents"].strip()[:20] in texts[0]
    assert row["reply"].strip()[:30] not in texts[0]


# --------------------------------------------------------------------------------------------
# the page


def test_page_header_kpis_and_sections(page, month):
    p = parse(page)
    assert not p.errors and not p.stack
    text = " ".join(" ".join(p.text).split())
    assert "<title>본청 (1) VOC 월간 대시보드 · 2019년 11월</title>" in page
    assert "본청 (1) VOC 월간 대시보드" in text and "2019년 11월" in text
    assert "총 VOC 41건" in text
    assert "전월 대비 +30건 전월 11건" in text  # 2019-10 has 11 VOCs of building 1
    assert "검수 진행 12 / 41건" in text and "저신뢰 미검수 5건" in text
    assert "새 분류: 시설>승강기" in text
    assert f"데이터 출처: {d.SAMPLE_SOURCE_CREDIT}" in text
    assert RUN_ID in text and GENERATED_AT in text and "hybrid_20191201" in text
    assert "자동 분류" in text and "검수 반영" not in text
    assert "이번 달 VOC 없음" not in text
    # low-confidence KPI agrees with the frame
    low = month.filter((pl.col("subject_confidence") < 0.5) | (pl.col("work_confidence") < 0.5)).height
    assert f"저신뢰 VOC {low}건" in text


def test_page_is_self_contained_and_includes_plotly_once(page):
    import plotly.offline

    assert page.count("* plotly.js v") == 1
    assert len(page) < len(plotly.offline.get_plotlyjs()) + 1_500_000
    rest = strip_plotlyjs(page)
    p = parse(rest)
    for tag, attr, value in p.attrs:
        if attr in ("src", "href", "action", "poster", "data"):
            assert value is not None and value.startswith("data:"), (tag, attr, value[:60])
    assert p.tags["link"] == 1  # the data: favicon only
    assert p.tags["iframe"] == 0 and p.tags["object"] == 0
    for url in re.findall(r"url\(([^)]{0,40})", rest):
        assert url.startswith("data:"), url
    assert not re.search(r"@import|https?://", rest.replace(d.SAMPLE_SOURCE_CREDIT, ""))
    assert "default-src 'none'" in rest  # CSP: the browser refuses any request anyway
    assert "@font-face" in rest and "data:font/woff;base64," in rest


def test_page_figures_match_the_frame(page, month, tagged):
    figs = figures_of(page)
    assert set(figs) == {
        "fig-subject-major", "fig-work-major", "fig-subject-minor", "fig-work-minor",
        "fig-daily", "fig-monthly", "fig-subject-share", "fig-keywords",
    }
    for fid in figs:
        assert f'id="{fid}"' in page

    sm = figs["fig-subject-major"]["data"][0]
    expected = dict(month.group_by("subject_major").len().iter_rows())
    assert dict(zip(sm["y"], sm["x"])) == expected
    assert sm["x"] == sorted(sm["x"], reverse=True)

    wm = figs["fig-work-major"]["data"][0]
    assert sum(wm["x"]) == month.height
    assert dict(zip(wm["y"], wm["x"])) == dict(month.group_by("work_major").len().iter_rows())

    minor = figs["fig-subject-minor"]["data"][0]
    assert sum(minor["x"]) == month.height

    daily = figs["fig-daily"]["data"][0]
    assert len(daily["y"]) == 30 and daily["x"][0] == "1" and daily["x"][-1] == "30"
    per_day = dict(month.group_by("created_at").len().iter_rows())
    assert daily["y"] == [per_day.get(date(2019, 11, k), 0) for k in range(1, 31)]

    monthly = figs["fig-monthly"]["data"][0]
    assert monthly["customdata"] == [f"2019년 {m}월" for m in range(5, 12)]
    assert monthly["x"][-1] == "19년<br>11월"
    b1 = tagged.filter(pl.col("building_id") == BUILDING)
    exp = [b1.filter(pl.col("yyyymm") == m).height for m in
           ("201905", "201906", "201907", "201908", "201909", "201910", "201911")]
    assert monthly["y"] == exp

    share = figs["fig-subject-share"]["data"]
    totals = np.sum([t["y"] for t in share], axis=0)
    assert np.allclose(totals, 100.0)
    assert len(share) <= 7  # top 6 majors + 그 외

    kw = figs["fig-keywords"]["data"][0]
    assert len(kw["y"]) == 20


def test_table_rows_sorted_by_date_with_full_text(page, month):
    ids_in_page = re.findall(r'<td class="id">([^<]+)</td>', page)
    expected = month.sort(["created_at", "voc_id"])["voc_id"].to_list()
    assert ids_in_page == expected
    # a long title is truncated in the summary, complete in its title attribute and <details>
    long = month.filter(pl.col("title").str.len_chars() > 40).row(0, named=True)
    esc = str(escape(long["title"]))
    assert f'title="{esc}"' in page
    assert esc[:30] in page and "…" in page
    assert str(escape(long["request_contents"].strip().splitlines()[0]))[:40] in page


def test_reviewed_badge_and_optional_sections_absent(month):
    html = d.render_dashboard(
        month, building_id=BUILDING, building_name="본청", month=MONTH,
        run_id=RUN_ID, generated_at=GENERATED_AT, reviewed=True, embed_font=False,
    )
    text = " ".join(parse(html).text)
    assert "검수 반영" in text
    assert 'id="review-status"' not in html and 'id="drift"' not in html
    assert 'id="source-credit"' not in html and 'id="wordcloud"' not in html
    assert "fig-monthly" not in html and "전월 대비" not in text  # no history
    assert "@font-face" not in html


def test_escaping_of_hostile_text(month, keywords):
    hostile = with_hostile_rows(month)
    html = d.render_dashboard(
        hostile,
        building_id=BUILDING,
        building_name="<i>본청</i>",
        month=MONTH,
        keywords=[("<script>", 3), *keywords[:5]],
        run_id="<b>run</b>",
        generated_at=GENERATED_AT,
        drift=["새 분류: <script>alert('drift')</script>"],
        source_credit="<a href='https://evil.example'>출처</a>",
        embed_font=False,
    )
    rest = strip_plotlyjs(html)
    # nothing hostile survives as markup
    for bad in ("<script>alert", "<script>window.__pwned", "<img src=x", "<b>굵게", "<i>본청",
                "<a href=", "href='https://evil", 'href="javascript'):
        assert bad not in rest, bad
    assert rest.count("<script") == 3  # plotly.js, figure JSON, drawing code
    p = parse(html)
    assert not p.errors
    assert p.tags["img"] == 0 and p.tags["a"] == 0 and p.tags["i"] == 0
    text = "".join(p.text)
    for t in HOSTILE_TITLES:
        assert t in text  # shown as text
    assert "<script>alert('drift')</script>" in text and "<i>본청</i>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # figure data: plotly's JSON escapes '<', '>' and '/', so the block cannot be closed early
    block = re.search(r'id="voc-figures">(.*?)</script>', html, re.S).group(1)
    assert "<" not in block and ">" not in block
    figs = figures_of(html)
    trace = figs["fig-subject-major"]["data"][0]
    # and plotly's own tiny HTML dialect is entity-escaped, so the label is drawn literally
    # (cut to 16 characters on the axis, complete in the hover text)
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=4&lt;/script&gt;&lt;b&gt;주제&lt;/b&gt;" in trace["customdata"]
    assert "&lt;/script&gt;&lt;scrip…" in trace["y"]
    assert "&lt;script&gt;" in figs["fig-keywords"]["data"][0]["y"]


def test_empty_month(tagged):
    empty = month_rows(tagged).clear()
    html = d.render_dashboard(
        empty, building_id=BUILDING, building_name="본청", month=MONTH,
        run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False,
    )
    p = parse(html)
    assert not p.errors and not p.stack
    text = " ".join(" ".join(p.text).split())
    assert "이번 달 VOC 없음" in text and "총 VOC 0건" in text
    assert figures_of(html) == {} and 'id="voc-table"' not in html

    with_hist = d.render_dashboard(
        empty, building_id=BUILDING, building_name="", month=MONTH, history=tagged,
        run_id=RUN_ID, generated_at=GENERATED_AT, review_status=d.ReviewStatus(0, 0, 0),
        embed_font=False,
    )
    figs = figures_of(with_hist)
    assert set(figs) == {"fig-monthly", "fig-subject-share"}
    assert figs["fig-monthly"]["data"][0]["y"][-1] == 0
    text = " ".join(" ".join(parse(with_hist).text).split())
    assert "건물 1 VOC 월간 대시보드" in text and "전월 대비 -11건" in text


def test_nulls_render_as_unclassified(month):
    n = month.height
    nulls = month.with_columns(
        pl.when(pl.int_range(n) % 3 == 0).then(None).otherwise(pl.col("subject_major")).alias("subject_major"),
        pl.when(pl.int_range(n) % 3 == 0).then(pl.lit("")).otherwise(pl.col("subject_minor")).alias("subject_minor"),
        pl.lit(None, dtype=pl.Utf8).alias("work_major"),
        pl.lit(None, dtype=pl.Utf8).alias("work_minor"),
        pl.lit(None, dtype=pl.Float64).alias("work_confidence"),
        pl.lit(None, dtype=pl.Utf8).alias("flags"),
        pl.lit(None, dtype=pl.Utf8).alias("reply"),
    )
    html = d.render_dashboard(
        nulls, building_id=BUILDING, building_name="본청", month=MONTH,
        run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False,
    )
    figs = figures_of(html)
    wm = figs["fig-work-major"]["data"][0]
    assert wm["y"] == [d.UNCLASSIFIED] and wm["x"] == [n]
    sm = dict(zip(figs["fig-subject-major"]["data"][0]["y"], figs["fig-subject-major"]["data"][0]["x"]))
    assert sm[d.UNCLASSIFIED] == len(range(0, n, 3))
    cells = re.findall(r'<td class="conf">(.*?)</td>', html, re.S)
    assert len(cells) == n and all("–" in c for c in cells)
    assert html.count('<span class="tag-major">미분류</span>') >= n


def test_created_at_as_string_is_accepted(month):
    as_text = month.with_columns(pl.col("created_at").dt.strftime("%Y-%m-%d"))
    a = d.render_dashboard(as_text, building_id="1", building_name="본청", month=MONTH,
                           run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)
    b = d.render_dashboard(month, building_id="1", building_name="본청", month=MONTH,
                           run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)
    assert a == b


def test_input_errors(month, tagged):
    kw = dict(building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
              generated_at=GENERATED_AT, embed_font=False)
    with pytest.raises(ValueError, match="work_confidence"):
        d.render_dashboard(month.drop("work_confidence"), **kw)
    with pytest.raises(ValueError, match="outside 2019-11"):
        d.render_dashboard(month_rows(tagged, "2019-10"), **kw)
    with pytest.raises(ValueError, match="another building"):
        d.render_dashboard(month_rows(tagged, building="2"), **kw)
    with pytest.raises(ValueError, match="not a date"):
        d.render_dashboard(month.with_columns(pl.lit("어제").alias("created_at")), **kw)
    with pytest.raises(ValueError, match="month"):
        d.render_dashboard(month, **{**kw, "month": "2019-13"})
    with pytest.raises(ValueError, match="low_confidence"):
        d.render_dashboard(month, **kw, low_confidence=1.5)
    with pytest.raises(ValueError, match="n_reviewed"):
        d.ReviewStatus(n_total=3, n_reviewed=4, n_low_confidence_unreviewed=0)
    with pytest.raises(ValueError, match="n_low_confidence_unreviewed"):
        d.ReviewStatus(n_total=3, n_reviewed=2, n_low_confidence_unreviewed=2)
    with pytest.raises(ValueError):
        d.ReviewStatus(n_total=-1, n_reviewed=0, n_low_confidence_unreviewed=0)
