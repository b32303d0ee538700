import polars as pl
import pytest

from voc.quality import drift_messages, new_classes, share_shifts


def test_new_classes_counts_unknown_reviewed_labels():
    assert new_classes(["a>b", "x>y", "x>y", None, "c>d"], ["a>b"]) == ["x>y", "c>d"]
    assert new_classes(["x>y"], []) == []  # keyword-only dimension: no label set to drift from


def test_share_shift_by_hand():
    cur = {"시설": 8, "환경": 2}
    prev = [{"시설": 5, "환경": 5}, {"시설": 4, "환경": 6}]
    # 시설: 0.8 now vs mean(0.5, 0.4) = 0.45 → +0.35; 환경: 0.2 vs 0.55 → −0.35
    out = share_shifts(cur, prev, threshold=0.1)
    assert [s.label for s in out] == ["시설", "환경"]
    assert out[0].delta == pytest.approx(0.35) and out[1].delta == pytest.approx(-0.35)
    assert share_shifts(cur, prev, threshold=0.4) == []
    assert share_shifts({"a": 1}, [{"a": 0, "b": 1}], min_count=3) == []  # too small to matter
    assert share_shifts(cur, []) == []


def test_drift_messages_in_korean():
    month = pl.DataFrame(
        {
            "subject_major": ["시설"] * 8 + ["환경"] * 2,
            "subject_minor": ["승강기"] * 8 + ["주차"] * 2,
            "work_major": [None] * 10,
            "work_minor": [None] * 10,
            "is_reviewed": [True] * 10,
        }
    )
    hist = pl.DataFrame({"yyyymm": ["201909"] * 10 + ["201910"] * 10, "subject_major": (["시설"] * 5 + ["환경"] * 5) * 2})
    msgs = drift_messages(reviewed=month, model_labels={"subject": ["시설>승강기"]}, history=hist)
    assert any("새 주제 분류: 환경>주차" in m for m in msgs)
    assert any(m.startswith("주제 비중 증가: 시설 50% → 80%") for m in msgs)
