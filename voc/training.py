"""Training core: fit a challenger, measure it and the champion on the same held-out rows, decide.

The monthly retraining (``flows/train.py``, flow ``voc-train``) only orchestrates: it loads the
labelled frame and the champion, calls the functions here, stores what they return and logs.
Everything that decides what is trained and whether it replaces the champion is here, pure (no
I/O, no orchestrator):

1. :func:`challenger_taxonomy`: the taxonomy the challenger is trained with
   (:func:`voc.tagger.resolve_taxonomy` over every labelled VOC);
2. :func:`train_challenger`: one tagger of the asked kind (:mod:`voc.model_kinds`; a kind with a
   ``fallback`` is replaced by it when no dimension has two labelled classes) on the labelled
   rows, with its held-out metrics (:class:`voc.tagger.TrainReport`); called once per variant
   (:data:`voc.modelstore.VARIANTS`: reply-aware and registration-time);
3. :func:`measure_champion`: the champion's metrics on exactly each challenger variant's
   held-out rows, reading the same fields (:func:`champion_as`);
4. :func:`decide`: the champion rule, returning a :class:`TrainingDecision`.

Terms: the *champion* is the model version the monthly batch and ``voc serve`` use; the
*challenger* is the newly trained version competing with it. A challenger that is not promoted
is stored with ``status = "candidate"`` in its ``meta.json`` (the value earlier versions, the CLI
output and the tests read).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from voc.model_kinds import TrainRequest, kind_to_train, model_kind
from voc.modelstore import PromotionDecision, decide_pair_promotion
from voc.tagger import TrainReport, evaluate_tagger, labels_of, resolve_taxonomy
from voc.taxonomy import Taxonomy
from voc.tokenize import KiwiTokenizer

__all__ = [
    "PROMOTED",
    "NOT_PROMOTED",
    "ChallengerRecipe",
    "TrainingDecision",
    "challenger_taxonomy",
    "train_challenger",
    "champion_as",
    "measure_champion",
    "decide",
]

PROMOTED = "champion"
"""``meta.json`` ``status`` of a promoted challenger."""
NOT_PROMOTED = "candidate"
"""``meta.json`` ``status`` of a challenger that was not promoted (the stored value since the
first model versions; read by the CLI's JSON output, the cycle and the tests)."""


@dataclass(frozen=True)
class ChallengerRecipe:
    """What to train: the model kind and its settings.

    Attributes
    ----------
    kind
        Registered model kind (:func:`voc.model_kinds.kind_names`), e.g. ``linear``, ``kobert``.
    seed
        Random seed of the trainer.
    select
        Choose the recipe on the customer's own history (kinds with ``recipes``: ``linear``).
    options
        Kind-specific trainer options (:attr:`voc.model_kinds.ModelKind.settings_options`
        names them, e.g. KoBERT's ``base``, ``epochs``); dropped when the kind falls back.
    """

    kind: str
    seed: int = 0
    select: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingDecision:
    """Whether the challenger replaces the champion, why, and on what (the result of :func:`decide`).

    Attributes
    ----------
    promote
        The challenger becomes champion.
    reason
        One line per variant joined with ``"; "`` (``"reply: held-out macro-F1 0.6120 >=
        champion 0.5980; registration: …"``); shown in the summary and stored in ``meta.json``.
    challenger_metrics
        Variant → dimension → held-out metrics of the challenger (:func:`voc.metrics.classification_metrics`).
    champion_metrics
        Variant → dimension → the champion's metrics on the same rows (None for a variant it
        could not be measured on); None when there was no champion.
    holdout_rows
        Variant → dimension → number of held-out rows both were measured on.
    n_rows
        Rows of the labelled training frame.
    variants
        Variant → its own :class:`voc.modelstore.PromotionDecision` (scores and reason).
    """

    promote: bool
    reason: str
    challenger_metrics: Mapping[str, Mapping[str, Mapping[str, Any]]]
    champion_metrics: Mapping[str, Mapping[str, Mapping[str, Any]] | None] | None
    holdout_rows: Mapping[str, Mapping[str, int]]
    n_rows: int
    variants: Mapping[str, PromotionDecision]

    @property
    def status(self) -> str:
        """``meta.json`` ``status``: :data:`PROMOTED` or :data:`NOT_PROMOTED`."""
        return PROMOTED if self.promote else NOT_PROMOTED


def challenger_taxonomy(
    df: pl.DataFrame,
    everything: pl.DataFrame,
    base: Taxonomy,
    *,
    use_reply: bool,
    tokenizer: KiwiTokenizer | None = None,
) -> tuple[Taxonomy, list[str]]:
    """The taxonomy a challenger is trained with, and notes on how it was resolved.

    :func:`voc.tagger.resolve_taxonomy` of ``base`` over the training rows ``df`` followed by
    every other VOC of ``everything`` (labels only: a class that exists in the history but has no
    training row yet is still known); keyword rows are the training rows.

    Parameters
    ----------
    df
        Labelled training frame (N rows).
    everything
        Every VOC of the source (M rows; those of ``df`` are taken from ``df``).
    base
        The configured taxonomy (the source's, ``VOC_TAXONOMY_PATH`` or the default).
    use_reply
        Whether keyword texts include the reply.
    tokenizer
        Kiwi analyser to share (loads on first use: about a minute per 1,000 VOCs on 2 cores).
    """
    labelled_all = pl.concat([df, everything.filter(~pl.col("voc_id").is_in(df["voc_id"].implode()))], how="vertical")
    in_train = np.array(labelled_all["voc_id"].is_in(df["voc_id"].implode()).to_list(), dtype=bool)
    return resolve_taxonomy(base, labelled_all, keyword_rows=in_train, tokenizer=tokenizer, use_reply=use_reply)


def train_challenger(
    df: pl.DataFrame,
    taxonomy: Taxonomy,
    recipe: ChallengerRecipe,
    *,
    version: str,
    use_reply: bool,
    tokenizer: KiwiTokenizer | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, TrainReport, list[str]]:
    """Train one challenger tagger of ``recipe.kind`` on the labelled rows of ``df``.

    The kind's trainer (:mod:`voc.model_kinds`) chooses the rows: per dimension the rows with a
    usable label, the fixed 20 % held-out split by ``voc_id`` hash (the rows the champion is
    measured on too), keyword fallback for a dimension with fewer than two classes. A kind with
    a ``fallback`` (``kobert`` → ``hybrid``) trains that instead when no dimension of
    ``taxonomy`` has two labelled classes, and says so in the returned notes.

    Returns
    -------
    tuple
        ``(tagger, report, notes)``: the fitted tagger (its ``kind`` is the kind trained), its
        :class:`voc.tagger.TrainReport` (held-out metrics per dimension, held-out ``voc_id`` s)
        and notes (list of str) for the model's warnings.

    Raises
    ------
    voc.model_kinds.UnknownKindError
        ``recipe.kind`` is not registered.
    ValueError, ImportError, OSError
        What the kind's trainer raises (e.g. KoBERT without its extra or its base).
    """
    classes = {d: len({x for x in labels_of(df, d) if x}) for d in taxonomy.dimensions()}
    kind, note = kind_to_train(recipe.kind, classes)
    spec = model_kind(kind)
    request = TrainRequest(
        df=df,
        taxonomy=taxonomy,
        version=version,
        use_reply=use_reply,
        seed=recipe.seed,
        tokenizer=tokenizer,
        progress=progress,
        select=recipe.select and spec.recipes,
        options=dict(recipe.options) if kind == recipe.kind else {},
    )
    tagger, report = spec.train(request)
    return tagger, report, [note] if note else []


def champion_as(variant: str, champions: Mapping[str, Any]) -> Any:
    """The champion tagger that ``voc serve`` answers ``variant``'s requests with.

    Its own tagger of that variant; for ``registration`` without one, its reply-aware tagger
    given no reply (a shallow copy with ``use_reply = False``, reading title + request); for
    ``reply`` without one, its registration tagger.

    Raises
    ------
    ValueError
        ``champions`` is empty.
    """
    if not champions:
        raise ValueError("the champion holds no tagger")
    if variant in champions:
        return champions[variant]
    if variant == "registration" and "reply" in champions:
        twin = copy.copy(champions["reply"])
        twin.use_reply = False
        return twin
    return next(iter(champions.values()))


def measure_champion(
    champions: Mapping[str, Any],
    df: pl.DataFrame,
    taxonomy: Taxonomy,
    holdout_ids: Mapping[str, Mapping[str, list[str]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """The champion's metrics on each challenger variant's held-out rows.

    Parameters
    ----------
    champions
        The champion's taggers by variant (:func:`voc.modelstore.load_variants`).
    df
        The labelled training frame the challenger was trained on.
    taxonomy
        The challenger's taxonomy (labels canonicalised with it).
    holdout_ids
        Variant → dimension → the challenger's held-out ``voc_id`` s (``TrainReport.holdout_ids``).

    Returns
    -------
    dict
        Variant → dimension → metrics (:func:`voc.tagger.evaluate_tagger`), measured with
        :func:`champion_as` of that variant.
    """
    return {v: evaluate_tagger(champion_as(v, champions), df, taxonomy, dict(ids)) for v, ids in holdout_ids.items()}


def decide(
    challenger: Mapping[str, TrainReport],
    champion_metrics: Mapping[str, Mapping[str, Mapping[str, Any]] | None] | None,
    *,
    n_rows: int,
) -> TrainingDecision:
    """The champion rule: promote the challenger only if it is not worse.

    Per variant, the score is the mean held-out macro-F1 over the dimensions that have held-out
    metrics (:func:`voc.modelstore.promotion_score`), the challenger's from its training report,
    the champion's measured on exactly the same held-out rows (:func:`measure_champion`). The
    challenger is promoted when, for **every** variant, its score is ≥ the champion's (a tie
    promotes: the newer model has seen more labels). Also promoted: no champion yet
    (``champion_metrics`` None), or a variant the champion could not be measured on. Never
    promoted over a champion: a challenger variant without held-out metrics. Implemented by
    :func:`voc.modelstore.decide_pair_promotion`.

    Parameters
    ----------
    challenger
        Variant → the challenger's :class:`voc.tagger.TrainReport` (at least one variant).
    champion_metrics
        Variant → dimension → the champion's metrics on the same rows; None = no champion.
    n_rows
        Rows of the training frame (recorded).

    Raises
    ------
    ValueError
        ``challenger`` names no variant.
    """
    metrics = {v: rep.metrics for v, rep in challenger.items()}
    pair = decide_pair_promotion(metrics, champion_metrics)
    return TrainingDecision(
        promote=pair.promote,
        reason=pair.reason,
        challenger_metrics=metrics,
        champion_metrics=None if champion_metrics is None else {v: champion_metrics.get(v) for v in challenger},
        holdout_rows={v: dict(rep.n_holdout) for v, rep in challenger.items()},
        n_rows=n_rows,
        variants=dict(pair.variants),
    )
