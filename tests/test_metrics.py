"""Metric math on hand-checked inputs (accuracy, F1, ECE, review capture, thresholds, drift share)."""

import numpy as np
import pytest

from voc.metrics import (
    choose_review_threshold,
    classification_metrics,
    error_detection_auroc,
    expected_calibration_error,
    review_capture,
    review_capture_bound,
    unseen_label_share,
)


def test_accuracy_and_f1_by_hand():
    # a: tp 1, fp 1, fn 1 → P = R = F1 = 1/2;  b: tp 1, fp 1, fn 0 → F1 = 2/3;  c: F1 = 0
    m = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "a"])
    assert m["n"] == 4 and m["accuracy"] == 0.5
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 0.5 + 2 / 3 + 0) / 4)
    assert m["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert "ece" not in m  # no confidence given


def test_macro_f1_ignores_classes_only_predicted():
    # "z" never occurs in y_true: it lowers precision of nothing and is not averaged in
    m = classification_metrics(["a", "b"], ["a", "z"])
    assert m["macro_f1"] == pytest.approx(0.5)  # a: 1.0, b: 0.0
    assert m["per_class"]["z"]["support"] == 0


def test_ece_hand_computed():
    # 15 bins: 0.9 → bin 13 (acc 1/2, conf 0.9), 0.2 → bin 3 (acc 1, conf 0.2)
    ece = expected_calibration_error([True, False, True, True], [0.9, 0.9, 0.2, 0.2])
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.8)
    assert expected_calibration_error([True, True], [1.0, 1.0]) == 0.0  # 1.0 sits in the last bin
    assert expected_calibration_error([], []) == 0.0
    assert expected_calibration_error([False] * 4, [0.0] * 4) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([True], [1.5])
    with pytest.raises(ValueError):
        expected_calibration_error([True, False], [0.5])


def test_review_capture_hand_computed():
    assert review_capture([False, True, False, True], [0.1, 0.2, 0.9, 0.8], shares=(0.5,)) == {"0.5": 0.5}
    # ten rows, confidence 0.0 … 0.9, errors at rows 0, 2, 5, 9 (4 errors)
    correct = np.ones(10, dtype=bool)
    correct[[0, 2, 5, 9]] = False
    conf = np.arange(10) / 10
    # 10 % → row 0 (1 error); 20 % → rows 0–1 (1); 30 % → rows 0–2 (2); 0.3 × 10 is 3, not 4
    assert review_capture(correct, conf) == {"0.1": 0.25, "0.2": 0.25, "0.3": 0.5}
    assert review_capture_bound(correct) == {"0.1": 0.25, "0.2": 0.5, "0.3": 0.75}
    assert review_capture([True, True], [0.1, 0.2]) == {"0.1": 1.0, "0.2": 1.0, "0.3": 1.0}
    assert review_capture([], []) == {"0.1": 0.0, "0.2": 0.0, "0.3": 0.0}
    # ties keep input order (stable)
    assert review_capture([True, False], [0.5, 0.5], shares=(0.5,)) == {"0.5": 0.0}


def test_error_detection_auroc():
    # error confidences {0.1, 0.9}, right ones {0.2, 0.8}: 2 of 4 pairs ordered → 0.5
    assert error_detection_auroc([False, True, False, True], [0.1, 0.2, 0.9, 0.8]) == 0.5
    assert error_detection_auroc([False, True], [0.1, 0.9]) == 1.0
    assert error_detection_auroc([False, True], [0.5, 0.5]) == 0.5
    assert error_detection_auroc([True, True], [0.1, 0.9]) is None


def test_review_threshold_on_held_out_rows():
    err = [0.1, 0.3, 0.5, 0.7, 0.9]
    ok = [0.2, 0.4, 0.6, 0.8, 0.95]
    correct = [False] * 5 + [True] * 5
    conf = err + ok
    t = choose_review_threshold(correct, conf)  # 80 % of 5 errors = 4 → the 4th lowest, 0.7
    assert t == pytest.approx(0.7, abs=1e-5) and t > 0.7
    assert sum(c < t for c, ok_ in zip(conf, correct) if not ok_) == 4
    # a reviewer budget of 30 % of rows caps it: rows below 0.4 are 0.1, 0.2, 0.3
    t2 = choose_review_threshold(correct, conf, max_review_share=0.3)
    assert t2 == 0.4 and sum(c < t2 for c in conf) == 3
    assert choose_review_threshold([True, True], [0.2, 0.3]) == 0.0
    with pytest.raises(ValueError):
        choose_review_threshold(correct, conf, target_capture=0)


def test_unseen_share_and_full_report():
    assert unseen_label_share(["a", "b", "c", "c"], ["a", "b"]) == 0.5
    assert unseen_label_share([], ["a"]) == 0.0
    m = classification_metrics(
        ["a", "b", "c", "c"], ["a", "b", "a", "b"], [0.9, 0.8, 0.3, 0.2], train_labels=["a", "b"]
    )
    assert m["unseen_label_share"] == 0.5
    assert m["review_capture"]["0.2"] == 0.5  # lowest row (0.2) is one of the two errors
    assert m["error_auroc"] == 1.0
    assert 0 < m["review_threshold"] <= 1 and 0 <= m["review_share"] <= 1
    assert set(m) >= {"accuracy", "macro_f1", "weighted_f1", "per_class", "ece", "review_capture_bound"}
