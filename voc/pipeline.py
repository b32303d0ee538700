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

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from voc.dashboard import DashboardContext  # the building, month and run a dashboard is for
from voc.months import Month

if TYPE_CHECKING:
    from voc.tagger import Tagger
    from voc.tokenize import KiwiTokenizer

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
    "request_contents": pl.Utf8,
}
"""Columns of the earlier months a dashboard draws trends from (:func:`combine_history`);
``request_contents`` (null when a frame lacks it) is what ``repeat_of`` compares
(:func:`voc.urgency.repeat_of`)."""

_LABELS = ("subject_major", "subject_minor", "work_major", "work_minor")


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
    ``reply_drafts``: N 답변 초안 texts for the review sheet and the dashboard
    (``voc.replies.format_reply_draft`` of the best ``voc.replies.suggest_replies``; ``""`` below
    the similarity threshold), None for a model whose evidence pool has no replies.
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
    reply_drafts: list[str] | None = None
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
    return pl.concat([
        f.select([
            pl.col(c).cast(t, strict=False) if c in f.columns or c != "request_contents" else pl.lit(None, dtype=t).alias(c)
            for c, t in HISTORY_COLUMNS.items()
        ])
        for f in frames
    ])


def _render(
    frame: pl.DataFrame,
    *,
    keyword_nouns: Sequence[Sequence[str]] | Mapping[str, int] | None,
    tokenizer: KiwiTokenizer,
    use_reply: bool,
    ctx: DashboardContext,
    history: pl.DataFrame | None,
    reviewed: bool,
    review_status: Any,
    drift: list[str],
    low_confidence: float | None,
    issues: list[dict[str, Any]],
) -> bytes:
    from voc.dashboard import (
        COMPACT_BELOW,
        DashboardContent,
        DashboardOptions,
        keyword_counts,
        keyword_doc_freq,
        render_dashboard,
        render_wordcloud_png,
    )
    from voc.tagger import DEFAULT_CHUNK_ROWS, frame_analyses

    kws: list[tuple[str, int]] = []
    if frame.height >= COMPACT_BELOW:  # the compact page shows no keywords
        if keyword_nouns is None:  # the same analysis as the tagging run's: same keywords in full and refresh
            keyword_nouns = Counter()  # counted chunk by chunk: one chunk's analyses in memory
            for start in range(0, frame.height, DEFAULT_CHUNK_ROWS):
                part = frame_analyses(frame.slice(start, DEFAULT_CHUNK_ROWS), use_reply=use_reply, tokenizer=tokenizer)
                keyword_doc_freq((a.keyword_nouns for a in part), into=keyword_nouns)
        kws = keyword_counts(keyword_nouns) if keyword_nouns else []
    png = render_wordcloud_png(dict(kws)) if kws else None
    html = render_dashboard(
        frame,
        ctx,
        DashboardContent(
            history=history,
            keywords=kws,
            wordcloud_png=png,
            review_status=review_status,
            drift=drift,
            reviewed=reviewed,
            issues=issues,
        ),
        DashboardOptions(low_confidence=low_confidence if low_confidence is not None else DEFAULT_LOW_CONFIDENCE),
    )
    return html.encode("utf-8")


def _group_ids(frame: pl.DataFrame, tagger: Tagger) -> list[str | None]:
    """묶음 ids of the building-month's N rows (:func:`voc.groups.near_duplicate_groups`, with the
    tagger's reference vectorizer when it has one: :func:`voc.tagger.group_vectorizer_of`)."""
    from voc.groups import near_duplicate_groups
    from voc.tagger import group_vectorizer_of

    return near_duplicate_groups(frame, vectorizer=group_vectorizer_of(tagger)).to_list()


def _groups(
    frame: pl.DataFrame, tagger: Tagger, ids: list[str | None] | None = None
) -> tuple[list[str | None], list[dict[str, Any]]]:
    """묶음 ids of the building-month (``ids`` when already known) and the 주요 이슈 summaries of
    groups of 3 or more."""
    from voc.groups import group_summaries
    from voc.tagger import group_vectorizer_of

    if ids is None:
        ids = _group_ids(frame, tagger)
    return ids, group_summaries(frame, ids, min_size=3, vectorizer=group_vectorizer_of(tagger))


def _with_repeats(tagged: pl.DataFrame, tagger: Tagger, history: pl.DataFrame | None) -> pl.DataFrame:
    """``repeat_of`` filled (:func:`voc.urgency.repeat_of`): against the month itself and, in mode
    ``full``, the earlier months' VOCs of the building within 30 days."""
    from voc.tagger import group_vectorizer_of
    from voc.urgency import repeat_of

    if not tagged.height:
        return tagged
    return tagged.with_columns(repeat_of(tagged, history, vectorizer=group_vectorizer_of(tagger)))


_REPLY_NEIGHBOURS = 10
"""Neighbours searched for a replied one when the pool has replies (as ``voc.replies.tagger_reply_suggestions``)."""


def _pool_replies(tagger: Tagger) -> dict[str, str | None] | None:
    """``voc_id`` → reply of the tagger's evidence pool (:class:`voc.tagger.ReviewAids`), None when
    it has none or no replies (``ReviewedPool.replies`` defaults to None on pools pickled before it)."""
    from voc.tagger import ReviewAids

    pool = tagger.evidence_pool if isinstance(tagger, ReviewAids) else None
    replies = pool.replies if pool is not None else None
    return dict(zip(pool.ids, replies)) if pool is not None and replies else None


def _best_drafts(neighbours: Sequence[Sequence[Any]], replies: Mapping[str, str | None]) -> list[str]:
    """The 답변 초안 of N rows from their neighbours: the best reply above
    ``voc.replies.MIN_SIMILARITY``, formatted (``""`` where none)."""
    from voc.replies import format_reply_draft, suggest_replies

    return [format_reply_draft(s[0] if s else None) for s in suggest_replies(neighbours, dict(replies), max_suggestions=1)]


def _with_drafts(frame: pl.DataFrame, voc_ids: Sequence[Any], drafts: Sequence[str] | None) -> pl.DataFrame:
    """``frame`` with a ``reply_draft`` column (what the dashboard shows) taken from ``drafts`` by
    ``voc_id`` (the first for a repeated id, ``""`` for the others); ``frame`` itself without drafts."""
    if drafts is None:
        return frame
    by_id: dict[str, str] = {}
    for v, d in zip(voc_ids, drafts):
        by_id.setdefault(str(v).strip(), d or "")
    ids = frame["voc_id"].cast(pl.Utf8).to_list()
    return frame.with_columns(pl.Series("reply_draft", [by_id.get(str(v).strip(), "") for v in ids], dtype=pl.Utf8))


def _tokenizer_of(tagger: Tagger) -> KiwiTokenizer:
    """The tagger's Kiwi analyser (:class:`voc.tagger.KiwiTagger`), else a new one (the
    dashboard's keywords are Kiwi nouns whatever the model reads)."""
    from voc.tagger import KiwiTagger
    from voc.tokenize import KiwiTokenizer

    return tagger.kiwi_tokenizer if isinstance(tagger, KiwiTagger) else KiwiTokenizer()


def model_labels_of(tagger: Tagger) -> dict[str, list[str]]:
    """Per dimension, the labels ``tagger`` can predict (drift checks name the others)."""
    return {d: tagger.model_labels(d) for d in tagger.taxonomy.dimensions()}


def _drift(
    frame: pl.DataFrame,
    model_labels: Mapping[str, list[str]],
    history: pl.DataFrame | None,
    group_ids: Sequence[str | None] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> list[str]:
    """Drift notes: a 묶음 counts as one event, unconfirmed tags carry no alert (voc.drift)."""
    from voc.drift import drift_messages

    return drift_messages(
        reviewed=frame, model_labels=dict(model_labels), history=history, group_ids=group_ids, thresholds=thresholds
    )


def _tag_in_chunks(
    rows: pl.DataFrame,
    tagger: Tagger,
    *,
    run_id: str,
    tokenizer: KiwiTokenizer,
    chunk_rows: int,
    progress: Callable[[str], None] | None,
    groups: Sequence[str | None] | None = None,
) -> tuple[pl.DataFrame, Counter[str], list[Any] | None, list[str] | None]:
    """Tagged rows (input order), keyword document frequencies
    (:func:`voc.dashboard.keyword_doc_freq`), evidence (:func:`voc.evidence.tagger_evidence`) and
    reply drafts (:func:`_best_drafts`, from the same neighbour search) of a month, from one Kiwi
    analysis per VOC held one chunk at a time
    (:func:`voc.tagger.tag_frame_chunks`; ``groups``: one tag per near-duplicate group);
    ``progress`` gets one line per chunk."""
    from voc.dashboard import keyword_doc_freq
    from voc.evidence import DEFAULT_K, tagger_evidence
    from voc.tagger import chunk_positions, frame_texts, tag_frame, tag_frame_chunks

    parts: list[pl.DataFrame] = []
    order: list[np.ndarray] = []
    freq: Counter[str] = Counter()
    evidence: list[Any] | None = []
    replies = _pool_replies(tagger)
    drafts: list[str] | None = [] if replies is not None else None
    n_chunks = len(chunk_positions(rows.height, chunk_rows, groups))
    done = 0
    chunks = tag_frame_chunks(rows, tagger, run_id=run_id, tokenizer=tokenizer, chunk_rows=chunk_rows, groups=groups)
    for i, chunk in enumerate(chunks):
        parts.append(chunk.tagged)
        order.append(chunk.index)
        done += chunk.tagged.height
        keyword_doc_freq((a.keyword_nouns for a in chunk.analyses), into=freq)
        texts, _ = frame_texts(chunk.rows, use_reply=tagger.use_reply)
        ev = tagger_evidence(
            tagger, texts, ids=chunk.tagged["voc_id"].to_list(), tokens=[a.model_tokens for a in chunk.analyses],
            k=_REPLY_NEIGHBOURS if replies is not None else DEFAULT_K,
        )
        if ev is None:  # a tagger without an evidence pool
            evidence = drafts = None
        elif evidence is not None:
            evidence.extend(nbs[:DEFAULT_K] for nbs in ev)
            if drafts is not None and replies is not None:
                drafts.extend(_best_drafts(ev, replies))
        if progress is not None:
            progress(f"chunk {i + 1}/{n_chunks}: {done:,} of {rows.height:,} VOCs tagged")
    if not parts:  # an empty month: the tagged frame's columns, no rows
        empty = tagger_evidence(tagger, [], ids=[], tokens=[])
        return tag_frame(rows, tagger, run_id=run_id), freq, empty, [] if empty is not None and replies is not None else None
    tagged = pl.concat(parts, rechunk=True)
    positions = np.concatenate(order)
    if not np.array_equal(positions, np.arange(rows.height)):  # chunks kept groups together: back to input order
        back = np.argsort(positions, kind="stable")
        tagged = tagged[back.tolist()]
        evidence = [evidence[int(j)] for j in back] if evidence is not None else None
        drafts = [drafts[int(j)] for j in back] if drafts is not None else None
    return tagged, freq, evidence, drafts


def tag_building(
    rows: pl.DataFrame,
    tagger: Tagger,
    *,
    run_id: str,
    history: pl.DataFrame | None = None,
    dashboard: DashboardContext | None = None,
    review_threshold: float | None = None,
    chunk_rows: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildingOutput:
    """Tag one building's month, find its mass complaints and the evidence for each tag, and,
    given a ``dashboard`` context, render its dashboard — from one Kiwi analysis per VOC, made
    and used ``chunk_rows`` VOCs at a time, so memory does not grow with the month beyond its
    tagged rows (200,000 VOCs of one building: docs/benchmarks.md "Huge building").

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
    chunk_rows
        VOCs analysed and tagged at a time (≥ 1; default :data:`voc.tagger.DEFAULT_CHUNK_ROWS`).
        The results do not depend on it.
    progress
        Called with one line per chunk (``"chunk 3/100: 6,000 of 200,000 VOCs tagged"``; the
        flow passes its logger's ``info``), or None.

    Returns
    -------
    BuildingOutput
        ``frame`` = the ``N`` tagged rows; ``flagged`` = rows with an input/text flag;
        ``low_confidence`` = rows 검토 우선 flags; ``groups``/``evidence``/``reply_drafts`` for the
        review sheet (the drafts also in the dashboard's VOC list);
        ``issues`` and ``drift`` only when a dashboard is rendered.

    Raises
    ------
    ValueError
        ``chunk_rows`` < 1.
    """
    from voc.dashboard import ReviewStatus
    from voc.review import review_thresholds_of
    from voc.tagger import DEFAULT_CHUNK_ROWS

    tok = _tokenizer_of(tagger)
    group_ids = _group_ids(rows, tagger)  # one tag per mass complaint (voc.pooling)
    tagged, keyword_freq, evidence, drafts = _tag_in_chunks(
        rows, tagger, run_id=run_id, tokenizer=tok, chunk_rows=DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows,
        progress=progress, groups=group_ids,
    )
    thresholds = review_thresholds_of(tagger, override=review_threshold)
    tagged = _with_repeats(tagged, tagger, history)
    groups, issues = _groups(tagged, tagger, group_ids)
    out = BuildingOutput(
        tagged,
        flagged=int((tagged["flags"] != "").sum()),
        low_confidence=int(review_flag_mask(tagged, thresholds).sum()),
        groups=groups,
        evidence=evidence,
        reply_drafts=drafts,
    )
    if dashboard is not None:
        out.issues = issues
        out.drift = _drift(tagged, model_labels_of(tagger), history, groups, thresholds)
        out.dashboard_html = _render(
            _with_drafts(tagged, tagged["voc_id"].to_list(), drafts),  # 답변 초안 on demand in the VOC list
            keyword_nouns=keyword_freq,
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
    tagger: Tagger,
    *,
    history: pl.DataFrame | None,
    dashboard: DashboardContext | None,
    review_threshold: float | None = None,
) -> BuildingOutput:
    """Fold the review sheet into one building's newest tagged frame and render the reviewed
    dashboard (mode ``refresh``, and a ``full``/``tagging-only`` rerun of a month with reviews:
    :mod:`flows.monthly`). The dashboard's 답변 초안 are the sheet's (its 답변 초안 column, when it
    has one): no new neighbour search.

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
        As in :func:`tag_building` (a refresh always passes a ``dashboard``; None — a
        ``tagging-only`` rerun — renders nothing and notes no drift).

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

    own, own_rows = None, None
    if sheet is not None and sheet.height:
        # this building's rows, with their spreadsheet row numbers (data row i is row i + 2)
        own = sheet.with_row_index("__sheet_row", offset=2).filter(
            pl.col("voc_id").cast(pl.Utf8).str.strip_chars().is_in(tagged["voc_id"].cast(pl.Utf8).implode())
        )
        own_rows = own["__sheet_row"].to_list()
        own = own.drop("__sheet_row")
    reviewed, stats = merge_reviews(tagged, own, tagger.taxonomy, row_numbers=own_rows)
    thresholds = review_thresholds_of(tagger, override=review_threshold)
    group_ids, issues = _groups(reviewed, tagger)
    out = BuildingOutput(
        reviewed,
        reviewed=int(stats.n_reviewed),
        review_issues=[asdict(i) for i in stats.issues],  # voc.review.ReviewIssue
        # what the dashboard calls low confidence: flagged rows that no reviewer handled
        low_confidence=int((review_flag_mask(reviewed, thresholds) & ~reviewed["is_reviewed"]).sum()),
        issues=issues,
        group_applied=int(stats.n_group_applied),
        retired_mapped=int(stats.n_retired_mapped),
    )
    if dashboard is None:
        return out
    out.drift = _drift(reviewed, model_labels_of(tagger), history, group_ids, thresholds)
    from voc.review import COL_REPLY_DRAFT

    shown = reviewed
    if own is not None and COL_REPLY_DRAFT in own.columns:  # the sheet's 답변 초안: no new search
        shown = _with_drafts(reviewed, own["voc_id"].to_list(), own[COL_REPLY_DRAFT].to_list())
    out.dashboard_html = _render(
        shown,
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
