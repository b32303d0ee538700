"""KoBERT tagger on a tiny locally built base (no network, no download).

The base is built from the shipped sample with :func:`voc.classify.kobert.build_tiny_base`: a
SentencePiece model in KoBERT's layout read by kobert-transformers' ``KoBertTokenizer`` and a
32-wide, 2-layer BERT with random weights. Held-out quality is meaningless for such a model;
these tests check the plumbing (split, heads, save/load, order, determinism, fallbacks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
pytest.importorskip("kobert_transformers")

from voc.classify import kobert as kb
from voc.classify.keyword import KeywordClassifier
from voc.kobert_training import train_kobert_tagger
from voc.tagger import Tagger, holdout_mask, training_rows
from voc.taxonomy import default_taxonomy

pytestmark = [pytest.mark.kobert, pytest.mark.usefixtures("torch_one_thread")]

N_ROWS = 240  # sample rows used for training (239 carry a subject label)
TRAIN = dict(epochs=2, batch_size=32, max_length=48, progress=False, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def texts(sample_texts) -> list[str]:
    return sample_texts


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, texts):
    return kb.build_tiny_base(texts[:300], tmp_path_factory.mktemp("kobert") / "base", vocab_size=800, seed=0)


@pytest.fixture(scope="module")
def tok(tiny_base):
    return kb.load_kobert_tokenizer(tiny_base)


@pytest.fixture(scope="module")
def train_df(sample_df):
    return sample_df.head(N_ROWS)


@pytest.fixture(scope="module")
def trained(train_df, tiny_base):
    return train_kobert_tagger(train_df, default_taxonomy(), version="t1", base=str(tiny_base), seed=7, **TRAIN)


# --------------------------------------------------------------------------------------------
# tokenizer


def test_tokenizer_is_kobert_transformers_and_round_trips(tiny_base, tok):
    from kobert_transformers.tokenization_kobert import KoBertTokenizer

    assert type(tok) is KoBertTokenizer
    assert (tiny_base / kb.KOBERT_SP_FILE).is_file() and (tiny_base / "vocab.txt").is_file()
    vocab = (tiny_base / "vocab.txt").read_text("utf-8").splitlines()
    assert tuple(vocab[:5]) == kb.KOBERT_SPECIALS
    assert (tok.unk_token_id, tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    sentence = "불법 주차 차량 단속을 요청합니다."
    pieces = tok.tokenize(sentence)
    assert pieces[0].startswith("▁") and len(pieces) > 3
    ids = tok(sentence)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids[1:-1]) == pieces
    assert tok.decode(ids, skip_special_tokens=True) == sentence


def test_encode_texts_equals_the_tokenizer_call(tok, texts):
    sample = texts[:120]
    assert max(len(t) for t in sample) > 4 * 128  # long texts take the prefix shortcut
    for max_length in (16, 128):
        want = tok(sample, truncation=True, max_length=max_length)["input_ids"]
        assert kb.encode_texts(tok, sample, max_length=max_length) == want
    assert kb.encode_texts(tok, ["", None], max_length=8) == [[2, 3], [2, 3]]  # type: ignore[list-item]  # None on purpose
    with pytest.raises(ValueError, match="no room"):
        kb.encode_texts(tok, ["x"], max_length=2)


def test_pad_batch_is_dynamic():
    ids, mask = kb.pad_batch([[2, 7, 3], [2, 3]], pad_id=1)
    assert ids.shape == mask.shape == (2, 3) and ids.dtype == np.int64
    assert ids.tolist() == [[2, 7, 3], [2, 3, 1]] and mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_skt_layout_and_auto_fallback(tmp_path, tiny_base, tok):
    """An skt-style base (``spiece.model`` only) gets the same ids through KoBertTokenizer; a
    WordPiece BERT directory goes through AutoTokenizer."""
    skt = tmp_path / "skt"
    skt.mkdir()
    (skt / "spiece.model").write_bytes((tiny_base / kb.KOBERT_SP_FILE).read_bytes())
    (skt / "config.json").write_text(json.dumps({"model_type": "bert"}), "utf-8")
    try:
        import kobert_tokenizer  # noqa: F401  # SKT's wrapper would be preferred when installed
    except ImportError:
        other = kb.load_kobert_tokenizer(skt)
        assert type(other).__name__ == "KoBertTokenizer"
        s = "도로 공사 관련 민원 답변 드립니다"
        assert other(s)["input_ids"] == tok(s)["input_ids"]
    wp = tmp_path / "wordpiece"
    wp.mkdir()
    (wp / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "주차", "##장"]) + "\n", "utf-8")
    (wp / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": False}), "utf-8")
    (wp / "config.json").write_text(json.dumps({"model_type": "bert"}), "utf-8")
    auto = kb.load_kobert_tokenizer(wp)
    assert "Bert" in type(auto).__name__ and auto.tokenize("주차장") == ["주차", "##장"]


# --------------------------------------------------------------------------------------------
# training, tagging, persistence


def test_train_report_and_split_match_train_tagger(trained, train_df):
    tagger, report = trained
    assert isinstance(tagger, Tagger) and tagger.kind == "kobert" and tagger.low_confidence_threshold is None
    assert report.kind == "kobert" and report.version == "t1" and report.n_rows == N_ROWS
    idx, _ = training_rows(train_df, tagger.taxonomy, "subject")
    hold = holdout_mask(train_df["voc_id"].to_list())
    ids = train_df["voc_id"].to_list()
    assert report.holdout_ids["subject"] == [ids[i] for i in idx if hold[i]]
    assert report.n_train["subject"] + report.n_holdout["subject"] == len(idx)
    m = report.metrics["subject"]
    assert m["n"] == report.n_holdout["subject"] and "review_threshold" in m
    # the reported held-out metrics are those of the returned tagger on exactly those rows,
    # recomputed here with scikit-learn from its predictions (a tiny random base learns little,
    # so no quality floor: a wrong row set, label mapping or model state fails this instead)
    from sklearn.metrics import accuracy_score, f1_score

    from voc.tagger import canonical_labels, frame_texts, labels_of

    at = {v: i for i, v in enumerate(ids)}
    held = train_df[[at[v] for v in report.holdout_ids["subject"]]]
    y_true = canonical_labels(labels_of(held, "subject"), tagger.taxonomy, "subject")
    y_pred = tagger.tag(frame_texts(held, use_reply=tagger.use_reply)[0])["subject"].labels
    assert None not in y_true and len(y_pred) == m["n"] == held.height
    assert {k: v["support"] for k, v in m["per_class"].items() if v["support"]} == dict(Counter(y_true))
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0))
    assert report.fallback_dimensions == ["work"] and "work" not in report.metrics
    assert set(report.to_dict()) >= {"kind", "version", "metrics", "n_train", "n_holdout", "fallback_dimensions"}
    assert 1 <= len(tagger.history) <= TRAIN["epochs"] and sum(h["best"] for h in tagger.history) == 1
    # the champion/challenger comparison re-measures a tagger on these ids: same numbers
    from voc.tagger import evaluate_tagger

    again = evaluate_tagger(tagger, train_df, tagger.taxonomy, report.holdout_ids)["subject"]
    assert again["n"] == m["n"] and again["accuracy"] == pytest.approx(m["accuracy"])
    assert again["macro_f1"] == pytest.approx(m["macro_f1"]) and again["ece"] == pytest.approx(m["ece"], abs=1e-4)


def test_heads_and_label_maps(trained, tmp_path):
    tagger, _ = trained
    assert set(tagger.model.heads) == {"subject"}  # work has no labels in the sample: no head
    labels = tagger.model_labels("subject")
    assert labels == sorted(set(labels)) and len(labels) == tagger.model.heads["subject"].out_features
    assert set(labels) <= set(tagger.taxonomy.labels("subject", active_only=False))
    assert tagger.model_labels("work") == []
    tagger.save(tmp_path)
    info = json.loads((tmp_path / kb.HEADS_JSON).read_text("utf-8"))
    assert info["format"] == 2 and info["heads"] == ["subject"]
    # the label maps are in the encoder's config.json (save_pretrained), not in a separate file
    h = json.loads((tmp_path / "config.json").read_text("utf-8"))[kb.LABELS_CONFIG_KEY]["subject"]
    assert [h["id2label"][str(i)] for i in range(len(labels))] == labels
    assert all(labels[i] == lab and h["label2id"][lab] == i for i, lab in h["id2label"].items() for i in [int(i)])
    assert not (tmp_path / kb.LEGACY_LABEL_MAPPING).exists()
    for f in ("config.json", "model.safetensors", kb.HEADS_WEIGHTS, kb.KOBERT_SP_FILE, "vocab.txt", "tokenizer_config.json"):
        assert (tmp_path / f).is_file(), f


@pytest.mark.parametrize("layout", ["heads.json", "label_mapping.json"])
def test_loads_a_model_saved_before_the_labels_moved_to_config(trained, texts, tmp_path, layout):
    """A format-1 directory (label maps in heads.json, or only in the label_mapping.json that
    voc.modelstore wrote beside it; none in config.json) loads with the same labels and tags."""
    tagger, _ = trained
    d = tagger.save(tmp_path / "old")
    cfg = json.loads((d / "config.json").read_text("utf-8"))
    maps = cfg.pop(kb.LABELS_CONFIG_KEY)
    (d / "config.json").write_text(json.dumps(cfg), "utf-8")
    info = json.loads((d / kb.HEADS_JSON).read_text("utf-8"))
    info["format"] = 1
    info["heads"] = maps if layout == "heads.json" else {}
    (d / kb.HEADS_JSON).write_text(json.dumps(info, ensure_ascii=False), "utf-8")
    if layout == "label_mapping.json":
        (d / kb.LEGACY_LABEL_MAPPING).write_text(json.dumps(maps, ensure_ascii=False), "utf-8")
    old = kb.KoBERTTagger.load(d, runtime="torch")
    assert old.labels == tagger.labels
    sample = texts[:20]
    assert old.tag(sample)["subject"].labels == tagger.tag(sample)["subject"].labels
    (d / kb.LEGACY_LABEL_MAPPING).unlink(missing_ok=True)
    info["heads"] = {}
    (d / kb.HEADS_JSON).write_text(json.dumps(info, ensure_ascii=False), "utf-8")
    with pytest.raises(ValueError, match="no label maps"):
        kb.KoBERTTagger.load(d, runtime="torch")


def test_tag_shapes_sources_and_keyword_fallback(trained, texts):
    tagger, _ = trained
    sample = texts[:37]
    tags = tagger.tag(sample)
    assert set(tags) == set(tagger.taxonomy.dimensions()) == {"subject", "work"}
    s, w = tags["subject"], tags["work"]
    assert len(s) == len(w) == 37 and s.confidence.shape == (37,)
    assert set(s.source) == {"model"} and set(s.labels) <= set(tagger.model_labels("subject"))
    probs = tagger.predict_proba(sample)["subject"]
    assert probs.shape == (37, len(tagger.model_labels("subject"))) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(s.confidence, probs.max(axis=1))
    kw = KeywordClassifier(tagger.taxonomy.rows_of("work")).fit().predict_tags(sample)
    assert set(w.source) == {"keyword"} and w.labels == kw.labels and np.allclose(w.confidence, kw.confidence)
    empty = tagger.tag([])
    assert set(empty) == {"subject", "work"} and all(len(t) == 0 for t in empty.values())


def test_inference_restores_input_order(trained, texts):
    tagger, _ = trained
    # mixed lengths, so that sorting by length reorders them and batches are padded differently
    sample = ["주차 단속", texts[0], "도로 공사 관련 민원", "", texts[1][:30], texts[2], "소음", texts[3][:60]]
    lengths = [len(x) for x in kb.encode_texts(tagger.tokenizer, sample, max_length=tagger.max_length)]
    assert lengths != sorted(lengths, reverse=True)
    tagger.batch_size = 3
    try:
        batched = tagger.predict_proba(sample)["subject"]
    finally:
        tagger.batch_size = 64
    one_by_one = np.vstack([tagger.predict_proba([x])["subject"] for x in sample])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    rev = tagger.predict_proba(sample[::-1])["subject"]
    np.testing.assert_allclose(rev[::-1], batched, atol=1e-5)


def test_save_load_round_trip_through_modelstore(trained, texts, tmp_path):
    from voc.modelstore import load_tagger, save_tagger

    tagger, report = trained
    d = save_tagger(tagger, tmp_path / "kobert_t1", {"metrics": report.metrics, "review_threshold": 0.42})
    loaded = load_tagger(d)
    assert isinstance(loaded, kb.KoBERTTagger) and loaded.kind == "kobert" and loaded.version == "t1"
    assert loaded.low_confidence_threshold == pytest.approx(0.42)
    assert loaded.labels == tagger.labels and loaded.max_length == tagger.max_length
    assert loaded.taxonomy.to_records() == tagger.taxonomy.to_records()
    assert type(loaded.tokenizer).__name__ == "KoBertTokenizer"
    sample = texts[100:140]
    a, b = tagger.tag(sample), loaded.tag(sample)
    for dim in a:
        assert a[dim].labels == b[dim].labels and a[dim].source == b[dim].source
        np.testing.assert_allclose(a[dim].confidence, b[dim].confidence, atol=1e-6)
    with pytest.raises(FileNotFoundError):
        kb.KoBERTTagger.load(tmp_path)


def test_same_seed_same_predictions(train_df, tiny_base, texts):
    df = train_df.head(120)
    kw = dict(TRAIN, epochs=1)
    t1, r1 = train_kobert_tagger(df, default_taxonomy(), version="a", base=str(tiny_base), seed=3, **kw)
    t2, r2 = train_kobert_tagger(df, default_taxonomy(), version="b", base=str(tiny_base), seed=3, **kw)
    sample = texts[:30]
    p1, p2 = t1.predict_proba(sample)["subject"], t2.predict_proba(sample)["subject"]
    assert np.array_equal(p1, p2)
    assert r1.metrics == r2.metrics and t1.history[0]["train_loss"] == t2.history[0]["train_loss"]
    t3, _ = train_kobert_tagger(df, default_taxonomy(), version="c", base=str(tiny_base), seed=4, **kw)
    assert not np.array_equal(p1, t3.predict_proba(sample)["subject"])


def _toy_rows(tok, n: int, seed: int) -> tuple[list[list[int]], np.ndarray]:
    """``n`` short texts of three separable classes (four words each) and their class ids."""
    words = [["주차", "단속", "차량", "견인"], ["도로", "공사", "보수", "포장"], ["민원", "답변", "감사", "안내"]]
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return kb.encode_texts(tok, [" ".join(rng.choice(words[c], 4)) for c in y], max_length=16), y


def _toy_model(tiny_base):
    from transformers import AutoModel

    torch.manual_seed(0)
    # "cls" pooling: a random 32-wide tanh pooler with two heads trains erratically; KoBERT's is pretrained
    return kb.MultiHeadClassifier(
        AutoModel.from_pretrained(str(tiny_base)), {"subject": 3, "work": 2}, dropout=0.0, pooling="cls"
    )


def test_fine_tune_learns_and_ignores_missing_labels(tiny_base, tok):
    import random

    seqs, y = _toy_rows(tok, 24, seed=0)
    w = np.full(24, -100)
    w[:6] = y[:6] % 2  # "work" labelled on 6 rows only: most batches of 4 have none (no NaN loss)
    model = _toy_model(tiny_base)
    state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    opts = kb.KoBertTrainingOptions(epochs=30, batch_size=4, lr=3e-3, warmup_ratio=0.0, seed=0, device="cpu",
                                    precision="fp32", progress=False)
    hist = kb.fine_tune(model, seqs, {"subject": y, "work": w}, pad_id=1, options=opts,
                        weights={"subject": kb.class_weights(y, 3), "work": kb.class_weights(w, 2)})
    # Trainer reseeds every global generator (transformers.set_seed): the caller's are restored
    assert torch.equal(torch.get_rng_state(), state) and random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state()[1:3], np_state[1:3]))
    assert [h["epoch"] for h in hist] == list(range(1, 31)) and all(h["seconds"] > 0 for h in hist)
    losses = [h["train_loss"] for h in hist]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.25 * losses[0]
    assert hist[-1]["best"] and sum(h["best"] for h in hist) == 1
    assert all(h["holdout_macro_f1"] is None for h in hist)
    probs = kb.predict_probabilities(model, seqs, pad_id=1, batch_size=8, device="cpu", precision="fp32")
    assert (probs["subject"].argmax(axis=1) == y).all()
    assert (probs["work"].argmax(axis=1)[:6] == w[:6]).all()


def test_fine_tune_keeps_the_best_epoch_by_held_out_macro_f1(tiny_base, tok):
    """With held-out rows, Trainer evaluates every epoch, keeps the checkpoint with the highest
    macro-F1 (compute_metrics) and stops after ``patience`` epochs without a better one: the model
    returned scores exactly the best recorded macro-F1 on those rows, whichever epoch it was."""
    from sklearn.metrics import f1_score

    seqs, y = _toy_rows(tok, 24, seed=0)
    hseqs, hy = _toy_rows(tok, 12, seed=1)
    hy = hy.copy()
    hy[0] = 3  # a held-out class the head cannot predict: counted in the score, not in the loss
    model = _toy_model(tiny_base)
    opts = kb.KoBertTrainingOptions(epochs=8, batch_size=4, lr=3e-3, warmup_ratio=0.0, seed=0, device="cpu",
                                    precision="fp32", progress=False, patience=2, eval_batch_size=5)
    none = np.full(len(y), -100)
    hist = kb.fine_tune(model, seqs, {"subject": y, "work": none}, pad_id=1, options=opts,
                        holdout=(hseqs, {"subject": hy, "work": np.full(len(hy), -100)}))
    scores = [h["holdout_macro_f1"] for h in hist]
    assert all(s is not None for s in scores) and 1 <= len(hist) <= 8
    best = [h for h in hist if h["best"]]
    assert len(best) == 1 and best[0]["holdout_macro_f1"] == max(scores)
    assert best[0]["epoch"] == scores.index(max(scores)) + 1  # the first of equal scores
    if len(hist) < 8:  # stopped early: the last `patience` epochs did not beat the best
        assert len(hist) - best[0]["epoch"] == opts.patience
    pred = kb.predict_probabilities(model, hseqs, pad_id=1, batch_size=8, device="cpu", precision="fp32")["subject"].argmax(axis=1)
    assert f1_score(hy, pred, labels=np.unique(hy), average="macro", zero_division=0) == pytest.approx(max(scores))
    assert max(scores) <= 0.75 + 1e-9  # class 3 is never predicted: at most 3 of 4 classes score


def test_training_options_name_their_fields():
    opts = kb.KoBertTrainingOptions()
    assert opts.replace(epochs=1, seed=3) == kb.KoBertTrainingOptions(epochs=1, seed=3)
    with pytest.raises(TypeError, match="epoch"):
        opts.replace(epoch=1)


def test_class_weights_inverse_frequency_clipped():
    w = kb.class_weights(np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, -100]), 3, clip=4.0)
    assert w.shape == (3,)
    np.testing.assert_allclose(w, [9 / (3 * 8), 3.0, 4.0])  # class 2 unseen → clip
    assert kb.class_weights(np.array([0] * 99 + [1]), 2, clip=10.0)[1] == 10.0


def test_precision_and_device_resolution():
    assert kb.resolve_precision("auto", "cpu") == "fp32"
    assert kb.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError):
        kb.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError):
        kb.resolve_precision("int8", "cpu")
    assert kb.resolve_device("cpu") == "cpu"


def test_train_without_any_labelled_dimension_raises(sample_df, tiny_base):
    df = sample_df.head(20).with_columns(sample_df.head(20)["reviewed_subject_minor"].clear(20))
    with pytest.raises(ValueError, match="nothing to fine-tune"):
        train_kobert_tagger(df, default_taxonomy(), version="x", base=str(tiny_base), **TRAIN)


def test_module_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import voc.classify.kobert as k\n"
        "try:\n    k.load_kobert_tokenizer('x')\nexcept ImportError as e:\n    print('HINT', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install torch==2.13.0" in out.stdout and "pip install -e '.[kobert]'" in out.stdout
