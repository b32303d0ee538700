"""The interface every per-dimension classifier implements.

A *dimension classifier* is a scikit-learn-style estimator over ``all_text`` strings:

* ``fit(texts, labels) -> self`` with N texts and N labels ``"major>minor"``;
* ``predict_tags(texts, *, tokens=None) -> Tags``: a label, a confidence in [0, 1] and the
  method that produced it (``model`` / ``keyword``) for each of N texts. ``tokens`` are the
  texts' Kiwi model tokens when the caller already has them (the tagger computes them once for
  both dimensions);
* ``predict(texts) -> ndarray[str]`` and ``classes_`` (fitted labels, sorted).

Hyperparameters live in ``__init__`` only; learned state ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np

__all__ = ["Tags", "DimensionClassifier", "check_fit_input", "NotFittedError"]


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
    classes_: np.ndarray

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Self: ...

    def predict(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_tags(
        self, texts: Sequence[str], *, tokens: Sequence[Sequence[str]] | None = None
    ) -> Tags: ...


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
