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


# ---------------------------------------------------------------------------------------------
# the rules in detail


def test_new_classes_order_and_moved_minors():
    labs = ["a>x", "b>y", "b>y", "c>z", " ", "d>x"]
    assert new_classes(labs, ["a>x"]) == ["b>y", "c>z", "d>x"]  # most frequent first, then first seen
    # d>x: the model knows minor x under another major (a reorganisation moved it): not new
    assert new_classes(labs, ["a>x"], match_minor=True) == ["b>y", "c>z"]


def test_share_shift_rule_edges():
    prev = [{"a": 5, "b": 5}, {}, {"a": 0, "b": 0}]  # empty months do not count in the mean
    out = share_shifts({"a": 8, "b": 2}, prev, threshold=0.2, min_count=1)
    assert [(s.label, round(s.delta, 6)) for s in out] == [("a", 0.3), ("b", -0.3)]
    assert out[0].previous_share == 0.5 and out[0].previous_mean_count == 5 and out[0].current_count == 8
    # strictly greater than the threshold
    assert share_shifts({"a": 8, "b": 2}, prev, threshold=0.3, min_count=1) == []
    # a label that disappeared is a shift down with count 0
    gone = share_shifts({"a": 10}, [{"a": 5, "c": 5}], threshold=0.1, min_count=5)
    assert {s.label: s.delta for s in gone} == {"a": pytest.approx(0.5), "c": pytest.approx(-0.5)}
    assert share_shifts({}, prev) == [] and share_shifts({"a": 1}, [{}]) == []
    with pytest.raises(ValueError):
        share_shifts({"a": -1}, prev)
    with pytest.raises(ValueError):
        share_shifts({"a": 1}, prev, threshold=2)


def test_share_shifts_seeded_stable_months_versus_a_spike():
    import numpy as np

    rng = np.random.default_rng(0)
    p = np.array([0.4, 0.3, 0.2, 0.1])
    labels = ["시설", "환경", "안전", "기타"]
    months = [dict(zip(labels, rng.multinomial(200, p).tolist())) for _ in range(6)]
    steady = dict(zip(labels, rng.multinomial(200, p).tolist()))
    assert share_shifts(steady, months) == []  # sampling noise at n = 200 stays under 10 points
    spike = dict(steady)
    spike["기타"] += 120  # a mass complaint
    out = share_shifts(spike, months)
    assert out[0].label == "기타" and out[0].delta > 0.25


def test_drift_messages_from_input_labels_and_keyword_only_dimension():
    month = pl.DataFrame(
        {
            "subject_major": ["시설"] * 4,
            "subject_minor": ["승강기"] * 4,
            "reviewed_subject_major": ["구조국", "신설국", None, "신설국"],
            "reviewed_subject_minor": ["승강기", "민원과", None, "민원과"],
            "work_major": ["작업"] * 4,
            "work_minor": ["교체"] * 4,
        }
    )
    msgs = drift_messages(reviewed=month, model_labels={"subject": ["시설>승강기"], "work": []}, history=None)
    # model tags of unreviewed rows are not labels; 구조국>승강기 is a moved minor, not new
    assert len(msgs) == 1 and msgs[0].startswith("새 주제 분류: 신설국>민원과 (검수 2건)")
    assert drift_messages(reviewed=month.head(0), model_labels={"subject": []}) == []
