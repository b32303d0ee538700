"""Keyword + model hybrid (the production subject classifier).

For each text, kw_conf = score / (score + alpha) of the best keyword row is compared with the
model's top probability; the higher one wins (the production system's rule). alpha is chosen at fit time
by cross-validation over :data:`ALPHA_GRID` (accuracy on out-of-fold model probabilities) and
saved in ``alpha_``.

With the default model (:data:`voc.classify.linear.DEFAULT_PARAMS`) the model confidence is a
calibrated top-1 probability, so the comparison is between two "probability right" estimates.
On the shipped sample, with keywords derived from the training labels, the hybrid was below the
model alone on every temporal split (docs/model-quality.md); it is meant for curated keyword
taxonomies.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from voc.classify.base import NotFittedError, Tags, check_fit_input
from voc.classify.keyword import KeywordClassifier
from voc.classify.linear import LinearVOCClassifier

__all__ = ["HybridClassifier", "ALPHA_GRID", "combine"]

ALPHA_GRID: tuple[float, ...] = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 1e12)
"""Candidate alphas; 1e12 means "keywords never win" (the model alone)."""


def combine(kw: Tags, model: Tags, kw_scores_best: np.ndarray, alpha: float) -> Tags:
    """Per row, keep the keyword tag when s/(s+alpha) > model confidence, else the model's.

    ``kw_scores_best`` holds the best raw keyword score per row (N floats ≥ 0).
    """
    kw_conf = kw_scores_best / (kw_scores_best + alpha)
    use_kw = kw_conf > model.confidence
    labels = [k if u else m for k, m, u in zip(kw.labels, model.labels, use_kw)]
    conf = np.where(use_kw, kw_conf, model.confidence)
    source = ["keyword" if u else "model" for u in use_kw]
    return Tags(labels, conf, source)


class HybridClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn ships no type information
    """Keyword scorer and :class:`LinearVOCClassifier` combined by alpha (a
    :class:`~voc.classify.base.DimensionClassifier`; a scikit-learn estimator over raw texts:
    ``clone``/``get_params`` work; learned state ends in ``_``).

    Parameters
    ----------
    keyword
        An (unfitted or fitted) :class:`KeywordClassifier` over the dimension's taxonomy rows.
    model
        The statistical model, cloned at fit time (None: :class:`LinearVOCClassifier` with its
        constructor defaults, i.e. the anchor recipe).
    alpha
        Used as is when ``tune_alpha`` is False.
    tune_alpha
        Choose alpha from :data:`ALPHA_GRID` by ``cv``-fold cross-validation at fit time.
    cv, random_state
        Folds and seed of that cross-validation.
    """

    def __init__(
        self,
        keyword: KeywordClassifier,
        model: LinearVOCClassifier | None = None,
        *,
        alpha: float = 400.0,
        tune_alpha: bool = True,
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        self.keyword = keyword
        self.model = model
        self.alpha = alpha
        self.tune_alpha = tune_alpha
        self.cv = cv
        self.random_state = random_state

    alpha_: float | None = None
    """The alpha in use once fitted; None before :meth:`fit` (the fitted state)."""

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        tokens: Sequence[Sequence[str]] | None = None,
        times: Sequence[Any] | None = None,
    ) -> Self:
        """Fit the model, pick alpha by CV, fit the keyword scorer.

        ``tokens`` (N token lists) and ``times`` (N dates) are passed to the model
        (:meth:`LinearVOCClassifier.fit`).

        Raises
        ------
        ValueError
            As :meth:`LinearVOCClassifier.fit`.
        """
        y = check_fit_input(texts, labels)
        self.model_ = clone(self.model) if self.model is not None else LinearVOCClassifier()
        if tokens is None:
            tokens = self.model_.get_tokenizer().model_tokens_batch(texts)
        self.keyword_ = copy.deepcopy(self.keyword).fit()
        self.model_.fit(texts, y, tokens=tokens, times=times)
        self.alpha_ = float(self.alpha)
        self.cv_accuracy_: dict[float, float] = {}
        if self.tune_alpha:
            self.alpha_ = self._tune(texts, y, tokens, times)
        self.classes_ = np.array(sorted(set(self.model_.classes_) | set(self.keyword_.model_labels())), dtype=object)
        return self

    def _tune(
        self, texts: Sequence[str], y: list[str], tokens: Sequence[Sequence[str]], times: Sequence[Any] | None
    ) -> float:
        from sklearn.model_selection import StratifiedKFold

        counts = Counter(y)
        folds = min(self.cv, max(2, min(counts.values())))
        yy = np.array(y, dtype=object)
        strat = np.array([lab if counts[lab] >= folds else "__rare__" for lab in y], dtype=object)
        oof_labels: list[str] = [""] * len(y)
        oof_conf = np.zeros(len(y))
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for tr, te in skf.split(np.zeros(len(y)), strat):
                if len(set(yy[tr])) < 2:
                    continue
                m = clone(self.model_).fit(
                    [texts[i] for i in tr], yy[tr].tolist(), tokens=[tokens[i] for i in tr],
                    times=None if times is None else [times[i] for i in tr],
                )
                t = m.predict_tags([texts[i] for i in te], tokens=[tokens[i] for i in te])
                for k, i in enumerate(te):
                    oof_labels[i] = t.labels[k]
                    oof_conf[i] = t.confidence[k]
        model_tags = Tags(oof_labels, oof_conf, ["model"] * len(y))
        kw_tags = self.keyword_.predict_tags(texts)
        best = self.keyword_.keyword_scores(texts).max(axis=1)
        for a in ALPHA_GRID:
            pred = combine(kw_tags, model_tags, best, a).labels
            self.cv_accuracy_[a] = float(np.mean([p == t for p, t in zip(pred, y)]))
        # highest accuracy; ties go to the larger alpha (trust the model)
        return max(ALPHA_GRID, key=lambda a: (self.cv_accuracy_[a], a))

    def __sklearn_is_fitted__(self) -> bool:
        return self.alpha_ is not None

    def model_labels(self) -> list[str]:
        """The labels of the statistical model (``model_``), not the keyword rows.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        if self.alpha_ is None:
            raise NotFittedError("HybridClassifier is not fitted; call fit() first")
        return self.model_.model_labels()

    def predict_tags(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> Tags:
        """Per text, the keyword tag when its kw_conf beats the model's confidence, else the
        model's (:func:`combine`); N labels, confidences and sources."""
        if self.alpha_ is None:
            raise NotFittedError("HybridClassifier is not fitted; call fit() first")
        model = self.model_.predict_tags(texts, tokens=tokens)
        kw = self.keyword_.predict_tags(texts)
        best = self.keyword_.keyword_scores(texts).max(axis=1) if len(texts) else np.zeros(0)
        return combine(kw, model, best, self.alpha_)

    def predict(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """N labels (object array)."""
        return np.array(self.predict_tags(texts, tokens=tokens).labels, dtype=object)

