"""Monthly VOC dashboard: one self-contained HTML page per building and month.

The page is rendered with jinja2 (autoescape on) from ``voc/templates/dashboard.html.j2`` and
holds everything it needs inline, so it opens offline from a file share or an e-mail attachment:

* plotly.js once (``plotly.offline.get_plotlyjs()``, about 4.8 MB), the figures as JSON produced by
  plotly's own serializer (which escapes ``<``, ``>`` and ``/``, so no text can close the
  ``<script>`` element that carries it);
* a subset of the NanumGothic font (only the characters the page uses, as a ``data:`` WOFF
  ``@font-face``) so that Hangul renders on machines without a Korean font;
* the word cloud as a ``data:image/png`` URI;
* a Content-Security-Policy that forbids every network request (``default-src 'none'``).

What the page shows (labels in Korean): title with building and month, KPI cards (total, change
against the previous month, daily mean, low-confidence rows), counts by subject and work type
(대분류 and 중분류), the daily trend, the last up-to-6 months' totals and subject shares when
history is given, top keywords with a word cloud, and the table of VOCs with their tags and
confidences. Optional blocks: review progress, drift notes, a data-source credit line.

Keyword pipeline::

    texts = keyword_texts(tagged)                        # title + request of each VOC
    nouns = KiwiTokenizer().keyword_nouns_batch(texts)   # NNG/NNP nouns per VOC
    kw = keyword_counts(nouns, top_k=50)                 # [(noun, n_vocs), ...]
    png = render_wordcloud_png(dict(kw))
    html = render_dashboard(tagged, ..., keywords=kw, wordcloud_png=png)

Everything here is pure: no network, no files written, no global state (the Hangul font is read
from the installed ``koreanize-matplotlib`` package, which is *not* imported).
"""

from __future__ import annotations

import base64
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
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from voc.months import month_range, months_before, parse_month

__all__ = [
    "ReviewStatus",
    "DEFAULT_STOPWORDS",
    "SAMPLE_SOURCE_CREDIT",
    "UNCLASSIFIED",
    "REQUIRED_DASHBOARD_COLUMNS",
    "hangul_font_path",
    "keyword_texts",
    "keyword_counts",
    "render_wordcloud_png",
    "render_dashboard",
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
}
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


def keyword_texts(tagged: pl.DataFrame) -> list[str]:
    """The text each VOC contributes to keywords: ``title`` + newline + ``request_contents``.

    The reply is left out: it is the office's wording, not the customer's.

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
    return [f"{t}\n{r}".strip() for t, r in zip(titles, reqs)]


def keyword_counts(
    nouns: Sequence[Sequence[str]],
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
        :func:`keyword_texts`).
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
        noun (deterministic); at most ``top_k`` pairs. Blank nouns are ignored.

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
    doc_freq: Counter[str] = Counter()
    for doc in nouns:
        doc_freq.update({n.strip() for n in doc if n and n.strip()} - stop)
    items = sorted(((n, c) for n, c in doc_freq.items() if c >= min_count), key=lambda nc: (-nc[1], nc[0]))
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
        A ``width × height`` RGB PNG, white background.

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
    words = {str(w): float(c) for w, c in freqs.items() if str(w).strip() and c and c > 0}
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
    buf = io.BytesIO()
    wc.to_image().save(buf, format="PNG", optimize=True)
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


def _normalise(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Labels: null/empty → 미분류; confidences → Float64 (nulls kept); text → Utf8 without
    nulls; created_at → Date."""
    _check_columns(df, name)
    df = _as_dates(df, name)
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
    return fig.to_json(validate=True, remove_uids=True)


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


def _font_subset_b64(codepoints: Collection[int], font: Path) -> str:
    """Base64 WOFF of ``font`` reduced to ``codepoints`` (those it has)."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    tt = TTFont(str(font))
    cmap = tt.getBestCmap()
    options = subset.Options()
    options.hinting = False
    options.name_IDs = [1, 2]
    options.drop_tables += ["TSI0", "TSI1", "TSI2", "TSI3", "TSI5", "DSIG"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(cp for cp in codepoints if cp in cmap))
    subsetter.subset(tt)
    tt.flavor = "woff"
    buf = io.BytesIO()
    tt.save(buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _font_face_css(chars: Iterable[str]) -> str:
    """Two ``@font-face`` rules (NanumGothic regular 400 and bold 700) with WOFF subsets
    covering ``chars`` plus printable ASCII."""
    codepoints = {ord(c) for c in chars if len(c) == 1} | set(range(0x20, 0x7F)) | {0xA0, 0xB7, 0x2013, 0x2026}
    regular, bold = hangul_font_path(), hangul_font_path(bold=True)
    rules = []
    for path, weight in ((regular, 400), (bold, 700)):
        if weight == 700 and bold == regular:
            continue  # no bold file: the browser synthesises bold from the regular face
        rules.append(
            "@font-face{font-family:'" + _FONT_FAMILY + f"';font-style:normal;font-weight:{weight};"
            "font-display:block;src:url(data:font/woff;base64," + _font_subset_b64(codepoints, path)
            + ") format('woff');}"
        )
    return "\n".join(rules)


# --------------------------------------------------------------------------------------------
# the page


def _table_rows(df: pl.DataFrame, low_confidence: float) -> list[dict[str, Any]]:
    df = df.sort(["created_at", "voc_id"], nulls_last=True)
    rows = []
    for r in df.iter_rows(named=True):
        title = r.get("title") or ""
        s_conf, w_conf = r.get("subject_confidence"), r.get("work_confidence")
        flags = [f for f in (r.get("flags") or "").split(";") if f]
        rows.append(
            {
                "voc_id": r["voc_id"],
                "date": r["created_at"].isoformat() if r["created_at"] is not None else "–",
                "title": title if title.strip() else "(제목 없음)",
                "title_short": _truncate(title, _TABLE_TITLE_CHARS) if title.strip() else "(제목 없음)",
                "request": r.get("request_contents") or "",
                "reply": r.get("reply") or "",
                "subject_major": r["subject_major"],
                "subject_minor": r["subject_minor"],
                "work_major": r["work_major"],
                "work_minor": r["work_minor"],
                "subject_conf": _fmt_conf(s_conf),
                "work_conf": _fmt_conf(w_conf),
                "subject_low": s_conf is not None and s_conf < low_confidence,
                "work_low": w_conf is not None and w_conf < low_confidence,
                "subject_reviewed": r.get("subject_source") == "reviewer",
                "work_reviewed": r.get("work_source") == "reviewer",
                "flags": [_FLAG_NAMES.get(f, f) for f in flags],
            }
        )
    return rows


def _is_low(df: pl.DataFrame, low_confidence: float) -> pl.Series:
    if df.height == 0:
        return pl.Series([], dtype=pl.Boolean)
    return df.select(
        ((pl.col("subject_confidence") < low_confidence) | (pl.col("work_confidence") < low_confidence))
        .fill_null(False)
    ).to_series()


def render_dashboard(
    tagged: pl.DataFrame,
    *,
    building_id: str,
    building_name: str,
    month: str,
    history: pl.DataFrame | None = None,
    keywords: Sequence[tuple[str, int]] = (),
    wordcloud_png: bytes | None = None,
    run_id: str,
    generated_at: str,
    review_status: ReviewStatus | None = None,
    drift: Sequence[str] = (),
    source_credit: str | None = None,
    reviewed: bool = False,
    low_confidence: float = 0.5,
    embed_font: bool = True,
    top_keywords: int = 20,
) -> str:
    """Render the monthly dashboard of one building as one self-contained HTML page.

    Parameters
    ----------
    tagged
        ``N × C`` tagged frame (:data:`voc.schema.TAGGED_COLUMNS`) of this building and month,
        ``N ≥ 0``. Needs :data:`REQUIRED_DASHBOARD_COLUMNS`; uses ``request_contents``,
        ``reply``, ``flags``, ``subject_source``/``work_source`` (``reviewer`` marks a reviewed
        tag), ``model_version`` and ``building_id`` when present. ``created_at`` is a
        ``pl.Date`` (``Datetime`` and ISO strings are converted). Null or empty labels are shown
        as ``미분류``; null confidences as ``–``.
    building_id, building_name
        Shown in the title (``building_name`` may be empty).
    month
        ``"YYYY-MM"`` (or any form :func:`voc.months.parse_month` accepts).
    history
        Earlier tagged rows (same columns), any number of months and buildings, or ``None``.
        Only rows of ``building_id`` (when the column exists) dated in the
        6 months before ``month`` are used: monthly totals and subject-major shares from the
        oldest such month to ``month``. Without such rows those charts are left out.
    keywords
        ``(noun, number of VOCs)`` pairs, most frequent first (:func:`keyword_counts`); the
        first ``top_keywords`` are charted.
    wordcloud_png
        PNG bytes (:func:`render_wordcloud_png`), embedded as a ``data:`` URI.
    run_id, generated_at
        Shown in the header (e.g. ``"full_20191201_020000"``, ``"2019-12-01 02:00 KST"``).
    review_status
        When given, review progress and the number of low-confidence rows nobody reviewed are
        shown at the top.
    drift
        Notes such as ``"새 분류: 시설>승강기"``, listed under 분류 변화 when non-empty.
    source_credit
        Data-source line in the footer (plain text; :data:`SAMPLE_SOURCE_CREDIT` for the
        shipped sample).
    reviewed
        Labels come from review: shows the 검수 반영 badge.
    low_confidence
        Confidence threshold in [0, 1]: rows with a subject or work confidence below it are
        highlighted and counted as 저신뢰.
    embed_font
        Embed a NanumGothic subset (only the characters of the page, ~100–400 kB) so that Hangul
        renders without a Korean system font.
    top_keywords
        Keywords shown in the bar chart.

    Returns
    -------
    str
        A complete HTML5 document (UTF-8 text, about 5–6 MB, most of it plotly.js). All VOC
        text is HTML-escaped; figure data is plotly JSON; no external resource is referenced.

    Raises
    ------
    ValueError
        A required column is missing; ``month`` is not a month; a ``created_at`` is not a date;
        ``tagged`` holds rows of another building (``building_id`` column) or dated outside
        ``month`` (the message gives the count and an example ``voc_id``);
        ``low_confidence`` outside [0, 1].
    FileNotFoundError
        ``embed_font`` and the NanumGothic font is missing (:func:`hangul_font_path`).
    """
    import jinja2
    import plotly.offline

    month = parse_month(month)
    if not 0.0 <= low_confidence <= 1.0:
        raise ValueError(f"low_confidence must be in [0, 1], got {low_confidence!r}")
    building_id = str(building_id)
    df = _normalise(tagged, "tagged")
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

    # ---- history window
    hist = None
    if history is not None and history.height:
        h = _normalise(history, "history")
        window = months_before(month, _HISTORY_MONTHS)
        w_start = month_range(window[0])[0]
        h = h.filter((pl.col("created_at") >= w_start) & (pl.col("created_at") < start))
        if "building_id" in h.columns:
            h = h.filter(pl.col("building_id") == building_id)
        hist = h if h.height else None

    n = df.height
    figures: list[dict[str, Any]] = []

    def add(fig_id: str, title: str, fig: Any, *, wide: bool = False, note: str = "") -> None:
        figures.append({"id": fig_id, "title": title, "json": _fig_json(fig), "wide": wide, "note": note,
                        "height": int(fig.layout.height)})

    subj_major = _counts(df, ["subject_major"])
    work_major = _counts(df, ["work_major"])
    if n:
        add("fig-subject-major", "주제 대분류별 건수",
            _hbar([k[0] for k, _ in subj_major], [c for _, c in subj_major], color=_PALETTE[0]))
        add("fig-work-major", "작업유형 대분류별 건수",
            _hbar([k[0] for k, _ in work_major], [c for _, c in work_major], color=_PALETTE[1]))
        lab, hov, val = _minor_labels(_counts(df, ["subject_major", "subject_minor"]))
        add("fig-subject-minor", "주제 중분류별 건수", _hbar(lab, val, color="#5b8fd0", hover=hov),
            note=f"상위 {_MINOR_TOP}개" if len(val) > _MINOR_TOP else "")
        lab, hov, val = _minor_labels(_counts(df, ["work_major", "work_minor"]))
        add("fig-work-minor", "작업유형 중분류별 건수", _hbar(lab, val, color="#eba46f", hover=hov),
            note=f"상위 {_MINOR_TOP}개" if len(val) > _MINOR_TOP else "")
        add("fig-daily", "일별 VOC 추이", _daily_fig(df, month), wide=True, note="토요일 파랑, 일요일 빨강")

    month_counts: list[tuple[str, int]] = []
    prev_total: int | None = None
    if hist is not None:
        months = _history_months(hist, month)
        per_month = Counter(_month_key(d) for d in hist["created_at"].to_list())
        per_month[month] = n
        month_counts = [(m, int(per_month.get(m, 0))) for m in months]
        add("fig-monthly", f"월별 VOC 건수 (최근 {len(months) - 1}개월 비교)", _monthly_fig(month_counts, month))
        both = pl.concat(
            [hist.select("created_at", "subject_major"), df.select("created_at", "subject_major")],
            how="vertical_relaxed",
        ).with_columns(pl.col("created_at").dt.strftime("%Y-%m").alias("_month"))
        if both.height:
            add("fig-subject-share", "월별 주제 대분류 비중", _share_fig(both, months))
        prev = months_before(month, 1)[0]
        if prev in months:
            prev_total = int(per_month.get(prev, 0))

    kw = [(str(w), int(c)) for w, c in keywords][: max(0, top_keywords)]
    if kw:
        add("fig-keywords", f"주요 키워드 (상위 {len(kw)}개, VOC 건수 기준)",
            _hbar([w for w, _ in kw], [c for _, c in kw], color=_PALETTE[2]))

    # ---- KPI cards
    low_mask = _is_low(df, low_confidence)
    n_low = int(low_mask.sum()) if n else 0
    days_in_month = (end - start).days
    kpis: list[dict[str, str]] = [
        {"label": "총 VOC", "value": f"{n:,}건", "sub": _month_label(month), "cls": ""},
    ]
    if prev_total is not None:
        diff = n - prev_total
        pct = f" ({diff / prev_total * 100:+.0f}%)" if prev_total else ""
        kpis.append({"label": "전월 대비", "value": f"{diff:+,}건", "sub": f"전월 {prev_total:,}건{pct}",
                     "cls": "up" if diff > 0 else "down" if diff < 0 else ""})
    kpis.append({"label": "일평균", "value": f"{n / days_in_month:.1f}건", "sub": f"{days_in_month}일 기준", "cls": ""})
    if n:
        kpis.append({"label": "최다 주제", "value": subj_major[0][0][0],
                     "sub": f"{subj_major[0][1]:,}건 ({subj_major[0][1] / n * 100:.0f}%)", "cls": "text"})
        kpis.append({"label": "저신뢰 VOC", "value": f"{n_low:,}건",
                     "sub": f"신뢰도 {low_confidence:.2f} 미만 ({n_low / n * 100:.0f}%)",
                     "cls": "warn" if n_low else ""})

    model_versions = (
        sorted({v for v in df["model_version"].to_list() if v}) if "model_version" in df.columns else []
    )
    wordcloud_uri = (
        "data:image/png;base64," + base64.b64encode(wordcloud_png).decode("ascii") if wordcloud_png else None
    )
    name = building_name.strip() if building_name else ""
    display_name = f"{name} ({building_id})" if name else f"건물 {building_id}"
    ctx: dict[str, Any] = {
        "page_title": f"{display_name} VOC 월간 대시보드 · {_month_label(month)}",
        "display_name": display_name,
        "building_id": building_id,
        "month": month,
        "month_label": _month_label(month),
        "n_total": n,
        "kpis": kpis,
        "figures": figures,
        "keywords": kw,
        "wordcloud_uri": wordcloud_uri,
        "table": _table_rows(df, low_confidence),
        "low_confidence": f"{low_confidence:.2f}",
        "review_status": review_status,
        "drift": [str(d) for d in drift if str(d).strip()],
        "source_credit": source_credit,
        "reviewed": reviewed,
        "run_id": run_id,
        "generated_at": generated_at,
        "model_versions": model_versions,
        "has_history": hist is not None,
        "font_stack": _CSS_FONT_STACK,
        "plotly_config": json.dumps(
            {"displaylogo": False, "responsive": True, "displayModeBar": "hover",
             "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "zoomIn2d", "zoomOut2d"]}
        ),
        "font_family": _FONT_FAMILY,
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("voc", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    template = env.get_template("dashboard.html.j2")
    font_css = ""
    if embed_font:
        draft = template.render(**ctx, plotly_js="", font_css="")
        chars = set(draft)
        for f in figures:
            for s in _json_strings(json.loads(f["json"])):
                chars.update(s)
        font_css = _font_face_css(chars)
    return template.render(**ctx, plotly_js=plotly.offline.get_plotlyjs(), font_css=font_css)
