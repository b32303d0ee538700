"""Keyword scorer over a taxonomy dimension (the first pass of the production hybrid).

Score of taxonomy row r for a text (the production system's keyword tagging):

    score(r) = Σ_segments  w(k) × (hits_k(r) + 0.1 × chars_k(r)) × priority(r)

* segments: the text split at line breaks and sentence ends (``. ! ? 。``); in ``all_text`` the
  first segment is the title;
* w(k) = 1 + 1/(k+1), the sentence-position weight: 2.0 for the first segment (title), 1.5 for
  the second, tending to 1 — early sentences name the problem, later ones add detail;
* hits_k(r): occurrences of r's keywords in segment k; chars_k(r): total characters of those
  occurrences (the length-bonus term: long, specific keywords count more than short ones);
* priority(r): the taxonomy row's priority (100 by default, 1 for ``기타``).

Keyword confidence of the best row: kw_conf = score / (score + alpha), alpha = 400 by default
(production default; the hybrid tunes it by cross-validation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from voc.classify.base import NotFittedError, Tags
from voc.taxonomy import TaxonomyRow

__all__ = ["KeywordClassifier", "segment_weights"]

_SEG_RE = re.compile(r"[\n.!?。]+")


def segment_weights(n: int) -> list[float]:
    """Position weights w(k) = 1 + 1/(k+1) for k = 0..n-1."""
    return [1.0 + 1.0 / (k + 1) for k in range(n)]


class KeywordClassifier:
    """Scores texts against the keywords of one taxonomy dimension
    (a :class:`~voc.classify.base.DimensionClassifier`).

    Parameters
    ----------
    rows
        Taxonomy rows of one dimension (:meth:`voc.taxonomy.Taxonomy.rows_of`).
    alpha
        Confidence scale, kw_conf = score / (score + alpha).
    length_bonus
        Weight of the matched-characters term (0.1 per character).
    """

    def __init__(self, rows: Sequence[TaxonomyRow] = (), *, alpha: float = 400.0, length_bonus: float = 0.1) -> None:
        self.rows = rows
        self.alpha = alpha
        self.length_bonus = length_bonus

    classes_: np.ndarray | None = None
    """Row labels once fitted; None before :meth:`fit` (the fitted state :meth:`_check` reads)."""

    def fit(
        self,
        texts: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        *,
        tokens: Sequence[Sequence[str]] | None = None,
        times: Sequence[Any] | None = None,
    ) -> Self:
        """Compile the keywords; ``texts``, ``labels``, ``tokens`` and ``times`` are ignored (the
        taxonomy is the model; they are accepted as every dimension classifier's ``fit`` is).

        Raises
        ------
        ValueError
            When ``rows`` is empty.
        """
        if not self.rows:
            raise ValueError("KeywordClassifier needs at least one taxonomy row")
        self.classes_ = np.array([r.label for r in self.rows], dtype=object)
        self.priority_ = np.array([r.priority for r in self.rows], dtype=float)
        self.keywords_ = [tuple(k.lower() for k in r.keywords if k) for r in self.rows]
        self.fallback_ = int(np.argmin(self.priority_))
        return self

    def _check(self) -> np.ndarray:
        """The fitted ``classes_`` (K labels). Raises :class:`NotFittedError` before :meth:`fit`."""
        if self.classes_ is None:
            raise NotFittedError("KeywordClassifier is not fitted; call fit() first")
        return self.classes_

    def model_labels(self) -> list[str]:
        """The taxonomy rows' labels (the keywords are its model). Raises :class:`NotFittedError`."""
        return [str(c) for c in self._check()]

    def keyword_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Raw scores, ``N × K`` (K = number of rows), ≥ 0."""
        self._check()
        out = np.zeros((len(texts), len(self.rows)), dtype=float)
        for i, text in enumerate(texts):
            segs = [s for s in _SEG_RE.split((text or "").lower()) if s.strip()]
            ws = segment_weights(len(segs))
            for j, kws in enumerate(self.keywords_):
                if not kws:
                    continue
                total = 0.0
                for w, seg in zip(ws, segs):
                    hits = chars = 0
                    for kw in kws:
                        c = seg.count(kw)
                        if c:
                            hits += c
                            chars += c * len(kw)
                    if hits:
                        total += w * (hits + self.length_bonus * chars)
                out[i, j] = total * self.priority_[j]
        return out

    def predict_proba(self, texts: Sequence[str], *, alpha: float | None = None) -> np.ndarray:
        """``N × K`` probabilities: p_k = s_k / (Σs + alpha), the remaining alpha / (Σs + alpha)
        added to the fallback (lowest-priority) class, so rows without a hit go to ``기타``."""
        a = self.alpha if alpha is None else alpha
        s = self.keyword_scores(texts)
        denom = s.sum(axis=1, keepdims=True) + a
        p: np.ndarray = s / denom
        p[:, self.fallback_] += (a / denom)[:, 0]
        return p

    def predict_tags(self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None) -> Tags:
        """Best row per text; confidence kw_conf = s / (s + alpha) of that row (0 when nothing
        matched and the fallback class is returned)."""
        s = self.keyword_scores(texts)
        best = s.argmax(axis=1) if len(texts) else np.zeros(0, dtype=int)
        top = s[np.arange(len(texts)), best] if len(texts) else np.zeros(0)
        best = np.where(top > 0, best, self.fallback_)
        conf = np.where(top > 0, top / (top + self.alpha), 0.0)
        classes = self._check()  # fitted: keyword_scores checked
        return Tags([str(classes[b]) for b in best], conf, ["keyword"] * len(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(self.predict_tags(texts).labels, dtype=object)
