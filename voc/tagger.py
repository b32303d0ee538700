"""Taggers: classifiers for both dimensions bundled with their taxonomy, and the training recipe.

A *tagger* (protocol :class:`Tagger`) turns N ``all_text`` strings into :class:`~voc.classify.base.Tags`
for each dimension (``subject``, ``work``). :class:`VOCTagger` is the CPU one (keyword, linear,
hybrid or anchor per dimension); the KoBERT tagger (``voc.classify.kobert``) implements the same
protocol. Where a dimension has no labelled rows, the tagger uses the taxonomy's keyword scorer
and says so (``fallback_dimensions``, ``*_source = keyword``).

:func:`tag_frame` applies a tagger to a VOC frame and returns the tagged frame
(``voc.schema.TAGGED_COLUMNS``). :func:`train_tagger` fits a tagger on reviewed rows with a fixed
held-out split (:func:`holdout_mask`) and reports held-out metrics.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl

from voc.classify.base import Tags
from voc.classify.hybrid import HybridClassifier
from voc.classify.keyword import KeywordClassifier
from voc.classify.linear import LinearVOCClassifier
from voc.schema import TAGGED_COLUMNS
from voc.taxonomy import DIMENSIONS, Taxonomy, join_label, split_label
from voc.text import build_all_texts
from voc.tokenize import KiwiTokenizer

__all__ = [
    "Tagger",
    "VOCTagger",
    "TrainReport",
    "KINDS",
    "holdout_mask",
    "labels_of",
    "canonical_labels",
    "frame_texts",
    "tag_frame",
    "train_tagger",
    "evaluate_tags",
    "evaluate_tagger",
    "training_rows",
    "make_classifier",
    "resolve_taxonomy",
    "DimensionSplit",
    "split_dimensions",
]

KINDS: tuple[str, ...] = ("hybrid", "linear", "anchor", "kobert")
HOLDOUT_PERCENT = 20
"""Share of reviewed rows held out from training (production-notes.md: a fixed 20 % split)."""


@runtime_checkable
class Tagger(Protocol):
    kind: str
    version: str
    taxonomy: Taxonomy
    use_reply: bool

    def tag(self, texts: Sequence[str]) -> dict[str, Tags]:
        """Tags for each dimension in ``self.taxonomy.dimensions()``, N rows each."""

    def model_labels(self, dimension: str) -> list[str]:
        """Labels the dimension's model was trained on (``[]`` for a keyword-only dimension)."""


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


# --------------------------------------------------------------------------------------------
# the CPU tagger


def make_classifier(kind: str, taxonomy: Taxonomy, dimension: str, tokenizer: KiwiTokenizer, *, seed: int = 0):
    """An unfitted per-dimension classifier of ``kind``.

    * ``anchor``: the production model exactly (TF-IDF word 1–2-grams over Kiwi tokens, 10k
      features, sublinear tf, LinearSVC C=1 balanced in ``CalibratedClassifierCV(cv=3)``);
    * ``linear``: the default CPU model, :data:`voc.classify.linear.DEFAULT_PARAMS`: the anchor's
      word features, one unweighted SVM on all rows, class-name evidence and temperature fitted
      out of fold, a calibrated top-1 confidence, and rows weighted by age (half-life two
      years) when ``fit`` gets their dates (``times=``). Chosen on temporal splits of the
      shipped sample: docs/model-quality.md;
    * ``hybrid``: keyword scorer vs ``linear`` by alpha for ``subject``; ``linear`` for ``work``
      (keywords were worse for work type in production).
    """
    from voc.classify.linear import DEFAULT_PARAMS

    if kind == "anchor":
        return LinearVOCClassifier(tokenizer, random_state=seed)
    linear = LinearVOCClassifier(tokenizer, random_state=seed, **DEFAULT_PARAMS)
    if kind == "linear" or (kind == "hybrid" and dimension == "work"):
        return linear
    if kind == "hybrid":
        return HybridClassifier(KeywordClassifier(taxonomy.rows_of(dimension)), linear, random_state=seed)
    raise ValueError(f"unknown classifier kind {kind!r}; expected one of {KINDS}")


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
    """

    kind: str
    version: str
    taxonomy: Taxonomy
    use_reply: bool = True
    classifiers: dict[str, Any] = field(default_factory=dict)
    tokenizer: KiwiTokenizer = field(default_factory=KiwiTokenizer)
    low_confidence_threshold: float | None = None

    @property
    def fallback_dimensions(self) -> list[str]:
        """Dimensions tagged by keywords only (no labelled rows at training time)."""
        return [d for d in self.taxonomy.dimensions() if d not in self.classifiers]

    def model_labels(self, dimension: str) -> list[str]:
        clf = self.classifiers.get(dimension)
        if clf is None:
            return []
        inner = getattr(clf, "model_", clf)
        return [str(c) for c in inner.classes_]

    def tag(self, texts: Sequence[str]) -> dict[str, Tags]:
        tokens = None
        if any(not isinstance(c, KeywordClassifier) for c in self.classifiers.values()):
            tokens = self.tokenizer.model_tokens_batch(texts)
        out: dict[str, Tags] = {}
        for dim in self.taxonomy.dimensions():
            clf = self.classifiers.get(dim)
            if clf is None:
                clf = KeywordClassifier(self.taxonomy.rows_of(dim)).fit()
            out[dim] = clf.predict_tags(texts, tokens=tokens)
        return out


# --------------------------------------------------------------------------------------------
# tagging a frame


def tag_frame(
    df: pl.DataFrame,
    tagger: Tagger,
    *,
    run_id: str,
    classify_source: str = "batch",
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

    Returns
    -------
    pl.DataFrame
        ``N × len(TAGGED_COLUMNS)``, same rows, same order. Rows whose title and request are both
        empty are still tagged (fallback class) with confidence 0 and flag ``empty_text``.
    """
    texts, flags = frame_texts(df, use_reply=tagger.use_reply)
    tags = tagger.tag(texts) if texts else {}
    input_flags = df["input_flags"].to_list() if "input_flags" in df.columns else [""] * df.height
    all_flags = [";".join(sorted({*f.split(";"), *g.split(";")} - {""})) for f, g in zip(flags, input_flags)]
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
    )
    return out.select(TAGGED_COLUMNS)


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
    return idx, [labs[i] for i in idx]  # type: ignore[misc]


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
) -> tuple[VOCTagger, TrainReport]:
    """Fit a CPU tagger on the reviewed rows of ``df``.

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
        Unknown ``kind``.
    """
    if kind not in ("hybrid", "linear", "anchor"):
        raise ValueError(f"train_tagger trains CPU kinds (hybrid, linear, anchor), got {kind!r}")
    tok = tokenizer or KiwiTokenizer()
    report = TrainReport(kind=kind, version=version, n_rows=df.height)
    texts, _ = frame_texts(df, use_reply=use_reply)
    tagger = VOCTagger(kind=kind, version=version, taxonomy=taxonomy, use_reply=use_reply, tokenizer=tok)
    token_cache: dict[int, list[str]] = {}

    def toks(idx: np.ndarray) -> list[list[str]]:
        missing = [i for i in idx if i not in token_cache]
        for i, t in zip(missing, tok.model_tokens_batch([texts[i] for i in missing])):
            token_cache[i] = t
        return [token_cache[i] for i in idx]

    taxonomy, splits = split_dimensions(df, taxonomy, report)
    tagger.taxonomy = taxonomy
    dates = df["created_at"].to_list()
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if progress is not None:
            progress(f"{msg} ({time.perf_counter() - t0:.1f} s)")

    for dim, sp in splits.items():
        say(f"{dim}: tokenizing {len(sp.train_rows)} training VOCs with Kiwi")
        toks(sp.train_rows)
        say(f"{dim}: fitting {kind} on {len(sp.train_rows)} VOCs, {len(set(sp.train_labels))} classes")
        clf = make_classifier(kind, taxonomy, dim, tok, seed=seed)
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
    say("fit done")
    return tagger, report


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
        out[dim] = evaluate_tags([labs[i] for i in keep], tags)
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
        known = sum(split_label(labs[i])[1] in known_minors for i in idx) / len(idx)  # type: ignore[arg-type]
        if known >= min_known_share:
            continue
        if texts is None:
            texts, _ = frame_texts(labelled, use_reply=use_reply)
        kw_idx = [i for i in idx if mask[i]]
        nouns_by_row = dict(zip(kw_idx, tok.keyword_nouns_batch([texts[i] for i in kw_idx])))
        dates = labelled["created_at"].to_list()
        rows = derive_taxonomy(
            dim,
            [labs[i] for i in idx],  # type: ignore[misc]
            [nouns_by_row.get(i, []) for i in idx],
            dates=[dates[i] for i in idx],
        )
        tax = tax.replace_dimension(dim, rows)
        notes.append(
            f"{dim}: {known:.0%} of labelled rows match the configured taxonomy; "
            f"using {sum(r.active for r in rows)} active classes derived from labelled history"
        )
    return tax, notes
