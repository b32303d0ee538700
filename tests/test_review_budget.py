"""The review budget on real held-out rows, and the review aids stored with a trained model.

One model is trained like the demo's (every labelled VOC before 2019-11, kind ``linear``, the
fixed 20 % held-out split; subject classes derived from the sample's labels). Its held-out rows
are tagged and put into review rows: 검토 우선 must flag at most 30 % of them and catch at least
the share of errors measured in docs/model-quality.md ("Review budget"). The sample has no
work-type labels, so the work type is keyword-only and must never drive the priority.
"""

from __future__ import annotations

import copy
from datetime import date

import numpy as np
import polars as pl
import pytest

from voc.evidence import ReviewedPool, tagger_evidence
from voc.review import COL_FLAG, COL_REASON, COL_VOC_ID, build_review_rows, review_thresholds_of
from voc.tagger import canonical_labels, labels_of, tag_frame, train_tagger
from voc.taxonomy import default_taxonomy, derive_taxonomy

MEASURED_SHARE = 0.30
"""Held-out rows the demo model's 검토 우선 flags (docs/model-quality.md, "Review budget")."""
CAPTURE_FLOOR = 0.65
"""What the test demands: the same 180 held-out rows gave 36 of 49 errors (0.73) on one machine
and 33 of 47 (0.70) on another (floating-point differences between CPUs move a few SVM
decisions); 30 % of the rows picked at random would hold 30 % of the errors."""


@pytest.fixture(scope="module")
def demo(sample_df, tokenizer):
    # the session tokenizer caches analyses: tagging the held-out rows again reuses them
    labelled = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null())
    labels = labels_of(labelled, "subject")
    rows = derive_taxonomy("subject", labels, [[] for _ in labels], dates=labelled["created_at"].to_list())
    taxonomy = default_taxonomy().replace_dimension("subject", rows)
    history = sample_df.filter(pl.col("created_at") < date(2019, 11, 1))
    tagger, report = train_tagger(history, taxonomy, kind="linear", version="t14", tokenizer=tokenizer)
    held = history.filter(pl.col("voc_id").is_in(report.holdout_ids["subject"]))
    return history, tagger, report, held


def test_thresholds_come_from_held_out_rows_of_trained_dimensions_only(demo):
    _, tagger, report, _ = demo
    budget = report.metrics["subject"]["review_budget"]
    assert tagger.review_thresholds == {"subject": budget["threshold"]}
    assert "work" in tagger.fallback_dimensions and review_thresholds_of(tagger) == {"subject": budget["threshold"]}
    assert budget["n"] == report.n_holdout["subject"] == 180
    assert budget["share"] <= 0.30


def test_budget_on_real_held_out_rows(demo):
    """검토 우선 on the model's held-out rows, through the product path (tag_frame →
    build_review_rows): ≤ 30 % flagged, ≥ the measured share of subject errors inside."""
    _, tagger, _, held = demo
    tagged = tag_frame(held, tagger, run_id="t")
    assert set(tagged["work_source"].to_list()) == {"keyword"}
    rows = build_review_rows(tagged, threshold=None, thresholds=review_thresholds_of(tagger))
    truth = dict(zip(held["voc_id"], canonical_labels(labels_of(held, "subject"), tagger.taxonomy, "subject")))
    pred = {r["voc_id"]: f"{r['subject_major']}>{r['subject_minor']}" for r in tagged.iter_rows(named=True)}
    flagged = {r[COL_VOC_ID] for r in rows.iter_rows(named=True) if r[COL_FLAG] == "Y"}
    errors = {v for v, t in truth.items() if t != pred[v]}
    share, capture = len(flagged) / rows.height, len(flagged & errors) / len(errors)
    assert share <= MEASURED_SHARE + 1e-9 and capture >= CAPTURE_FLOOR, (share, capture)
    # the product path (tag_frame → build_review_rows) flags what training measured on these rows
    budget = demo[2].metrics["subject"]["review_budget"]
    assert (share, capture) == pytest.approx((budget["share"], budget["capture"]))
    assert all(r.startswith("주제 신뢰도") for r in rows.filter(pl.col(COL_FLAG) == "Y")[COL_REASON].to_list())
    # before issue 14: min(subject, keyword work) under the uncapped threshold flagged most rows
    uncapped = demo[2].metrics["subject"]["review_threshold"]  # what flows/train.py saved as the one threshold
    old = build_review_rows(tagged.drop(["subject_source", "work_source"]), threshold=uncapped)
    assert (old[COL_FLAG] == "Y").mean() > 0.5 > share


def test_evidence_cites_training_rows_only(demo, sample_df):
    history, tagger, report, _ = demo
    pool: ReviewedPool = tagger.evidence_pool
    assert len(pool) == report.n_train["subject"] and not set(pool.ids) & set(report.holdout_ids["subject"])
    nov = sample_df.filter(pl.col("created_at").dt.strftime("%Y%m") == "201911")
    texts = [f"{t}\n{r}" for t, r in zip(nov["title"], nov["request_contents"])]
    got = tagger_evidence(tagger, texts, ids=nov["voc_id"].to_list())
    assert len(got) == nov.height and all(len(n) == 3 for n in got)
    assert all(n.voc_id in set(pool.ids) for nbs in got for n in nbs)
    assert all(nbs[0].similarity >= nbs[1].similarity >= nbs[2].similarity > 0 for nbs in got)
    labelled = dict(zip(history["voc_id"], canonical_labels(labels_of(history, "subject"), tagger.taxonomy, "subject")))
    assert all(n.labels["subject"] == labelled[n.voc_id] for nbs in got for n in nbs)
    # the school campaign's precedents are construction complaints handled by 건축과
    i = nov["voc_id"].to_list().index("69354")
    assert any(n.labels["subject"].endswith(">건축과") for n in got[i])


def test_saved_model_keeps_its_review_aids_and_old_models_fall_back(demo, tmp_path):
    from voc.groups import near_duplicate_groups
    from voc.modelstore import load_tagger, save_tagger

    _, tagger, report, held = demo
    loaded = load_tagger(save_tagger(tagger, tmp_path / "linear_t14", {"metrics": report.metrics}))
    assert loaded.review_thresholds == tagger.review_thresholds
    assert loaded.evidence_pool.ids == tagger.evidence_pool.ids
    a = tagger_evidence(tagger, ["엘리베이터 고장"], ids=["x"])
    assert a == tagger_evidence(loaded, ["엘리베이터 고장"], ids=["x"])
    assert near_duplicate_groups(held, vectorizer=loaded.group_vectorizer).equals(
        near_duplicate_groups(held, vectorizer=tagger.group_vectorizer)
    )
    # a model pickled before issue 14 has none of the three attributes
    old = copy.copy(loaded)
    old.__dict__ = {k: v for k, v in loaded.__dict__.items() if k not in ("review_thresholds", "evidence_pool", "group_vectorizer")}
    old.low_confidence_threshold = 0.42
    assert review_thresholds_of(old) == {"subject": 0.42}
    assert tagger_evidence(old, ["엘리베이터 고장"]) is None
    assert getattr(old, "group_vectorizer", None) is None
    assert np.isfinite(report.metrics["subject"]["review_budget"]["capture"])


def test_review_budget_by_hand():
    from voc.metrics import review_budget

    correct = [False, False, True, True, True, False, True, True, True, True]
    conf = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    # 80 % of the 3 errors needs the one at 0.6 (6 rows); the 30 % cap allows 3 rows
    assert review_budget(correct, conf) == {"threshold": 0.4, "share": 0.3, "capture": pytest.approx(2 / 3), "n": 10, "errors": 3}
    free = review_budget(correct, conf, max_share=1.0)
    assert free["threshold"] == pytest.approx(0.6 + 1e-6) and free["share"] == 0.6 and free["capture"] == 1.0
    assert review_budget([True, True], [0.2, 0.9])["threshold"] == 0.0, "nothing wrong: flag nothing"
    with pytest.raises(ValueError, match="max_review_share"):
        review_budget(correct, conf, max_share=0)
