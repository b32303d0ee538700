"""Int8 ONNX Runtime copy of a KoBERT tagger, for workers that tag on the CPU.

Why
---
On a CPU, BERT-base inference is bound by the matrix products of its 12 layers (≈ 22 GFLOP per
128-token text). Batching and one shared encoder remove the seed's waste but cannot make the
arithmetic itself faster; 8-bit integer weights and activations can: ONNX Runtime's dynamic
quantization (``onnxruntime.quantization.quantize_dynamic``; weights int8 per output channel,
activations uint8 with a scale computed per batch at run time) runs the ``MatMul`` s as
``MatMulInteger`` kernels. Measured on 2 vCPUs, KoBERT-base shape, 128 tokens
(docs/benchmarks.md): AMD EPYC Zen 3 (AVX2, no VNNI) fp32 (PyTorch or ONNX Runtime) 6.8–7.3
texts/s, int8 12.2–12.9 texts/s; AMD EPYC Zen 4 (AVX-512 VNNI) fp32 4.8–5.8, int8 20.6–25.1
texts/s. The file is 4 × smaller (93 MB vs 369 MB).

Quantization changes the numbers, so a copy is only kept when it agrees with the fp32 model:
:func:`add_int8_runtime` exports, runs both on given texts (the training flow passes the held-out
rows) and keeps the int8 file only when every head's arg-max agrees on at least
``min_agreement`` of them (default :data:`DEFAULT_MIN_AGREEMENT`). The verdict is written to
``onnx/onnx.json`` and returned for the model's ``meta.json``.

Layout inside a model version directory (:meth:`voc.classify.kobert.KoBERTTagger.save`)::

    onnx/model.int8.onnx   inputs input_ids, attention_mask (B × T int64); one output of
                           logits per head (B × K_d float32), named after the dimension
    onnx/onnx.json         heads (output order), quantization, opset, library versions, check

:meth:`voc.classify.kobert.KoBERTTagger.load` uses it on the CPU when it is present and
onnxruntime is installed (``runtime="auto"``); ``runtime="torch"`` ignores it.

Export uses PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``):
on torch 2.13 its graph quantizes into fused ``DynamicQuantizeMatMul`` kernels that ran at
12.4 texts/s, against 10.0 for the ``torch.export``-based exporter's graph (same machine).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voc.classify.kobert_runtime import batched_probabilities, encode_texts, predict_probabilities, require_torch

__all__ = [
    "ONNX_DIR",
    "ONNX_MODEL",
    "ONNX_INFO",
    "DEFAULT_MIN_AGREEMENT",
    "CPU_BATCH_SIZE",
    "onnx_runtime_available",
    "export_onnx",
    "OnnxRunner",
    "compare_probabilities",
    "add_int8_runtime",
]

ONNX_DIR = "onnx"
ONNX_MODEL = "model.int8.onnx"
ONNX_INFO = "onnx.json"
FORMAT_VERSION = 1
OPSET = 17

DEFAULT_MIN_AGREEMENT = 0.98
"""Least share of texts on which the int8 copy's arg-max must equal the fp32 model's, per head.
A project choice: at most 2 % of tags may move (each such row still carries its confidence and is
reviewed like any other); published int8 BERT results lose < 1 point of accuracy (Zafrir et al.
2019, "Q8BERT", Table 1)."""

CPU_BATCH_SIZE = 8
"""Texts per ONNX Runtime call. On 2 vCPUs without VNNI batches of 4–8 128-token texts ran fastest
(11.9–12.9 texts/s; 16: 8.6–12.2); with AVX-512 VNNI 4–32 are within 10 % of each other
(21.6–23.8 texts/s, docs/benchmarks.md): larger batches only add activation memory on a CPU."""

INSTALL_HINT = "the int8 CPU runtime needs onnxruntime and onnx: `pip install -e '.[kobert]'`"


def onnx_runtime_available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` are importable (both in the ``kobert`` extra)."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def _require_ort() -> Any:
    if not onnx_runtime_available():
        raise ImportError(INSTALL_HINT)
    import onnxruntime

    return onnxruntime


def export_onnx(model: Any, directory: str | Path, *, quantize: bool = True, opset: int = OPSET) -> Path:
    """Write ``model`` (a :class:`voc.classify.kobert.MultiHeadClassifier`) as ONNX into
    ``directory/onnx/`` and return that folder.

    The graph takes ``input_ids`` and ``attention_mask`` (``B × T`` int64, both axes dynamic) and
    returns one logits tensor per head (``B × K_d`` float32), in ``model.heads`` order. With
    ``quantize`` (default) the file is ``model.int8.onnx``, dynamically quantized (int8
    per-channel weights, uint8 activations); without, the same name holds the fp32 graph (used by
    the tests to check the export itself). The model is not modified (a CPU copy is exported).

    Raises
    ------
    ImportError
        torch/transformers or onnxruntime/onnx missing.
    """
    torch, _ = require_torch()
    from torch import nn

    _require_ort()
    out = Path(directory) / ONNX_DIR
    out.mkdir(parents=True, exist_ok=True)
    heads = list(model.heads)
    cpu_model = copy.deepcopy(model).to("cpu").eval()

    class _Logits(nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, ...]:
            logits = self.inner(input_ids, attention_mask)
            return tuple(logits[d] for d in heads)

    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 5, 3, 1, 1]], dtype=torch.long)  # second row padded
    mask = (torch.arange(5) < torch.tensor([[5], [3]])).long()
    with tempfile.TemporaryDirectory(prefix="voc-onnx-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of torch.export (module docstring:
            # kept because its graph quantizes into faster kernels); tracer notes on constant
            # masks do not apply, the mask is an input
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Logits(cpu_model).eval(),
                (ids, mask),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=heads,
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    **{d: {0: "batch"} for d in heads},
                },
                opset_version=opset,
                dynamo=False,
            )
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            from onnxruntime.quantization.shape_inference import quant_pre_process

            with _root_logging_untouched():
                # ONNX Runtime's recommended pre-processing: ONNX shape inference, recorded in
                # the file's metadata. Graph optimization is skipped (the session optimizes at
                # load) and so is its symbolic shape inference, which cannot resolve the exported
                # position-embedding slice (Min(512, tokens)). Same probabilities and speed as
                # quantizing the raw export (docs/benchmarks.md), ~5 s more at KoBERT-base size.
                pre = Path(tmp) / "model.pre.onnx"
                quant_pre_process(str(fp32), str(pre), skip_optimization=True, skip_symbolic_shape=True)
                quantize_dynamic(
                    str(pre),
                    str(out / ONNX_MODEL),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    # after the exporter's fused LayerNorm/attention nodes ONNX shape inference
                    # cannot type every MatMul output; they are all float32
                    extra_options={"DefaultTensorType": 1},
                )
        else:
            shutil.copyfile(fp32, out / ONNX_MODEL)
    import onnxruntime

    info = {
        "format": FORMAT_VERSION,
        "file": ONNX_MODEL,
        "heads": heads,
        "inputs": ["input_ids", "attention_mask"],
        "outputs": "logits per head",
        "quantization": "dynamic int8 (per-channel int8 weights, uint8 activations)" if quantize else "none (fp32)",
        "opset": opset,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    (out / ONNX_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2), "utf-8")
    return out


@contextlib.contextmanager
def _root_logging_untouched() -> Iterator[None]:
    """Keep ONNX Runtime's quantizer from configuring the process's logging.

    The quantizer logs through module-level ``logging.info``/``logging.warning``, which call
    ``logging.basicConfig()`` when the root logger has no handler, leaving a stderr handler on
    the root logger of whatever process exported (a worker, the CLI). A ``NullHandler`` held on
    an empty root logger for the duration prevents that; it is removed afterwards.
    """
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    try:
        yield
    finally:
        if guard is not None:
            root.removeHandler(guard)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float32) - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class OnnxRunner:
    """An ONNX Runtime session over ``onnx/model.int8.onnx``: class probabilities per head.

    Loaded once per worker (the session holds the weights); :meth:`predict` is safe to call
    repeatedly. Threads: ``threads`` intra-op threads (None = ONNX Runtime's default, one per
    physical core).
    """

    def __init__(self, path: str | Path, heads: Sequence[str], *, threads: int | None = None) -> None:
        ort = _require_ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.path = Path(path)
        self.heads = list(heads)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if sorted(outputs) != sorted(self.heads):
            raise ValueError(f"{self.path}: outputs {sorted(outputs)} do not match heads {self.heads}")
        # classes per head: the logits' last axis (static in the export: B × K_d)
        self.sizes = {d: int(outputs[d][-1]) for d in self.heads}

    @classmethod
    def load(cls, model_dir: str | Path, *, threads: int | None = None) -> OnnxRunner:
        """The runner of a model version directory holding ``onnx/`` (:func:`export_onnx`).

        Raises
        ------
        FileNotFoundError
            No ``onnx/model.int8.onnx`` or ``onnx/onnx.json``.
        ImportError
            onnxruntime/onnx missing.
        """
        d = Path(model_dir) / ONNX_DIR
        if not (d / ONNX_MODEL).is_file() or not (d / ONNX_INFO).is_file():
            raise FileNotFoundError(f"{Path(model_dir)} has no int8 ONNX copy ({ONNX_DIR}/{ONNX_MODEL})")
        info = json.loads((d / ONNX_INFO).read_text("utf-8"))
        return cls(d / info.get("file", ONNX_MODEL), info["heads"], threads=threads)

    def predict(
        self, seqs: Sequence[Sequence[int]], *, pad_id: int, batch_size: int = CPU_BATCH_SIZE
    ) -> dict[str, np.ndarray]:
        """Probabilities ``{dim: N × K_d float32}`` for token-id lists (``encode_texts``), rows in
        input order. Texts are sorted by length and padded per batch, as the torch path does."""

        def forward(ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
            res = self.session.run(self.heads, {"input_ids": ids, "attention_mask": mask})
            return {d: _softmax(logits) for d, logits in zip(self.heads, res)}

        return batched_probabilities(seqs, self.sizes, forward, pad_id=pad_id, batch_size=batch_size)


def compare_probabilities(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Per head: ``agreement`` (share of rows whose arg-max is equal, 0–1) and
    ``max_abs_prob_diff`` (largest absolute difference of any class probability), for two
    ``{dim: N × K_d}`` probability sets over the same rows.

    Raises
    ------
    ValueError
        Different heads or shapes.
    """
    if set(reference) != set(candidate):
        raise ValueError(f"heads differ: {sorted(reference)} vs {sorted(candidate)}")
    out = {}
    for d, ref in reference.items():
        got = candidate[d]
        if ref.shape != got.shape:
            raise ValueError(f"head {d!r}: shapes {ref.shape} vs {got.shape}")
        n = ref.shape[0]
        out[d] = {
            "agreement": float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1))) if n else 1.0,
            "max_abs_prob_diff": float(np.abs(ref - got).max()) if n else 0.0,
        }
    return out


def add_int8_runtime(
    tagger: Any,
    directory: str | Path,
    texts: Sequence[str],
    *,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    threads: int | None = None,
) -> dict[str, Any]:
    """Export ``tagger`` (:class:`voc.classify.kobert.KoBERTTagger`) as int8 ONNX into
    ``directory`` (its saved model version) and keep it only if it agrees with the fp32 model.

    Both run on ``texts`` (N strings; the training flow passes the held-out rows' ``all_text``):
    the fp32 reference with the tagger's own model and device, the int8 copy with ONNX Runtime
    on the CPU. The copy is kept when every head's arg-max agrees on ≥ ``min_agreement`` of the
    texts (:func:`compare_probabilities`); otherwise ``onnx/`` is removed and CPU workers use the
    fp32 model.

    Returns
    -------
    dict
        ``kept`` (bool), ``reason`` (str), ``n_texts``, ``min_agreement``, ``heads`` (per head
        ``agreement`` and ``max_abs_prob_diff``) and ``runtime`` (``"onnx-int8"`` when kept,
        else ``"torch"``). Also stored under ``check`` in ``onnx/onnx.json`` when kept.

    Raises
    ------
    ImportError
        onnxruntime/onnx or torch missing.
    ValueError
        ``texts`` is empty (nothing to check the copy against).
    """
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to check the int8 copy against")
    if not tagger.labels:
        return {"kept": False, "reason": "no model head (keyword tagging only)", "runtime": "torch", "n_texts": 0}
    folder = export_onnx(tagger.model, directory, quantize=True)
    seqs = encode_texts(tagger.tokenizer, texts, max_length=tagger.max_length)
    dev = tagger._ready()
    reference = predict_probabilities(tagger.model, seqs, pad_id=tagger._pad_id, batch_size=tagger.batch_size, device=dev, precision="fp32")
    runner = OnnxRunner(folder / ONNX_MODEL, list(tagger.model.heads), threads=threads)
    candidate = runner.predict(seqs, pad_id=tagger._pad_id)
    heads = compare_probabilities(reference, candidate)
    worst = min(h["agreement"] for h in heads.values())
    kept = worst >= min_agreement
    reason = (
        f"int8 copy agrees with fp32 on {worst:.1%} of {len(texts)} texts (≥ {min_agreement:.0%})"
        if kept
        else f"int8 copy dropped: agrees with fp32 on only {worst:.1%} of {len(texts)} texts (< {min_agreement:.0%}); CPU workers use fp32"
    )
    check = {
        "kept": kept,
        "reason": reason,
        "n_texts": len(texts),
        "min_agreement": min_agreement,
        "heads": heads,
        "runtime": "onnx-int8" if kept else "torch",
    }
    if kept:
        info_path = folder / ONNX_INFO
        info = json.loads(info_path.read_text("utf-8"))
        info["check"] = check
        info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2), "utf-8")
    else:
        del runner
        shutil.rmtree(folder, ignore_errors=True)
    return check
