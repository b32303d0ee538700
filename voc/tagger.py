"""Taggers: classifiers for both dimensions bundled with their taxonomy, and the training recipe.

A *tagger* (protocol :class:`Tagger`) turns N ``all_text`` strings into :class:`~voc.classify.base.Tags`
for each dimension (``subject``, ``work``). :class:`VOCTagger` is the CPU one (keyword, linear,
hybrid or anchor per dimension); the KoBERT tagger (``voc.classify.kobert``) implements the same
protocol. Where a dimension has no labelled rows, the tagger uses the taxonomy's keyword scorer
and says so (``fallback_dimensions``, ``*_source = keyword``).

Optional capabilities are small protocols of their own, checked with ``isinstance``:
:class:`KiwiTagger` (reads Kiwi model tokens: accepts them precomputed, shares its analyser),
:class:`GroupTagger` (one tag per near-duplicate group from pooled evidence),
:class:`ReviewAids` (review thresholds, evidence pool, near-duplicate vectorizer chosen at
training time) and :class:`ReportsRuntime` (the inference runtime it runs on). Model kinds
(``linear``, ``hybrid``, ``anchor``, ``kobert``) are registered in :mod:`voc.model_kinds`.

:func:`tag_frame` applies a tagger to a VOC frame and returns the tagged frame
(``voc.schema.TAGGED_COLUMNS``). :func:`frame_analyses` runs Kiwi once per row and gives both the
model tokens and the keyword nouns (title + request) of each VOC, so a caller that tags a month
and draws its keywords analyses each text once::

    analyses = frame_analyses(rows, use_reply=tagger.use_reply, tokenizer=tagger.kiwi_tokenizer)
    tagged = tag_frame(rows, tagger, run_id=run_id, analyses=analyses)  # no second Kiwi pass
    keywords = keyword_counts([a.keyword_nouns for a in analyses])      # voc.dashboard

:func:`train_tagger` fits a tagger on reviewed rows with a fixed held-out split
(:func:`holdout_mask`) and reports held-out metrics.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl

from voc.classify.base import DimensionClassifier, GroupPoolingClassifier, Tags
from voc.classify.hybrid import HybridClassifier
from voc.classify.keyword import KeywordClassifier
from voc.model_kinds import cpu_kind_names, kind_names, model_kind
from voc.schema import TAGGED_COLUMNS
from voc.taxonomy import DIMENSIONS, Taxonomy, join_label, split_label
from voc.text import build_all_texts
from voc.tokenize import Analysis, KiwiTokenizer

__all__ = [
    "Tagger",
    "KiwiTagger",
    "GroupTagger",
    "ReviewAids",
    "ReportsRuntime",
    "VOCTagger",
    "TrainReport",
    "KINDS",
    "holdout_mask",
    "labels_of",
    "canonical_labels",
    "frame_texts",
    "frame_analyses",
    "DEFAULT_CHUNK_ROWS",
    "TaggedChunk",
    "tag_frame_chunks",
    "tag_frame",
    "train_tagger",
    "evaluate_tags",
    "evaluate_tagger",
    "training_rows",
    "make_classifier",
    "group_vectorizer_of",
    "resolve_taxonomy",
    "DimensionSplit",
    "split_dimensions",
]

KINDS: tuple[str, ...] = kind_names()
"""Model kinds registered when this module was imported (:func:`voc.model_kinds.kind_names`)."""
DEFAULT_CHUNK_ROWS = 2_000
"""Rows analysed and tagged at a time by :func:`tag_frame_chunks`: the Kiwi analyses (token lists
of every row, the largest per-row objects of a run) are held for one chunk only, so a month's
memory does not grow with its size beyond the compact tagged rows."""
HOLDOUT_PERCENT = 20
"""Share of reviewed rows held out from training (a fixed 20 % split, as the production system
holds out)."""


@runtime_checkable
class Tagger(Protocol):
    """What every tagger offers (:class:`VOCTagger`, ``voc.classify.kobert.KoBERTTagger``):
    ``kind``/``version`` name the model (``model_version`` = ``{kind}_{version}``), ``taxonomy``
    the classes, ``use_reply`` whether ``all_text`` includes the reply, ``low_confidence_threshold``
    one review threshold set at training time (None: per-dimension thresholds or the default)."""

    kind: str
    version: str
    taxonomy: Taxonomy
    use_reply: bool
    low_confidence_threshold: float | None

    def tag(self, texts: Sequence[str]) -> dict[str, Tags]:
        """Tags for each dimension in ``self.taxonomy.dimensions()``, N rows each."""
        ...

    def model_labels(self, dimension: str) -> list[str]:
        """Labels the dimension's model was trained on (``[]`` for a keyword-only dimension)."""
        ...


@runtime_checkable
class KiwiTagger(Tagger, Protocol):
    """A tagger whose features are Kiwi model tokens (:class:`VOCTagger`): :func:`tag_frame`
    hands it the tokens of :func:`frame_analyses` instead of analysing twice, and callers share
    or tune its analyser (``kiwi_tokenizer``)."""

    @property
    def kiwi_tokenizer(self) -> KiwiTokenizer:
        """The Kiwi analyser the tagger reads (settable: a service shares one between taggers)."""
        ...

    @kiwi_tokenizer.setter
    def kiwi_tokenizer(self, tok: KiwiTokenizer) -> None: ...

    def tag(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> dict[str, Tags]:
        """As :meth:`Tagger.tag`; ``tokens``: the N texts' model tokens when already analysed."""
        ...


@runtime_checkable
class GroupTagger(Tagger, Protocol):
    """A tagger that tags a near-duplicate group once from its members' pooled evidence
    (:meth:`VOCTagger.tag_groups`); :func:`tag_frame` gives other taggers a confidence vote."""

    def tag_groups(
        self, texts: Sequence[str], groups: Sequence[str | None], *, tokens: Sequence[Sequence[str]] | None = None
    ) -> tuple[dict[str, Tags], list[str]]:
        """Tags per dimension (N rows each) and N row flags (``""`` or ``group_dissent``)."""
        ...


@runtime_checkable
class ReviewAids(Protocol):
    """What training chose for the review sheet (issue 14; :class:`VOCTagger` since then):
    ``review_thresholds`` per dimension (held-out 검토 우선 thresholds, :func:`voc.metrics.review_budget`),
    ``evidence_pool`` (:class:`voc.evidence.ReviewedPool` of the training rows, or None) and
    ``group_vectorizer`` (the character TF-IDF :func:`voc.groups.near_duplicate_groups` reads, or
    None). A tagger without them (KoBERT) gets the defaults: no evidence, groups found with a
    vectorizer fitted on the month itself."""

    review_thresholds: dict[str, float]
    evidence_pool: Any
    group_vectorizer: Any


@runtime_checkable
class ReportsRuntime(Protocol):
    """A tagger that can run on several inference runtimes and says which one it uses
    (KoBERT: ``onnx-int8`` on CPU workers, ``torch-bf16`` … on GPU)."""

    @property
    def active_runtime(self) -> str: ...


def group_vectorizer_of(tagger: Tagger) -> Any:
    """The near-duplicate vectorizer chosen at training time (:class:`ReviewAids`), or None."""
    return tagger.group_vectorizer if isinstance(tagger, ReviewAids) else None


# --------------------------------------------------------------------------------------------
# data helpers


def holdout_mask(voc_ids: Sequence[str], *, percent: int = HOLDOUT_PERCENT) -> np.ndarray:
    """Fixed held-out split: row i is held out iff md5(voc_id) mod 100 < ``percent``.

    Stable across retrainings (a row never moves between train and held-out as data grows), so
    champion and candidate are compared on rows neither was trained on. Returns N booleans.
    """
    return np.array(
        [int(hashlib.md5(str(v).encode("utf-8")).hexdigest()[:8], 16) % 100 < percent for v in voc_ids],
        dtype=bool,
    )


def labels_of(df: pl.DataFrame, dimension: str, *, prefix: str = "reviewed_") -> list[str | None]:
    """``"major>minor"`` per row from ``{prefix}{dimension}_major/minor`` (None where missing)."""
    ma, mi = f"{prefix}{dimension}_major", f"{prefix}{dimension}_minor"
    if ma not in df.columns or mi not in df.columns:
        return [None] * df.height
    out: list[str | None] = []
    for a, b in zip(df[ma].to_list(), df[mi].to_list()):
        if b:
            out.append(join_label(a or b, b))
        else:
            out.append(None)
    return out


def canonical_labels(labels: Sequence[str | None], taxonomy: Taxonomy, dimension: str) -> list[str | None]:
    """Map superseded classes to the current one: a label whose minor sits under an *active*
    row of another major becomes that row's label (reorganisations move a 과 between 국; the
    minor is the stable name). Other labels are returned unchanged."""
    active = {r.minor: r.label for r in taxonomy.rows_of(dimension)}
    out: list[str | None] = []
    for lab in labels:
        if lab is None:
            out.append(None)
            continue
        out.append(active.get(split_label(lab)[1], lab))
    return out


def frame_texts(df: pl.DataFrame, *, use_reply: bool) -> tuple[list[str], list[str]]:
    """``all_text`` and flags for each row of a VOC frame (see :func:`voc.text.build_all_texts`)."""
    return build_all_texts(
        df["title"].to_list(),
        df["request_contents"].to_list(),
        df["reply"].to_list() if use_reply else None,
        with_reply=use_reply,
    )


def frame_analyses(df: pl.DataFrame, *, use_reply: bool, tokenizer: KiwiTokenizer | None = None) -> list[Analysis]:
    """One Kiwi analysis per row of a VOC frame, read two ways.

    Each row's ``all_text`` (:func:`frame_texts`, with the reply when ``use_reply``) is analysed
    once, in one batch call (:meth:`voc.tokenize.KiwiTokenizer.analyze_batch`):
    ``model_tokens`` are the model features of the whole text, exactly what the tagger reads
    (pass the list to :func:`tag_frame` as ``analyses``); ``keyword_nouns`` are the NNG/NNP
    nouns of its cleaned title + request part — the text :func:`voc.dashboard.keyword_texts`
    describes (reply left out), cleaned as ``all_text`` is. A morpheme belongs to that part when
    it starts inside it; on the shipped sample the nouns equal a separate analysis of the cleaned
    title + request for 985 of 996 VOCs (the rest differ at the request/reply boundary, where
    Kiwi sees the next sentence) and the month's top-50 keywords are the same.

    Parameters
    ----------
    df
        ``N × C`` VOC frame with ``title``, ``request_contents`` and (when ``use_reply``) ``reply``.
    use_reply
        The tagger's ``use_reply``.
    tokenizer
        The analyser (default: a new :class:`~voc.tokenize.KiwiTokenizer`); pass the tagger's.

    Returns
    -------
    list[Analysis]
        N analyses in row order (two empty lists for a row without text).
    """
    tok = tokenizer or KiwiTokenizer()
    texts, _ = frame_texts(df, use_reply=use_reply)
    # all_text = title\nrequest[\nreply] with empty parts dropped: the registration-time text is its head
    heads = frame_texts(df, use_reply=False)[0] if use_reply else texts
    return tok.analyze_batch(texts, keyword_chars=[len(h) for h in heads])


# --------------------------------------------------------------------------------------------
# the CPU tagger


def make_classifier(
    kind: str, taxonomy: Taxonomy, dimension: str, tokenizer: KiwiTokenizer | None, *, seed: int = 0
) -> DimensionClassifier:
    """An unfitted per-dimension classifier of ``kind`` (its :attr:`voc.model_kinds.ModelKind.classifier`).

    * ``anchor``: the production model exactly (TF-IDF word 1–2-grams over Kiwi tokens, 10k
      features, sublinear tf, LinearSVC C=1 balanced in ``CalibratedClassifierCV(cv=3)``);
    * ``linear``: the default CPU model, :data:`voc.classify.linear.DEFAULT_PARAMS`: the anchor's
      word features, one unweighted SVM on all rows, class-name evidence and temperature fitted
      out of fold, a calibrated top-1 confidence, and rows weighted by age (half-life two
      years) when ``fit`` gets their dates (``times=``). Chosen on temporal splits of the
      shipped sample: docs/model-quality.md;
    * ``hybrid``: keyword scorer vs ``linear`` by alpha for ``subject``; ``linear`` for ``work``
      (keywords were worse for work type in production).

    Raises
    ------
    ValueError
        ``kind`` is not registered, or has no per-dimension classifier (``kobert``).
    """
    factory = model_kind(kind).classifier
    if factory is None:
        raise ValueError(f"kind {kind!r} has no per-dimension classifier; expected one of {cpu_kind_names()}")
    return factory(taxonomy, dimension, tokenizer, seed)


@dataclass
class VOCTagger:
    """CPU tagger: per-dimension classifiers plus keyword fallbacks.

    Attributes
    ----------
    kind, version
        Classifier kind (``hybrid``/``linear``/``anchor``) and version string.
    taxonomy
        The taxonomy the tags come from (also the reviewers' dropdown values).
    use_reply
        Whether ``all_text`` includes the reply.
    classifiers
        Fitted classifier per dimension that had labelled rows.
    review_thresholds, evidence_pool, group_vectorizer
        What the review sheet needs (issue 14; set by :func:`train_tagger`, absent from models
        trained before, which ``voc.review.review_thresholds_of`` and ``voc.evidence`` handle):
        per dimension the 검토 우선 confidence threshold chosen on held-out rows
        (``voc.metrics.review_budget``), the reviewed training rows to cite
        (``voc.evidence.ReviewedPool``), the character TF-IDF fitted on the training texts for
        ``voc.groups.near_duplicate_groups``.
    """

    kind: str
    version: str
    taxonomy: Taxonomy
    use_reply: bool = True
    classifiers: dict[str, DimensionClassifier] = field(default_factory=dict)
    tokenizer: KiwiTokenizer = field(default_factory=KiwiTokenizer)
    low_confidence_threshold: float | None = None
    review_thresholds: dict[str, float] = field(default_factory=dict)
    evidence_pool: Any = None
    group_vectorizer: Any = None
    # (dataclass defaults are class attributes: a tagger pickled before a field existed reads them)

    @property
    def kiwi_tokenizer(self) -> KiwiTokenizer:
        """``tokenizer`` (:class:`KiwiTagger`)."""
        return self.tokenizer

    @kiwi_tokenizer.setter
    def kiwi_tokenizer(self, tok: KiwiTokenizer) -> None:
        self.tokenizer = tok

    @property
    def fallback_dimensions(self) -> list[str]:
        """Dimensions tagged by keywords only (no labelled rows at training time)."""
        return [d for d in self.taxonomy.dimensions() if d not in self.classifiers]

    def model_labels(self, dimension: str) -> list[str]:
        clf = self.classifiers.get(dimension)
        return [] if clf is None else clf.model_labels()

    def tag(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> dict[str, Tags]:
        """Tags for each dimension, N rows each. ``tokens``: the N texts' model tokens when the
        caller has them already (:func:`frame_analyses`); otherwise Kiwi analyses the texts here,
        once for all dimensions.

        Raises
        ------
        ValueError
            ``tokens`` not of length N.
        """
        if tokens is not None and len(tokens) != len(texts):
            raise ValueError(f"tokens ({len(tokens)}) and texts ({len(texts)}) differ in length")
        if tokens is None and any(not isinstance(c, KeywordClassifier) for c in self.classifiers.values()):
            tokens = self.tokenizer.model_tokens_batch(texts)
        out: dict[str, Tags] = {}
        for dim in self.taxonomy.dimensions():
            clf = self.classifiers.get(dim)
            if clf is None:
                clf = KeywordClassifier(self.taxonomy.rows_of(dim)).fit()
            out[dim] = clf.predict_tags(texts, tokens=tokens)
        return out

    def tag_groups(
        self, texts: Sequence[str], groups: Sequence[str | None], *, tokens: Sequence[Sequence[str]] | None = None
    ) -> tuple[dict[str, Tags], list[str]]:
        """As :meth:`tag`, with one answer per near-duplicate group (:mod:`voc.pooling`): a
        classifier that pools evidence (:class:`~voc.classify.base.GroupPoolingClassifier`: the
        linear model) pools its members' probabilities, any other classifier (keyword guesses
        included) votes with confidences.

        Parameters
        ----------
        texts, tokens
            As :meth:`tag` (N).
        groups
            N group ids (:func:`voc.groups.near_duplicate_groups`; None = alone).

        Returns
        -------
        (dict[str, Tags], list[str])
            Tags per dimension (N rows each) and N row flags (``""`` or ``group_dissent`` when a
            row kept its own tag in some dimension).

        Raises
        ------
        ValueError
            ``tokens`` or ``groups`` not of length N.
        """
        from voc.pooling import group_index, vote_tags

        members = group_index(groups, len(texts))
        if not members:
            return self.tag(texts, tokens=tokens), [""] * len(texts)
        if tokens is None and any(not isinstance(c, KeywordClassifier) for c in self.classifiers.values()):
            tokens = self.tokenizer.model_tokens_batch(texts)
        out: dict[str, Tags] = {}
        flags = [""] * len(texts)
        for dim in self.taxonomy.dimensions():
            clf = self.classifiers.get(dim)
            if isinstance(clf, GroupPoolingClassifier):
                out[dim], dim_flags = clf.predict_group_tags(texts, groups, tokens=tokens)
                flags = [f or g for f, g in zip(flags, dim_flags)]
                continue
            if clf is None:
                clf = KeywordClassifier(self.taxonomy.rows_of(dim)).fit()
            out[dim] = vote_tags(clf.predict_tags(texts, tokens=tokens), members)
        return out, flags


# --------------------------------------------------------------------------------------------
# tagging a frame


def tag_frame(
    df: pl.DataFrame,
    tagger: Tagger,
    *,
    run_id: str,
    classify_source: str = "batch",
    analyses: Sequence[Analysis] | None = None,
    groups: Sequence[str | None] | None = None,
) -> pl.DataFrame:
    """Tag every row of a validated VOC frame.

    Parameters
    ----------
    df
        ``N × C`` VOC frame (:func:`voc.schema.validate_voc_frame`).
    tagger
        Any :class:`Tagger`.
    run_id
        Written to every row.
    analyses
        :func:`frame_analyses` of ``df`` with the tagger's ``use_reply`` (N), when the caller
        has them: a :class:`KiwiTagger` then reads their model tokens instead of running Kiwi
        again (other taggers do not use Kiwi tokens and ignore them).
    groups
        N near-duplicate group ids (:func:`voc.groups.near_duplicate_groups`; None = alone), or
        None: each group's members get one tag from their pooled evidence
        (a :class:`GroupTagger`'s ``tag_groups``, :mod:`voc.pooling`; other taggers: a confidence vote); a
        member that kept its own, decisively different tag is flagged ``group_dissent``.

    Returns
    -------
    pl.DataFrame
        ``N × len(TAGGED_COLUMNS)``, same rows, same order. Rows whose title and request are both
        empty are still tagged (fallback class) with confidence 0 and flag ``empty_text``.

    Raises
    ------
    ValueError
        ``analyses`` or ``groups`` not of length N.
    """
    from voc.urgency import urgent_flags

    texts, flags = frame_texts(df, use_reply=tagger.use_reply)
    if analyses is not None and len(analyses) != df.height:
        raise ValueError(f"analyses ({len(analyses)}) and frame rows ({df.height}) differ in length")
    if groups is not None and len(groups) != df.height:
        raise ValueError(f"groups ({len(groups)}) and frame rows ({df.height}) differ in length")
    group_flags = [""] * df.height
    tokens = [a.model_tokens for a in analyses] if analyses is not None and isinstance(tagger, KiwiTagger) else None
    if not texts:
        tags: dict[str, Tags] = {}
    elif groups is not None and isinstance(tagger, GroupTagger):
        tags, group_flags = tagger.tag_groups(texts, groups, tokens=tokens)
    else:
        tags = tagger.tag(texts, tokens=tokens) if isinstance(tagger, KiwiTagger) else tagger.tag(texts)
        if groups is not None:
            from voc.pooling import group_index, vote_tags

            members = group_index(groups, df.height)
            tags = {d: vote_tags(t, members) for d, t in tags.items()}
    input_flags = df["input_flags"].to_list() if "input_flags" in df.columns else [""] * df.height
    all_flags = [
        ";".join(sorted({*f.split(";"), *g.split(";"), h} - {""})) for f, g, h in zip(flags, input_flags, group_flags)
    ]
    empty = np.array(["empty_text" in f for f in all_flags], dtype=bool)
    cols: dict[str, Any] = {}
    for dim in DIMENSIONS:
        t = tags.get(dim)
        if t is None:
            cols.update({f"{dim}_major": [None] * df.height, f"{dim}_minor": [None] * df.height,
                         f"{dim}_confidence": [None] * df.height, f"{dim}_source": [None] * df.height})
            continue
        majors, minors = zip(*(split_label(lab) for lab in t.labels)) if len(t) else ((), ())
        conf = np.where(empty, 0.0, np.clip(np.asarray(t.confidence, dtype=float), 0.0, 1.0))
        cols[f"{dim}_major"] = list(majors)
        cols[f"{dim}_minor"] = list(minors)
        cols[f"{dim}_confidence"] = [round(float(c), 4) for c in conf]
        cols[f"{dim}_source"] = list(t.source)
    ym = df["created_at"].dt.strftime("%Y%m") if df.height else pl.Series([], dtype=pl.Utf8)
    out = df.with_columns(
        pl.Series("yyyymm", ym, dtype=pl.Utf8),
        *[pl.Series(k, v, dtype=pl.Float64 if k.endswith("_confidence") else pl.Utf8) for k, v in cols.items()],
        pl.lit(classify_source).alias("classify_source"),
        pl.lit(f"{tagger.kind}_{tagger.version}").alias("model_version"),
        pl.Series("flags", all_flags, dtype=pl.Utf8),
        pl.lit(run_id).alias("run_id"),
        urgent_flags(df),  # voc.urgency; repeat_of needs earlier months: voc.pipeline.tag_building
        pl.lit(None, dtype=pl.Utf8).alias("repeat_of"),
    )
    return out.select(TAGGED_COLUMNS)


@dataclass(frozen=True)
class TaggedChunk:
    """One chunk of :func:`tag_frame_chunks`: the frame's rows at positions ``index`` (ints, in
    the chunk's order; ``start`` = ``index[0]``), their input ``rows``, their Kiwi ``analyses``
    (:func:`frame_analyses`) and their ``tagged`` rows (:func:`tag_frame`)."""

    start: int
    rows: pl.DataFrame
    analyses: list[Analysis]
    tagged: pl.DataFrame
    index: np.ndarray


def chunk_positions(n: int, chunk_rows: int, groups: Sequence[str | None] | None = None) -> list[np.ndarray]:
    """Row positions of each chunk: consecutive runs of ``chunk_rows`` rows, or, with ``groups``,
    chunks that never split a near-duplicate group (each group's members join the chunk of its
    first member; a chunk closes once it holds ``chunk_rows`` rows or more, so a group larger
    than ``chunk_rows`` makes one larger chunk).

    Parameters
    ----------
    n
        Rows.
    chunk_rows
        Rows per chunk (≥ 1).
    groups
        ``n`` group ids (None = alone), or None.

    Returns
    -------
    list[numpy.ndarray]
        Every position 0 … n − 1 exactly once over all chunks.

    Raises
    ------
    ValueError
        ``chunk_rows`` < 1, or ``groups`` not of length ``n``.
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    if groups is None:
        return [np.arange(s, min(s + chunk_rows, n)) for s in range(0, n, chunk_rows)]
    if len(groups) != n:
        raise ValueError(f"groups ({len(groups)}) and rows ({n}) differ in length")
    units: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        units.setdefault(("g", g) if g is not None else ("r", i), []).append(i)
    chunks: list[np.ndarray] = []
    current: list[int] = []
    for members in units.values():
        current.extend(members)
        if len(current) >= chunk_rows:
            chunks.append(np.asarray(current, dtype=int))
            current = []
    if current:
        chunks.append(np.asarray(current, dtype=int))
    return chunks


def tag_frame_chunks(
    df: pl.DataFrame,
    tagger: Tagger,
    *,
    run_id: str,
    tokenizer: KiwiTokenizer | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    groups: Sequence[str | None] | None = None,
) -> Iterator[TaggedChunk]:
    """:func:`frame_analyses` and :func:`tag_frame` of a VOC frame, about ``chunk_rows`` rows at a
    time (:func:`chunk_positions`).

    A tag depends on its row and, with ``groups``, on its near-duplicate group's other members
    (:mod:`voc.pooling`), which are always in the same chunk; so the chunks' ``tagged`` frames,
    put back in ``index`` order, equal :func:`tag_frame` of the whole frame. A caller keeps what
    it needs of each chunk's analyses (keyword counts, evidence) and drops the rest, and peak
    memory stays that of one chunk (``voc.pipeline.tag_building``).

    Parameters
    ----------
    df
        ``N × C`` VOC frame (:func:`voc.schema.validate_voc_frame`).
    tagger, run_id, groups
        As for :func:`tag_frame`.
    tokenizer
        The analyser (default: a new :class:`~voc.tokenize.KiwiTokenizer`); pass the tagger's.
    chunk_rows
        Rows per chunk (≥ 1).

    Yields
    ------
    TaggedChunk
        Without ``groups``: ``ceil(N / chunk_rows)`` chunks in row order; none for an empty frame.

    Raises
    ------
    ValueError
        ``chunk_rows`` < 1, or ``groups`` not of length N.
    """
    positions = chunk_positions(df.height, chunk_rows, groups)
    tok = tokenizer or KiwiTokenizer()
    for idx in positions:
        contiguous = bool(len(idx)) and bool(np.all(np.diff(idx) == 1))
        part = df.slice(int(idx[0]), len(idx)) if contiguous else df[idx.tolist()]
        analyses = frame_analyses(part, use_reply=tagger.use_reply, tokenizer=tok)
        part_groups = [groups[int(i)] for i in idx] if groups is not None else None
        tagged = tag_frame(part, tagger, run_id=run_id, analyses=analyses, groups=part_groups)
        yield TaggedChunk(int(idx[0]), part, analyses, tagged, idx)


# --------------------------------------------------------------------------------------------
# training


@dataclass
class TrainReport:
    """What training did: rows per dimension, held-out metrics, fallbacks, warnings."""

    kind: str
    version: str
    n_rows: int
    n_train: dict[str, int] = field(default_factory=dict)
    n_holdout: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    fallback_dimensions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    holdout_ids: dict[str, list[str]] = field(default_factory=dict)
    selection: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per dimension, the recipe choice of ``train_tagger(select=True)``
    (:meth:`voc.recipes.Selection.to_dict`: chosen recipe, reason, every candidate's scores)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "n_rows": self.n_rows,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "metrics": self.metrics,
            "fallback_dimensions": self.fallback_dimensions,
            "warnings": self.warnings,
            "selection": self.selection,
        }


def evaluate_tags(y_true: Sequence[str], tags: Tags) -> dict[str, Any]:
    """Accuracy, macro-F1, weighted-F1 and per-class P/R/F1/support of ``tags`` against
    ``y_true`` (N labels). Classes are the union of true and predicted labels."""
    from voc.metrics import classification_metrics

    return classification_metrics(list(y_true), list(tags.labels), np.asarray(tags.confidence, dtype=float))


def training_rows(
    df: pl.DataFrame, taxonomy: Taxonomy, dimension: str
) -> tuple[np.ndarray, list[str]]:
    """Indices of rows with a usable label of ``dimension`` and their canonical labels."""
    labs = canonical_labels(labels_of(df, dimension), taxonomy, dimension)
    idx = np.array([i for i, lab in enumerate(labs) if lab], dtype=int)
    return idx, [str(labs[i]) for i in idx]  # every labs[i] of idx is set


@dataclass(frozen=True)
class DimensionSplit:
    """Labelled rows of one dimension split into train and held-out parts.

    ``train_rows``/``holdout_rows`` are row indices into the training frame; the label lists are
    aligned with them (canonical ``"major>minor"``)."""

    dimension: str
    train_rows: np.ndarray
    train_labels: list[str]
    holdout_rows: np.ndarray
    holdout_labels: list[str]


def split_dimensions(df: pl.DataFrame, taxonomy: Taxonomy, report: TrainReport) -> tuple[Taxonomy, dict[str, DimensionSplit]]:
    """The training plan shared by every trainer (CPU and KoBERT).

    Per dimension of ``taxonomy``: the rows with a usable label (:func:`training_rows`); a
    dimension with fewer than two classes is a keyword fallback; labels missing from the taxonomy
    are added to it (label drift: warned and counted); rows go to the fixed held-out split by
    :func:`holdout_mask` (all rows train, without metrics, when the train part would hold fewer
    than two classes). ``report`` receives fallbacks, warnings, ``n_train``, ``n_holdout`` and
    ``holdout_ids``.

    Returns the (possibly extended) taxonomy and a split per trainable dimension.
    """
    hold = holdout_mask(df["voc_id"].to_list())
    ids = df["voc_id"].to_list()
    splits: dict[str, DimensionSplit] = {}
    for dim in taxonomy.dimensions():
        idx, labs = training_rows(df, taxonomy, dim)
        if len(set(labs)) < 2:
            report.fallback_dimensions.append(dim)
            report.warnings.append(
                f"{dim}: {len(labs)} labelled rows, {len(set(labs))} class(es); tagging by taxonomy keywords"
            )
            continue
        unknown = Counter(lab for lab in labs if taxonomy.get(dim, lab) is None)
        if unknown:
            report.warnings.append(
                f"{dim}: {sum(unknown.values())} rows carry {len(unknown)} label(s) missing from the taxonomy; added"
            )
            taxonomy = taxonomy.with_labels(dim, unknown)
            idx, labs = training_rows(df, taxonomy, dim)
        tr = np.array([k for k, i in enumerate(idx) if not hold[i]], dtype=int)
        te = np.array([k for k, i in enumerate(idx) if hold[i]], dtype=int)
        if len({labs[k] for k in tr}) < 2:  # tiny data: everything landed in the held-out split
            tr, te = np.arange(len(idx)), np.array([], dtype=int)
            report.warnings.append(f"{dim}: too few rows for a held-out split; trained on all, no metrics")
        splits[dim] = DimensionSplit(dim, idx[tr], [labs[k] for k in tr], idx[te], [labs[k] for k in te])
        report.n_train[dim] = len(tr)
        report.n_holdout[dim] = len(te)
        report.holdout_ids[dim] = [ids[int(i)] for i in idx[te]]
    return taxonomy, splits


def train_tagger(
    df: pl.DataFrame,
    taxonomy: Taxonomy,
    *,
    kind: str = "hybrid",
    version: str,
    use_reply: bool = True,
    seed: int = 0,
    tokenizer: KiwiTokenizer | None = None,
    progress: Callable[[str], None] | None = None,
    select: bool = False,
    recipe: str | None = None,
) -> tuple[VOCTagger, TrainReport]:
    """Fit a CPU tagger on the reviewed rows of ``df``.

    ``select`` (``kind="linear"``): choose each dimension's recipe on its own training rows
    (:func:`voc.recipes.select_recipe`: rolling-origin folds over the rows outside the held-out
    split, never worse than ``anchor`` there), recorded in ``report.selection``; ``recipe``
    (``kind="linear"``): train that named recipe of :data:`voc.recipes.RECIPES` instead.

    ``progress``, when given, receives one line per step (tokenizing, fitting and evaluating
    each dimension, with seconds elapsed) so that callers can show a long fit advancing.

    Each dimension with ≥ 2 classes among its labelled rows gets a model trained on the rows
    outside the fixed held-out split (:func:`holdout_mask`) and is evaluated on the held-out rows;
    other dimensions fall back to keywords (reported in ``fallback_dimensions``). Labels are
    canonicalised (:func:`canonical_labels`); labels missing from the taxonomy are added to it
    (a warning counts them: label drift).

    Raises
    ------
    ValueError
        Unknown ``kind`` or ``recipe``; a kind without a per-dimension classifier (``kobert``);
        ``select``/``recipe`` with a kind without recipes (all but ``linear``).
    """
    _check_cpu_kind(kind, select=select, recipe=recipe)
    tok = tokenizer or KiwiTokenizer()
    report = TrainReport(kind=kind, version=version, n_rows=df.height)
    texts, _ = frame_texts(df, use_reply=use_reply)
    tagger = VOCTagger(kind=kind, version=version, taxonomy=taxonomy, use_reply=use_reply, tokenizer=tok)
    taxonomy, splits = split_dimensions(df, taxonomy, report)
    tagger.taxonomy = taxonomy
    dates = df["created_at"].to_list()
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if progress is not None:
            progress(f"{msg} ({time.perf_counter() - t0:.1f} s)")

    # every row any dimension reads, analysed once, in one Kiwi batch call
    rows = sorted({int(i) for sp in splits.values() for i in (*sp.train_rows, *sp.holdout_rows)})
    if rows:
        say(f"tokenizing {len(rows)} labelled VOCs with Kiwi")
    token_of = dict(zip(rows, tok.model_tokens_batch([texts[i] for i in rows])))

    def toks(idx: np.ndarray) -> list[list[str]]:
        return [token_of[int(i)] for i in idx]

    from voc.groups import history_vectorizer

    tagger.group_vectorizer = history_vectorizer(df)
    group_of: list[str | None] | None = None
    if select and recipe is None and rows:  # mass complaints count once in the selection
        from voc.groups import near_duplicate_groups

        group_of = near_duplicate_groups(df, vectorizer=tagger.group_vectorizer).to_list()

    for dim, sp in splits.items():
        say(f"{dim}: fitting {kind} on {len(sp.train_rows)} VOCs, {len(set(sp.train_labels))} classes")
        clf = make_classifier(kind, taxonomy, dim, tok, seed=seed)
        if select or recipe is not None:
            clf = _recipe_classifier(dim, sp, texts, dates, toks, report, tok, seed=seed, recipe=recipe, say=say,
                                     groups=group_of)
        if isinstance(clf, HybridClassifier):
            clf.keyword = KeywordClassifier(taxonomy.rows_of(dim))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(
                [texts[i] for i in sp.train_rows],
                sp.train_labels,
                tokens=toks(sp.train_rows),
                times=[dates[int(i)] for i in sp.train_rows],  # recency weights (linear default)
            )
        tagger.classifiers[dim] = clf
        if len(sp.holdout_rows):
            say(f"{dim}: evaluating on {len(sp.holdout_rows)} held-out VOCs")
            t = clf.predict_tags([texts[i] for i in sp.holdout_rows], tokens=toks(sp.holdout_rows))
            report.metrics[dim] = evaluate_tags(sp.holdout_labels, t)
    _attach_review_aids(tagger, df, texts, splits, report, toks)
    say("fit done")
    return tagger, report


def _check_cpu_kind(kind: str, *, select: bool, recipe: str | None) -> None:
    """Raise ``ValueError`` unless :func:`train_tagger` can train ``kind`` with ``select``/``recipe``
    (a registered kind with a per-dimension classifier; recipes only for a kind with recipes; a
    known recipe name)."""
    cpu = cpu_kind_names()
    if kind not in cpu:
        raise ValueError(f"train_tagger trains CPU kinds ({', '.join(cpu)}), got {kind!r}")
    if (select or recipe is not None) and not model_kind(kind).recipes:
        with_recipes = [k for k in cpu if model_kind(k).recipes]
        raise ValueError(f"recipe selection applies to kind {' or '.join(repr(k) for k in with_recipes)}, got {kind!r}")
    if recipe is not None:
        from voc.recipes import recipe as named_recipe

        named_recipe(recipe)


def _recipe_classifier(
    dim: str,
    sp: DimensionSplit,
    texts: list[str],
    dates: list[Any],
    toks: Callable[[np.ndarray], list[list[str]]],
    report: TrainReport,
    tok: KiwiTokenizer,
    *,
    seed: int,
    recipe: str | None,
    say: Callable[[str], None],
    groups: Sequence[str | None] | None = None,
) -> Any:
    """The unfitted classifier of ``recipe``, or of the recipe chosen on ``sp``'s training rows
    (recorded in ``report.selection[dim]``; ``groups``: the near-duplicate group of every row
    of the frame, so that a mass complaint counts once)."""
    from voc.recipes import recipe as named_recipe
    from voc.recipes import select_recipe

    if recipe is None:
        say(f"{dim}: choosing a recipe on temporal folds of {len(sp.train_rows)} training VOCs")
        rows = sp.train_rows
        sel = select_recipe([texts[i] for i in rows], sp.train_labels, [dates[int(i)] for i in rows],
                            tokens=toks(rows), seed=seed, progress=lambda m: say(f"{dim}: {m}"),
                            groups=[groups[int(i)] for i in rows] if groups is not None else None)
        report.selection[dim] = sel.to_dict()
        recipe = sel.chosen
        say(f"{dim}: recipe {sel.reason}")
    return named_recipe(recipe).make(tok, seed=seed)


def _attach_review_aids(
    tagger: VOCTagger,
    df: pl.DataFrame,
    texts: list[str],
    splits: dict[str, DimensionSplit],
    report: TrainReport,
    toks: Callable[[np.ndarray], list[list[str]]],
) -> None:
    """Set ``tagger.review_thresholds`` (the held-out ``review_budget`` threshold of each trained
    dimension), ``tagger.evidence_pool`` (the training rows, not the held-out ones, with their
    labels and replies, in the first linear dimension's feature space)."""
    from voc.evidence import linear_of, pool_from_classifier

    tagger.review_thresholds = {
        d: float(m["review_budget"]["threshold"]) for d, m in report.metrics.items() if "review_budget" in m
    }
    clf = next((c for c in tagger.classifiers.values() if linear_of(c) is not None), None)
    rows = np.array(sorted({int(i) for sp in splits.values() for i in sp.train_rows}), dtype=int)
    if clf is not None and len(rows):
        ids = df["voc_id"].to_list()
        replies = df["reply"].to_list() if "reply" in df.columns else None
        by_dim = {d: dict(zip((int(i) for i in sp.train_rows), sp.train_labels)) for d, sp in splits.items()}
        tagger.evidence_pool = pool_from_classifier(
            clf,
            [texts[i] for i in rows],
            [ids[i] for i in rows],
            {d: [lab.get(int(i)) for i in rows] for d, lab in by_dim.items()},
            tokens=toks(rows),
            replies=[replies[int(i)] for i in rows] if replies is not None else None,  # reply drafts (voc.replies)
        )


def evaluate_tagger(
    tagger: Tagger,
    df: pl.DataFrame,
    taxonomy: Taxonomy,
    ids_by_dimension: dict[str, list[str]],
) -> dict[str, dict[str, Any]]:
    """Metrics of ``tagger`` on the rows of ``df`` whose ``voc_id`` is listed per dimension
    (the candidate's held-out rows), labels canonicalised with ``taxonomy``. Used to measure
    the champion on exactly the candidate's held-out rows."""
    out: dict[str, dict[str, Any]] = {}
    for dim, ids in ids_by_dimension.items():
        if not ids:
            continue
        sub = df.filter(pl.col("voc_id").is_in(ids))
        labs = canonical_labels(labels_of(sub, dim), taxonomy, dim)
        keep = [i for i, lab in enumerate(labs) if lab]
        if not keep:
            continue
        sub = sub[keep]
        texts, _ = frame_texts(sub, use_reply=tagger.use_reply)
        tags = tagger.tag(texts).get(dim)
        if tags is None:
            continue
        out[dim] = evaluate_tags([str(labs[i]) for i in keep], tags)  # keep: the labelled rows
    return out


def resolve_taxonomy(
    base: Taxonomy,
    labelled: pl.DataFrame,
    *,
    keyword_rows: np.ndarray | None = None,
    tokenizer: KiwiTokenizer | None = None,
    use_reply: bool = True,
    min_known_share: float = 0.5,
) -> tuple[Taxonomy, list[str]]:
    """The taxonomy to train with: ``base`` where the customer's labels fit it, else classes
    derived from the labels (a customer's own labels define its classes).

    For each dimension with labelled rows in ``labelled`` (a VOC frame with ``reviewed_*``):
    if fewer than ``min_known_share`` of the labelled rows have a minor that ``base`` knows, the
    dimension is replaced by :func:`voc.taxonomy.derive_taxonomy` over every labelled row (every
    (major, minor) pair present; superseded pairs inactive), with keywords computed only from
    the rows selected by ``keyword_rows`` (boolean mask of length N; default all) — so a
    backtest's test months lend their classes but not their words.

    Returns the taxonomy and notes for the run summary.
    """
    from voc.taxonomy import derive_taxonomy

    tok = tokenizer or KiwiTokenizer()
    notes: list[str] = []
    mask = np.ones(labelled.height, dtype=bool) if keyword_rows is None else np.asarray(keyword_rows, dtype=bool)
    tax = base
    texts: list[str] | None = None
    for dim in DIMENSIONS:
        labs = labels_of(labelled, dim)
        idx = [i for i, lab in enumerate(labs) if lab]
        if not idx:
            continue
        known_minors = {r.minor for r in base.rows_of(dim, active_only=False)}
        known = sum(split_label(str(labs[i]))[1] in known_minors for i in idx) / len(idx)  # idx: the labelled rows
        if known >= min_known_share:
            continue
        if texts is None:
            texts, _ = frame_texts(labelled, use_reply=use_reply)
        kw_idx = [i for i in idx if mask[i]]
        nouns_by_row = dict(zip(kw_idx, tok.keyword_nouns_batch([texts[i] for i in kw_idx])))
        dates = labelled["created_at"].to_list()
        rows = derive_taxonomy(
            dim,
            [str(labs[i]) for i in idx],  # idx: the labelled rows
            [nouns_by_row.get(i, []) for i in idx],
            dates=[dates[i] for i in idx],
        )
        tax = tax.replace_dimension(dim, rows)
        notes.append(
            f"{dim}: {known:.0%} of labelled rows match the configured taxonomy; "
            f"using {sum(r.active for r in rows)} active classes derived from labelled history"
        )
    return tax, notes
