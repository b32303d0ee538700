import json

import numpy as np
import pytest

from voc.modelstore import decide_promotion, load_tagger, read_meta, save_tagger
from voc.tagger import frame_texts, train_tagger
from voc.taxonomy import default_taxonomy


def test_champion_candidate_rule():
    m = lambda f: {"subject": {"macro_f1": f}}  # noqa: E731
    assert decide_promotion(m(0.5), None).promote
    assert decide_promotion(m(0.5), m(0.5)).promote  # not below → promoted
    d = decide_promotion(m(0.49), m(0.5))
    assert not d.promote and "stays candidate" in d.reason
    assert not decide_promotion({}, m(0.5)).promote


def test_save_load_round_trip(tmp_path, sample_df, tokenizer):
    import polars as pl

    from voc.tagger import resolve_taxonomy

    df = sample_df.filter(pl.col("created_at") < pl.date(2014, 1, 1))
    tax, _ = resolve_taxonomy(default_taxonomy(), df, tokenizer=tokenizer)
    tagger, report = train_tagger(df, tax, kind="linear", version="v1", tokenizer=tokenizer)
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
