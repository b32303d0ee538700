"""One building's month, as pure functions: the library half of the monthly flows.

``tag_building`` (modes ``full`` and ``tagging-only``) and ``refresh_building`` (mode
``refresh``) take frames and a model, and return a :class:`BuildingOutput` (frames, dashboard
HTML, counts, drift notes). They read no file and write none: the Prefect flows
(:mod:`flows.monthly`) read the inputs, call these, and write what comes back, so the same code
runs in a test, in a thread of the flow process, or on a Dask worker on another machine.

Every input VOC comes out exactly once in ``BuildingOutput.frame`` (tagged, or reviewed), in
input order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from voc.months import Month

__all__ = [
    "DEFAULT_LOW_CONFIDENCE",
    "HISTORY_COLUMNS",
    "DashboardContext",
    "BuildingOutput",
    "tag_building",
    "refresh_building",
    "history_from_source_rows",
    "combine_history",
    "review_flag_mask",
]

DEFAULT_LOW_CONFIDENCE = 0.5
"""Review-priority threshold when the model carries none (its held-out choice, see voc.metrics)."""

HISTORY_COLUMNS: dict[str, Any] = {
    "voc_id": pl.Utf8,
    "building_id": pl.Utf8,
    "created_at": pl.Date,
    "yyyymm": pl.Utf8,
    "title": pl.Utf8,
    "subject_major": pl.Utf8,
    "subject_minor": pl.Utf8,
    "subject_confidence": pl.Float64,
    "work_major": pl.Utf8,
    "work_minor": pl.Utf8,
    "work_confidence": pl.Float64,
}
"""Columns of the earlier months a dashboard draws trends from (:func:`combine_history`)."""

_LABELS = ("subject_major", "subject_minor", "work_major", "work_minor")


@dataclass(frozen=True)
class DashboardContext:
    """What a building's dashboard shows besides its rows (plain data).

    ``generated_at`` is the caller's clock, formatted (``"2026-12-01 02:00 KST"``); the
    pipeline reads no clock. ``source_credit`` is the data-source line of the footer, or None.
    """

    building_id: str
    building_name: str
    month: Month
    run_id: str
    generated_at: str
    source_credit: str | None = None


@dataclass
class BuildingOutput:
    """What one building's month produced.

    ``frame``: ``N × C`` tagged (:data:`voc.schema.TAGGED_COLUMNS`) or reviewed frame, the
    building's N input VOCs in input order. ``dashboard_html``: UTF-8 HTML, or None when not
    rendered (``tagging-only``). Counts are VOCs; ``low_confidence`` counts the rows 검토 우선
    would flag (:func:`voc.review.review_flags`) that no reviewer handled. ``review_issues``:
    one dict per rejected review cell (``sheet_row``, ``column``, ``value``, ``message``).
    ``groups`` / ``evidence``: N entries each for the review sheet (tagging only): the 묶음 id
    (``voc.groups.near_duplicate_groups``, None alone) and the similar reviewed VOCs
    (``voc.evidence.tagger_evidence``; None for a model without an evidence pool).
    ``group_applied`` / ``retired_mapped``: refresh rows labelled through a 묶음 decision, and
    reviewer values that named a retired class (read as its successor).
    """

    frame: pl.DataFrame
    dashboard_html: bytes | None = None
    flagged: int = 0
    low_confidence: int = 0
    reviewed: int = 0
    review_issues: list[dict[str, Any]] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    groups: list[str | None] = field(default_factory=list)
    evidence: list[Any] | None = None
    issues: list[dict[str, Any]] = field(default_factory=list)
    group_applied: int = 0
    retired_mapped: int = 0


def review_flag_mask(frame: pl.DataFrame, thresholds: Mapping[str, float]) -> pl.Series:
    """``N`` booleans: rows 검토 우선 flags (:func:`voc.review.review_flags`: a dimension a
    trained model tagged, below its threshold); reviewer-labelled dimensions never count."""
    from voc.review import review_flags

    dims = ("subject", "work")
    flags, _, _ = review_flags(
        {d: frame[f"{d}_confidence"].to_list() for d in dims},
        {d: frame[f"{d}_source"].to_list() for d in dims} if all(f"{d}_source" in frame.columns for d in dims) else None,
        thresholds,
    )
    return pl.Series("review_flag", flags, dtype=pl.Boolean)


def history_from_source_rows(rows: pl.DataFrame, month: Month) -> pl.DataFrame:
    """Source rows of an earlier month never run through the system, as history: their input
    labels (``reviewed_*``) stand in for tags, confidences are null."""
    return rows.with_columns(
        pl.lit(month.yyyymm).alias("yyyymm"),
        *[pl.col(f"reviewed_{c}").alias(c) for c in _LABELS],
        pl.lit(None, dtype=pl.Float64).alias("subject_confidence"),
        pl.lit(None, dtype=pl.Float64).alias("work_confidence"),
    )


def combine_history(frames: Sequence[pl.DataFrame]) -> pl.DataFrame | None:
    """Earlier months' frames (tagged/reviewed CSVs or :func:`history_from_source_rows`) as one
    frame of :data:`HISTORY_COLUMNS` (values that do not cast become null); None when empty."""
    if not frames:
        return None
    return pl.concat([f.select([pl.col(c).cast(t, strict=False) for c, t in HISTORY_COLUMNS.items()]) for f in frames])


def _render(
    frame: pl.DataFrame,
    *,
    keyword_nouns: Sequence[Sequence[str]] | None,
    tokenizer: Any,
    use_reply: bool,
    ctx: DashboardContext,
    history: pl.DataFrame | None,
    reviewed: bool,
    review_status: Any,
    drift: list[str],
    low_confidence: float | None,
    issues: list[dict[str, Any]],
) -> bytes:
    from voc.dashboard import COMPACT_BELOW, keyword_counts, render_dashboard, render_wordcloud_png
    from voc.tagger import frame_analyses

    kws: list[tuple[str, int]] = []
    if frame.height >= COMPACT_BELOW:  # the compact page shows no keywords
        if keyword_nouns is None:  # the same analysis as the tagging run's: same keywords in full and refresh
            keyword_nouns = [a.keyword_nouns for a in frame_analyses(frame, use_reply=use_reply, tokenizer=tokenizer)]
        kws = keyword_counts(keyword_nouns) if keyword_nouns else []
    png = render_wordcloud_png(dict(kws)) if kws else None
    html = render_dashboard(
        frame,
        building_id=ctx.building_id,
        building_name=ctx.building_name,
        month=ctx.month,
        history=history,
        keywords=kws,
        wordcloud_png=png,
        run_id=ctx.run_id,
        generated_at=ctx.generated_at,
        review_status=review_status,
        drift=drift,
        source_credit=ctx.source_credit,
        reviewed=reviewed,
        low_confidence=low_confidence if low_confidence is not None else DEFAULT_LOW_CONFIDENCE,
        issues=issues,
    )
    return html.encode("utf-8")


def _groups(frame: pl.DataFrame, tagger: Any) -> tuple[list[str | None], list[dict[str, Any]]]:
    """묶음 ids of the building-month and the 주요 이슈 summaries of groups of 3 or more."""
    from voc.groups import group_summaries, near_duplicate_groups

    vec = getattr(tagger, "group_vectorizer", None)
    ids = near_duplicate_groups(frame, vectorizer=vec)
    return ids.to_list(), group_summaries(frame, ids, min_size=3, vectorizer=vec)


def _tokenizer_of(tagger: Any) -> Any:
    from voc.tokenize import KiwiTokenizer

    tok = getattr(tagger, "tokenizer", None)
    return tok if isinstance(tok, KiwiTokenizer) else KiwiTokenizer()


def model_labels_of(tagger: Any) -> dict[str, list[str]]:
    """Per dimension, the labels ``tagger`` can predict (drift checks name the others)."""
    return {d: tagger.model_labels(d) for d in tagger.taxonomy.dimensions()}


def _drift(frame: pl.DataFrame, model_labels: Mapping[str, list[str]], history: pl.DataFrame | None) -> list[str]:
    from voc.quality import drift_messages

    return drift_messages(reviewed=frame, model_labels=dict(model_labels), history=history)


def tag_building(
    rows: pl.DataFrame,
    tagger: Any,
    *,
    run_id: str,
    history: pl.DataFrame | None = None,
    dashboard: DashboardContext | None = None,
    review_threshold: float | None = None,
) -> BuildingOutput:
    """Tag one building's month, find its mass complaints and the evidence for each tag, and,
    given a ``dashboard`` context, render its dashboard — from one Kiwi analysis per VOC.

    Parameters
    ----------
    rows
        ``N × C`` validated VOC frame (:func:`voc.schema.validate_voc_frame`) of one building.
    tagger
        A loaded tagger (:class:`voc.tagger.Tagger`).
    run_id
        Written to every tagged row.
    history
        Earlier months (:func:`combine_history`) for trends and drift, or None.
    dashboard
        Render the dashboard (mode ``full``) when given; ``tagging-only`` passes None.
    review_threshold
        One confidence threshold overriding the model's per-dimension review thresholds
        (``VOC_REVIEW__LOW_CONFIDENCE_THRESHOLD``), or None.

    Returns
    -------
    BuildingOutput
        ``frame`` = the ``N`` tagged rows; ``flagged`` = rows with an input/text flag;
        ``low_confidence`` = rows 검토 우선 flags; ``groups``/``evidence`` for the review sheet;
        ``issues`` and ``drift`` only when a dashboard is rendered.
    """
    from voc.dashboard import ReviewStatus
    from voc.evidence import tagger_evidence
    from voc.review import review_thresholds_of
    from voc.tagger import frame_analyses, frame_texts, tag_frame

    tok = _tokenizer_of(tagger)
    analyses = frame_analyses(rows, use_reply=tagger.use_reply, tokenizer=tok) if rows.height else []
    tagged = tag_frame(rows, tagger, run_id=run_id, analyses=analyses)
    thresholds = review_thresholds_of(tagger, override=review_threshold)
    groups, issues = _groups(tagged, tagger)
    texts, _ = frame_texts(rows, use_reply=tagger.use_reply)
    out = BuildingOutput(
        tagged,
        flagged=int((tagged["flags"] != "").sum()),
        low_confidence=int(review_flag_mask(tagged, thresholds).sum()),
        groups=groups,
        evidence=tagger_evidence(tagger, texts, ids=tagged["voc_id"].to_list(), tokens=[a.model_tokens for a in analyses]),
    )
    if dashboard is not None:
        out.issues = issues
        out.drift = _drift(tagged, model_labels_of(tagger), history)
        out.dashboard_html = _render(
            tagged,
            keyword_nouns=[a.keyword_nouns for a in analyses],
            tokenizer=tok,
            use_reply=tagger.use_reply,
            ctx=dashboard,
            history=history,
            reviewed=False,
            review_status=ReviewStatus(n_total=tagged.height, n_reviewed=0, n_low_confidence_unreviewed=out.low_confidence),
            drift=out.drift,
            low_confidence=thresholds.get("subject"),
            issues=issues,
        )
    return out


def refresh_building(
    tagged: pl.DataFrame,
    sheet: pl.DataFrame | None,
    tagger: Any,
    *,
    history: pl.DataFrame | None,
    dashboard: DashboardContext,
    review_threshold: float | None = None,
) -> BuildingOutput:
    """Fold the review sheet into one building's newest tagged frame and render the reviewed
    dashboard.

    Parameters
    ----------
    tagged
        ``N × C`` tagged frame of one building and month (its newest tagged CSV).
    sheet
        Review-sheet rows (:mod:`voc.review` columns) — any rows; only those whose ``voc_id`` is
        in ``tagged`` are used — or None when there is no sheet yet.
    tagger
        The model of the run: its taxonomy validates the reviewers' labels, its label sets and
        review threshold feed drift notes and counts.
    history, dashboard, review_threshold
        As in :func:`tag_building` (the dashboard is always rendered in a refresh).

    Returns
    -------
    BuildingOutput
        ``frame`` = the ``N`` reviewed rows (:func:`voc.review.merge_reviews`); ``reviewed`` =
        rows with a reviewed dimension (a 묶음 decision included); ``review_issues`` = rejected
        cells; ``low_confidence`` = rows 검토 우선 flags that no reviewer handled; ``issues`` =
        the 주요 이슈 of the reviewed month.
    """
    from voc.dashboard import ReviewStatus
    from voc.review import merge_reviews, review_thresholds_of

    own = None
    if sheet is not None and sheet.height:
        own = sheet.filter(pl.col("voc_id").cast(pl.Utf8).is_in(tagged["voc_id"].cast(pl.Utf8).implode()))
    reviewed, stats = merge_reviews(tagged, own, tagger.taxonomy)
    thresholds = review_thresholds_of(tagger, override=review_threshold)
    _, issues = _groups(reviewed, tagger)
    out = BuildingOutput(
        reviewed,
        reviewed=int(stats.n_reviewed),
        review_issues=[asdict(i) if hasattr(i, "__dataclass_fields__") else dict(i) for i in stats.issues],
        # what the dashboard calls low confidence: flagged rows that no reviewer handled
        low_confidence=int((review_flag_mask(reviewed, thresholds) & ~reviewed["is_reviewed"]).sum()),
        issues=issues,
        group_applied=int(getattr(stats, "n_group_applied", 0)),
        retired_mapped=int(getattr(stats, "n_retired_mapped", 0)),
    )
    out.drift = _drift(reviewed, model_labels_of(tagger), history)
    out.dashboard_html = _render(
        reviewed,
        keyword_nouns=None,
        tokenizer=_tokenizer_of(tagger),
        use_reply=tagger.use_reply,
        ctx=dashboard,
        history=history,
        reviewed=True,
        review_status=ReviewStatus(n_total=reviewed.height, n_reviewed=out.reviewed, n_low_confidence_unreviewed=out.low_confidence),
        drift=out.drift,
        low_confidence=thresholds.get("subject"),
        issues=issues,
    )
    return out
