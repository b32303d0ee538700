import math

import polars as pl
import pytest

from voc.drift import (
    GROUP_PREFIX,
    PENDING_PREFIX,
    SHIFT_ALPHA,
    SHIFT_MIN_VOCS,
    ShiftRule,
    confirmed_tags,
    drift_messages,
    new_classes,
    share_shifts,
    two_proportion_p_value,
)


def test_new_classes_counts_unknown_reviewed_labels():
    assert new_classes(["a>b", "x>y", "x>y", None, "c>d"], ["a>b"]) == ["x>y", "c>d"]
    assert new_classes(["x>y"], []) == []  # keyword-only dimension: no label set to drift from


def test_share_shift_by_hand():
    cur = {"시설": 8, "환경": 2}
    prev = [{"시설": 5, "환경": 5}, {"시설": 4, "환경": 6}]
    # 시설: 0.8 now vs mean(0.5, 0.4) = 0.45 → +0.35; 환경: 0.2 vs 0.55 → −0.35
    out = share_shifts(cur, prev, threshold=0.1, alpha=None)
    assert [s.label for s in out] == ["시설", "환경"]
    assert out[0].delta == pytest.approx(0.35) and out[1].delta == pytest.approx(-0.35)
    assert math.isnan(out[0].p_value)  # not tested
    assert share_shifts(cur, prev, threshold=0.4, alpha=None) == []
    assert share_shifts({"a": 1}, [{"a": 0, "b": 1}], min_count=3, min_vocs=1, alpha=None) == []  # too small
    assert share_shifts(cur, []) == []
    # 35 share points, but 8 of 10 against 9 of 20 is p = 0.068: chance at n = 10, no alert
    assert share_shifts(cur, prev, threshold=0.1) == []
    # the same shares at ten times the VOCs are significant
    big = share_shifts({k: 10 * v for k, v in cur.items()}, [{k: 10 * v for k, v in m.items()} for m in prev])
    assert [s.label for s in big] == ["시설", "환경"] and all(s.p_value < SHIFT_ALPHA for s in big)


def test_two_proportion_p_value_by_hand_and_against_chi_square():
    # 8/10 vs 9/20: pooled p = 17/30, z = 0.35 / sqrt(17/30 · 13/30 · (1/10 + 1/20)) = 1.8237
    z = 0.35 / math.sqrt(17 / 30 * 13 / 30 * (1 / 10 + 1 / 20))
    assert z == pytest.approx(1.82368, abs=1e-5)
    assert two_proportion_p_value(8, 10, 9, 20) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert two_proportion_p_value(8, 10, 9, 20) == pytest.approx(0.0682, abs=1e-4)
    # the pooled z-test is Pearson's chi-square test of the 2×2 table without continuity correction
    from scipy.stats import chi2_contingency

    for x1, n1, x2, n2 in ((35, 41, 40, 74), (0, 4, 30, 61), (3, 50, 9, 40), (7, 7, 1, 90)):
        chi = chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False).pvalue
        assert two_proportion_p_value(x1, n1, x2, n2) == pytest.approx(chi, rel=1e-9)
    assert two_proportion_p_value(5, 10, 5, 10) == pytest.approx(1.0)
    assert two_proportion_p_value(0, 5, 0, 9) == 1.0 and two_proportion_p_value(5, 5, 9, 9) == 1.0
    for bad in ((1, 0, 1, 2), (3, 2, 1, 2), (-1, 2, 1, 2), (1, 2, 3, 2)):
        with pytest.raises(ValueError, match="sample"):
            two_proportion_p_value(*bad)


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
    hist = pl.DataFrame({"yyyymm": ["201909"] * 40 + ["201910"] * 40, "subject_major": (["시설"] * 20 + ["환경"] * 20) * 2})
    msgs = drift_messages(reviewed=month, model_labels={"subject": ["시설>승강기"]}, history=hist)
    assert any("새 주제 분류: 환경>주차" in m for m in msgs)
    # 8 of 10 against 40 of 80: z = 1.79, p = 0.074 — not significant, no share note
    assert not any("비중" in m for m in msgs)
    month3 = pl.concat([month] * 3)  # 24 of 30 against 40 of 80: p = 0.004
    msgs = drift_messages(reviewed=month3, model_labels={"subject": ["시설>승강기"]}, history=hist)
    assert any(m.startswith("주제 비중 증가: 시설 50% → 80% (+30%p, 24건") for m in msgs)


# ---------------------------------------------------------------------------------------------
# the rules in detail


def test_new_classes_order_and_moved_minors():
    labs = ["a>x", "b>y", "b>y", "c>z", " ", "d>x"]
    assert new_classes(labs, ["a>x"]) == ["b>y", "c>z", "d>x"]  # most frequent first, then first seen
    # d>x: the model knows minor x under another major (a reorganisation moved it): not new
    assert new_classes(labs, ["a>x"], match_minor=True) == ["b>y", "c>z"]


def test_share_shift_rule_edges():
    prev = [{"a": 5, "b": 5}, {}, {"a": 0, "b": 0}]  # empty months do not count in the mean
    out = share_shifts({"a": 8, "b": 2}, prev, threshold=0.2, min_count=1, alpha=None)
    assert [(s.label, round(s.delta, 6)) for s in out] == [("a", 0.3), ("b", -0.3)]
    assert out[0].previous_share == 0.5 and out[0].previous_mean_count == 5 and out[0].current_count == 8
    # strictly greater than the threshold
    assert share_shifts({"a": 8, "b": 2}, prev, threshold=0.3, min_count=1, alpha=None) == []
    # a label that disappeared is a shift down with count 0 (10 of 10 against 5 of 10: p = 0.01)
    gone = share_shifts({"a": 10}, [{"a": 5, "c": 5}], threshold=0.1, min_count=5)
    assert {s.label: s.delta for s in gone} == {"a": pytest.approx(0.5), "c": pytest.approx(-0.5)}
    p10 = two_proportion_p_value(10, 10, 5, 10)
    assert p10 < 0.05 and all(s.p_value == pytest.approx(p10) for s in gone)
    assert share_shifts({}, prev) == [] and share_shifts({"a": 1}, [{}]) == []
    # month size: 4 VOCs never give a share note, however far the shares moved
    assert SHIFT_MIN_VOCS == 5
    assert share_shifts({"a": 4}, [{"a": 0, "c": 40}] * 6, min_count=1) == []
    assert [s.label for s in share_shifts({"a": 5}, [{"a": 0, "c": 40}] * 6, min_count=1)] == ["a", "c"]
    with pytest.raises(ValueError):
        share_shifts({"a": -1}, prev)
    with pytest.raises(ValueError):
        share_shifts({"a": 1}, prev, threshold=2)
    with pytest.raises(ValueError, match="alpha"):
        share_shifts({"a": 1}, prev, alpha=1.5)
    with pytest.raises(ValueError, match="min_vocs"):
        share_shifts({"a": 1}, prev, min_vocs=0)
    # the same rule as one value: refused when made, the same shifts when applied
    with pytest.raises(ValueError, match="min_count"):
        ShiftRule(min_count=-1)
    assert ShiftRule(threshold=0.1, min_count=5).shifts({"a": 10}, [{"a": 5, "c": 5}]) == gone


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


# ---------------------------------------------------------------------------------------------
# real months of the shipped sample (Incheon Jung-gu office complaint board, via
# 2hy03/Civil_Complaint): subject = the reviewed department, history = the 6 months before


def _sample_month(sample_df: pl.DataFrame, building: str, yyyymm: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    from voc.months import months_before

    rows = sample_df.with_columns(
        yyyymm=pl.col("created_at").dt.strftime("%Y%m"),
        subject_major=pl.col("reviewed_subject_major"),
        subject_minor=pl.col("reviewed_subject_minor"),
    ).filter(pl.col("building_id") == building)
    window = [m.replace("-", "") for m in months_before(f"{yyyymm[:4]}-{yyyymm[4:]}", 6)]
    return rows.filter(pl.col("yyyymm") == yyyymm), rows.filter(pl.col("yyyymm").is_in(window))


def test_real_four_voc_building_gets_no_share_alert(sample_df):
    """Building 2 in 2019-11 has 4 VOCs, none from 국제도시국 (49 % of the 6 months before):
    the old rule reported "국제도시국 49% → 0%"; 4 VOCs support no alert."""
    month, hist = _sample_month(sample_df, "2", "201911")
    assert month.height == 4 and hist["yyyymm"].n_unique() == 6
    labels = {"subject": []}  # keyword-only: share notes only
    old_rule = drift_messages(reviewed=month, model_labels=labels, history=hist, rule=ShiftRule(min_vocs=1, alpha=None))
    assert any(m.startswith("주제 비중 감소: 국제도시국 49% → 0%") for m in old_rule)
    assert drift_messages(reviewed=month, model_labels=labels, history=hist) == []


def test_real_mass_complaint_month_still_alerts(sample_df):
    """Building 1 in 2019-11: 35 of 41 VOCs went to 도시재생국 (a construction next to an
    elementary school), against 54 % over the 6 months before — a real shift (p < 0.001)."""
    month, hist = _sample_month(sample_df, "1", "201911")
    assert month.height == 41
    msgs = drift_messages(reviewed=month, model_labels={"subject": []}, history=hist)
    assert msgs[0].startswith("주제 비중 증가: 도시재생국 54% → 85% (+32%p, 35건, 지난 6개월 평균 대비)")
    prev = hist.filter(pl.col("subject_major") == "도시재생국").height
    assert two_proportion_p_value(35, 41, prev, hist.height) < 0.001


# ---------------------------------------------------------------------------------------------
# a mass complaint is one event; unconfirmed tags carry no alert (issue 20)


def _rows(spec: list[tuple[str, str | None, float, str]]) -> tuple[pl.DataFrame, list[str | None]]:
    """(major, group id, confidence, source) per row → a month frame and its group ids."""
    return pl.DataFrame(
        {
            "subject_major": [m for m, _, _, _ in spec],
            "subject_minor": [m for m, _, _, _ in spec],
            "subject_confidence": [c for _, _, c, _ in spec],
            "subject_source": [s for _, _, _, s in spec],
        }
    ), [g for _, g, _, _ in spec]


_HIST = pl.DataFrame({"yyyymm": ["201909"] * 100 + ["201910"] * 100, "subject_major": (["A"] * 20 + ["B"] * 80) * 2})


def test_confirmed_tags_rules():
    frame = pl.DataFrame(
        {
            "subject_confidence": [0.9, 0.4, None, 0.9, 0.1, 0.2],
            "subject_source": ["model", "model", "model", "keyword", "reviewer", "reviewer_group"],
        }
    )
    assert confirmed_tags(frame, "subject", {"subject": 0.6}) == [True, False, False, False, True, True]
    assert confirmed_tags(frame, "subject", {}) == [True, True, True, False, True, True]  # no threshold: model tags count
    assert confirmed_tags(frame, "subject", None) == [True] * 6  # no information: the rule before thresholds
    flagged = frame.with_columns(subject_reviewed=pl.Series([False, True, False, True, False, False]))
    assert confirmed_tags(flagged, "subject", {"subject": 0.6}) == [True, True, False, True, True, True]
    bare = pl.DataFrame({"subject_confidence": [0.9, 0.4], "is_reviewed": [False, True]})
    assert confirmed_tags(bare, "subject", {"subject": 0.6}) == [True, True]


def test_a_group_is_one_event_by_hand():
    # 10 posts of one campaign tagged A + 30 single A + 20 single B, against A at 20 %:
    # per VOC A = 40 / 60; as events A = 31 / 51 = 61 % — still a shift, and it says the group is in it
    month, gids = _rows([("A", "g1", 0.9, "model")] * 10 + [("A", None, 0.9, "model")] * 30 + [("B", None, 0.9, "model")] * 20)
    msgs = drift_messages(reviewed=month, model_labels={}, history=_HIST, group_ids=gids)
    assert "주제 비중 증가: A 20% → 61% (+41%p, 31건 — 집단 민원 1건 = VOC 10건 포함, 지난 2개월 평균 대비)" in msgs
    # a campaign of 30 posts and 30 other VOCs: per VOC A = 50 % (an alert of the old rule);
    # counted once A is 1 of 31 — neither an increase nor a "decrease" of A, a group note
    month, gids = _rows([("A", "g1", 0.9, "model")] * 30 + [("B", None, 0.9, "model")] * 30)
    old = drift_messages(reviewed=month, model_labels={}, history=_HIST)
    assert any(m.startswith("주제 비중 증가: A 20% → 50% (+30%p, 30건") for m in old)
    msgs = drift_messages(reviewed=month, model_labels={}, history=_HIST, group_ids=gids)
    assert not any(m.startswith("주제 비중") for m in msgs)
    assert msgs == [
        "집단 민원 1건 (VOC 30건): 주제 A 비중 20% → 50% (30건 중 묶음 30건)는 비슷한 VOC 묶음을 하나하나 센 값입니다 "
        "— 묶음을 1건으로 세면 뚜렷한 변화가 아닙니다 (주요 이슈 참고)."
    ]
    with pytest.raises(ValueError, match="group_ids has 2 values for 60 rows"):
        drift_messages(reviewed=month, model_labels={}, history=_HIST, group_ids=["g", None])


def test_an_alert_that_needs_unconfirmed_tags_is_pending():
    # 20 A at confidence 0.4 (under the threshold 0.6) + 10 B: A 20 % → 67 % only through them
    month, _ = _rows([("A", None, 0.4, "model")] * 20 + [("B", None, 0.9, "model")] * 10)
    assert any(m.startswith("주제 비중 증가: A 20% → 67%") for m in drift_messages(reviewed=month, model_labels={}, history=_HIST))
    msgs = drift_messages(reviewed=month, model_labels={}, history=_HIST, thresholds={"subject": 0.6})
    assert not any(m.startswith("주제 비중") for m in msgs)
    assert any(m.startswith(f"{PENDING_PREFIX} — 주제 비중 증가?: A 20% → 67% (+47%p, 20건 중 검수 전 저신뢰·추정 20건") for m in msgs)
    assert all(m.startswith(PENDING_PREFIX) for m in msgs)
    # keyword guesses are no better: pending too
    guessed = month.with_columns(pl.lit("keyword").alias("subject_source"), pl.lit(0.9).alias("subject_confidence"))
    guessed_msgs = drift_messages(reviewed=guessed, model_labels={}, history=_HIST, thresholds={"subject": 0.6})
    assert all(m.startswith(PENDING_PREFIX) for m in guessed_msgs)
    # reviewed, the same tags are an alert
    done = month.with_columns(pl.lit(True).alias("subject_reviewed"))
    msgs = drift_messages(reviewed=done, model_labels={}, history=_HIST, thresholds={"subject": 0.6})
    assert "주제 비중 증가: A 20% → 67% (+47%p, 20건, 지난 2개월 평균 대비)" in msgs
    # 15 confident A of 30 are enough on their own (15 / 30 = 50 % against 20 %): an alert
    mixed, _ = _rows([("A", None, 0.9, "model")] * 15 + [("A", None, 0.4, "model")] * 5 + [("B", None, 0.9, "model")] * 10)
    msgs = drift_messages(reviewed=mixed, model_labels={}, history=_HIST, thresholds={"subject": 0.6})
    assert any(m.startswith("주제 비중 증가: A 20% → 67%") for m in msgs)


def test_demo_month_mis_tagged_group_raises_no_share_alert(sample_df):
    """`voc demo`, 2019-11, building 1 before review: the 28-post campaign, 27 posts tagged 신흥동
    at ≈ 0.5 (under the review threshold), made "주제 비중 증가: 신흥동 0% → 66%"."""
    from test_dashboard import DEMO_THRESHOLDS, demo_month

    month, gids, history = demo_month(sample_df)
    old = drift_messages(reviewed=month, model_labels={"subject": []}, history=history)
    assert old[0].startswith("주제 비중 증가: 신흥동 0% → 66% (+66%p, 27건")
    new = drift_messages(reviewed=month, model_labels={"subject": []}, history=history,
                         group_ids=gids, thresholds=DEMO_THRESHOLDS)
    assert not any(m.startswith(("주제 비중", "작업유형 비중")) for m in new), new  # no alert at all
    assert new[0].startswith(f"{GROUP_PREFIX} 1건 (VOC 28건): 주제 신흥동 비중 0% → 66% (27건 중 묶음 27건)")
    assert new[0].endswith("검수 전 저신뢰·추정 분류이니 검수 후 확인하세요.")
    # the group alone (confident tags) is still one event: no alert either
    sure = month.with_columns(pl.lit(0.9).alias("subject_confidence"))
    assert not any(m.startswith("주제 비중") for m in drift_messages(
        reviewed=sure, model_labels={"subject": []}, history=history, group_ids=gids, thresholds=DEMO_THRESHOLDS))


def test_real_mass_complaint_counted_once(sample_df):
    """After review (the real departments), the per-VOC rule's 도시재생국 54% → 85% is the two
    groups of the month (the campaign, 28 posts; a demolition, 3): counted once they are a note."""
    from voc import groups

    month, hist = _sample_month(sample_df, "1", "201911")
    vec = groups.fit_group_vectorizer(groups.group_texts(sample_df.filter(pl.col("created_at").dt.strftime("%Y%m") < "201911")))
    gids = groups.near_duplicate_groups(month, vectorizer=vec).to_list()
    msgs = drift_messages(reviewed=month, model_labels={"subject": []}, history=hist, group_ids=gids, thresholds={})
    assert msgs == [
        f"{GROUP_PREFIX} 2건 (VOC 31건): 주제 도시재생국 비중 54% → 85% (35건 중 묶음 31건)는 비슷한 VOC 묶음을 "
        "하나하나 센 값입니다 — 묶음을 1건으로 세면 뚜렷한 변화가 아닙니다 (주요 이슈 참고)."
    ]
