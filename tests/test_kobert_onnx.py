"""Int8 ONNX Runtime copy of a KoBERT tagger (voc.classify.kobert_onnx), on a tiny model
fine-tuned locally on the shipped sample (no download).

The export itself is checked without quantization (probabilities equal to PyTorch's); the int8
copy is checked the way the train flow uses it: against the fp32 model on held-out texts, kept
or dropped by the agreement threshold, picked up by ``KoBERTTagger.load`` on the CPU.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("kobert_transformers")
pytest.importorskip("onnxruntime")

from voc.classify import kobert as kb
from voc.classify import kobert_onnx as ko
from voc.kobert_training import train_kobert_tagger
from voc.modelstore import load_tagger, read_meta, save_tagger
from voc.tagger import holdout_mask
from voc.taxonomy import default_taxonomy

# slow tier: trains a small BERT (≈ 15–40 s) before exporting it
pytestmark = [pytest.mark.kobert, pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

# A 64-wide 2-layer BERT, trained long enough (lr 1e-3, 8 epochs, ≈ 15 s) to predict several
# classes: agreement of the int8 copy with one constant prediction would prove nothing.
TRAIN = dict(epochs=8, lr=1e-3, patience=10, batch_size=16, max_length=96, progress=False, device="cpu", precision="fp32")
SHAPE = dict(vocab_size=2000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)


@pytest.fixture(scope="module")
def texts(sample_texts) -> list[str]:
    return sample_texts


@pytest.fixture(scope="module")
def heldout_texts(sample_df, texts) -> list[str]:
    mask = holdout_mask(sample_df["voc_id"].to_list())
    return [t for t, m in zip(texts, mask) if m]


@pytest.fixture(scope="module")
def trained(sample_df, texts, tmp_path_factory):
    base = kb.build_tiny_base(texts, tmp_path_factory.mktemp("kobert-onnx") / "base", seed=0, **SHAPE)
    tagger, _ = train_kobert_tagger(sample_df, default_taxonomy(), version="q1", base=str(base), seed=3, **TRAIN)
    return tagger


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    """The trained tagger saved as a model version, without an int8 copy."""
    return save_tagger(trained, tmp_path_factory.mktemp("kobert-onnx") / "kobert_q1", {"name": "kobert_q1"})


def _copy(saved, tmp_path):
    import shutil

    dst = tmp_path / saved.name
    shutil.copytree(saved, dst)
    return dst


def test_fp32_export_equals_pytorch_on_padded_batches(trained, texts, tmp_path):
    """Without quantization the ONNX graph is the model: same probabilities on batches whose
    texts have different lengths (padding and attention mask go through the graph)."""
    folder = ko.export_onnx(trained.model, tmp_path, quantize=False)
    info = json.loads((folder / ko.ONNX_INFO).read_text("utf-8"))
    assert info["heads"] == ["subject"] and info["quantization"].startswith("none")
    sample = texts[:40] + [t[:20] for t in texts[40:60]]  # 20 short texts → padded batches
    seqs = kb.encode_texts(trained.tokenizer, sample, max_length=trained.max_length)
    assert len({len(s) for s in seqs}) > 5
    ref = kb.predict_probabilities(trained.model, seqs, pad_id=trained._pad_id, batch_size=16, device="cpu", precision="fp32")
    got = ko.OnnxRunner(folder / ko.ONNX_MODEL, info["heads"]).predict(seqs, pad_id=trained._pad_id, batch_size=7)
    assert got["subject"].shape == ref["subject"].shape == (60, len(trained.labels["subject"]))
    np.testing.assert_allclose(got["subject"], ref["subject"], atol=1e-5)
    np.testing.assert_allclose(got["subject"].sum(axis=1), 1.0, atol=1e-5)


def test_int8_copy_is_checked_kept_and_used_on_cpu(trained, saved, heldout_texts, tmp_path):
    model_dir = _copy(saved, tmp_path)
    check = ko.add_int8_runtime(trained, model_dir, heldout_texts, min_agreement=0.85)
    assert check["kept"] and check["runtime"] == "onnx-int8" and check["n_texts"] == len(heldout_texts) > 100
    assert len(set(trained.tag(heldout_texts)["subject"].labels)) >= 3  # not a constant model
    head = check["heads"]["subject"]
    assert 0.85 <= head["agreement"] <= 1.0 and 0 < head["max_abs_prob_diff"] < 0.2
    f = model_dir / ko.ONNX_DIR / ko.ONNX_MODEL
    import onnx

    ops = [n.op_type for n in onnx.load(str(f)).graph.node]
    layers = trained.model.encoder.config.num_hidden_layers  # Q, K, V, output, FFN in, FFN out per layer
    assert ops.count("MatMulInteger") >= 6 * layers and "DynamicQuantizeLinear" in ops
    assert json.loads((model_dir / ko.ONNX_DIR / ko.ONNX_INFO).read_text("utf-8"))["check"]["kept"] is True

    auto = load_tagger(model_dir)  # through the model store, as the monthly flow loads it
    assert auto.onnx is not None and auto.active_runtime == "onnx-int8"
    fp32 = load_tagger(model_dir, kobert_runtime="torch")
    assert fp32.onnx is None and fp32.active_runtime == "torch-fp32"
    a, b = auto.tag(heldout_texts)["subject"], fp32.tag(heldout_texts)["subject"]
    assert len(a.labels) == len(heldout_texts) and set(a.source) == {"model"}
    # the copy in use is the copy that was checked: same agreement with fp32 on the same texts
    assert np.mean(np.array(a.labels) == np.array(b.labels)) == pytest.approx(head["agreement"])
    sample = heldout_texts[:80]
    a, b = auto.tag(sample)["subject"], fp32.tag(sample)["subject"]
    assert np.all((a.confidence > 0) & (a.confidence <= 1)) and np.abs(a.confidence - b.confidence).max() < 0.2
    # rows come back in input order whatever the length sorting inside
    rev = auto.tag(sample[::-1])["subject"]
    assert rev.labels == a.labels[::-1]
    np.testing.assert_allclose(rev.confidence, a.confidence[::-1], atol=1e-6)
    # work has no head: keyword fallback, as with the torch runtime
    assert auto.tag(sample[:5])["work"].source == ["keyword"] * 5


def test_int8_copy_dropped_below_threshold(trained, saved, heldout_texts, tmp_path):
    model_dir = _copy(saved, tmp_path)
    check = ko.add_int8_runtime(trained, model_dir, heldout_texts[:50], min_agreement=1.01)
    assert check["kept"] is False and check["runtime"] == "torch" and "dropped" in check["reason"]
    assert not (model_dir / ko.ONNX_DIR).exists()
    assert kb.KoBERTTagger.load(model_dir).active_runtime == "torch-fp32"


def test_int8_export_is_preprocessed_and_leaves_process_logging_alone(trained, tmp_path):
    """The export runs ONNX Runtime's pre-processing (so its quantizer has nothing to warn about)
    and does not configure the root logger of the process that exports (ONNX Runtime's
    module-level ``logging.info`` calls would otherwise install a stderr handler on it)."""
    import logging

    import onnx
    from onnxruntime.quantization.quant_utils import model_has_pre_process_metadata

    root = logging.getLogger()
    saved_handlers = root.handlers[:]  # pytest's capture handlers: removed so the guard is exercised
    root.handlers.clear()
    try:
        folder = ko.export_onnx(trained.model, tmp_path, quantize=True)
        handlers_after = root.handlers[:]
    finally:
        root.handlers[:] = saved_handlers
    assert handlers_after == []
    model = onnx.load(str(folder / ko.ONNX_MODEL))
    assert model_has_pre_process_metadata(model)
    assert "MatMulInteger" in [n.op_type for n in model.graph.node]


def test_runtime_errors_name_the_problem(saved, trained):
    with pytest.raises(ValueError, match=r"no onnx/model\.int8\.onnx"):
        kb.KoBERTTagger.load(saved, runtime="onnx")
    with pytest.raises(ValueError, match="runtime must be"):
        kb.KoBERTTagger.load(saved, runtime="tensorrt")
    with pytest.raises(ValueError, match="no texts"):
        ko.add_int8_runtime(trained, saved, [])
    with pytest.raises(FileNotFoundError, match="no int8 ONNX copy"):
        ko.OnnxRunner.load(saved)


def test_compare_probabilities():
    ref = {"subject": np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]], dtype=np.float32)}
    got = {"subject": np.array([[0.8, 0.2], [0.7, 0.3], [0.5, 0.5]], dtype=np.float32)}
    out = ko.compare_probabilities(ref, got)["subject"]
    assert out["agreement"] == pytest.approx(2 / 3) and out["max_abs_prob_diff"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="heads differ"):
        ko.compare_probabilities(ref, {"work": got["subject"]})


def test_meta_records_the_check_through_the_cli(saved, tmp_path, sample_csv):
    """`voc kobert export-onnx MODEL_DIR` adds the copy to an existing model and records the
    check in meta.json."""
    from typer.testing import CliRunner

    from flows.cli.main import app

    model_dir = _copy(saved, tmp_path)
    r = CliRunner().invoke(
        app, ["kobert", "export-onnx", str(model_dir), "--source", str(sample_csv), "--min-agreement", "0.8"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "agrees with fp32" in r.output
    meta = read_meta(model_dir)
    assert meta["cpu_runtime"]["kept"] is True and meta["cpu_runtime"]["n_texts"] > 100
    assert (model_dir / ko.ONNX_DIR / ko.ONNX_MODEL).is_file()


@pytest.mark.parametrize("pooling", ["pooler", "cls"])
def test_last_layer_for_cls_only_equals_the_full_encoder(trained, texts, pooling):
    """Eval-mode inference computes the last layer for [CLS] only; the heads must see the same
    pooled vector as the encoder's full forward, padding included."""
    model = kb.MultiHeadClassifier(trained.model.encoder, {"subject": 3}, pooling=pooling).eval()
    assert model.cls_only_supported
    seqs = kb.encode_texts(trained.tokenizer, texts[:6] + [t[:15] for t in texts[6:12]], max_length=trained.max_length)
    ids, mask = kb.pad_batch(seqs, trained._pad_id)
    assert (mask == 0).any()
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.inference_mode():
        full = model.pooled_full(ids_t, mask_t)
        short = model.pooled_cls_only(ids_t, mask_t)
        logits = model(ids_t, mask_t)["subject"]
        expected = model.heads["subject"](full)
    assert short.shape == full.shape == (12, trained.model.encoder.config.hidden_size)
    torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-4)
