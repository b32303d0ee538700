"""The implementations behind the built-in model kinds (``hybrid``, ``linear``, ``anchor``,
``kobert``), which :mod:`voc.model_kinds` registers by import path.

The registry names these functions as ``"voc.builtin_kinds:NAME"`` and imports this module on
the first call, so importing the registry imports no classifier, and the modules it serves
(:mod:`voc.tagger`, :mod:`voc.modelstore`, ``config.settings``) can consult it without a cycle.
Each function has the shape of a :class:`voc.model_kinds.ModelKind` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voc.classify.base import DimensionClassifier
    from voc.classify.linear import LinearVOCClassifier
    from voc.model_kinds import TrainRequest
    from voc.tagger import Tagger, TrainReport
    from voc.taxonomy import Taxonomy
    from voc.tokenize import KiwiTokenizer

__all__ = [
    "anchor_classifier",
    "linear_classifier",
    "hybrid_classifier",
    "train_cpu",
    "save_pickled",
    "load_pickled",
    "train_kobert",
    "save_kobert",
    "load_kobert",
]


def anchor_classifier(taxonomy: Taxonomy, dimension: str, tokenizer: KiwiTokenizer | None, seed: int) -> DimensionClassifier:
    """``anchor``: the production model exactly (TF-IDF word 1–2-grams over Kiwi tokens, 10k
    features, sublinear tf, LinearSVC C=1 balanced in ``CalibratedClassifierCV(cv=3)``)."""
    from voc.classify.linear import LinearVOCClassifier

    return LinearVOCClassifier(tokenizer, random_state=seed)


def linear_classifier(taxonomy: Taxonomy, dimension: str, tokenizer: KiwiTokenizer | None, seed: int) -> DimensionClassifier:
    """``linear``: the default CPU model, :data:`voc.classify.linear.DEFAULT_PARAMS`
    (docs/model-quality.md)."""
    return _default_linear(tokenizer, seed)


def _default_linear(tokenizer: KiwiTokenizer | None, seed: int) -> LinearVOCClassifier:
    """The ``linear`` kind's classifier, typed as such (``hybrid`` wraps it)."""
    from voc.classify.linear import DEFAULT_PARAMS, LinearVOCClassifier

    return LinearVOCClassifier(tokenizer, random_state=seed, **DEFAULT_PARAMS)


def hybrid_classifier(taxonomy: Taxonomy, dimension: str, tokenizer: KiwiTokenizer | None, seed: int) -> DimensionClassifier:
    """``hybrid``: keyword scorer vs ``linear`` by alpha for ``subject``; ``linear`` for ``work``
    (keywords were worse for work type in production)."""
    from voc.classify.hybrid import HybridClassifier
    from voc.classify.keyword import KeywordClassifier

    linear = _default_linear(tokenizer, seed)
    if dimension == "work":
        return linear
    return HybridClassifier(KeywordClassifier(taxonomy.rows_of(dimension)), linear, random_state=seed)


def train_cpu(req: TrainRequest, *, kind: str) -> tuple[Tagger, TrainReport]:
    """A CPU kind's trainer: :func:`voc.tagger.train_tagger` with ``kind`` (one classifier per dimension)."""
    from voc.tagger import train_tagger

    return train_tagger(
        req.df, req.taxonomy, kind=kind, version=req.version, use_reply=req.use_reply, seed=req.seed,
        tokenizer=req.tokenizer, progress=req.progress, select=req.select, recipe=req.recipe, **dict(req.options),
    )


def save_pickled(tagger: Tagger, directory: Path) -> None:
    """``model.joblib`` (a pickle: load only directories your own pipeline wrote)."""
    import joblib

    joblib.dump(tagger, Path(directory) / "model.joblib", compress=3)


def load_pickled(directory: Path, meta: Mapping[str, Any], runtime: str) -> Tagger:
    """The pickled tagger, its review threshold set from ``meta["review_threshold"]`` when given
    (``runtime`` is ignored: one runtime)."""
    import joblib

    tagger: Tagger = joblib.load(Path(directory) / "model.joblib")
    if meta.get("review_threshold") is not None:
        tagger.low_confidence_threshold = meta["review_threshold"]
    return tagger


def train_kobert(req: TrainRequest) -> tuple[Tagger, TrainReport]:
    """``kobert``'s trainer: :func:`voc.kobert_training.train_kobert_tagger` with ``req.options``
    (``base``, ``epochs``, ``batch_size``, ``max_length``, …)."""
    from voc.kobert_training import train_kobert_tagger

    return train_kobert_tagger(
        req.df, req.taxonomy, version=req.version, use_reply=req.use_reply, seed=req.seed, **dict(req.options)
    )


def save_kobert(tagger: Tagger, directory: Path) -> None:
    """Transformers files and heads (:meth:`voc.classify.kobert.KoBERTTagger.save`)."""
    from voc.classify.kobert import KoBERTTagger

    if not isinstance(tagger, KoBERTTagger):
        raise TypeError(f"kind 'kobert' saves a KoBERTTagger, got {type(tagger).__name__}")
    tagger.save(directory)


def load_kobert(directory: Path, meta: Mapping[str, Any], runtime: str) -> Tagger:
    """:meth:`voc.classify.kobert.KoBERTTagger.load` with ``runtime`` (auto | torch | onnx)."""
    from voc.classify.kobert import KoBERTTagger

    return KoBERTTagger.load(Path(directory), runtime=runtime)
