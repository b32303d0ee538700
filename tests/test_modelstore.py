import json

import numpy as np
import pytest

from voc.modelstore import decide_promotion, load_tagger, read_meta, save_tagger
from voc.tagger import frame_texts, train_tagger
from voc.taxonomy import default_taxonomy


def test_champion_candidate_rule():
    def m(f: float) -> dict[str, dict[str, float]]:
        return {"subject": {"macro_f1": f}}

    assert decide_promotion(m(0.5), None).promote
    assert decide_promotion(m(0.5), m(0.5)).promote  # not below → promoted
    d = decide_promotion(m(0.49), m(0.5))
    assert not d.promote and "stays candidate" in d.reason
    assert not decide_promotion({}, m(0.5)).promote


@pytest.fixture(scope="module")
def trained(sample_df, tokenizer):
    """A linear tagger fitted on the sample's 171 VOCs of 2012-2013, and its report."""
    import polars as pl

    from voc.tagger import resolve_taxonomy

    df = sample_df.filter(pl.col("created_at") < pl.date(2014, 1, 1))
    tax, _ = resolve_taxonomy(default_taxonomy(), df, tokenizer=tokenizer)
    return train_tagger(df, tax, kind="linear", version="v1", tokenizer=tokenizer)


def test_save_load_round_trip(tmp_path, sample_df, trained):
    tagger, report = trained
    d = save_tagger(tagger, tmp_path / "linear_v1", {"metrics": report.metrics, "review_threshold": 0.42})
    meta = read_meta(d)
    assert meta["kind"] == "linear" and meta["libraries"]["scikit-learn"]
    mapping = json.loads((d / "label_mapping.json").read_text("utf-8"))
    assert set(mapping["subject"]["label2id"]) == set(tagger.model_labels("subject"))
    loaded = load_tagger(d)
    assert loaded.low_confidence_threshold == 0.42
    texts, _ = frame_texts(sample_df.tail(10), use_reply=True)
    a, b = tagger.tag(texts), loaded.tag(texts)
    assert a["subject"].labels == b["subject"].labels
    assert np.allclose(a["subject"].confidence, b["subject"].confidence)
    with pytest.raises(FileNotFoundError):
        read_meta(tmp_path)


def test_pair_rule_promotes_only_when_neither_variant_is_worse():
    from voc.modelstore import decide_pair_promotion

    def m(f: float) -> dict[str, dict[str, float]]:
        return {"subject": {"macro_f1": f}}

    cand = {"reply": m(0.60), "registration": m(0.50)}
    assert decide_pair_promotion(cand, None).promote  # no champion yet
    assert decide_pair_promotion(cand, {"reply": m(0.60), "registration": m(0.50)}).promote  # ties promote
    worse_reg = decide_pair_promotion(cand, {"reply": m(0.55), "registration": m(0.52)})
    assert not worse_reg.promote
    assert worse_reg.variants["reply"].promote and not worse_reg.variants["registration"].promote
    assert worse_reg.reason.startswith("reply: held-out macro-F1 0.6000 >= champion 0.5500; registration: ")
    assert "stays candidate" in worse_reg.reason
    assert not decide_pair_promotion(cand, {"reply": m(0.61), "registration": m(0.40)}).promote
    # a variant the champion could not be measured on does not block; a candidate without metrics does
    assert decide_pair_promotion(cand, {"reply": m(0.55), "registration": None}).promote
    assert not decide_pair_promotion({"reply": m(0.6), "registration": {}}, {"reply": m(0.5), "registration": m(0.4)}).promote
    with pytest.raises(ValueError, match="no variant"):
        decide_pair_promotion({}, None)


def test_variants_layout_and_old_versions(tmp_path, trained):
    """Two variants: the reply-aware tagger at the top (what batch loads), the registration-time
    one in ``registration/``; a version saved before variants loads as its one variant."""
    import copy
    import shutil

    from voc.modelstore import REGISTRATION_DIR, load_variants, save_variants, variant_paths

    reply, report = trained
    reg = copy.copy(reply)  # the layout does not care what was fitted; only use_reply differs
    reg.use_reply = False
    d = save_variants(
        tmp_path / "linear_v2", {"registration": reg, "reply": reply}, {"name": "linear_v2", "status": "champion"},
        {"reply": {"metrics": report.metrics}, "registration": {"metrics": {"subject": {"macro_f1": 0.1}}}},
    )
    meta = read_meta(d)
    assert meta["variant"] == "reply" and meta["use_reply"] is True
    assert list(meta["variants"]) == ["reply", "registration"]
    assert meta["variants"]["registration"] == {"path": REGISTRATION_DIR, "use_reply": False, "metrics": {"subject": {"macro_f1": 0.1}}}
    sub = read_meta(d / REGISTRATION_DIR)
    assert sub["variant"] == "registration" and sub["status"] == "champion" and sub["use_reply"] is False
    assert variant_paths(d) == {"reply": d, "registration": d / REGISTRATION_DIR}
    loaded = load_variants(d)
    assert loaded["reply"].use_reply and not loaded["registration"].use_reply
    assert load_tagger(d).use_reply  # batch loading still gets the reply-aware tagger

    old = save_tagger(reply, tmp_path / "linear_v1", {})
    assert list(load_variants(old)) == ["reply"]
    only_reg = save_tagger(reg, tmp_path / "linear_v0", {})
    assert list(variant_paths(only_reg)) == ["registration"]

    shutil.rmtree(d / REGISTRATION_DIR)
    with pytest.raises(FileNotFoundError, match="registration"):
        variant_paths(d)
    with pytest.raises(ValueError, match="taggers must name variants"):
        save_variants(tmp_path / "x", {"realtime": reply}, {})
