"""Keyword scorer, hybrid combination and the CPU tagger on real rows."""

import numpy as np
import polars as pl
import pytest

from voc.classify.base import NotFittedError, Tags
from voc.classify.hybrid import combine
from voc.classify.keyword import KeywordClassifier, segment_weights
from voc.schema import TAGGED_COLUMNS
from voc.tagger import VOCTagger, holdout_mask, tag_frame, train_tagger
from voc.taxonomy import TaxonomyRow, default_taxonomy


def test_keyword_score_formula_by_hand():
    rows = [TaxonomyRow("subject", "시설", "승강기", ("엘리베이터",), 100.0), TaxonomyRow("subject", "기타", "기타", (), 1.0)]
    kw = KeywordClassifier(rows, alpha=400).fit()
    s = kw.keyword_scores(["엘리베이터 고장\n3층 엘리베이터가 멈췄어요. 엘리베이터 점검"])
    # title: w=2.0, 1 hit of 5 chars; sentence 2: w=1.5, 1 hit; sentence 3: w=1+1/3, 1 hit
    per_hit = 1 + 0.1 * 5
    expected = (2.0 + 1.5 + 4 / 3) * per_hit * 100
    assert s[0, 0] == pytest.approx(expected)
    t = kw.predict_tags(["엘리베이터 고장", "아무 관련 없는 글"])
    assert t.labels == ["시설>승강기", "기타>기타"]
    assert t.confidence[0] == pytest.approx(2.0 * per_hit * 100 / (2.0 * per_hit * 100 + 400))
    assert t.confidence[1] == 0.0
    assert segment_weights(3) == [2.0, 1.5, pytest.approx(4 / 3)]
    p = kw.predict_proba(["엘리베이터 고장"])
    assert p.sum() == pytest.approx(1.0)


def test_keyword_requires_fit_and_rows():
    with pytest.raises(NotFittedError):
        KeywordClassifier(default_taxonomy().rows_of("work")).predict(["x"])
    with pytest.raises(ValueError):
        KeywordClassifier([]).fit()


def test_hybrid_combination_rule():
    kw = Tags(["a", "b"], np.array([0.0, 0.0]), ["keyword"] * 2)
    model = Tags(["c", "d"], np.array([0.3, 0.9]), ["model"] * 2)
    out = combine(kw, model, np.array([400.0, 400.0]), 400.0)  # kw_conf = 0.5 for both
    assert out.labels == ["a", "d"] and out.source == ["keyword", "model"]
    assert out.confidence.tolist() == [0.5, 0.9]


def test_holdout_split_is_fixed_and_about_20_percent(sample_df):
    ids = sample_df["voc_id"].to_list()
    m = holdout_mask(ids)
    assert 0.15 < m.mean() < 0.25
    assert (holdout_mask(list(reversed(ids)))[::-1] == m).all()  # depends on the id only


@pytest.fixture(scope="module")
def small_trained(sample_df, tokenizer):
    from voc.tagger import resolve_taxonomy

    df = sample_df.filter(pl.col("created_at") < pl.date(2019, 11, 1)).tail(400)
    tax, notes = resolve_taxonomy(default_taxonomy(), df, tokenizer=tokenizer)
    tagger, report = train_tagger(df, tax, kind="hybrid", version="t", tokenizer=tokenizer)
    return df, tax, notes, tagger, report


def test_training_reports_holdout_metrics_and_keyword_fallback(small_trained):
    _, _, notes, tagger, report = small_trained
    assert any("derived from labelled history" in n for n in notes)
    assert report.fallback_dimensions == ["work"]  # the sample has no work-type labels
    assert report.n_holdout["subject"] > 40
    m = report.metrics["subject"]
    assert 0.3 < m["accuracy"] <= 1.0 and 0 <= m["ece"] <= 1
    assert tagger.fallback_dimensions == ["work"]


def test_tag_frame_keeps_every_row_once_with_valid_tags(small_trained, sample_df):
    _, tax, _, tagger, _ = small_trained
    month = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == "2019-11")
    out = tag_frame(month, tagger, run_id="full_20261122_020000")
    assert out.columns == list(TAGGED_COLUMNS)
    assert out["voc_id"].to_list() == month["voc_id"].to_list()
    assert out["subject_confidence"].is_between(0, 1).all() and out["work_confidence"].is_between(0, 1).all()
    assert set(out["work_source"]) == {"keyword"}
    for ma, mi in zip(out["subject_major"], out["subject_minor"]):
        assert tax.get("subject", f"{ma}>{mi}") is not None
    assert (out["classify_source"] == "batch").all() and (out["model_version"] == "hybrid_t").all()
    # input labels are carried separately and never copied into the model's columns
    assert out["reviewed_subject_minor"].to_list() == month["reviewed_subject_minor"].to_list()


def test_hostile_rows_are_tagged_and_flagged(small_trained, sample_df):
    _, _, _, tagger, _ = small_trained
    base = sample_df.head(5)
    hostile = base.with_columns(
        pl.Series("title", ["", "<script>alert(1)</script>", "😡" * 50, "\x00\x00", "가" * 100_000]),
        pl.Series("request_contents", ["", "<b>정전</b>", "🙏", "물\x00샘", "나" * 100_000]),
    )
    out = tag_frame(hostile, tagger, run_id="r")
    assert out.height == 5
    flags = out["flags"].to_list()
    assert "empty_text" in flags[0] and out["subject_confidence"][0] == 0.0
    assert "html" in flags[1] and "emoji" in flags[2] and "control" in flags[3] and "truncated" in flags[4]
    assert out["subject_minor"].null_count() == 0


def test_keyword_only_tagger_on_default_taxonomy(sample_df):
    t = VOCTagger(kind="keyword", version="default", taxonomy=default_taxonomy())
    out = tag_frame(sample_df.head(20), t, run_id="r")
    assert set(out["subject_source"]) == {"keyword"} and out.height == 20
