"""Quality metrics of tags: how often they are right, and whether confidence finds the errors.

All functions take N true labels, N predicted labels and N confidences in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "classification_metrics",
    "expected_calibration_error",
    "review_capture",
    "choose_review_threshold",
]


def expected_calibration_error(correct: Sequence[bool], confidence: Sequence[float], *, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width bins over [0, 1] (Guo et al., 2017, "On Calibration of
    Modern Neural Networks", eq. 3): Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|. A confidence of
    exactly 1 falls in the last bin. Returns 0.0 for N = 0.

    Raises
    ------
    ValueError
        Lengths differ, or a confidence is outside [0, 1].
    """
    c = np.asarray(correct, dtype=float)
    p = np.asarray(confidence, dtype=float)
    if c.shape != p.shape:
        raise ValueError(f"correct ({c.shape}) and confidence ({p.shape}) differ in shape")
    if len(p) == 0:
        return 0.0
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("confidence must lie in [0, 1]")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.sum() / len(p) * abs(c[m].mean() - p[m].mean())
    return float(ece)


def review_capture(
    correct: Sequence[bool], confidence: Sequence[float], *, shares: Sequence[float] = (0.1, 0.2, 0.3)
) -> dict[str, float]:
    """Share of all errors that lie in the lowest-confidence ``share`` of rows.

    Rows are sorted by ascending confidence (ties by original order, stable); the first
    ``ceil(share × N)`` rows are "reviewed". Returns ``{"0.1": x, ...}``; 1.0 when there is no
    error (nothing to find), 0.0 for N = 0.
    """
    c = np.asarray(correct, dtype=bool)
    p = np.asarray(confidence, dtype=float)
    n = len(c)
    out: dict[str, float] = {}
    errors = int((~c).sum())
    order = np.argsort(p, kind="stable")
    for s in shares:
        k = int(np.ceil(s * n))
        if n == 0:
            out[f"{s:g}"] = 0.0
        elif errors == 0:
            out[f"{s:g}"] = 1.0
        else:
            out[f"{s:g}"] = float((~c[order[:k]]).sum() / errors)
    return out


def choose_review_threshold(correct: Sequence[bool], confidence: Sequence[float], *, target_capture: float = 0.8) -> float:
    """Smallest confidence threshold t such that rows with confidence < t hold at least
    ``target_capture`` of the errors on held-out data. Returns 0.0 when there are no errors."""
    c = np.asarray(correct, dtype=bool)
    p = np.asarray(confidence, dtype=float)
    err = np.sort(p[~c])
    if len(err) == 0:
        return 0.0
    k = int(np.ceil(target_capture * len(err))) - 1
    return float(min(1.0, err[k] + 1e-6))


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidence: Sequence[float] | None = None,
    *,
    train_labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class precision/recall/F1/support, and (with
    ``confidence``) ECE over 15 bins and review capture at 10/20/30 %.

    ``train_labels``: labels seen in training; adds ``unseen_label_share``, the share of rows
    whose true label never occurs there.

    Raises
    ------
    ValueError
        Lengths differ.
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    yt, yp = list(map(str, y_true)), list(map(str, y_pred))
    if len(yt) != len(yp):
        raise ValueError(f"y_true ({len(yt)}) and y_pred ({len(yp)}) differ in length")
    n = len(yt)
    out: dict[str, Any] = {"n": n}
    if n == 0:
        return {**out, "accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0, "per_class": {}}
    correct = np.array([a == b for a, b in zip(yt, yp)])
    labels = sorted(set(yt) | set(yp))
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    present = sorted(set(yt))
    out["accuracy"] = float(correct.mean())
    # macro over classes present in y_true (absent-but-predicted classes would only add zeros)
    out["macro_f1"] = float(f1_score(yt, yp, labels=present, average="macro", zero_division=0))
    out["weighted_f1"] = float(f1_score(yt, yp, labels=present, average="weighted", zero_division=0))
    out["per_class"] = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(labels)
    }
    if confidence is not None:
        conf = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
        out["ece"] = expected_calibration_error(correct, conf)
        out["review_capture"] = review_capture(correct, conf)
        out["review_threshold"] = choose_review_threshold(correct, conf)
    if train_labels is not None:
        seen = set(map(str, train_labels))
        out["unseen_label_share"] = float(np.mean([t not in seen for t in yt]))
    return out
