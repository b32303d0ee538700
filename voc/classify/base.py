"""The interface every per-dimension classifier implements (:class:`DimensionClassifier`).

A *dimension classifier* is a scikit-learn-style estimator over ``all_text`` strings:

* ``fit(texts, labels, *, tokens=None, times=None) -> self`` with N texts and N labels
  ``"major>minor"``; ``tokens`` are the texts' Kiwi model tokens when the caller has them,
  ``times`` their registration dates (recency weights); a classifier that does not use them
  ignores them;
* ``predict_tags(texts, *, tokens=None) -> Tags``: a label, a confidence in [0, 1] and the
  method that produced it (``model`` / ``keyword``) for each of N texts. ``tokens`` are the
  texts' Kiwi model tokens when the caller already has them (the tagger computes them once for
  both dimensions);
* ``predict(texts) -> ndarray[str]``, ``classes_`` (labels it can answer, sorted) and
  ``model_labels()`` (the labels its statistical model was trained on).

Implementations: :class:`voc.classify.keyword.KeywordClassifier`,
:class:`voc.classify.linear.LinearVOCClassifier`, :class:`voc.classify.hybrid.HybridClassifier`.
A classifier that can also pool a near-duplicate group's evidence implements
:class:`GroupPoolingClassifier` (``predict_group_tags``); :meth:`voc.tagger.VOCTagger.tag_groups`
uses it when present and a confidence vote otherwise.

Hyperparameters live in ``__init__`` only; learned state ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

__all__ = ["Tags", "DimensionClassifier", "GroupPoolingClassifier", "check_fit_input", "NotFittedError"]


class NotFittedError(RuntimeError):
    """``predict*`` called before ``fit``."""


@dataclass(frozen=True, slots=True)
class Tags:
    """Predictions for N texts: ``labels`` (N ``"major>minor"``), ``confidence`` (N floats in
    [0, 1]) and ``source`` (N method names)."""

    labels: list[str]
    confidence: np.ndarray
    source: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@runtime_checkable
class DimensionClassifier(Protocol):
    """A per-dimension classifier (module docstring); what :class:`voc.tagger.VOCTagger` holds
    per dimension and what :func:`voc.tagger.make_classifier` and the model kinds'
    ``classifier`` factories (:mod:`voc.model_kinds`) return, unfitted.

    A fitted one also has ``classes_`` (ndarray of K labels); it is not a protocol member so
    that ``isinstance`` holds before ``fit`` too."""

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        tokens: Sequence[Sequence[str]] | None = None,
        times: Sequence[Any] | None = None,
    ) -> Self: ...

    def predict(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_tags(
        self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None
    ) -> Tags: ...

    def model_labels(self) -> list[str]:
        """Labels the classifier's statistical model was trained on (a keyword scorer: its
        taxonomy rows' labels), as ``str``."""
        ...


@runtime_checkable
class GroupPoolingClassifier(DimensionClassifier, Protocol):
    """A classifier that answers a near-duplicate group once from its members' pooled evidence
    (:mod:`voc.pooling`)."""

    def predict_group_tags(
        self, texts: Sequence[str], groups: Sequence[str | None], *, tokens: Sequence[Sequence[str]] | None = None
    ) -> tuple[Tags, list[str]]:
        """N tags and N flags (``""`` or ``group_dissent``); ``groups``: N group ids (None = alone)."""
        ...


def check_fit_input(texts: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Validate training input and return the labels as ``str``.

    Raises
    ------
    ValueError
        Lengths differ; a label is empty (names the row); fewer than two distinct labels.
    """
    if len(texts) != len(labels):
        raise ValueError(f"texts ({len(texts)}) and labels ({len(labels)}) differ in length")
    out = []
    for i, lab in enumerate(labels):
        if lab is None or str(lab).strip() == "":
            raise ValueError(f"training row {i + 1}: field 'label' is empty")
        out.append(str(lab))
    n = len(set(out))
    if n < 2:
        raise ValueError(f"need at least two distinct labels to train a classifier, got {n}")
    return out
