"""Quality metrics of tags: how often they are right, and whether confidence finds the errors.

All functions take N true labels, N predicted labels and/or N confidences in [0, 1] (or N
booleans ``correct`` = predicted label equals the true one). Pure functions, no I/O.

* accuracy, macro-/weighted-F1, per-class precision/recall/F1 (scikit-learn's definitions);
* :func:`expected_calibration_error` (Guo et al., 2017);
* :func:`review_capture`: share of all errors found by reviewing the lowest-confidence rows,
  with :func:`review_capture_bound`, the best any ordering could do;
* :func:`error_detection_auroc`: how well confidence ranks errors below correct tags;
* :func:`choose_review_threshold`: the confidence under which a tag goes to review, chosen on
  held-out rows; :func:`review_budget` is that choice for the review sheet (80 % of the errors,
  at most 30 % of the rows) with what it flags and catches;
* :func:`unseen_label_share`: test rows whose true label training never had (label drift).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "classification_metrics",
    "expected_calibration_error",
    "review_capture",
    "review_capture_bound",
    "error_detection_auroc",
    "choose_review_threshold",
    "review_budget",
    "unseen_label_share",
    "CAPTURE_SHARES",
    "REVIEW_TARGET_CAPTURE",
    "REVIEW_MAX_SHARE",
]

BoolVector = Sequence[bool] | npt.NDArray[Any]
"""N booleans: a list or a 1-D array."""

FloatVector = Sequence[float] | npt.NDArray[Any]
"""N numbers: a list or a 1-D array."""

CAPTURE_SHARES: tuple[float, ...] = (0.1, 0.2, 0.3)
"""Review budgets reported by default: the lowest-confidence 10 / 20 / 30 % of rows."""

REVIEW_TARGET_CAPTURE = 0.8
"""Share of a dimension's errors the review sheet's 검토 우선 aims to hold (issue 14: "the
smallest share of rows expected to hold ≥ 80 % of the errors")."""

REVIEW_MAX_SHARE = 0.3
"""Most rows 검토 우선 may mark per dimension, as a share of held-out rows (issue 14: a
reviewer's hour; the 30 % cap of the same issue)."""


def _correct_conf(correct: BoolVector, confidence: FloatVector) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(correct, dtype=bool)
    p = np.asarray(confidence, dtype=float)
    if c.shape != p.shape or c.ndim != 1:
        raise ValueError(f"correct ({c.shape}) and confidence ({p.shape}) must be two vectors of one length N")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        bad = p[np.isnan(p) | (p < 0) | (p > 1)][0]
        raise ValueError(f"confidence must lie in [0, 1], got {bad!r}")
    return c, p


def expected_calibration_error(correct: BoolVector, confidence: FloatVector, *, n_bins: int = 15) -> float:
    """Expected calibration error of top-1 confidences.

    ECE = Σ_b |B_b| / N · |acc(B_b) − conf(B_b)| over ``n_bins`` equal-width bins of [0, 1]
    (Guo et al., 2017, "On Calibration of Modern Neural Networks", eq. 3; 15 bins as there).
    Bin b holds confidences in [b/M, (b+1)/M); a confidence of exactly 1 falls in the last bin.

    Parameters
    ----------
    correct
        N booleans, True where the tag was right.
    confidence
        N confidences in [0, 1].
    n_bins
        M, the number of bins.

    Returns
    -------
    float
        In [0, 1]; 0.0 for N = 0. Example: correct = [T, F, T, T], confidence =
        [0.9, 0.9, 0.2, 0.2] with 15 bins → two bins of 2 rows: |0.5 − 0.9| and |1.0 − 0.2|,
        ECE = ½ · 0.4 + ½ · 0.8 = 0.6.

    Raises
    ------
    ValueError
        Lengths differ, or a confidence is outside [0, 1] or NaN.
    """
    c, p = _correct_conf(correct, confidence)
    if len(p) == 0:
        return 0.0
    c = c.astype(float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.sum() / len(p) * abs(c[m].mean() - p[m].mean())
    return float(ece)


def review_capture(
    correct: BoolVector, confidence: FloatVector, *, shares: Sequence[float] = CAPTURE_SHARES
) -> dict[str, float]:
    """Share of all errors that lie in the lowest-confidence ``share`` of rows.

    Parameters
    ----------
    correct
        N booleans, True where the tag was right.
    confidence
        N confidences in [0, 1].
    shares
        Review budgets as fractions of N.

    Returns
    -------
    dict
        ``{f"{share:g}": captured}``: rows are sorted by ascending confidence (ties keep the
        input order: stable sort), the first ``ceil(share × N)`` are "reviewed", captured =
        errors among them / all errors. 1.0 when there is no error (nothing to find), 0.0 for
        N = 0. Example: correct = [F, T, F, T], confidence = [0.1, 0.2, 0.9, 0.8], share 0.5 →
        the two lowest (0.1, 0.2) hold one of the two errors → 0.5.

    Raises
    ------
    ValueError
        Lengths differ or a confidence outside [0, 1].
    """
    c, p = _correct_conf(correct, confidence)
    n = len(c)
    out: dict[str, float] = {}
    errors = int((~c).sum())
    order = np.argsort(p, kind="stable")
    for s in shares:
        k = int(np.ceil(s * n - 1e-9))
        if n == 0:
            out[f"{s:g}"] = 0.0
        elif errors == 0:
            out[f"{s:g}"] = 1.0
        else:
            out[f"{s:g}"] = float((~c[order[:k]]).sum() / errors)
    return out


def review_capture_bound(correct: BoolVector, *, shares: Sequence[float] = CAPTURE_SHARES) -> dict[str, float]:
    """The best :func:`review_capture` any confidence could reach: min(1, ceil(share × N) /
    errors). With accuracy a and budget s the bound is s / (1 − a), so a capture of 0.22 at
    20 % is near-perfect when 80 % of the tags are wrong. Same keys and conventions as
    :func:`review_capture`."""
    c = np.asarray(correct, dtype=bool)
    n, errors = len(c), int((~c).sum())
    out: dict[str, float] = {}
    for s in shares:
        if n == 0:
            out[f"{s:g}"] = 0.0
        elif errors == 0:
            out[f"{s:g}"] = 1.0
        else:
            out[f"{s:g}"] = float(min(1.0, int(np.ceil(s * n - 1e-9)) / errors))
    return out


def error_detection_auroc(correct: BoolVector, confidence: FloatVector) -> float | None:
    """Area under the ROC curve of "low confidence ⇒ error": the probability that a random wrong
    tag has lower confidence than a random right one (ties count ½); 0.5 is a random order, 1.0
    puts every error first (the AUROC of misclassification detection, Hendrycks & Gimpel, 2017,
    "A Baseline for Detecting Misclassified and Out-of-Distribution Examples"). None when all
    tags are right or all wrong (or there are none). Computed by
    ``sklearn.metrics.roc_auc_score`` with "right" as the positive class.

    Raises
    ------
    ValueError
        Lengths differ or a confidence outside [0, 1].
    """
    c, p = _correct_conf(correct, confidence)
    if c.all() or (~c).all():  # one class (or no rows): roc_auc_score is undefined there
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(c, p))  # "correct" is the positive class, scored by confidence


def choose_review_threshold(
    correct: BoolVector,
    confidence: FloatVector,
    *,
    target_capture: float = 0.8,
    max_review_share: float | None = None,
) -> float:
    """The confidence under which a tag goes to review, chosen on held-out rows.

    The smallest threshold t such that the held-out rows with confidence < t hold at least
    ``target_capture`` of the held-out errors; with ``max_review_share``, t is lowered (if
    needed) so that at most that share of held-out rows falls below it (a reviewer budget).

    Parameters
    ----------
    correct, confidence
        N held-out booleans and confidences in [0, 1] (rows the model was not trained on).
    target_capture
        Share of errors to catch, in (0, 1].
    max_review_share
        Optional cap on the share of rows sent to review, in (0, 1].

    Returns
    -------
    float
        t in [0, 1]; 0.0 when there are no held-out rows or no errors (review nothing). Saved in
        the model's ``meta.json`` as ``review_threshold``; tags with confidence < t are
        flagged for review.

    Raises
    ------
    ValueError
        Lengths differ, a confidence outside [0, 1], or an option out of range.
    """
    if not 0 < target_capture <= 1:
        raise ValueError(f"target_capture must be in (0, 1], got {target_capture!r}")
    if max_review_share is not None and not 0 < max_review_share <= 1:
        raise ValueError(f"max_review_share must be in (0, 1], got {max_review_share!r}")
    c, p = _correct_conf(correct, confidence)
    err = np.sort(p[~c])
    if len(err) == 0:
        return 0.0
    k = int(np.ceil(target_capture * len(err) - 1e-9)) - 1
    t = float(min(1.0, err[k] + 1e-6))
    if max_review_share is not None:
        srt = np.sort(p)
        m = int(np.floor(max_review_share * len(p) + 1e-9))
        # the largest t' with #{p < t'} <= m is the (m+1)-th smallest confidence (or 1 when m = N)
        cap = float(srt[m]) if m < len(p) else 1.0
        t = min(t, cap)
    return t


def review_budget(
    correct: BoolVector,
    confidence: FloatVector,
    *,
    target_capture: float = REVIEW_TARGET_CAPTURE,
    max_share: float = REVIEW_MAX_SHARE,
) -> dict[str, float | int]:
    """The review sheet's 검토 우선 threshold of one dimension, chosen on held-out rows, and what it
    does there.

    ``threshold`` = :func:`choose_review_threshold` (``target_capture``, ``max_review_share =
    max_share``): the smallest confidence t whose held-out rows below it hold ``target_capture``
    of the held-out errors, lowered when needed so that at most ``max_share`` of the rows fall
    below it. ``share`` and ``capture`` are measured on the same rows, so they are what to expect
    on new rows only as far as those resemble the held-out ones (a later month with new classes
    holds more errors above t: docs/model-quality.md measures it on later complaints).

    Parameters
    ----------
    correct, confidence
        N held-out booleans (tag right) and N confidences in [0, 1].
    target_capture
        Share of errors to catch, in (0, 1].
    max_share
        Cap on the share of rows flagged, in (0, 1].

    Returns
    -------
    dict
        ``threshold`` (float in [0, 1]; 0.0 when N = 0 or nothing is wrong: flag nothing),
        ``share`` (rows with confidence < threshold / N), ``capture`` (errors among them / all
        errors; 1.0 without errors, 0.0 for N = 0), ``n`` and ``errors`` (ints). Example: correct
        = [F, F, T, T, T, F, T, T, T, T], confidence = [.1, .2, .3, .4, .5, .6, .7, .8, .9, .95]:
        80 % of 3 errors needs the 3rd (0.6), 6 rows; the cap allows 3 rows, so t = 0.4 (rows
        0.1–0.3 flagged): share 0.3, capture 2/3.

    Raises
    ------
    ValueError
        Lengths differ, a confidence outside [0, 1], an option out of range.
    """
    c, p = _correct_conf(correct, confidence)
    t = choose_review_threshold(c, p, target_capture=target_capture, max_review_share=max_share)
    n, errors = len(c), int((~c).sum())
    flagged = p < t
    capture = 1.0 if errors == 0 and n else (float((~c & flagged).sum() / errors) if errors else 0.0)
    return {
        "threshold": float(t),
        "share": float(flagged.mean()) if n else 0.0,
        "capture": capture,
        "n": n,
        "errors": errors,
    }


def unseen_label_share(y_true: Sequence[str], train_labels: Sequence[str]) -> float:
    """Share of the N rows whose true label never occurs in ``train_labels`` (0.0 for N = 0):
    errors no model trained on that data can avoid (new classes, renamed or moved classes)."""
    seen = set(map(str, train_labels))
    yt = list(map(str, y_true))
    return float(np.mean([t not in seen for t in yt])) if yt else 0.0


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidence: FloatVector | None = None,
    *,
    train_labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class precision/recall/F1/support, and (with
    ``confidence``) ECE over 15 bins, review capture at 10/20/30 % and its bound, the
    error-detection AUROC and the review threshold.

    Parameters
    ----------
    y_true, y_pred
        N true and N predicted labels.
    confidence
        N confidences in [0, 1] (clipped), or None.
    train_labels
        Labels seen in training; adds ``unseen_label_share``.

    Returns
    -------
    dict
        ``n, accuracy, macro_f1`` (over classes present in ``y_true``), ``weighted_f1``,
        ``per_class {label: {precision, recall, f1, support}}`` (classes of ``y_true`` ∪
        ``y_pred``); with confidence: ``ece, review_capture {"0.1", "0.2", "0.3"},
        review_capture_bound, error_auroc, review_threshold`` (:func:`choose_review_threshold`
        at 80 % capture), ``review_share`` (share of these rows below it), ``review_budget``
        (:func:`review_budget`: the same choice capped at 30 % of the rows, what the review
        sheet's 검토 우선 uses); with train labels: ``unseen_label_share``.

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
        out["review_capture_bound"] = review_capture_bound(correct)
        out["error_auroc"] = error_detection_auroc(correct, conf)
        out["review_threshold"] = choose_review_threshold(correct, conf)
        out["review_share"] = float(np.mean(conf < out["review_threshold"]))
        out["review_budget"] = review_budget(correct, conf)
    if train_labels is not None:
        out["unseen_label_share"] = unseen_label_share(yt, train_labels)
    return out
