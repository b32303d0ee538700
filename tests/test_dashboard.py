"""voc.dashboard on real rows of the shipped sample (Incheon Jung-gu office complaint board, via
2hy03/Civil_Complaint): numbers in the figures, escaping, offline-ness, word cloud, keywords,
honest low-confidence counts after review, the compact page of small buildings, page size,
주요 이슈 and the month index."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections import Counter
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from markupsafe import escape

from voc import dashboard as d
from voc.schema import TAGGED_COLUMNS
from voc.urgency import with_alert_columns

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
    ).pipe(with_alert_columns).select(TAGGED_COLUMNS)  # urgent, repeat_of (voc.urgency)


def month_rows(tagged: pl.DataFrame, month: str = MONTH, building: str = BUILDING) -> pl.DataFrame:
    return tagged.filter((pl.col("yyyymm") == month.replace("-", "")) & (pl.col("building_id") == building))


DEMO_THRESHOLDS = {"subject": 0.63}
"""검토 우선 threshold of the demo model's subject (held-out choice, voc.metrics.review_budget:
0.635 for the linear model trained on every labelled VOC before 2019-11); its work type is
keyword-only and has none."""


def demo_month(sample_df: pl.DataFrame) -> tuple[pl.DataFrame, list[str | None], pl.DataFrame]:
    """Building 1's 2019-11 as ``voc demo`` shows it before review (issue 20), on the 41 real VOCs.

    The work type is a keyword guess (``work_source == "keyword"``: the sample has no work-type
    labels); the subject is the sample's reviewed department (:func:`make_tagged`), except the
    campaign against the construction next to 신선초등학교 — one near-duplicate group of 28
    posts (``voc.groups.near_duplicate_groups``, IDF from the VOCs before the month) — whose
    first 27 posts the demo model tagged 신흥동 at confidence ≈ 0.5, under the review threshold.

    Returns the month (``TAGGED_COLUMNS``), its 묶음 ids (41, row order) and the tagged rows of
    building 1 in the six months before (history).
    """
    from voc import groups

    tagged = make_tagged(sample_df)
    month = month_rows(tagged)
    vec = groups.fit_group_vectorizer(groups.group_texts(sample_df.filter(pl.col("created_at") < date(2019, 11, 1))))
    gids = groups.near_duplicate_groups(month, vectorizer=vec).to_list()
    campaign = [i for i, g in enumerate(gids) if g == "1-69204"]
    assert len(campaign) == 28
    rng = np.random.default_rng(20)
    major, minor = month["subject_major"].to_list(), month["subject_minor"].to_list()
    conf = month["subject_confidence"].to_list()
    for i in campaign[:27]:
        major[i], minor[i], conf[i] = "신흥동", "신흥동", round(float(rng.uniform(0.45, 0.55)), 4)
    month = month.with_columns(
        pl.Series("subject_major", major), pl.Series("subject_minor", minor), pl.Series("subject_confidence", conf)
    )
    history = tagged.filter(
        (pl.col("building_id") == BUILDING) & pl.col("yyyymm").is_in(["201905", "201906", "201907", "201908", "201909", "201910"])
    )
    return month, gids, history


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
    js = d.plotly_js_bundle()
    assert page.count(js) == 1
    return page.replace(js, "")


def page_text(page: str) -> str:
    """The visible text of a page, whitespace collapsed."""
    return " ".join(" ".join(parse(page).text).split())


_CONTEXT_FIELDS = frozenset(f.name for f in dataclasses.fields(d.DashboardContext))
_OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(d.DashboardOptions))


def render(frame: pl.DataFrame, **fields: Any) -> str:
    """``d.render_dashboard`` with every field as a keyword, each handed to the object that holds
    it (:class:`voc.dashboard.DashboardContext`, ``DashboardOptions``, else ``DashboardContent``)."""
    context = d.DashboardContext(**{k: fields.pop(k) for k in list(fields) if k in _CONTEXT_FIELDS})
    options = d.DashboardOptions(**{k: fields.pop(k) for k in list(fields) if k in _OPTION_FIELDS})
    return d.render_dashboard(frame, context, d.DashboardContent(**fields), options)


def issues_of(month: pl.DataFrame) -> list[dict]:
    """주요 이슈 entries in the shape of voc.groups.group_summaries, from the month's real VOCs:
    the complaints about the construction next to the elementary school, and one single VOC."""
    school = month.filter(pl.col("title").str.contains("공사") | pl.col("request_contents").str.contains("초등학교"))
    school = school.sort(["created_at", "voc_id"])
    rep = school.row(0, named=True)
    single = month.filter(~pl.col("voc_id").is_in(school["voc_id"].implode())).row(0, named=True)
    return [
        {"size": school.height, "voc_id": rep["voc_id"], "title": rep["title"], "request": rep["request_contents"],
         "first_date": str(school["created_at"].min()), "last_date": str(school["created_at"].max()),
         "subject": f"{rep['subject_major']}>{rep['subject_minor']}", "work": f"{rep['work_major']}>{rep['work_minor']}"},
        {"size": 1, "voc_id": single["voc_id"], "title": single["title"], "request": single["request_contents"],
         "first_date": single["created_at"], "last_date": single["created_at"], "subject": single["subject_major"],
         "work": None},
    ]


class _Collector(HTMLParser):
    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})

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
        d.DashboardContext(BUILDING, "본청", MONTH, RUN_ID, GENERATED_AT, source_credit=d.SAMPLE_SOURCE_CREDIT),
        d.DashboardContent(
            history=tagged,  # all buildings and months: the renderer picks its window
            keywords=keywords,
            wordcloud_png=wordcloud_png,
            review_status=d.ReviewStatus(n_total=41, n_reviewed=12, n_low_confidence_unreviewed=5),
            drift=["새 분류: 시설>승강기"],
        ),
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
    assert len(set(im.convert("RGB").get_flattened_data())) > 20  # coloured words on white, anti-aliased
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
    assert f"데이터 출처: {d.SAMPLE_SOURCE_CREDIT}" in text and text.count("데이터 출처") == 1
    assert RUN_ID in text and GENERATED_AT in text and "hybrid_20191201" in text
    assert "자동 분류" in text and "검수 반영" not in text
    assert "이번 달 VOC 없음" not in text
    assert "일평균 1.4건" in text and "최다 주제 도시재생국" in text
    # the review block carries the low-confidence count: no second number in a KPI card
    assert text.count("저신뢰 미검수") == 1 and "저신뢰 VOC" not in text


def test_page_is_self_contained_and_includes_plotly_once(page):
    assert page.count("* plotly.js (basic - minified) v") == 1  # the vendored partial bundle
    assert "* plotly.js v" not in page  # not the 4.8 MB full bundle
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


def test_table_of_a_huge_month_lists_the_newest_and_says_so(month):
    """Issue 21: a building-month above ``table_max_rows`` lists only its newest VOCs (in date
    order) and the heading says how many of how many; counts still cover every VOC."""
    limit = 5
    html = render(month, building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
                  generated_at=GENERATED_AT, embed_font=False, table_max_rows=limit)
    ids_in_page = re.findall(r'<td class="id">([^<]+)</td>', html)
    newest = month.sort(["created_at", "voc_id"], descending=True).head(limit).sort(["created_at", "voc_id"])
    assert ids_in_page == newest["voc_id"].to_list()
    assert f"전체 {month.height:,}건 중 최근 {limit}건만 표시" in page_text(html)
    full = render(month, building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
                  generated_at=GENERATED_AT, embed_font=False)
    assert len(re.findall(r'<td class="id">', full)) == month.height and "최근" not in page_text(full).split("VOC 목록")[1][:40]
    with pytest.raises(ValueError, match="table_max_rows"):
        d.DashboardOptions(table_max_rows=0)


def test_reply_draft_is_collapsed_escaped_and_only_where_one_exists(month):
    """Issue 25: a ``reply_draft`` column (voc.replies.format_reply_draft) shows as a collapsed
    답변 초안 under the title of each VOC that has one — escaped, contact details masked — and
    nowhere else; a frame without the column shows none."""
    ids = month.sort(["created_at", "voc_id"])["voc_id"].to_list()
    drafts = {
        ids[0]: "[유사 0.72 · voc_id 69001]\n<script>alert('draft')</script> 010-1234-5678로 연락 주세요",
        ids[2]: "[유사 0.55 · voc_id 7]\n[날짜]까지 조치하겠습니다.",
    }
    frame = month.with_columns(pl.Series("reply_draft", [drafts.get(v, "") for v in month["voc_id"].to_list()]))
    where = d.DashboardContext(BUILDING, "본청", MONTH, RUN_ID, GENERATED_AT)
    html = d.render_dashboard(frame, where, options=d.DashboardOptions(embed_font=False))
    p = parse(html)
    assert not p.errors
    rows = re.findall(r'<td class="id">([^<]+)</td>(.*?)</tr>', html, re.S)
    assert [vid for vid, _ in rows] == ids
    assert [vid for vid, body in rows if '<details class="draft"><summary>답변 초안</summary>' in body] == [ids[0], ids[2]]
    rest = strip_plotlyjs(html)
    assert "<script>alert('draft')" not in rest and "&lt;script&gt;alert(" in html
    assert "010-1234-5678" not in html
    text = "".join(p.text)
    assert "[유사 0.72 · voc_id 69001]" in text and "[날짜]까지 조치하겠습니다." in text
    plain = d.render_dashboard(month, where, options=d.DashboardOptions(embed_font=False))
    assert 'class="draft"' not in plain and "답변 초안" not in plain


def test_reviewed_badge_and_optional_sections_absent(month):
    html = render(
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
    html = render(
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
    html = render(
        empty, building_id=BUILDING, building_name="본청", month=MONTH,
        run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False,
    )
    p = parse(html)
    assert not p.errors and not p.stack
    text = " ".join(" ".join(p.text).split())
    assert "이번 달 VOC 없음" in text and "총 VOC 0건" in text
    assert figures_of(html) == {} and 'id="voc-table"' not in html

    with_hist = render(
        empty, building_id=BUILDING, building_name="", month=MONTH, history=tagged,
        run_id=RUN_ID, generated_at=GENERATED_AT, review_status=d.ReviewStatus(0, 0, 0),
        embed_font=False,
    )
    # an empty month is a compact page: the previous month's count, no trend charts, no plotly.js
    assert figures_of(with_hist) == {} and "plotly.js" not in with_hist
    text = page_text(with_hist)
    assert "건물 1 VOC 월간 대시보드" in text and "전월 대비 -11건" in text
    assert "일평균" not in text and 'id="counts' not in with_hist


def test_nulls_render_as_unclassified(month):
    n = month.height
    nulls = month.with_columns(
        pl.when(pl.int_range(n) % 3 == 0).then(None).otherwise(pl.col("subject_major")).alias("subject_major"),
        pl.when(pl.int_range(n) % 3 == 0).then(pl.lit("")).otherwise(pl.col("subject_minor")).alias("subject_minor"),
        pl.lit(None, dtype=pl.Utf8).alias("work_major"),
        pl.lit(None, dtype=pl.Utf8).alias("work_minor"),
        pl.lit(None, dtype=pl.Float64).alias("work_confidence"),
        pl.lit(None, dtype=pl.Utf8).alias("work_source"),  # untagged: no tag, no source (voc.tagger)
        pl.lit(None, dtype=pl.Utf8).alias("flags"),
        pl.lit(None, dtype=pl.Utf8).alias("reply"),
    )
    html = render(
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
    a = render(as_text, building_id="1", building_name="본청", month=MONTH,
               run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)
    b = render(month, building_id="1", building_name="본청", month=MONTH,
               run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)
    assert a == b


def test_input_errors(month, tagged):
    kw = dict(building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
              generated_at=GENERATED_AT, embed_font=False)
    with pytest.raises(ValueError, match="work_confidence"):
        render(month.drop("work_confidence"), **kw)
    with pytest.raises(ValueError, match="outside 2019-11"):
        render(month_rows(tagged, "2019-10"), **kw)
    with pytest.raises(ValueError, match="another building"):
        render(month_rows(tagged, building="2"), **kw)
    with pytest.raises(ValueError, match="not a date"):
        render(month.with_columns(pl.lit("어제").alias("created_at")), **kw)
    with pytest.raises(ValueError, match="month"):
        render(month, **{**kw, "month": "2019-13"})
    with pytest.raises(ValueError, match="low_confidence"):
        render(month, **kw, low_confidence=1.5)
    with pytest.raises(ValueError, match="n_reviewed"):
        d.ReviewStatus(n_total=3, n_reviewed=4, n_low_confidence_unreviewed=0)
    with pytest.raises(ValueError, match="n_low_confidence_unreviewed"):
        d.ReviewStatus(n_total=3, n_reviewed=2, n_low_confidence_unreviewed=2)
    with pytest.raises(ValueError):
        d.ReviewStatus(n_total=-1, n_reviewed=0, n_low_confidence_unreviewed=0)


# --------------------------------------------------------------------------------------------
# honest low-confidence counts


def _reviewed_month(month: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """The month after the simulated reviewer answered ``fraction`` of its review sheet with the
    sample's real department labels (voc.review: sheet → simulate_review → merge_reviews)."""
    from voc.review import build_review_rows, merge_reviews, simulate_review
    from voc.taxonomy import default_taxonomy

    tax = default_taxonomy()
    sheet = simulate_review(build_review_rows(month, threshold=0.5), month, fraction=fraction, seed=0, taxonomy=tax)
    reviewed, _ = merge_reviews(month, sheet, tax)
    return reviewed


def _low(frame: pl.DataFrame) -> pl.Series:
    # the work type of make_tagged is a keyword guess: its score is no confidence and never low
    # (the page once counted it: 27 "저신뢰" rows where the subject confidences give 12)
    return (pl.col("subject_confidence") < 0.5).fill_null(False)


def test_low_confidence_kpi_counts_only_unreviewed_rows(month):
    kw = dict(building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
              generated_at=GENERATED_AT, embed_font=False)
    n_low = month.filter(_low(month)).height
    assert n_low > 10  # the model's confidences alone: many rows to check
    auto = page_text(render(month, **kw))
    assert f"저신뢰 미검수 {n_low}건" in auto

    # every row reviewed: nothing is low any more (the measured defect showed "저신뢰 VOC 39건")
    done = _reviewed_month(month, 1.0)
    assert done["is_reviewed"].all() and done.filter(_low(done)).height == n_low  # confidences unchanged
    html = render(done, **kw, reviewed=True)
    assert "저신뢰 미검수 0건" in page_text(html)
    assert '<tr class="low">' not in html and '<span class="low">' not in html
    assert 'class="card kpi warn"' not in html

    # half reviewed: the low rows among the unreviewed half, in the card and the table
    half = _reviewed_month(month, 0.5)
    pending_low = half.filter(_low(half) & ~pl.col("is_reviewed")).height
    assert 0 < pending_low < n_low
    html = render(half, **kw, reviewed=True)
    assert f"저신뢰 미검수 {pending_low}건" in page_text(html)
    assert html.count('<tr class="low">') == pending_low

    # is_reviewed as read back from a CSV (text) counts the same; other text is refused
    as_text = half.with_columns(pl.col("is_reviewed").cast(pl.Utf8).str.to_lowercase())
    assert render(as_text, **kw, reviewed=True) == html
    bad = half.with_columns(pl.when(pl.int_range(half.height) == 2).then(pl.lit("아마")).otherwise(pl.lit("true")).alias("is_reviewed"))
    with pytest.raises(ValueError, match=r"row 3: is_reviewed is not a boolean.*'아마'"):
        render(bad, **kw)


# --------------------------------------------------------------------------------------------
# compact page of small buildings


@pytest.fixture(scope="module")
def small_month(tagged: pl.DataFrame) -> pl.DataFrame:
    m = month_rows(tagged, building="2")
    assert m.height == 4  # building 2 in 2019-11
    return m


def test_compact_page_for_a_four_voc_building(small_month, tagged, tokenizer):
    kws = d.keyword_counts(tokenizer.keyword_nouns_batch(d.keyword_texts(small_month)))
    assert kws and max(c for _, c in kws) <= 2  # keyword "counts" of 1–2: noise
    kw = dict(building_id="2", building_name="", month=MONTH, history=tagged, run_id=RUN_ID,
              generated_at=GENERATED_AT, keywords=kws, wordcloud_png=d.render_wordcloud_png(dict(kws)))
    html = render(small_month, **kw)
    p = parse(html)
    assert not p.errors and not p.stack
    text = page_text(html)
    assert figures_of(html) == {} and "plotly.js" not in html and 'class="chart"' not in html
    assert 'id="wordcloud"' not in html and 'id="keyword-table"' not in html
    assert "일평균" not in text and "최다 주제" not in text
    assert "총 VOC 4건" in text and "전월 대비 -1건" in text  # 5 VOCs in 2019-10
    assert 'id="compact-note"' in html and "10건 미만" in text
    # count tables: every VOC once per dimension, numbers from the frame
    for dim in ("subject", "work"):
        block = re.search(rf'<table class="list" id="counts-{dim}">(.*?)</table>', html, re.S).group(1)
        counts = [int(c) for c in re.findall(r'<td class="num">(\d+)건</td>', block)]
        assert sum(counts) == 4
        expected = small_month.group_by(f"{dim}_major", f"{dim}_minor").len()["len"].sort(descending=True).to_list()
        assert counts == expected
    assert re.findall(r'<td class="id">([^<]+)</td>', html) == small_month.sort(["created_at", "voc_id"])["voc_id"].to_list()
    assert len(html.encode()) < 200_000  # no plotly.js: font subset + table

    full = render(small_month, **kw, compact_below=0)
    assert set(figures_of(full)) >= {"fig-subject-major", "fig-daily", "fig-keywords"}
    assert "일평균 0.1건" in page_text(full)  # what the compact page spares the reader
    with pytest.raises(ValueError, match="compact_below"):
        render(small_month, **kw, compact_below=-1)


def test_ten_vocs_get_the_full_page(month):
    ten = month.sort("voc_id").head(d.COMPACT_BELOW)
    html = render(ten, building_id=BUILDING, building_name="", month=MONTH,
                  run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)
    assert "fig-daily" in figures_of(html) and 'id="compact-note"' not in html
    nine = render(ten.head(9), building_id=BUILDING, building_name="", month=MONTH,
                  run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)
    assert figures_of(nine) == {} and 'id="compact-note"' in nine


# --------------------------------------------------------------------------------------------
# footer credit, size, vendored plotly.js


@pytest.mark.parametrize("credit", [
    "데이터 출처: 인천광역시 중구청 민원 게시판 (via 2hy03/Civil_Complaint)",  # as flows/monthly passes it
    "인천광역시 중구청 민원 게시판 (via 2hy03/Civil_Complaint)",
    "  데이터 출처 ：인천광역시 중구청 민원 게시판 (via 2hy03/Civil_Complaint) ",
])
def test_source_credit_reads_once(small_month, credit):
    html = render(small_month, building_id="2", building_name="", month=MONTH, run_id=RUN_ID,
                  generated_at=GENERATED_AT, source_credit=credit, embed_font=False)
    footer = re.search(r'<div id="source-credit">(.*?)</div>', html).group(1)
    assert footer == "데이터 출처: 인천광역시 중구청 민원 게시판 (via 2hy03/Civil_Complaint)"
    blank = render(small_month, building_id="2", building_name="", month=MONTH, run_id=RUN_ID,
                   generated_at=GENERATED_AT, source_credit="데이터 출처:", embed_font=False)
    assert 'id="source-credit"' not in blank


def test_demo_month_page_is_at_most_2_mb(page):
    """The sample's busiest building-month (41 VOCs, 6 months of history, keywords, word cloud,
    font subset) was 5.4 MB with the full plotly.js."""
    size = len(page.encode("utf-8"))
    assert size <= 2_000_000, size
    js = len(d.plotly_js_bundle().encode())
    assert 1_000_000 < js < 1_300_000
    fonts = re.findall(r"data:font/woff;base64,([A-Za-z0-9+/=]+)", page)
    assert len(fonts) == 2 and len(fonts[1]) < len(fonts[0])  # the bold face covers labels only
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert len(png) < 60_000


def test_bold_face_covers_labels_regular_face_the_whole_text(month):
    import base64

    from fontTools.ttLib import TTFont

    html = render(month, building_id=BUILDING, building_name="본청", month=MONTH,
                  run_id=RUN_ID, generated_at=GENERATED_AT, issues=issues_of(month))
    faces = re.findall(r"font-weight:(\d+);[^}]*?(?:unicode-range:([^;]+);)?src:url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\)", html)
    assert [w for w, _, _ in faces] == ["400", "700"]
    cmaps = {w: set(TTFont(io.BytesIO(base64.b64decode(b))).getBestCmap()) for w, _, b in faces}
    body = "".join(parse(html).text)
    hangul = {ord(c) for c in body if "가" <= c <= "힣"}
    assert hangul <= cmaps["400"]
    # bold: the labels, the building name, the subjects and the issue titles, not the VOC texts
    assert {ord(c) for c in "본청주요이슈검수진행도시재생국" + issues_of(month)[0]["title"] if c != " "} <= cmaps["700"]
    assert len(cmaps["700"]) < 0.6 * len(cmaps["400"])
    declared = faces[1][1].split(",")
    assert "U+20-7E" in declared and f"U+{ord('본'):X}" in declared
    points = set()
    for r in declared:
        a, _, b = r.removeprefix("U+").partition("-")
        points |= set(range(int(a, 16), int(b or a, 16) + 1))
    assert points == cmaps["700"]  # the declared range is exactly what the bold subset holds


def test_vendored_plotly_bundle():
    import plotly.offline

    js = d.plotly_js_bundle()
    version = re.match(r"/\*\*\s*\* plotly\.js \(basic - minified\) v(\d+)\.(\d+)\.(\d+)", js)
    assert version, js[:120]
    full = re.search(r"plotly\.js v(\d+)\.(\d+)\.(\d+)", plotly.offline.get_plotlyjs()[:500])
    assert version.group(1) == full.group(1), "vendored plotly.js major differs from the plotly package's"
    assert "</script" not in js.lower()  # can be inlined
    vendor = Path(d.__file__).parent / "templates" / "vendor"
    assert "MIT License" in (vendor / "LICENSE-plotly.js.txt").read_text()
    assert f"**{'.'.join(version.groups())}**" in (vendor / "README.md").read_text()


def test_charts_only_use_traces_of_the_basic_bundle(page):
    kinds = {t.get("type", "scatter") for f in figures_of(page).values() for t in f["data"]}
    assert kinds == {"bar"}  # the basic bundle has bar, pie and scatter


# --------------------------------------------------------------------------------------------
# 주요 이슈


def test_issues_section(month):
    issues = issues_of(month)
    assert issues[0]["size"] >= 20  # the construction complaints of the month
    html = render(month, building_id=BUILDING, building_name="본청", month=MONTH,
                  run_id=RUN_ID, generated_at=GENERATED_AT, issues=issues, embed_font=False)
    p = parse(html)
    assert not p.errors
    block = re.search(r'<section class="card" id="issues".*?</section>', html, re.S).group(0)
    text = " ".join(" ".join(parse(block).text).split())
    g = issues[0]
    assert text.startswith("주요 이슈")
    assert f"{g['size']}건 {' '.join(g['title'].split())[:30]}" in text
    assert f"{g['first_date']} ~ {g['last_date']} · 대표 VOC {g['voc_id']}" in text
    assert f"주제 {g['subject']}" in text and f"작업 {g['work']}" in text
    excerpt = " ".join(g["request"].split())
    assert excerpt[:60] in text and (len(excerpt) <= 160 or excerpt[:200] not in text)
    single = issues[1]
    assert "1건" in text and f"{single['first_date']} · 대표 VOC {single['voc_id']}" in text
    assert block.count("<li>") == 2 and "작업 None" not in text
    # none given: no section
    assert 'id="issues"' not in render(month, building_id=BUILDING, building_name="", month=MONTH,
                                       run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)


def test_issues_escaped_and_validated(small_month, month):
    kw = dict(building_id="2", building_name="", month=MONTH, run_id=RUN_ID, generated_at=GENERATED_AT, embed_font=False)
    hostile = {**issues_of(month)[1], "title": HOSTILE_TITLES[1], "request": HOSTILE_TITLES[2], "subject": "<b>주제</b>"}
    html = render(small_month, **kw, issues=[hostile])  # compact pages list issues too
    assert 'id="issues"' in html and "<script>window.__pwned" not in html and "<img src=x" not in html
    assert "<b>주제" not in html and HOSTILE_TITLES[1] in "".join(parse(html).text)
    good = issues_of(month)[0]
    for bad, match in (
        ({k: v for k, v in good.items() if k != "first_date"}, r"issues\[0\] is missing field\(s\) \['first_date'\]"),
        ({**good, "size": 0}, r"issues\[0\]\.size must be an int >= 1, got 0"),
        ({**good, "size": True}, r"issues\[0\]\.size"),
        ({**good, "last_date": "어제"}, r"issues\[0\]\.last_date is not a date 'YYYY-MM-DD': '어제'"),
        ({**good, "subject": [("도시재생국>건축과", "많음")]}, r"issues\[0\]\.subject must be text or a list of \(label, count\)"),
        ({**good, "first_date": "2019-11-30", "last_date": "2019-11-01"}, r"issues\[0\]: last_date 2019-11-01 is before"),
        ({**good, "voc_ids": "69204"}, r"issues\[0\]\.voc_ids must be a list of VOC ids, got '69204'"),
    ):
        with pytest.raises(ValueError, match=match):
            render(small_month, **kw, issues=[bad])
    with pytest.raises(ValueError, match=r"issues\[1\] must be a mapping"):
        render(small_month, **kw, issues=[good, "공사"])


# --------------------------------------------------------------------------------------------
# month index


def _index_rows(tagged: pl.DataFrame) -> list[dict]:
    rows = []
    for b in ("1", "2"):
        m = month_rows(tagged, building=b)
        rows.append({
            "building_id": b, "building_name": "본청" if b == "1" else "",
            "n_vocs": m.height, "n_reviewed": 0,
            "n_low_confidence_unreviewed": m.filter(_low(m)).height,
            "dashboard_href": f"{b}/dashboard_{b}_201911.html",
        })
    return rows


def test_month_index_links_every_building(tagged):
    rows = _index_rows(tagged)
    rows[0] = {**rows[0], "n_reviewed": 41, "n_low_confidence_unreviewed": 0, "reviewed": True,
               "drift": ["주제 비중 증가: 도시재생국 54% → 85%"], "n_issues": 3}
    html = d.render_month_index("2019-11", rows, run_id=RUN_ID, generated_at=GENERATED_AT,
                                source_credit="데이터 출처: 인천광역시 중구청")
    p = parse(html)
    assert not p.errors and not p.stack
    text = page_text(html)
    assert "<title>VOC 월간 대시보드 목록 · 2019년 11월</title>" in html
    hrefs = [v for tag, a, v in p.attrs if tag == "a" and a == "href"]
    assert hrefs == ["1/dashboard_1_201911.html", "2/dashboard_2_201911.html"]
    low2 = rows[1]["n_low_confidence_unreviewed"]
    assert "본청 (1) 41건 41 / 41건 (100%) 0건 1건 3개 검수 반영" in text
    assert f"건물 2 4건 0 / 4건 (0%) {low2}건 – – 자동 분류" in text
    assert f"합계 45건 41 / 45건 (91%) {low2}건 1건 3개" in text
    assert text.count("데이터 출처") == 1 and "데이터 출처: 인천광역시 중구청" in text
    # offline like the dashboards: only the relative links, no script, font inline
    assert p.tags["script"] == 0 and "default-src 'none'" in html
    for tag, attr, value in p.attrs:
        if attr in ("src", "href") and tag != "a":
            assert value.startswith("data:"), (tag, attr, value)
    assert "@font-face" in html and len(html.encode()) < 120_000
    # columns without anything to say are left out
    plain = d.render_month_index("2019-11", _index_rows(tagged), embed_font=False)
    assert "분류 변화" not in plain and "주요 이슈" not in plain and "실행 ID" not in plain


def test_month_index_escapes_and_validates(tagged):
    rows = _index_rows(tagged)
    hostile = [{**rows[0], "building_name": "<script>alert(1)</script>", "dashboard_href": '1/a"onmouseover="x.html'}]
    html = d.render_month_index("2019-11", hostile, embed_font=False)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="1/a&#34;onmouseover=&#34;x.html"' in html
    assert "이번 달 대시보드가 없습니다" in page_text(d.render_month_index("2019-11", [], embed_font=False))
    for bad, match in (
        ({**rows[0], "dashboard_href": "https://evil.example/d.html"}, r"buildings\[0\]\.dashboard_href must be a relative link"),
        ({**rows[0], "dashboard_href": "/srv/voc/201911/1/d.html"}, "relative link"),
        ({**rows[0], "dashboard_href": "//host/d.html"}, "relative link"),
        ({**rows[0], "dashboard_href": "file:///tmp/d.html"}, "relative link"),
        ({**rows[0], "dashboard_href": ""}, "relative link"),
        ({k: v for k, v in rows[0].items() if k != "n_vocs"}, r"buildings\[0\] is missing field\(s\) \['n_vocs'\]"),
        ({**rows[0], "n_reviewed": 42}, r"n_reviewed \(42\) exceeds n_vocs \(41\)"),
        ({**rows[0], "n_reviewed": 40, "n_low_confidence_unreviewed": 2}, "exceeds the unreviewed VOCs"),
        ({**rows[0], "n_vocs": -1}, r"buildings\[0\]\.n_vocs must be a non-negative int"),
    ):
        with pytest.raises(ValueError, match=match):
            d.render_month_index("2019-11", [rows[1], bad][1:], embed_font=False)
    with pytest.raises(ValueError, match="month"):
        d.render_month_index("2019-13", rows)


def test_month_index_marks_guesses_and_pre_review_share(tagged):
    """Keyword-guessed tags (the sample's work types: ``work_source == "keyword"``) are counted as
    추정, apart from the low-confidence count that never includes them; an unreviewed building
    says 검수 전 with its share of low-confidence VOCs."""
    rows = _index_rows(tagged)
    for r, b in zip(rows, ("1", "2")):
        m = month_rows(tagged, building=b)
        r["n_estimated"] = {dim: m.filter(pl.col(f"{dim}_source") == "keyword").height for dim in ("subject", "work")}
    assert rows[0]["n_estimated"] == {"subject": 0, "work": 41} and rows[1]["n_estimated"]["work"] == 4
    low1, low2 = rows[0]["n_low_confidence_unreviewed"], rows[1]["n_low_confidence_unreviewed"]
    text = page_text(d.render_month_index("2019-11", rows, embed_font=False))
    assert f"본청 (1) 41건 0 / 41건 (0%) {low1}건 작업유형 41건 (추정) 자동 분류 · 검수 전 (저신뢰 {100 * low1 / 41:.0f}%)" in text
    assert f"건물 2 4건 0 / 4건 (0%) {low2}건 작업유형 4건 (추정) 자동 분류 · 검수 전 (저신뢰 {100 * low2 / 4:.0f}%)" in text
    assert "합계 45건 0 / 45건 (0%)" in text and "작업유형 45건 (추정)" in text
    assert "추정: 학습된 모델이 아니라 분류 키워드로 짐작한 태그" in text
    # after review: the reviewed labels count, no 검수 전
    reviewed = [{**rows[0], "n_reviewed": 41, "n_low_confidence_unreviewed": 0, "n_estimated": {"work": 0}}]
    text = page_text(d.render_month_index("2019-11", reviewed, embed_font=False))
    assert "41 / 41건 (100%)" in text and "검수 반영" in text and "검수 전" not in text and "추정" not in text
    # without the optional field (an index.json of an older version) the page is as before
    assert "추정" not in page_text(d.render_month_index("2019-11", _index_rows(tagged), embed_font=False))
    for bad, match in (
        ({**rows[0], "n_estimated": {"work": 42}}, r"buildings\[0\]\.n_estimated\.work \(42\) exceeds n_vocs \(41\)"),
        ({**rows[0], "n_estimated": {"work": -1}}, r"buildings\[0\]\.n_estimated\.work must be a non-negative int"),
        ({**rows[0], "n_estimated": {"place": 1}}, r"buildings\[0\]\.n_estimated has unknown dimension 'place'"),
        ({**rows[0], "n_estimated": [1, 2]}, r"buildings\[0\]\.n_estimated must be a mapping"),
    ):
        with pytest.raises(ValueError, match=match):
            d.render_month_index("2019-11", [bad], embed_font=False)


def test_review_state_and_estimated_texts():
    assert d.review_state_text(41, 0, 30) == "검수 전 · 저신뢰 30/41건 (73%)"
    assert d.review_state_text(41, 41, 0) == "검수 반영 41/41건 (100%)"
    assert d.review_state_text(45, 41, 3) == "검수 반영 41/45건 (91%) · 저신뢰 미검수 3건"
    assert d.review_state_text(0, 0, 0) == "검수 전 · 저신뢰 0/0건 (0%)"
    assert d.estimated_text({"subject": 0, "work": 45}) == "작업유형 45건 (추정)"
    assert d.estimated_text({"subject": 2, "work": 45}) == "주제 2건 · 작업유형 45건 (추정)"
    assert d.estimated_text({"subject": 0, "work": 0}) == "" and d.estimated_text({}) == ""


def test_issues_from_group_summaries(month, tagged):
    """voc.groups' output goes in as it is: the campaign against the construction next to
    신선초등학교 (28 posts of building 1 in 2019-11) is the first issue."""
    from voc import groups

    vec = groups.fit_group_vectorizer(groups.group_texts(tagged.filter(pl.col("yyyymm") < "201911")))
    summaries = groups.group_summaries(month, groups.near_duplicate_groups(month, vectorizer=vec), vectorizer=vec)
    assert summaries and summaries[0]["size"] >= 20
    html = render(month, building_id=BUILDING, building_name="본청", month=MONTH,
                  run_id=RUN_ID, generated_at=GENERATED_AT, issues=summaries, embed_font=False)
    block = re.search(r'<section class="card" id="issues".*?</section>', html, re.S).group(0)
    text = " ".join(" ".join(parse(block).text).split())
    top = summaries[0]
    label, count = top["top_subject"][0]
    assert f"{top['size']}건" in text and f"대표 VOC {top['representative']['voc_id']}" in text
    assert f"{top['first_date']} ~ {top['last_date']}" in text
    assert f"주제 {label} {count}건" in text and "신선초" in text
    assert block.count("<li>") == len(summaries)
    assert block.count('<span class="tag">작업') == sum(min(3, len(s["top_work"])) for s in summaries)


# --------------------------------------------------------------------------------------------
# tags a building manager can trust (issue 20): 추정, 검수 전, the top subject, drift notes


@pytest.fixture(scope="module")
def demo(sample_df):
    return demo_month(sample_df)


def _conf_cells(html: str) -> list[dict[str, str]]:
    """{"주제": cell text, "작업": cell text} per row of the VOC table."""
    out = []
    for cell in re.findall(r'<td class="conf">(.*?)</td>', html, re.S):
        parts = re.findall(r'<span class="dim">(.*?)</span>(.*?)</div>', cell, re.S)
        out.append({dim: re.sub(r"<[^>]+>", "", rest).strip() for dim, rest in parts})
    return out


def test_demo_month_before_review_says_what_is_a_guess_and_what_is_pending(demo):
    """Measured on `voc demo` (2019-11, building 1): 41 keyword-guessed work types shown with
    confidences ("작업 0.74"), "추정" 0 times, no word that nothing was reviewed, 최다 주제
    "신흥동 27건 (66%)" as a fact, and the alert "주제 비중 증가: 신흥동 0% → 66%"."""
    from voc import groups
    from voc.drift import drift_messages
    from voc.pipeline import review_flag_mask

    month, gids, history = demo
    assert (month["work_source"] == "keyword").all()
    n_low = int(review_flag_mask(month, DEMO_THRESHOLDS).sum())  # 검토 우선, as the pipeline counts it
    issues = groups.group_summaries(month, gids)
    drift = drift_messages(reviewed=month, model_labels={"subject": []}, history=history,
                           group_ids=gids, thresholds=DEMO_THRESHOLDS)
    html = render(
        month, building_id=BUILDING, building_name="본청", month=MONTH, history=history,
        run_id=RUN_ID, generated_at=GENERATED_AT, review_status=d.ReviewStatus(41, 0, n_low),
        drift=drift, low_confidence=DEMO_THRESHOLDS["subject"], issues=issues, embed_font=False,
    )
    p = parse(html)
    assert not p.errors and not p.stack
    text = page_text(html)
    # 1. every keyword-guessed work type is 추정, with no confidence number; the model's subject keeps its own
    cells = _conf_cells(html)
    assert len(cells) == 41
    assert all(c["작업"] == "추정" for c in cells)
    assert all(re.fullmatch(r"\d\.\d\d", c["주제"]) for c in cells)
    assert html.count('<span class="guess"') >= 2 * 41  # the tag and its confidence cell
    assert "작업유형 대분류별 건수 (추정)" in text and "작업유형 중분류별 건수 (추정)" in text
    assert "키워드 규칙으로 추정한 분류 — 학습된 모델의 출력이 아님" in text
    assert "주제 대분류별 건수 (추정)" not in text and "주제 대분류별 건수" in text
    assert re.search(r"작업 [^ ]+ \d+건 \(추정\)", text)  # 주요 이슈 tags too
    # 2. before review: said near the top, with the 검토 우선 rows still waiting
    assert n_low >= 27
    top = text[: text.index("총 VOC")]
    assert "검수 전" in top and f"검토 우선(신뢰도가 기준 미만)인 {n_low}건 ({n_low / 41 * 100:.0f}%) 이 검수를 기다립니다" in top
    assert "작업유형 분류는 키워드 규칙으로 추정한 값(추정)" in top
    # 4. the top subject is one mis-tagged mass complaint of low confidence: said so
    assert "최다 주제 신흥동 27건 (66%) · 집단 민원 1건(27건) 포함, 검수 전 저신뢰 27건" in text
    # 3. no share alert from it: a note to check after review
    assert "주제 비중 증가: 신흥동" not in text and 'id="drift"' not in html
    notes = re.search(r'<section class="card drift-soft" id="drift-notes".*?</section>', html, re.S).group(0)
    assert "집단 민원 1건 (VOC 28건): 주제 신흥동 비중 0% → 66%" in page_text(notes)
    assert "검수 후 확인하세요" in page_text(notes)


def test_reviewed_tags_show_as_reviewed_and_guesses_stay_guesses(month):
    done = _reviewed_month(month, 1.0)
    assert (done["subject_source"] == "reviewer").all() and (done["work_source"] == "keyword").all()
    html = render(done, building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
                  generated_at=GENERATED_AT, reviewed=True, embed_font=False,
                  review_status=d.ReviewStatus(41, 41, 0))
    cells = _conf_cells(html)
    assert cells and all(c == {"주제": "검수", "작업": "추정"} for c in cells)  # no model number by a reviewer's label
    text = page_text(html)
    assert 'id="pre-review"' not in html and "검수 진행 41 / 41건" in text and "검수 반영" in text
    assert "주제 대분류별 건수" in text and "주제 대분류별 건수 (추정)" not in text
    assert "작업유형 대분류별 건수 (추정)" in text


def test_unreviewed_page_without_review_status_says_before_review(month):
    html = render(month, building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
                  generated_at=GENERATED_AT, embed_font=False)
    n_low = month.filter(_low(month)).height
    text = page_text(html)
    assert 'id="pre-review"' in html and f"{n_low}건 ({n_low / 41 * 100:.0f}%) 이 검수를 기다립니다" in text
    half = _reviewed_month(month, 0.5)
    assert 'id="pre-review"' not in render(
        half, building_id=BUILDING, building_name="본청", month=MONTH, run_id=RUN_ID,
        generated_at=GENERATED_AT, embed_font=False, reviewed=True)


def test_compact_page_marks_keyword_guesses(small_month):
    html = render(small_month, building_id="2", building_name="", month=MONTH, run_id=RUN_ID,
                  generated_at=GENERATED_AT, embed_font=False)
    text = page_text(html)
    assert "작업유형별 건수 (추정)" in text and "주제별 건수 (추정)" not in text
    assert all(c["작업"] == "추정" for c in _conf_cells(html)) and "검수 전" in text
