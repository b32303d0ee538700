"""Monthly VOC dashboard: one self-contained HTML page per building and month.

The page is rendered with jinja2 (autoescape on) from ``voc/templates/dashboard.html.j2`` and
holds everything it needs inline, so it opens offline from a file share or an e-mail attachment:

* when the page has charts, plotly.js once — the vendored *basic* partial bundle
  (``voc/templates/vendor/plotly-basic.min.js``, plotly.js 4.1.1 with the bar, pie and scatter
  traces, 1.2 MB; the charts use bars only) instead of the 4.8 MB full bundle — and the figures
  as JSON produced by plotly's own serializer (which escapes ``<``, ``>`` and ``/``, so no text
  can close the ``<script>`` element that carries it);
* a subset of the NanumGothic font (only the characters the page uses, as a ``data:`` WOFF
  ``@font-face``) so that Hangul renders on machines without a Korean font;
* the word cloud as a ``data:image/png`` URI (a 64-colour palette PNG);
* a Content-Security-Policy that forbids every network request (``default-src 'none'``).

Personal details (e-mail addresses, phone and resident registration numbers) are masked in
everything the page shows (:mod:`voc.privacy`); the tagged CSV keeps the original text.

A month of the shipped sample's busiest building (41 VOCs) renders to about 1.6 MB.

What the page shows (labels in Korean): title with building and month, KPI cards (total, change
against the previous month, daily mean, low-confidence rows nobody reviewed), counts by subject
and work type (대분류 and 중분류), the daily trend, the last up-to-6 months' totals and subject
shares when history is given, top keywords with a word cloud, and the table of VOCs with their
tags and confidences. Optional blocks: review progress, drift notes, 주요 이슈 (groups of
similar VOCs), a data-source credit line.

What the page claims says how sure it is: a keyword-guessed dimension (``{dim}_source ==
"keyword"``) is marked 추정 on its tags, charts, tables and 주요 이슈 tags and shows no confidence
(a keyword score is none), a reviewer's label shows 검수; a month nobody has reviewed says 검수 전
at the top with its 검토 우선 rows; the 최다 주제 card names a mass complaint or low-confidence
tags behind its count; drift notes that are no alert (``voc.drift.PENDING_PREFIX``,
``GROUP_PREFIX``) are listed apart from the alerts.

Buildings with fewer than :data:`COMPACT_BELOW` VOCs in the month get a **compact** page: KPI
cards (no daily mean), count tables and the VOC table — no charts, keywords or word cloud (with
a handful of VOCs they show noise) and no plotly.js (about 0.2 MB).

:func:`render_month_index` renders the month's index page that links the buildings' dashboards.

Keyword pipeline::

    texts = keyword_texts(tagged)                        # title + request of each VOC
    nouns = KiwiTokenizer().keyword_nouns_batch(texts)   # NNG/NNP nouns per VOC
    kw = keyword_counts(nouns, top_k=50)                 # [(noun, n_vocs), ...]
    png = render_wordcloud_png(dict(kw))
    html = render_dashboard(tagged, DashboardContext(...), DashboardContent(keywords=kw, wordcloud_png=png))

Everything here is pure: no network, no files written, no global state (the Hangul font is read
from the installed ``koreanize-matplotlib`` package, which is *not* imported).
"""

from __future__ import annotations

import base64
import functools
import glob
import importlib.util
import io
import json
import math
import os
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from voc.drift import is_alert
from voc.months import month_range, months_before, parse_month
from voc.privacy import mask_personal_details, remove_personal_details

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "ReviewStatus",
    "DashboardContext",
    "DashboardContent",
    "DashboardOptions",
    "DEFAULT_STOPWORDS",
    "SAMPLE_SOURCE_CREDIT",
    "UNCLASSIFIED",
    "REQUIRED_DASHBOARD_COLUMNS",
    "ISSUE_FIELDS",
    "INDEX_FIELDS",
    "COMPACT_BELOW",
    "hangul_font_path",
    "plotly_js_bundle",
    "keyword_texts",
    "keyword_counts",
    "keyword_doc_freq",
    "render_wordcloud_png",
    "render_dashboard",
    "render_month_index",
    "review_state_text",
    "estimated_text",
]

UNCLASSIFIED = "미분류"
"""Shown for a null or empty major/minor (e.g. a dimension the tagger did not tag)."""

SAMPLE_SOURCE_CREDIT = "Incheon Jung-gu office complaint board, via 2hy03/Civil_Complaint"
"""Credit line required wherever the shipped sample is shown (its README)."""

DEFAULT_STOPWORDS: frozenset[str] = frozenset(
    {
        "민원", "답변", "문의", "내용", "관련", "부탁", "감사", "요청", "해당", "경우", "확인",
        "사항", "말씀", "생각", "안녕", "수고", "처리", "부분", "정도", "이번", "지금", "현재",
        "당시", "계속", "자체", "그동안", "그때", "오늘", "어제", "이용", "사용", "진행", "조치",
        "검토", "질문", "게시", "작성", "글", "제목", "귀하", "민원인", "담당", "담당자", "연락",
        "전화", "회신", "답변서", "의견", "방법", "문제", "때문", "이유", "상황", "다음", "이상",
    }
)
"""Generic complaint words left out of keyword counts and word clouds (nouns that occur in most
VOCs and say nothing about the problem: 민원, 답변, 문의, 감사, 요청, 확인, …)."""

REQUIRED_DASHBOARD_COLUMNS: tuple[str, ...] = (
    "voc_id",
    "created_at",
    "title",
    "subject_major",
    "subject_minor",
    "subject_confidence",
    "work_major",
    "work_minor",
    "work_confidence",
)
"""Columns :func:`render_dashboard` needs; the other :data:`voc.schema.TAGGED_COLUMNS`
(``request_contents``, ``reply``, ``flags``, ``*_source``, ``model_version``, ``building_id``)
are used when present."""

COMPACT_BELOW = 10
"""Buildings with fewer VOCs than this in the month get the compact page (no charts, keywords,
word cloud or daily mean): counts of 1–2 per class say nothing a table does not."""

TABLE_MAX_ROWS = 2000
"""VOCs listed in a dashboard's VOC table at most (:class:`DashboardOptions`): a building-month
above it lists its newest ones and says so, so that a 200,000-VOC month gives a page a browser
opens (every VOC is in the tagged CSV and the review sheet; counts, charts and keywords cover all)."""

ISSUE_FIELDS: tuple[str, ...] = ("size", "voc_id", "title", "request", "first_date", "last_date")
"""Required keys of one 주요 이슈 entry: ``size`` (int ≥ 1, VOCs in the group), ``voc_id``,
``title``, ``request`` of the representative VOC, ``first_date``/``last_date``
(``"YYYY-MM-DD"``, :class:`datetime.date` or None when unknown). Optional: ``subject`` and
``work`` (the group's top tag as text, or None), ``voc_ids`` (the group's members: lets the
최다 주제 card say when its count is mostly one group).

The output of ``voc.groups.group_summaries`` is accepted as it is: ``voc_id``/``title``/
``request`` nested under ``representative``, and ``top_subject``/``top_work`` as lists of
``(label, count)`` (up to three shown as tags, ``"도시재생국>건축과 28건"``)."""

INDEX_FIELDS: tuple[str, ...] = (
    "building_id", "building_name", "n_vocs", "n_reviewed", "n_low_confidence_unreviewed",
    "dashboard_href",
)
"""Required keys of one building of :func:`render_month_index`."""

_FONT_PACKAGE = "koreanize_matplotlib"
_FONT_FAMILY = "VOC NanumGothic"
_CSS_FONT_STACK = (
    f"'{_FONT_FAMILY}', 'Malgun Gothic', '맑은 고딕', 'Apple SD Gothic Neo', 'Noto Sans KR', "
    "'NanumGothic', sans-serif"
)
_PALETTE = ("#2f6db5", "#e07b39", "#3a9e6f", "#c4474f", "#7d5ab5", "#8c6d46", "#d163a8",
            "#6f7a85", "#b5a22f", "#2fa3b5")
_OTHER = "그 외"
_FLAG_NAMES = {
    "empty_text": "빈 본문",
    "truncated": "잘린 본문",
    "duplicate_merged": "중복 병합",
    "group_dissent": "묶음과 다른 분류",  # kept its own tag against its near-duplicate group (voc.pooling)
}
_PLOTLY_BUNDLE = "vendor/plotly-basic.min.js"  # under voc/templates, see vendor/README.md
_DIM_NAMES = {"subject": "주제", "work": "작업유형"}
_GUESS = "추정"  # a keyword guess, as the review workbook marks it (voc.review.GUESS_SUFFIX)
_GUESS_SOURCES = frozenset({"keyword"})  # ``{dim}_source`` of a keyword guess: no model, no confidence
_REVIEWER_SOURCES = frozenset({"reviewer", "reviewer_group"})  # a reviewer's label (voc.review)
_WORDCLOUD_COLORS = 64
_ISSUE_TITLE_CHARS = 80
_ISSUE_EXCERPT_CHARS = 160
_CREDIT_PREFIX = "데이터 출처"
_TABLE_TITLE_CHARS = 40
_AXIS_LABEL_CHARS = 16
_MINOR_TOP = 15
_SHARE_TOP = 6
_HISTORY_MONTHS = 6


# --------------------------------------------------------------------------------------------
# review status


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    """Progress of the month's review, shown prominently at the top of the page.

    Parameters
    ----------
    n_total
        VOCs of the building and month (rows offered for review).
    n_reviewed
        Rows a reviewer has confirmed or corrected, ``0 <= n_reviewed <= n_total``.
    n_low_confidence_unreviewed
        Rows below the low-confidence threshold that nobody has reviewed yet,
        ``0 <= n_low_confidence_unreviewed <= n_total - n_reviewed``.

    Raises
    ------
    ValueError
        On a negative count or counts that contradict each other.
    """

    n_total: int
    n_reviewed: int
    n_low_confidence_unreviewed: int

    def __post_init__(self) -> None:
        for name in ("n_total", "n_reviewed", "n_low_confidence_unreviewed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"ReviewStatus.{name} must be a non-negative int, got {v!r}")
        if self.n_reviewed > self.n_total:
            raise ValueError(
                f"ReviewStatus.n_reviewed ({self.n_reviewed}) exceeds n_total ({self.n_total})"
            )
        if self.n_low_confidence_unreviewed > self.n_total - self.n_reviewed:
            raise ValueError(
                f"ReviewStatus.n_low_confidence_unreviewed ({self.n_low_confidence_unreviewed}) "
                f"exceeds the unreviewed rows ({self.n_total - self.n_reviewed})"
            )

    @property
    def reviewed_percent(self) -> float:
        """Share of reviewed rows in percent (0 when there are no rows)."""
        return 100.0 * self.n_reviewed / self.n_total if self.n_total else 0.0


# --------------------------------------------------------------------------------------------
# what a dashboard is rendered from


@dataclass(frozen=True, slots=True)
class DashboardContext:
    """Who and when a dashboard is for: the building, the month and the run (plain data).

    Attributes
    ----------
    building_id, building_name
        Shown in the title (``building_name`` may be empty; its personal details are masked,
        :func:`voc.privacy.mask_personal_details`).
    month
        ``"YYYY-MM"``: a :class:`voc.months.Month`, or any form :func:`voc.months.parse_month`
        accepts.
    run_id, generated_at
        Shown in the header, e.g. ``"full_20191201_020000"`` and ``"2019-12-01 02:00 KST"``
        (the caller's clock, formatted: nothing here reads a clock).
    source_credit
        Data-source line of the footer (plain text; :data:`SAMPLE_SOURCE_CREDIT` for the shipped
        sample), or None. Shown as ``데이터 출처: …`` once, whether or not the text already starts
        with ``데이터 출처:``.
    """

    building_id: str
    building_name: str
    month: str
    run_id: str
    generated_at: str
    source_credit: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class DashboardContent:
    """What a dashboard shows besides the month's rows; every part is optional.

    Attributes
    ----------
    history
        Earlier tagged rows (the month's columns), any number of months and buildings, or None.
        Only rows of the context's building (when the column exists) dated in the
        :data:`_HISTORY_MONTHS` (6) months before its month are used: monthly totals and
        subject-major shares from the oldest such month to the month (charts, full page only)
        and the previous month's total (전월 대비 card, both layouts).
    keywords
        ``(noun, number of VOCs)`` pairs, most frequent first (:func:`keyword_counts`); the
        first ``DashboardOptions.top_keywords`` are charted (full page only).
    wordcloud_png
        PNG bytes (:func:`render_wordcloud_png`), embedded as a ``data:`` URI (full page only).
    review_status
        When given, review progress and the number of low-confidence rows nobody reviewed are
        shown at the top (the caller's numbers), and the 저신뢰 미검수 KPI card is left out (one
        number, not two).
    drift
        Notes such as ``"새 분류: 시설>승강기"`` (:func:`voc.drift.drift_messages`), listed under
        분류 변화 알림; those starting with ``검수 후 확인`` or ``집단 민원``
        (:data:`voc.drift.PENDING_PREFIX`, :data:`voc.drift.GROUP_PREFIX`: no alert,
        :func:`voc.drift.is_alert`) under 검수 후 확인할 변화.
    reviewed
        Labels come from review: shows the 검수 반영 badge.
    issues
        주요 이슈 entries (:data:`ISSUE_FIELDS`, e.g. ``voc.groups.group_summaries``), shown in the
        given order in both layouts; None or empty: no section.
    """

    history: pl.DataFrame | None = None
    keywords: Sequence[tuple[str, int]] = ()
    wordcloud_png: bytes | None = None
    review_status: ReviewStatus | None = None
    drift: Sequence[str] = ()
    reviewed: bool = False
    issues: Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class DashboardOptions:
    """How a dashboard is drawn.

    Attributes
    ----------
    low_confidence
        Confidence threshold in [0, 1] (default 0.5, the review threshold of a model that
        carries none, ``voc.pipeline.DEFAULT_LOW_CONFIDENCE``): rows nobody reviewed with a
        subject or work confidence below it are highlighted and counted as 저신뢰 미검수;
        reviewed rows and keyword guesses (``{dim}_source == "keyword"``, shown as 추정 without a
        number) never are. With no row reviewed (``review_status.n_reviewed == 0``, or no
        reviewed row in the frame when ``review_status`` is None) the page says 검수 전 at the
        top with that count and share.
    embed_font
        Embed a NanumGothic subset (only the characters of the page, ~100–400 kB) so that Hangul
        renders without a Korean system font.
    top_keywords
        Keywords shown in the bar chart (default 20).
    compact_below
        With fewer than this many VOCs (default :data:`COMPACT_BELOW` = 10) the page is compact:
        KPI cards without daily mean and top subject, count tables, the VOC table; no charts,
        keywords, word cloud or plotly.js. ``0`` always renders the full page.
    table_max_rows
        VOCs listed in the VOC table at most (default :data:`TABLE_MAX_ROWS`): above it, the
        newest ones (by ``created_at``, then ``voc_id``), in date order, and the heading says how
        many of how many.

    Raises
    ------
    ValueError
        ``low_confidence`` outside [0, 1] or ``compact_below`` < 0.
    """

    low_confidence: float = 0.5
    embed_font: bool = True
    top_keywords: int = 20
    compact_below: int = COMPACT_BELOW
    table_max_rows: int = TABLE_MAX_ROWS

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_confidence <= 1.0:
            raise ValueError(f"low_confidence must be in [0, 1], got {self.low_confidence!r}")
        if self.compact_below < 0:
            raise ValueError(f"compact_below must be >= 0, got {self.compact_below!r}")
        if self.table_max_rows < 1:
            raise ValueError(f"table_max_rows must be >= 1, got {self.table_max_rows!r}")


# --------------------------------------------------------------------------------------------
# font, keywords, word cloud


def hangul_font_path(*, bold: bool = False) -> Path:
    """Path of a NanumGothic ``.ttf`` shipped by the ``koreanize-matplotlib`` dependency.

    The package is located with :func:`importlib.util.find_spec` and **not imported** (importing
    it changes matplotlib's global font settings).

    Parameters
    ----------
    bold
        Prefer ``NanumGothicBold.ttf`` (word clouds) over the regular ``NanumGothic.ttf`` (text).

    Returns
    -------
    Path
        An existing font file with Hangul glyphs.

    Raises
    ------
    FileNotFoundError
        When ``koreanize-matplotlib`` is not installed or ships no ``NanumGothic*.ttf``; the
        message names the package to install.
    """
    spec = importlib.util.find_spec(_FONT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    found: list[Path] = []
    for loc in locations:
        found += [Path(p) for p in glob.glob(os.path.join(loc, "**", "NanumGothic*.ttf"), recursive=True)]
    if not found:
        raise FileNotFoundError(
            "no NanumGothic*.ttf found: the Hangul font for dashboards comes from the Python "
            "package 'koreanize-matplotlib' (pip install koreanize-matplotlib==0.1.1)"
            + (f"; searched {locations}" if locations else "; the package is not installed")
        )
    preferred = ("NanumGothicBold.ttf", "NanumGothic.ttf") if bold else ("NanumGothic.ttf", "NanumGothicBold.ttf")
    by_name = {p.name: p for p in found}
    for name in preferred:
        if name in by_name:
            return by_name[name]
    return sorted(found)[0]


def plotly_js_bundle() -> str:
    """The vendored plotly.js partial bundle embedded in dashboards with charts.

    ``voc/templates/vendor/plotly-basic.min.js``: plotly.js 4.1.1 "basic" (trace types bar,
    pie, scatter; npm ``plotly.js-basic-dist-min``, MIT, provenance and hashes in
    ``vendor/README.md``), read from the installed package (package data), not from the network.

    Returns
    -------
    str
        The minified JavaScript (about 1.19 MB), starting with its licence comment
        ``/** * plotly.js (basic - minified) v4.1.1 …``.

    Raises
    ------
    FileNotFoundError
        The package was installed without its ``templates/vendor/*`` package data.
    """
    from importlib.resources import files

    res = files("voc").joinpath("templates", *_PLOTLY_BUNDLE.split("/"))
    if not res.is_file():
        raise FileNotFoundError(
            f"plotly.js bundle voc/templates/{_PLOTLY_BUNDLE} is missing: the voc package was "
            "installed without its package data (pyproject [tool.setuptools.package-data])"
        )
    return res.read_text(encoding="utf-8")


def keyword_texts(tagged: pl.DataFrame) -> list[str]:
    """The text each VOC contributes to keywords: ``title`` + newline + ``request_contents``.

    The reply is left out: it is the office's wording, not the customer's. Personal details
    (e-mail addresses, phone and resident registration numbers) are removed
    (:func:`voc.privacy.remove_personal_details`): keywords and the word cloud never show them.

    Parameters
    ----------
    tagged
        ``N × C`` frame with ``title`` and optionally ``request_contents`` (nulls allowed).

    Returns
    -------
    list[str]
        N strings, in row order (feed to ``KiwiTokenizer.keyword_nouns_batch``).
    """
    titles = tagged["title"].cast(pl.Utf8).fill_null("").to_list() if "title" in tagged.columns else [""] * tagged.height
    reqs = (
        tagged["request_contents"].cast(pl.Utf8).fill_null("").to_list()
        if "request_contents" in tagged.columns
        else [""] * tagged.height
    )
    return [remove_personal_details(f"{t}\n{r}").strip() for t, r in zip(titles, reqs)]


def keyword_doc_freq(nouns: Iterable[Sequence[str]], into: Counter[str] | None = None) -> Counter[str]:
    """``{noun: number of VOCs whose noun list contains it}`` for :func:`keyword_counts` (nouns
    cleaned as it describes, no stop word removed), added to ``into`` when given: a month
    analysed in chunks is counted chunk by chunk, and :func:`keyword_counts` of the total equals
    that of all noun lists at once."""
    doc_freq: Counter[str] = Counter() if into is None else into
    for doc in nouns:
        doc_freq.update({w for n in doc if n and (w := remove_personal_details(n).strip()) == n.strip() and w})
    return doc_freq


def keyword_counts(
    nouns: Sequence[Sequence[str]] | Mapping[str, int],
    *,
    top_k: int | None = 50,
    stopwords: Collection[str] = DEFAULT_STOPWORDS,
    min_count: int = 1,
) -> list[tuple[str, int]]:
    """Most frequent keyword nouns of a month, counted in **documents** (VOCs).

    A noun's count is the number of VOCs whose noun list contains it at least once, so one long
    complaint that repeats a word twenty times cannot dominate the month.

    Parameters
    ----------
    nouns
        N noun lists, one per VOC (``KiwiTokenizer.keyword_nouns_batch`` of
        :func:`keyword_texts`), or their :func:`keyword_doc_freq` (``{noun: number of VOCs}``,
        e.g. summed over the chunks of a large month).
    top_k
        Number of keywords returned (``None``: all), must be ≥ 1.
    stopwords
        Nouns never counted (default :data:`DEFAULT_STOPWORDS`; pass ``()`` to keep all).
    min_count
        Nouns in fewer VOCs than this are dropped (≥ 1).

    Returns
    -------
    list[tuple[str, int]]
        ``(noun, number of VOCs)`` pairs, most frequent first, ties in code-point order of the
        noun (deterministic); at most ``top_k`` pairs. Blank nouns are ignored, and so is a
        noun holding a personal detail (:func:`voc.privacy.remove_personal_details`).

    Raises
    ------
    ValueError
        ``top_k`` < 1 or ``min_count`` < 1.
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k!r}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count!r}")
    stop = frozenset(stopwords)
    doc_freq = nouns if isinstance(nouns, Mapping) else keyword_doc_freq(nouns)
    items = sorted(
        ((n, c) for n, c in doc_freq.items() if c >= min_count and n not in stop), key=lambda nc: (-nc[1], nc[0])
    )
    return items if top_k is None else items[:top_k]


def render_wordcloud_png(
    freqs: Mapping[str, int],
    *,
    width: int = 800,
    height: int = 400,
    font_path: Path | None = None,
    random_state: int = 0,
    max_words: int = 100,
) -> bytes:
    """Word cloud of keyword frequencies as PNG bytes (in memory, no files).

    Parameters
    ----------
    freqs
        ``{word: weight}`` with positive weights (e.g. ``dict(keyword_counts(...))``).
    width, height
        Image size in pixels.
    font_path
        A TrueType font with Hangul glyphs; default :func:`hangul_font_path` (bold).
    random_state
        Seed of word placement and colours: equal inputs give byte-identical PNGs.
    max_words
        At most this many words are drawn (the heaviest).

    Returns
    -------
    bytes
        A ``width × height`` PNG, white background, reduced to a 64-colour palette (the ten
        word colours and their anti-aliasing shades: a quarter of the RGB PNG's size).

    Raises
    ------
    ValueError
        ``freqs`` has no word with a positive weight, or a non-positive size.
    FileNotFoundError
        No font given and the NanumGothic font is missing (see :func:`hangul_font_path`).
    """
    from wordcloud import WordCloud

    if width < 1 or height < 1:
        raise ValueError(f"word cloud size must be positive, got {width}x{height}")
    words = {str(w): float(c) for w, c in freqs.items()
             if str(w).strip() and c and c > 0 and mask_personal_details(str(w)) == str(w)}  # no personal detail drawn
    if not words:
        raise ValueError("word cloud needs at least one word with a positive frequency")
    font = Path(font_path) if font_path is not None else hangul_font_path(bold=True)
    if not font.is_file():
        raise FileNotFoundError(f"word cloud font not found: {font}")

    def color_func(word: str, font_size: int, position: Any, orientation: Any,
                   random_state: random.Random | None = None, **kwargs: Any) -> str:
        rng = random_state if random_state is not None else random.Random(0)
        return _PALETTE[rng.randrange(len(_PALETTE))]

    wc = WordCloud(
        width=width,
        height=height,
        font_path=str(font),
        background_color="white",
        mode="RGB",
        prefer_horizontal=1.0,
        max_words=max_words,
        random_state=random_state,
        color_func=color_func,
        margin=4,
        relative_scaling=0.5,
        min_font_size=10,
    ).generate_from_frequencies(words)
    from PIL import Image

    img = wc.to_image().quantize(
        colors=_WORDCLOUD_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# frames → numbers


def _check_columns(df: pl.DataFrame, name: str) -> None:
    missing = [c for c in REQUIRED_DASHBOARD_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{name} frame is missing column(s) {missing}; required: {list(REQUIRED_DASHBOARD_COLUMNS)}"
        )


def _as_dates(df: pl.DataFrame, name: str) -> pl.DataFrame:
    s = df["created_at"]
    if s.dtype == pl.Date:
        return df
    if isinstance(s.dtype, pl.Datetime):
        return df.with_columns(pl.col("created_at").dt.date())
    parsed = s.cast(pl.Utf8, strict=False).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    bad = parsed.is_null() & s.is_not_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        raise ValueError(f"{name} row {i + 1}: created_at is not a date 'YYYY-MM-DD': {s[i]!r}")
    return df.with_columns(parsed.alias("created_at"))


def _label_expr(col: str) -> pl.Expr:
    s = pl.col(col).cast(pl.Utf8, strict=False).str.strip_chars()
    return pl.when(s.is_null() | (s == "")).then(pl.lit(UNCLASSIFIED)).otherwise(s).alias(col)


_TRUE = frozenset({"true", "1", "y", "yes", "t"})
_FALSE = frozenset({"false", "0", "n", "no", "f", ""})


def _as_bool(df: pl.DataFrame, col: str, name: str) -> pl.DataFrame:
    """``col`` as Boolean (nulls → False); text ``true/false/1/0/y/n`` (any case, as a CSV gives
    it back) is accepted, anything else raises ValueError naming the row."""
    s = df[col]
    if s.dtype == pl.Boolean:
        return df.with_columns(s.fill_null(False))
    text = s.cast(pl.Utf8, strict=False).fill_null("").str.strip_chars().str.to_lowercase()
    bad = ~(text.is_in(list(_TRUE)) | text.is_in(list(_FALSE)))
    if bad.any():
        i = int(bad.arg_true()[0])
        raise ValueError(f"{name} row {i + 1}: {col} is not a boolean (true/false): {s[i]!r}")
    return df.with_columns(text.is_in(list(_TRUE)).alias(col))


def _normalise(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Labels: null/empty → 미분류; confidences → Float64 (nulls kept); text → Utf8 without
    nulls; created_at → Date; ``is_reviewed`` (when present) → Boolean."""
    _check_columns(df, name)
    df = _as_dates(df, name)
    if "is_reviewed" in df.columns:
        df = _as_bool(df, "is_reviewed", name)
    text_cols = [c for c in ("voc_id", "title", "request_contents", "reply", "flags", "building_id",
                             "subject_source", "work_source", "model_version") if c in df.columns]
    return df.with_columns(
        *[_label_expr(c) for c in ("subject_major", "subject_minor", "work_major", "work_minor")],
        *[pl.col(c).cast(pl.Float64, strict=False) for c in ("subject_confidence", "work_confidence")],
        *[pl.col(c).cast(pl.Utf8, strict=False).fill_null("") for c in text_cols],
    )


def _counts(df: pl.DataFrame, cols: Sequence[str]) -> list[tuple[tuple[str, ...], int]]:
    """Row counts per distinct value tuple of ``cols``, largest first, ties by value."""
    if df.height == 0:
        return []
    g = df.group_by(list(cols)).len().sort(["len", *cols], descending=[True, *[False] * len(cols)])
    return [(tuple(r[:-1]), int(r[-1])) for r in g.iter_rows()]


def _month_key(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def _month_label(month: str) -> str:
    y, m = month.split("-")
    return f"{int(y)}년 {int(m)}월"


def _short_month(month: str) -> str:
    """Two-line axis label ``"19년<br>11월"`` (narrow enough not to be rotated)."""
    y, m = month.split("-")
    return f"{y[2:]}년<br>{int(m)}월"


def _fmt_conf(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _truncate(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


# --------------------------------------------------------------------------------------------
# figures


def _plotly_text(s: str) -> str:
    """Plotly renders a small HTML subset inside SVG text (``<b>``, ``<a href>``…); entity-escape
    so every label is shown literally."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _base_layout(height: int, **kw: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": {},
        "height": height,
        "margin": {"l": 10, "r": 20, "t": 10, "b": 30},
        "font": {"family": _CSS_FONT_STACK, "size": 12, "color": "#222"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "showlegend": False,
        "hoverlabel": {"font": {"family": _CSS_FONT_STACK}},
        "separators": ".,",
    }
    layout.update(kw)
    return layout


def _axis_labels(labels: Sequence[str], max_chars: int = _AXIS_LABEL_CHARS) -> list[str]:
    """Category labels cut to ``max_chars`` characters (``…``), kept distinct: plotly merges equal
    categories into one bar, so a cut label that collides gets a counter."""
    out: list[str] = []
    seen: set[str] = set()
    for lab in labels:
        short = lab if len(lab) <= max_chars else lab[: max_chars - 1] + "…"
        k = 2
        base = short
        while short in seen:
            short = f"{base}({k})"
            k += 1
        seen.add(short)
        out.append(short)
    return out


def _hbar(labels: Sequence[str], values: Sequence[int], *, color: str, hover: Sequence[str] | None = None,
          name: str = "건수") -> Any:
    """Horizontal bar chart, first label on top."""
    import plotly.graph_objects as go

    n = len(labels)
    hover = [_plotly_text(x) for x in (hover if hover is not None else labels)]
    labels = [_plotly_text(x) for x in _axis_labels(labels)]
    fig = go.Figure(
        go.Bar(
            x=list(values),
            y=list(labels),
            orientation="h",
            marker={"color": color},
            text=[f"{v:,}" for v in values],
            textposition="outside",
            cliponaxis=False,
            customdata=list(hover),
            hovertemplate="%{customdata}: %{x:,}건<extra></extra>",
            name=name,
        )
    )
    vmax = max(values) if values else 1
    fig.update_layout(
        _base_layout(
            max(140, 40 + 26 * n),
            xaxis={"range": [0, vmax * 1.18 + 0.5], "showgrid": True, "gridcolor": "#eee",
                   "zeroline": False, "tickformat": ",d", "rangemode": "tozero"},
            yaxis={"autorange": "reversed", "automargin": True, "ticksuffix": "  "},
            bargap=0.3,
        )
    )
    return fig


def _minor_labels(rows: Sequence[tuple[tuple[str, ...], int]]) -> tuple[list[str], list[str], list[int]]:
    """Labels for (major, minor) counts: the minor, with its major when the minor name is not
    unique among the shown rows or is 미분류; top :data:`_MINOR_TOP`, the rest summed as 그 외."""
    top, rest = rows[:_MINOR_TOP], rows[_MINOR_TOP:]
    minor_names = Counter(k[1] for k, _ in top)
    labels, hover, values = [], [], []
    for (major, minor), n in top:
        ambiguous = minor_names[minor] > 1 or minor in (UNCLASSIFIED, "기타") or minor == major
        labels.append(f"{minor} ({major})" if ambiguous and minor != major else minor)
        hover.append(f"{major} > {minor}")
        values.append(n)
    if rest:
        labels.append(f"{_OTHER} {len(rest)}개 분류")
        hover.append(f"{_OTHER} {len(rest)}개 중분류")
        values.append(sum(n for _, n in rest))
    return labels, hover, values


def _daily_fig(df: pl.DataFrame, month: str) -> Any:
    import plotly.graph_objects as go

    start, end = month_range(month)
    days = [start + timedelta(days=i) for i in range((end - start).days)]
    per_day = dict(df.group_by("created_at").len().iter_rows()) if df.height else {}
    counts = [int(per_day.get(d, 0)) for d in days]
    weekday = "월화수목금토일"
    colors = ["#c4474f" if d.weekday() == 6 else "#2f6db5" if d.weekday() == 5 else "#5b8fd0" for d in days]
    fig = go.Figure(
        go.Bar(
            x=[str(d.day) for d in days],
            y=counts,
            marker={"color": colors},
            customdata=[f"{d.isoformat()} ({weekday[d.weekday()]})" for d in days],
            hovertemplate="%{customdata}: %{y:,}건<extra></extra>",
            name="일별 건수",
        )
    )
    vmax = max(counts) if counts else 0
    fig.update_layout(
        _base_layout(
            260,
            margin={"l": 40, "r": 10, "t": 10, "b": 50},
            xaxis={"type": "category", "tickangle": 0, "tickfont": {"size": 10},
                   "title": {"text": f"{start.month}월 일자", "font": {"size": 11}}},
            yaxis={"title": {"text": "건수"}, "gridcolor": "#eee", "rangemode": "tozero",
                   "tickformat": ",d", "dtick": max(1, math.ceil(vmax / 5)) if vmax else 1},
            bargap=0.2,
        )
    )
    return fig


def _history_months(hist: pl.DataFrame, month: str) -> list[str]:
    """From the oldest history month within the last :data:`_HISTORY_MONTHS` to ``month``."""
    window = months_before(month, _HISTORY_MONTHS)
    present = {_month_key(d) for d in hist["created_at"].to_list() if d is not None} if hist.height else set()
    first = next((m for m in window if m in present), None)
    return (window[window.index(first):] if first else []) + [month]


def _monthly_fig(month_counts: Sequence[tuple[str, int]], month: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Bar(
            x=[_short_month(m) for m, _ in month_counts],
            y=[n for _, n in month_counts],
            marker={"color": ["#e07b39" if m == month else "#9bb7dc" for m, _ in month_counts]},
            text=[f"{n:,}" for _, n in month_counts],
            textposition="outside",
            cliponaxis=False,
            customdata=[_month_label(m) for m, _ in month_counts],
            hovertemplate="%{customdata}: %{y:,}건<extra></extra>",
            name="월별 건수",
        )
    )
    vmax = max((n for _, n in month_counts), default=0)
    fig.update_layout(
        _base_layout(
            280,
            margin={"l": 40, "r": 10, "t": 20, "b": 40},
            xaxis={"type": "category"},
            yaxis={"title": {"text": "건수"}, "gridcolor": "#eee", "range": [0, vmax * 1.2 + 1],
                   "tickformat": ",d"},
            bargap=0.35,
        )
    )
    return fig


def _share_fig(both: pl.DataFrame, months: Sequence[str]) -> Any:
    import plotly.graph_objects as go

    overall = _counts(both, ["subject_major"])
    keep = [k[0] for k, _ in overall[:_SHARE_TOP]]
    if len(overall) > _SHARE_TOP:
        keep_set = set(keep)
        both = both.with_columns(
            pl.when(pl.col("subject_major").is_in(list(keep_set)))
            .then(pl.col("subject_major")).otherwise(pl.lit(_OTHER)).alias("subject_major")
        )
        keep.append(_OTHER)
    per = {(m, s): n for (m, s), n in _counts(both, ["_month", "subject_major"])}
    totals = {m: sum(per.get((m, s), 0) for s in keep) for m in months}
    fig = go.Figure()
    for i, s in enumerate(keep):
        shares = [100.0 * per.get((m, s), 0) / totals[m] if totals[m] else 0.0 for m in months]
        fig.add_trace(
            go.Bar(
                x=[_short_month(m) for m in months],
                y=shares,
                name=_plotly_text(s),
                marker={"color": "#b9bec4" if s == _OTHER else _PALETTE[i % len(_PALETTE)]},
                customdata=[[per.get((m, s), 0)] for m in months],
                hovertemplate="%{fullData.name}: %{y:.0f}% (%{customdata[0]:,}건)<extra></extra>",
            )
        )
    fig.update_layout(
        _base_layout(
            280 + 18 * math.ceil(len(keep) / 3),
            barmode="stack",
            showlegend=True,
            legend={"orientation": "h", "y": -0.18, "x": 0, "font": {"size": 11}},
            margin={"l": 40, "r": 10, "t": 10, "b": 30},
            xaxis={"type": "category"},
            yaxis={"title": {"text": "비중 (%)"}, "range": [0, 100], "ticksuffix": "%",
                   "gridcolor": "#eee"},
            bargap=0.35,
        )
    )
    return fig


def _fig_json(fig: Any) -> str:
    """Plotly's serializer: escapes ``<``, ``>`` and ``/`` as ``\\u003c``… (no ``</script>``)."""
    out: str = fig.to_json(validate=True, remove_uids=True)  # plotly ships no type information
    return out


def _json_strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _json_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _json_strings(v)


# --------------------------------------------------------------------------------------------
# font subset


_DROPPED_FONT_TABLES = ("TSI0", "TSI1", "TSI2", "TSI3", "TSI5", "DSIG")
"""Tables no browser reads (VTT hinting sources, the digital signature)."""


def _font_subset_b64(codepoints: Collection[int], font: Path) -> tuple[str, list[int]]:
    """Base64 WOFF of ``font`` reduced to ``codepoints``, and the code points it covers (those
    of ``codepoints`` the font has), sorted.

    HarfBuzz's subsetter (``uharfbuzz``) cuts the font with its hinting removed (with the hints
    NanumGothic's subset is 2.3 × larger); fontTools wraps the result as WOFF 1.0 (zlib per
    table). For NanumGothic and a page's ~850 characters: ≈ 0.02 s, where fontTools' own
    subsetter took ≈ 0.3–0.4 s, for the same WOFF size ±0.3 % (docs/benchmarks.md).

    Raises
    ------
    OSError
        ``font`` cannot be read.
    ValueError
        HarfBuzz cannot subset the font.
    """
    import uharfbuzz as hb
    from fontTools.ttLib import TTFont

    face = hb.Face(hb.Blob(Path(font).read_bytes()))
    have = face.unicodes
    covered = sorted(cp for cp in codepoints if cp in have)
    request = hb.SubsetInput()
    request.unicode_set.update(covered)
    request.flags = hb.SubsetFlags.NO_HINTING
    for tag in _DROPPED_FONT_TABLES:
        request.drop_table_tag_set.add(int.from_bytes(tag.encode("ascii"), "big"))
    sfnt = hb.subset(face, request)
    if sfnt is None:  # HarfBuzz returns no face when it cannot subset this font
        raise ValueError(f"HarfBuzz could not subset {font} to {len(covered)} code points")
    tt = TTFont(io.BytesIO(sfnt.blob.data))
    tt.flavor = "woff"
    buf = io.BytesIO()
    tt.save(buf)
    return base64.b64encode(buf.getvalue()).decode("ascii"), covered


def _unicode_range(codepoints: Sequence[int]) -> str:
    """CSS ``unicode-range`` value of sorted code points, runs collapsed (``U+20-7E,U+AC00``)."""
    runs: list[list[int]] = []
    for cp in codepoints:
        if runs and cp == runs[-1][1] + 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    return ",".join(f"U+{a:X}" if a == b else f"U+{a:X}-{b:X}" for a, b in runs)


def _font_face_css(chars: Iterable[str], bold_chars: Iterable[str] | None = None) -> str:
    """``@font-face`` rules of NanumGothic with WOFF subsets: regular (400) covering ``chars``,
    bold (700) covering ``bold_chars`` (default: ``chars``), each plus printable ASCII.

    The bold face declares its ``unicode-range``: a character outside it (text that the caller
    did not expect in bold) is drawn with the regular face, synthetically emboldened, never with
    a fallback font (CSS Fonts 4, §5 font matching: faces whose unicode-range excludes the
    character are not used for it)."""
    base = set(range(0x20, 0x7F)) | {0xA0, 0xB7, 0x2013, 0x2026}
    codepoints = {ord(c) for c in chars if len(c) == 1} | base
    bold_points = codepoints if bold_chars is None else {ord(c) for c in bold_chars if len(c) == 1} | base
    regular, bold = hangul_font_path(), hangul_font_path(bold=True)
    rules = []
    for path, weight, points in ((regular, 400, codepoints), (bold, 700, bold_points)):
        if weight == 700 and bold == regular:
            continue  # no bold file: the browser synthesises bold from the regular face
        b64, covered = _font_subset_b64(points, path)
        rng = f"unicode-range:{_unicode_range(covered)};" if weight == 700 else ""
        rules.append(
            "@font-face{font-family:'" + _FONT_FAMILY + f"';font-style:normal;font-weight:{weight};"
            f"font-display:block;{rng}src:url(data:font/woff;base64," + b64 + ") format('woff');}"
        )
    return "\n".join(rules)


# --------------------------------------------------------------------------------------------
# the page


def _reviewed_rows(df: pl.DataFrame) -> pl.Series:
    """Rows a reviewer has handled: ``is_reviewed`` (:func:`voc.review.merge_reviews`; at least
    one dimension is a human label) when the frame has it, else a ``reviewer`` source in either
    dimension; all False for a frame without review columns."""
    if "is_reviewed" in df.columns:
        return df["is_reviewed"].alias("reviewed")
    mask = pl.Series("reviewed", [False] * df.height, dtype=pl.Boolean)
    for dim in ("subject", "work"):
        if f"{dim}_source" in df.columns:
            mask = mask | df[f"{dim}_source"].is_in(["reviewer", "reviewer_group"])
    return mask


def _table_rows(df: pl.DataFrame, low_confidence: float, limit: int = TABLE_MAX_ROWS) -> list[dict[str, Any]]:
    """Rows of the VOC table (``df`` has the ``_reviewed`` column of :func:`_reviewed_rows`): at
    most ``limit``, the newest, in date order."""
    df = df.sort(["created_at", "voc_id"], nulls_last=True)
    if df.height > limit:
        df = df.sort(["created_at", "voc_id"], descending=True, nulls_last=True).head(limit).reverse()
    rows = []
    for r in df.iter_rows(named=True):
        title = mask_personal_details(r.get("title") or "")  # before truncating: no half number shown
        s_conf, w_conf = r.get("subject_confidence"), r.get("work_confidence")
        s_guess, w_guess = r.get("subject_source") in _GUESS_SOURCES, r.get("work_source") in _GUESS_SOURCES
        pending = not r["_reviewed"]
        flags = [f for f in (r.get("flags") or "").split(";") if f]
        rows.append(
            {
                "voc_id": r["voc_id"],
                "date": r["created_at"].isoformat() if r["created_at"] is not None else "–",
                "title": title if title.strip() else "(제목 없음)",
                "title_short": _truncate(title, _TABLE_TITLE_CHARS) if title.strip() else "(제목 없음)",
                "request": mask_personal_details(r.get("request_contents") or ""),
                "reply": mask_personal_details(r.get("reply") or ""),
                # 답변 초안 (voc.replies.format_reply_draft; a ``reply_draft`` column of the frame), masked again
                "reply_draft": mask_personal_details(r.get("reply_draft") or ""),
                "subject_major": r["subject_major"],
                "subject_minor": r["subject_minor"],
                "work_major": r["work_major"],
                "work_minor": r["work_minor"],
                "subject_conf": _fmt_conf(s_conf),
                "work_conf": _fmt_conf(w_conf),
                # a keyword guess has no confidence to show or to call low (its score is not one)
                "subject_low": pending and s_conf is not None and s_conf < low_confidence and not s_guess,
                "work_low": pending and w_conf is not None and w_conf < low_confidence and not w_guess,
                "subject_reviewed": r.get("subject_source") in _REVIEWER_SOURCES,
                "work_reviewed": r.get("work_source") in _REVIEWER_SOURCES,
                "subject_guess": s_guess,
                "work_guess": w_guess,
                "flags": [_FLAG_NAMES.get(f, f) for f in flags],
            }
        )
    return rows


def _low_expr(df: pl.DataFrame, dim: str, low_confidence: float) -> pl.Expr:
    """``dim``'s confidence below the threshold (null is not low), for a tag that is neither a
    keyword guess nor a reviewer's (their numbers are no model confidence)."""
    low = (pl.col(f"{dim}_confidence") < low_confidence).fill_null(False)
    if f"{dim}_source" in df.columns:
        low = low & ~pl.col(f"{dim}_source").is_in([*_GUESS_SOURCES, *_REVIEWER_SOURCES])
    return low


def _is_low(df: pl.DataFrame, low_confidence: float) -> pl.Series:
    """Low-confidence rows nobody reviewed: a subject or work confidence below the threshold
    (null confidences are not low; keyword guesses never are, like 검토 우선,
    ``voc.review.review_flags``) and not reviewed (``_reviewed`` column)."""
    if df.height == 0:
        return pl.Series([], dtype=pl.Boolean)
    return df.select(
        (_low_expr(df, "subject", low_confidence) | _low_expr(df, "work", low_confidence)) & ~pl.col("_reviewed")
    ).to_series()


def _dim_provenance(df: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Per dimension, how many rows carry a keyword guess (``guess``, source ``keyword``) and a
    reviewer's label (``reviewed``), of ``n``."""
    out = {}
    for dim in ("subject", "work"):
        src = df[f"{dim}_source"] if f"{dim}_source" in df.columns else pl.Series([""] * df.height)
        out[dim] = {"n": df.height, "guess": int(src.is_in(list(_GUESS_SOURCES)).sum()),
                    "reviewed": int(src.is_in(list(_REVIEWER_SOURCES)).sum())}
    return out


def _guess_note(p: Mapping[str, int]) -> str:
    """Chart subtitle of a dimension with keyword guesses ("" without)."""
    if not p["guess"]:
        return ""
    if p["guess"] == p["n"]:
        return "키워드 규칙으로 추정한 분류 — 학습된 모델의 출력이 아님"
    return f"{p['n']}건 중 {p['guess']}건 {_GUESS} (키워드 규칙, 모델 출력 아님)"


def _guess_title(title: str, p: Mapping[str, int]) -> str:
    """``title`` marked ``(추정)`` when every row of the dimension is a keyword guess, ``(일부
    추정)`` when some are."""
    if not p["guess"]:
        return title
    return f"{title} ({_GUESS})" if p["guess"] == p["n"] else f"{title} (일부 {_GUESS})"


def _credit_text(source_credit: str | None) -> str | None:
    """The credit without a leading ``데이터 출처:`` (the template adds it once), None if blank."""
    if source_credit is None:
        return None
    text = str(source_credit).strip()
    if text.startswith(_CREDIT_PREFIX):
        text = text[len(_CREDIT_PREFIX):].lstrip().lstrip(":：").strip()
    return text or None


def _iso_date(value: Any, where: str) -> date:
    """A date from a ``date``/``datetime`` or ``"YYYY-MM-DD…"`` text; ValueError naming ``where``."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ValueError(f"{where} is not a date 'YYYY-MM-DD': {value!r}") from None


def _issue_tags(value: Any, where: str) -> list[str]:
    """An issue's tags: text → [text]; ``[(label, count), …]`` (group_summaries) → up to three
    ``"label n건"``; None/empty → []."""
    if value is None or isinstance(value, str):
        return [value.strip()] if value and value.strip() else []
    tags = []
    for item in list(value)[:3]:
        if not (isinstance(item, Sequence) and len(item) == 2 and isinstance(item[1], int)):
            raise ValueError(f"{where} must be text or a list of (label, count), got item {item!r}")
        tags.append(f"{item[0]} {item[1]}건")
    return tags


def _issue_items(issues: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated 주요 이슈 entries (:data:`ISSUE_FIELDS`, flat or as ``group_summaries`` gives
    them) → template items, in the given order."""
    items = []
    for i, g in enumerate(issues):
        if not isinstance(g, Mapping):
            raise ValueError(f"issues[{i}] must be a mapping with {list(ISSUE_FIELDS)}, got {type(g).__name__}")
        rep = g.get("representative")
        flat = {**g, **rep} if isinstance(rep, Mapping) else g
        missing = [k for k in ISSUE_FIELDS if k not in flat]
        if missing:
            raise ValueError(f"issues[{i}] is missing field(s) {missing}; required: {list(ISSUE_FIELDS)}")
        size = flat["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"issues[{i}].size must be an int >= 1, got {size!r}")
        dates = [None if flat[k] is None else _iso_date(flat[k], f"issues[{i}].{k}") for k in ("first_date", "last_date")]
        first, last = dates
        if first is not None and last is not None and last < first:
            raise ValueError(f"issues[{i}]: last_date {last} is before first_date {first}")
        known = sorted({d.isoformat() for d in dates if d is not None})
        title = mask_personal_details(str(flat["title"] or "")).strip()
        members = flat.get("voc_ids")
        if members is not None and (isinstance(members, (str, bytes)) or not isinstance(members, Iterable)):
            raise ValueError(f"issues[{i}].voc_ids must be a list of VOC ids, got {members!r}")
        items.append(
            {
                "size": size,
                "voc_id": str(flat["voc_id"]),
                "title": _truncate(title, _ISSUE_TITLE_CHARS) if title else "(제목 없음)",
                "excerpt": _truncate(mask_personal_details(str(flat["request"] or "")), _ISSUE_EXCERPT_CHARS),
                "period": " ~ ".join(known) if known else "날짜 없음",
                "subject": _issue_tags(flat.get("subject", flat.get("top_subject")), f"issues[{i}].subject"),
                "work": _issue_tags(flat.get("work", flat.get("top_work")), f"issues[{i}].work"),
                "members": frozenset(str(v) for v in members) if members is not None else frozenset(),
            }
        )
    return items


def _count_tables(df: pl.DataFrame, prov: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """Compact page: (대분류, 중분류, 건수) per dimension, largest first; a dimension of keyword
    guesses says so (:func:`_guess_title`)."""
    return [
        {"id": f"counts-{dim}", "title": _guess_title(f"{title}별 건수", prov[dim]), "note": _guess_note(prov[dim]),
         "rows": [(ma, mi, c) for (ma, mi), c in _counts(df, [f"{dim}_major", f"{dim}_minor"])]}
        for dim, title in (("subject", "주제"), ("work", "작업유형"))
    ]


def _notes(*parts: str) -> str:
    return " · ".join(p for p in parts if p)


def _top_subject_kpi(
    df: pl.DataFrame, label: str, count: int, issues: Sequence[Mapping[str, Any]], low_confidence: float
) -> dict[str, str]:
    """The 최다 주제 card, saying where its count comes from when that is not solid: mostly one
    near-duplicate group (a 주요 이슈 entry whose ``members`` hold more than half of the
    subject's rows: ``집단 민원 1건(27건) 포함``), mostly low-confidence tags nobody reviewed
    (``검수 전 저신뢰 27건``), mostly keyword guesses (the value marked ``(추정)``)."""
    rows = df.filter(pl.col("subject_major") == label)
    ids = set(rows["voc_id"].to_list())
    in_group = max((len(ids & g["members"]) for g in issues), default=0)
    low = int(rows.select(_low_expr(rows, "subject", low_confidence) & ~pl.col("_reviewed")).to_series().sum())
    guess = int(rows["subject_source"].is_in(list(_GUESS_SOURCES)).sum()) if "subject_source" in rows.columns else 0
    caveats = []
    if 2 * in_group > count:
        caveats.append(f"집단 민원 1건({in_group}건) 포함")
    if 2 * low > count:
        caveats.append(f"검수 전 저신뢰 {low}건")
    return {
        "label": "최다 주제",
        "value": f"{label} ({_GUESS})" if 2 * guess > count else label,
        "sub": f"{count:,}건 ({count / df.height * 100:.0f}%)" + (f" · {', '.join(caveats)}" if caveats else ""),
        "cls": "text caution" if caveats else "text",
    }


URGENT_SHOWN = 20
"""Most urgent VOCs listed in the dashboard's 긴급 VOC box (newest first)."""


def _urgent_items(df: pl.DataFrame) -> list[dict[str, Any]]:
    """The 긴급 VOC box (``voc.urgency``): urgent rows, newest first, at most :data:`URGENT_SHOWN`,
    titles masked; ``[]`` when the frame has no ``urgent`` column (older CSVs)."""
    if "urgent" not in df.columns or not df.height:
        return []
    from voc.urgency import urgent_rows

    return [{**u, "title": mask_personal_details(u["title"])} for u in urgent_rows(df, limit=URGENT_SHOWN)]


@functools.lru_cache(maxsize=1)
def _jinja_env() -> jinja2.Environment:
    """The package templates' environment, made once per process: jinja2 compiles a template on
    its first ``get_template`` and keeps it in the environment, so one environment saves the
    compilation (≈ 80 ms per dashboard, profiled) on every later render. Nothing mutates it."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("voc", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _render_with_font(template: jinja2.Template, ctx: Mapping[str, Any], *, embed_font: bool,
                      extra_texts: Iterable[str] = (), plain_ctx: Mapping[str, Any] | None = None,
                      **late: Any) -> str:
    """Render ``template``; with ``embed_font``, first without the font and the ``late`` values
    (e.g. plotly.js) to collect the characters used, then with a font subset covering them and
    ``extra_texts`` (strings drawn by scripts in regular weight, e.g. chart labels).

    ``plain_ctx`` overrides ``ctx`` with the free text blanked (VOC titles, requests, replies:
    never set in bold); the bold face then only covers the characters of that render, which
    keeps it a fraction of the regular one."""
    font_css = ""
    if embed_font:
        blank = {k: "" for k in late}
        chars = set(template.render(**ctx, **blank, font_css=""))
        bold = set(template.render(**{**ctx, **plain_ctx}, **blank, font_css="")) if plain_ctx else None
        for t in extra_texts:
            chars.update(t)
        font_css = _font_face_css(chars, bold)
    return template.render(**ctx, **late, font_css=font_css)


@dataclass(frozen=True, slots=True, eq=False)
class _Month:
    """A dashboard's checked month: what every part of the page is drawn from."""

    df: pl.DataFrame  # the N rows, normalised (_normalise), with the ``_reviewed`` flag
    month: str  # "YYYY-MM"
    hist: pl.DataFrame | None  # the building's rows of the history window, or None
    compact: bool  # fewer rows than DashboardOptions.compact_below
    prov: dict[str, dict[str, int]]  # keyword guesses and reviewer labels per dimension (_dim_provenance)
    subj_major: list[tuple[tuple[str, ...], int]]  # subject-major counts, largest first
    issues: list[dict[str, Any]]  # 주요 이슈 template items, guessed tags marked 추정


def _month_rows(tagged: pl.DataFrame, building_id: str, month: str) -> pl.DataFrame:
    """``tagged`` normalised, with ``_reviewed``; ``ValueError`` for a row of another building or
    dated outside ``month`` (the count and an example ``voc_id``)."""
    df = _normalise(tagged, "tagged")
    df = df.with_columns(_reviewed_rows(df).alias("_reviewed"))
    start, end = month_range(month)
    if "building_id" in df.columns and df.height:
        other = df.filter(pl.col("building_id") != building_id)
        if other.height:
            raise ValueError(
                f"tagged holds {other.height} row(s) of another building than {building_id!r}, "
                f"e.g. voc_id={other['voc_id'][0]!r} (building_id={other['building_id'][0]!r})"
            )
    outside = df.filter(pl.col("created_at").is_null() | (pl.col("created_at") < start) | (pl.col("created_at") >= end))
    if outside.height:
        raise ValueError(
            f"tagged holds {outside.height} row(s) dated outside {month}, "
            f"e.g. voc_id={outside['voc_id'][0]!r} (created_at={outside['created_at'][0]})"
        )
    return df


def _history_window(history: pl.DataFrame | None, month: str, building_id: str) -> pl.DataFrame | None:
    """The building's rows of ``history`` dated in the :data:`_HISTORY_MONTHS` months before
    ``month``, normalised; None when there are none."""
    if history is None or not history.height:
        return None
    h = _normalise(history, "history")
    w_start = month_range(months_before(month, _HISTORY_MONTHS)[0])[0]
    h = h.filter((pl.col("created_at") >= w_start) & (pl.col("created_at") < month_range(month)[0]))
    if "building_id" in h.columns:
        h = h.filter(pl.col("building_id") == building_id)
    return h if h.height else None


def _dashboard_month(tagged: pl.DataFrame, context: DashboardContext, content: DashboardContent,
                     options: DashboardOptions) -> _Month:
    """Check the month's rows, 주요 이슈 and history (:func:`render_dashboard` raises)."""
    month = parse_month(context.month)
    issue_items = _issue_items(content.issues or ())
    building_id = str(context.building_id)
    df = _month_rows(tagged, building_id, month)
    hist = _history_window(content.history, month, building_id)
    prov = _dim_provenance(df)  # keyword guesses are charted as 추정, never as model output
    for item in issue_items:
        for dim in ("subject", "work"):
            if prov[dim]["guess"]:
                item[dim] = [f"{t} ({_GUESS})" for t in item[dim]]
    return _Month(df=df, month=month, hist=hist, compact=df.height < options.compact_below, prov=prov,
                  subj_major=_counts(df, ["subject_major"]), issues=issue_items)


def _figure(fig_id: str, title: str, fig: Any, *, wide: bool = False, note: str = "") -> dict[str, Any]:
    """One chart of the page as the template takes it (id, title, plotly JSON, width, subtitle)."""
    return {"id": fig_id, "title": title, "json": _fig_json(fig), "wide": wide, "note": note,
            "height": int(fig.layout.height)}


def _tag_figures(m: _Month) -> list[dict[str, Any]]:
    """The month's counts by subject and work type (대분류, 중분류) and its daily trend."""
    df, sp, wp = m.df, m.prov["subject"], m.prov["work"]
    work_major = _counts(df, ["work_major"])
    s_lab, s_hov, s_val = _minor_labels(_counts(df, ["subject_major", "subject_minor"]))
    w_lab, w_hov, w_val = _minor_labels(_counts(df, ["work_major", "work_minor"]))
    return [
        _figure("fig-subject-major", _guess_title("주제 대분류별 건수", sp),
                _hbar([k[0] for k, _ in m.subj_major], [c for _, c in m.subj_major], color=_PALETTE[0]),
                note=_guess_note(sp)),
        _figure("fig-work-major", _guess_title("작업유형 대분류별 건수", wp),
                _hbar([k[0] for k, _ in work_major], [c for _, c in work_major], color=_PALETTE[1]), note=_guess_note(wp)),
        _figure("fig-subject-minor", _guess_title("주제 중분류별 건수", sp), _hbar(s_lab, s_val, color="#5b8fd0", hover=s_hov),
                note=_notes(f"상위 {_MINOR_TOP}개" if len(s_val) > _MINOR_TOP else "", _guess_note(sp))),
        _figure("fig-work-minor", _guess_title("작업유형 중분류별 건수", wp), _hbar(w_lab, w_val, color="#eba46f", hover=w_hov),
                note=_notes(f"상위 {_MINOR_TOP}개" if len(w_val) > _MINOR_TOP else "", _guess_note(wp))),
        _figure("fig-daily", "일별 VOC 추이", _daily_fig(df, m.month), wide=True, note="토요일 파랑, 일요일 빨강"),
    ]


def _month_totals(m: _Month) -> tuple[list[str], Counter[str]] | None:
    """The history window's months up to this one and VOCs per month (this month: its N rows);
    None without history."""
    if m.hist is None:
        return None
    per_month = Counter(_month_key(d) for d in m.hist["created_at"].to_list())
    per_month[m.month] = m.df.height
    return _history_months(m.hist, m.month), per_month


def _history_figures(m: _Month, months: list[str], per_month: Counter[str]) -> list[dict[str, Any]]:
    """The monthly totals and subject-major shares of ``months`` (the history window and this month)."""
    assert m.hist is not None  # only drawn with history
    sp = m.prov["subject"]
    month_counts = [(x, int(per_month.get(x, 0))) for x in months]
    both = pl.concat(
        [m.hist.select("created_at", "subject_major"), m.df.select("created_at", "subject_major")],
        how="vertical_relaxed",
    ).with_columns(pl.col("created_at").dt.strftime("%Y-%m").alias("_month"))
    return [
        _figure("fig-monthly", f"월별 VOC 건수 (최근 {len(months) - 1}개월 비교)", _monthly_fig(month_counts, m.month)),
        _figure("fig-subject-share", _guess_title("월별 주제 대분류 비중", sp), _share_fig(both, months),
                note=_guess_note(sp) and f"이번 달: {_guess_note(sp)}"),
    ]


def _figures(m: _Month, totals: tuple[list[str], Counter[str]] | None, kw: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """The full page's charts in page order: counts and daily trend (when the month has VOCs),
    monthly trends (with history), keywords (when given)."""
    figures = _tag_figures(m) if m.df.height else []
    if totals is not None:
        figures += _history_figures(m, *totals)
    if kw:
        figures.append(_figure("fig-keywords", f"주요 키워드 (상위 {len(kw)}개, VOC 건수 기준)",
                               _hbar([w for w, _ in kw], [c for _, c in kw], color=_PALETTE[2])))
    return figures


def _previous_total(month: str, totals: tuple[list[str], Counter[str]] | None) -> int | None:
    """VOCs of the month before ``month`` when the history window holds it, else None."""
    if totals is None:
        return None
    months, per_month = totals
    prev = months_before(month, 1)[0]
    return int(per_month.get(prev, 0)) if prev in months else None


def _kpi_cards(m: _Month, prev_total: int | None, n_low: int, options: DashboardOptions,
               low_card: bool) -> list[dict[str, str]]:
    """The KPI cards: 총 VOC; 전월 대비 (``prev_total`` known); 일평균 and 최다 주제 (full page);
    저신뢰 미검수 (``low_card``, when the month has VOCs)."""
    n = m.df.height
    start, end = month_range(m.month)
    days_in_month = (end - start).days
    kpis: list[dict[str, str]] = [
        {"label": "총 VOC", "value": f"{n:,}건", "sub": _month_label(m.month), "cls": ""},
    ]
    if prev_total is not None:
        diff = n - prev_total
        pct = f" ({diff / prev_total * 100:+.0f}%)" if prev_total else ""
        kpis.append({"label": "전월 대비", "value": f"{diff:+,}건", "sub": f"전월 {prev_total:,}건{pct}",
                     "cls": "up" if diff > 0 else "down" if diff < 0 else ""})
    if not m.compact:
        kpis.append({"label": "일평균", "value": f"{n / days_in_month:.1f}건", "sub": f"{days_in_month}일 기준", "cls": ""})
        if n:
            kpis.append(_top_subject_kpi(m.df, m.subj_major[0][0][0], m.subj_major[0][1], m.issues, options.low_confidence))
    if n and low_card:
        kpis.append({"label": "저신뢰 미검수", "value": f"{n_low:,}건",
                     "sub": f"검수 전, 신뢰도 {options.low_confidence:.2f} 미만 ({n_low / n * 100:.0f}%)",
                     "cls": "warn" if n_low else ""})
    return kpis


def _pre_review(m: _Month, review_status: ReviewStatus | None, n_low: int) -> dict[str, Any] | None:
    """The 검수 전 box when no row is reviewed yet: the 검토 우선 rows still waiting (count and
    share) and the dimensions that are keyword guesses; None once a row is reviewed."""
    n = m.df.height
    n_reviewed_rows = review_status.n_reviewed if review_status is not None else int(m.df["_reviewed"].sum()) if n else 0
    pending_low = review_status.n_low_confidence_unreviewed if review_status is not None else n_low
    return {
        "n_low": pending_low, "percent": f"{pending_low / n * 100:.0f}",
        "guess_dims": [_DIM_NAMES[d] for d in ("subject", "work") if m.prov[d]["guess"]],
    } if n and n_reviewed_rows == 0 else None


def _template_context(m: _Month, context: DashboardContext, content: DashboardContent, options: DashboardOptions,
                      figures: list[dict[str, Any]], kw: list[tuple[str, int]], prev_total: int | None) -> dict[str, Any]:
    """Everything ``dashboard.html.j2`` shows, escaped by jinja2 (texts masked here)."""
    df, n, month = m.df, m.df.height, m.month
    n_low = int(_is_low(df, options.low_confidence).sum()) if n else 0
    notes = [str(x) for x in content.drift if str(x).strip()]
    model_versions = (
        sorted({v for v in df["model_version"].to_list() if v}) if "model_version" in df.columns else []
    )
    wordcloud_uri = (
        "data:image/png;base64," + base64.b64encode(content.wordcloud_png).decode("ascii")
        if content.wordcloud_png and not m.compact else None
    )
    building_id = str(context.building_id)
    name = mask_personal_details(context.building_name).strip() if context.building_name else ""
    display_name = f"{name} ({building_id})" if name else f"건물 {building_id}"
    return {
        "page_title": f"{display_name} VOC 월간 대시보드 · {_month_label(month)}",
        "display_name": display_name,
        "building_id": building_id,
        "month": month,
        "month_label": _month_label(month),
        "n_total": n,
        "compact": m.compact,
        "compact_below": options.compact_below,
        "kpis": _kpi_cards(m, prev_total, n_low, options, low_card=content.review_status is None),
        "figures": figures,
        "count_tables": _count_tables(df, m.prov) if m.compact and n else [],
        "issues": m.issues,
        "urgent": _urgent_items(df),
        "keywords": kw,
        "wordcloud_uri": wordcloud_uri,
        "table": _table_rows(df, options.low_confidence, options.table_max_rows),
        "low_confidence": f"{options.low_confidence:.2f}",
        "review_status": content.review_status,
        "drift": [x for x in notes if is_alert(x)],
        "drift_notes": [x for x in notes if not is_alert(x)],  # 검수 후 확인 / 집단 민원: no alert
        "has_guess": any(m.prov[d]["guess"] for d in m.prov),
        "pre_review": _pre_review(m, content.review_status, n_low),
        "source_credit": _credit_text(context.source_credit),
        "reviewed": content.reviewed,
        "run_id": context.run_id,
        "generated_at": context.generated_at,
        "model_versions": model_versions,
        "font_stack": _CSS_FONT_STACK,
        "plotly_config": json.dumps(
            {"displaylogo": False, "responsive": True, "displayModeBar": "hover",
             "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "zoomIn2d", "zoomOut2d"]}
        ),
        "font_family": _FONT_FAMILY,
    }


def _render_page(ctx: Mapping[str, Any], embed_font: bool) -> str:
    """``dashboard.html.j2`` rendered with the font subset of its characters (the charts' too) and
    plotly.js when it has charts; the bold face covers the page without the VOCs' own words."""
    figures = ctx["figures"]
    chart_texts = [t for f in figures for t in _json_strings(json.loads(f["json"]))]
    plain = {  # the page with the VOCs' own words removed: what can be bold
        "table": [{**r, "title": "", "title_short": "", "request": "", "reply": "", "reply_draft": ""} for r in ctx["table"]],
        "issues": [{**g, "excerpt": ""} for g in ctx["issues"]],
        "urgent": [{**u, "title": ""} for u in ctx["urgent"]],
        "keywords": [],
    }
    return _render_with_font(
        _jinja_env().get_template("dashboard.html.j2"), ctx, embed_font=embed_font,
        extra_texts=chart_texts, plain_ctx=plain, plotly_js=plotly_js_bundle() if figures else "",
    )


def render_dashboard(
    tagged: pl.DataFrame,
    context: DashboardContext,
    content: DashboardContent = DashboardContent(),
    options: DashboardOptions = DashboardOptions(),
) -> str:
    """Render the monthly dashboard of one building as one self-contained HTML page.

    Parameters
    ----------
    tagged
        ``N × C`` tagged frame (:data:`voc.schema.TAGGED_COLUMNS`) of this building and month,
        ``N ≥ 0``, or the reviewed frame (plus ``is_reviewed``, :func:`voc.review.merge_reviews`).
        Needs :data:`REQUIRED_DASHBOARD_COLUMNS`; uses ``request_contents``, ``reply``,
        ``flags``, ``subject_source``/``work_source`` (``reviewer`` marks a reviewed tag),
        ``is_reviewed`` (bool, or ``true``/``false`` text as read back from CSV),
        ``model_version``, ``building_id`` and ``reply_draft`` (the 답변 초안 text,
        ``voc.replies.format_reply_draft``: a collapsed 답변 초안 under the VOC's title) when
        present. ``created_at`` is a ``pl.Date`` (``Datetime`` and ISO strings are converted).
        Null or empty labels are shown as ``미분류``; null confidences as ``–``. Only rows of
        ``context.building_id`` dated in ``context.month``.
    context
        The building, month and run shown in the header and footer (:class:`DashboardContext`).
    content
        History, keywords, word cloud, review progress, drift notes, 주요 이슈 and the 검수 반영
        badge (:class:`DashboardContent`; default: none of them).
    options
        Low-confidence threshold, font embedding, keywords charted and the compact-page size
        (:class:`DashboardOptions`; its defaults by default).

    Returns
    -------
    str
        A complete HTML5 document (UTF-8 text; about 1.6 MB for the sample's 41-VOC month, of
        which 1.19 MB is plotly.js; a compact page about 0.2 MB). All VOC text is HTML-escaped
        and its personal details masked (titles, requests, replies, 주요 이슈, keywords, the
        building name: :func:`voc.privacy.mask_personal_details`);
        figure data is plotly JSON; no external resource is referenced.

    Raises
    ------
    ValueError
        A required column is missing; ``context.month`` is not a month; a ``created_at`` is not
        a date; an ``is_reviewed`` value is not a boolean; ``tagged`` holds rows of another
        building (``building_id`` column) or dated outside the month (the message gives the count and an
        example ``voc_id``); an ``issues`` entry lacks a field or has a bad size, date or
        ``voc_ids`` (the message names the entry). Bad options are refused when
        :class:`DashboardOptions` is made.
    FileNotFoundError
        ``options.embed_font`` and the NanumGothic font is missing (:func:`hangul_font_path`), or
        the vendored plotly.js is missing (:func:`plotly_js_bundle`).
    """
    m = _dashboard_month(tagged, context, content, options)
    kw = [] if m.compact else [(mask_personal_details(str(w)), int(c)) for w, c in content.keywords]
    kw = kw[: max(0, options.top_keywords)]
    totals = _month_totals(m)
    figures = [] if m.compact else _figures(m, totals, kw)
    ctx = _template_context(m, context, content, options, figures, kw, _previous_total(m.month, totals))
    return _render_page(ctx, options.embed_font)


def _count(b: Mapping[str, Any], key: str, where: str) -> int:
    v = b[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{where}.{key} must be a non-negative int, got {v!r}")
    return v


def _relative_href(href: Any, where: str) -> str:
    """A link relative to the index file (``"1/dashboard_1_201911.html"``): no scheme, host,
    leading ``/`` or backslash, so the month folder can be moved or opened from a file share."""
    from urllib.parse import urlsplit

    text = str(href).strip() if href is not None else ""
    parts = urlsplit(text)
    if not text or parts.scheme or parts.netloc or text.startswith("/") or "\\" in text:
        raise ValueError(f"{where}.dashboard_href must be a relative link like '1/dashboard.html', got {href!r}")
    return text


def _absolute_url(url: Any, where: str) -> str:
    """An absolute ``http(s)://host/…`` link (a presigned S3 URL, a public base URL): no other
    scheme (``javascript:``, ``file:``), no whitespace or control characters."""
    from urllib.parse import urlsplit

    text = str(url).strip() if url is not None else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise ValueError(f"{where} must be an absolute http(s):// URL, got {url!r}")
    return text


def _review_href(href: str | None) -> str | None:
    """The review-sheet link of the month index: relative, or absolute ``http(s)://``."""
    if href is None or not str(href).strip():
        return None
    from urllib.parse import urlsplit

    if urlsplit(str(href).strip()).scheme:
        return _absolute_url(href, "review_href")
    try:
        return _relative_href(href, "review_href")
    except ValueError:
        raise ValueError(f"review_href must be a relative link or an absolute http(s):// URL, got {href!r}") from None


def review_state_text(n_vocs: int, n_reviewed: int, n_low: int) -> str:
    """A building's (or a run's) review state in one Korean line, for the month index and the
    run's Prefect artifacts.

    Parameters
    ----------
    n_vocs, n_reviewed, n_low
        VOCs, VOCs with a reviewed dimension, and unreviewed VOCs that 검토 우선 flags (a
        trained model's tag below its review threshold, ``voc.review.review_flags``); counts ≥ 0.

    Returns
    -------
    str
        Before any review ``"검수 전 · 저신뢰 30/41건 (73%)"`` — the share of VOCs whose tags are
        not to be trusted yet; after ``"검수 반영 41/41건 (100%)"`` (with ``" · 저신뢰 미검수 3건"``
        while flagged rows remain). Percentages rounded to whole numbers.
    """
    def pct(n: int) -> str:
        return f"{100.0 * n / n_vocs:.0f}%" if n_vocs else "0%"

    if n_reviewed > 0:
        return f"검수 반영 {n_reviewed}/{n_vocs}건 ({pct(n_reviewed)})" + (f" · 저신뢰 미검수 {n_low}건" if n_low else "")
    return f"검수 전 · 저신뢰 {n_low}/{n_vocs}건 ({pct(n_low)})"


def estimated_text(n_estimated: Mapping[str, int]) -> str:
    """Counts of keyword-guessed tags labelled as guesses: ``{"subject": 41, "work": 4}`` →
    ``"주제 41건 · 작업유형 4건 (추정)"``; ``""`` when no dimension has one. A guess
    (``{dim}_source == "keyword"``) comes from taxonomy keywords, not a trained model: it has no
    confidence, and 검토 우선 (low confidence) never counts it."""
    parts = [f"{_DIM_NAMES.get(d, d)} {n}건" for d, n in n_estimated.items() if n]
    return f"{' · '.join(parts)} ({_GUESS})" if parts else ""


def _estimated_counts(b: Mapping[str, Any], n_vocs: int, where: str) -> dict[str, int]:
    """The optional ``n_estimated`` of an index building, checked: ``{dim: 0 ≤ int ≤ n_vocs}``."""
    raw = b.get("n_estimated") or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}.n_estimated must be a mapping {{dimension: count}}, got {raw!r}")
    out = {}
    for d in raw:
        if d not in _DIM_NAMES:
            raise ValueError(f"{where}.n_estimated has unknown dimension {d!r}; known: {list(_DIM_NAMES)}")
        n = _count(raw, d, f"{where}.n_estimated")
        if n > n_vocs:
            raise ValueError(f"{where}.n_estimated.{d} ({n}) exceeds n_vocs ({n_vocs})")
        out[d] = n
    return out


def _index_row(b: Any, where: str) -> dict[str, Any]:
    """One building of the month index, checked (:func:`render_month_index`, raises
    ``ValueError`` naming ``where``), as the template shows it."""
    if not isinstance(b, Mapping):
        raise ValueError(f"{where} must be a mapping with {list(INDEX_FIELDS)}, got {type(b).__name__}")
    missing = [k for k in INDEX_FIELDS if k not in b]
    if missing:
        raise ValueError(f"{where} is missing field(s) {missing}; required: {list(INDEX_FIELDS)}")
    n_vocs, n_rev, n_low = (_count(b, k, where) for k in ("n_vocs", "n_reviewed", "n_low_confidence_unreviewed"))
    if n_rev > n_vocs:
        raise ValueError(f"{where}.n_reviewed ({n_rev}) exceeds n_vocs ({n_vocs})")
    if n_low > n_vocs - n_rev:
        raise ValueError(f"{where}.n_low_confidence_unreviewed ({n_low}) exceeds the unreviewed VOCs ({n_vocs - n_rev})")
    # alerts only: a 검수 후 확인 / 집단 민원 note is not a change to act on (voc.drift.is_alert)
    n_drift = _count(b, "n_drift", where) if "n_drift" in b else sum(map(is_alert, b.get("drift") or ()))
    n_issues = _count(b, "n_issues", where) if "n_issues" in b else len(b.get("issues") or ())
    n_est = _estimated_counts(b, n_vocs, where)
    bid = str(b["building_id"])
    name = mask_personal_details(str(b["building_name"] or "")).strip()
    return {
        "display_name": f"{name} ({bid})" if name else f"건물 {bid}",
        "href": (
            _absolute_url(b["dashboard_url"], f"{where}.dashboard_url")
            if b.get("dashboard_url") else _relative_href(b["dashboard_href"], where)
        ),
        "n_vocs": n_vocs, "n_reviewed": n_rev, "n_low": n_low, "n_drift": n_drift, "n_issues": n_issues,
        "percent": 100.0 * n_rev / n_vocs if n_vocs else 0.0,
        "low_percent": 100.0 * n_low / n_vocs if n_vocs else 0.0,
        "reviewed": bool(b.get("reviewed", n_rev > 0)),
        "n_estimated": n_est,
        "estimated": estimated_text(n_est),
    }


def render_month_index(
    month: str,
    buildings: Sequence[Mapping[str, Any]],
    *,
    run_id: str | None = None,
    generated_at: str | None = None,
    source_credit: str | None = None,
    embed_font: bool = True,
    review_href: str | None = None,
    review_label: str | None = None,
    links_valid_until: str | None = None,
) -> str:
    """The month's index page: one row per building linking its dashboard (Korean labels).

    Meant to be written next to the buildings' folders as ``{prefix}/{yyyymm}/index.html``;
    self-contained like the dashboards (inline CSS and font subset, no script, CSP forbids
    every request).

    Parameters
    ----------
    month
        ``"YYYY-MM"`` (or any form :func:`voc.months.parse_month` accepts).
    buildings
        One mapping per building, shown in the given order, with :data:`INDEX_FIELDS`:
        ``building_id``, ``building_name`` (may be empty), ``n_vocs``, ``n_reviewed`` (≤
        ``n_vocs``), ``n_low_confidence_unreviewed`` (≤ ``n_vocs − n_reviewed``), all
        non-negative ints, and ``dashboard_href`` (a link relative to the index file, e.g.
        ``"1/dashboard_1_201911.html"``, each segment percent-encoded —
        ``urllib.parse.quote(segment, safe="")``, :func:`flows.storage_layout.relative_href` — so that an
        id such as ``a:b`` or ``#3`` is a path). Building names are shown with their personal
        details masked (:func:`voc.privacy.mask_personal_details`). Optional: ``reviewed`` (bool, the dashboard shows
        reviewed labels; default ``n_reviewed > 0``), ``dashboard_url`` (an absolute ``https://``
        or ``http://`` URL, e.g. a presigned S3 link: used instead of ``dashboard_href``, for
        pages stored where a relative link would not open), ``n_drift`` (int) or ``drift`` (list of
        notes), ``n_issues`` (int) or ``issues`` (list), ``n_estimated`` (``{"subject": int,
        "work": int}``: VOCs whose shown tag of that dimension is a keyword guess, each ≤
        ``n_vocs``; shown as 추정 in their own column); other keys are ignored. A building not
        reviewed says 검수 전 with its share of low-confidence VOCs (:func:`review_state_text`).
    run_id, generated_at, source_credit
        Optional header and footer lines (the credit as in :func:`render_dashboard`).
    embed_font
        Embed a NanumGothic subset of the page's characters.
    review_href, review_label
        Optional link to the month's review sheet (relative like ``dashboard_href``, or an
        absolute ``http(s)://`` URL) and its text (default ``"검수 시트 열기"``).
    links_valid_until
        When the page's links expire (presigned URLs), shown as a note, e.g.
        ``"2019-12-08 02:00 KST"``; ``None``: the links do not expire.

    Returns
    -------
    str
        A complete HTML5 document (a few tens of kB with the font subset).

    Raises
    ------
    ValueError
        ``month`` is not a month; a building lacks a required key, has a negative or
        contradictory count, a non-relative ``dashboard_href``, a ``dashboard_url`` or
        ``review_href`` that is neither relative nor ``http(s)://`` (the message names
        ``buildings[i]`` and the field).
    """
    month = parse_month(month)
    rows = [_index_row(b, f"buildings[{i}]") for i, b in enumerate(buildings)]
    total = {k: sum(r[k] for r in rows) for k in ("n_vocs", "n_reviewed", "n_low", "n_drift", "n_issues")}
    total["percent"] = 100.0 * total["n_reviewed"] / total["n_vocs"] if total["n_vocs"] else 0.0
    total["estimated"] = estimated_text({d: sum(r["n_estimated"].get(d, 0) for r in rows) for d in _DIM_NAMES})
    ctx = {
        "page_title": f"VOC 월간 대시보드 목록 · {_month_label(month)}",
        "month_label": _month_label(month),
        "rows": rows,
        "total": total,
        "has_drift": any(r["n_drift"] for r in rows),
        "has_issues": any(r["n_issues"] for r in rows),
        "has_estimated": any(r["estimated"] for r in rows),
        "review_href": _review_href(review_href),
        "review_label": review_label or "검수 시트 열기",
        "links_valid_until": links_valid_until,
        "run_id": run_id,
        "generated_at": generated_at,
        "source_credit": _credit_text(source_credit),
        "font_stack": _CSS_FONT_STACK,
    }
    return _render_with_font(_jinja_env().get_template("month_index.html.j2"), ctx, embed_font=embed_font)
