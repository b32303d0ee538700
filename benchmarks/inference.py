"""KoBERT inference throughput: the seed's per-text loop vs the batched two-head tagger.

Not a test. A KoBERT-base-shaped BERT (vocabulary 8,002, hidden 768, 12 layers, 12 heads,
intermediate 3,072: ``voc.classify.kobert.KOBERT_BASE_SHAPE``) with **random weights** tags the
same real texts (the shipped Incheon Jung-gu sample, ``all_text`` with reply, file order) two ways
in one run:

* ``seed``: one text per call, padded to ``max_length`` (``padding="max_length"``), two separate
  full models (encoder + head, one per dimension: 2 forward passes per text), ``torch.no_grad``,
  fp32. Each text is tokenized once and fed to both models (generous to the seed);
* ``ours``: :meth:`voc.classify.kobert.KoBERTTagger.tag`: texts tokenized once, sorted by
  length, batches of ``--batch-size`` padded to their own longest text, ``torch.inference_mode``,
  one encoder with two heads (1 forward pass per text). Also fp32, so the ratio measures the
  pipeline, not the number format; on CUDA ``ours_amp_per_s`` adds bf16 (fp16) autocast.

On the CPU, ``ours`` is what the tagger runs there by default: the **int8 ONNX Runtime copy**
(:mod:`voc.classify.kobert_onnx`: same batching, int8 dynamic quantization; exported from the
same random model in the run, export time and file size reported) whenever onnxruntime is
installed; the fp32 PyTorch figure is reported beside it (``ours_fp32_per_s``), with the int8
copy's arg-max agreement and largest probability difference against fp32 on the same texts
(``int8_vs_fp32``; with random weights the probabilities are near-uniform, so agreement there
is a floor, not the trained model's: the training flow checks a real model on its held-out
rows). ``--runtime torch`` measures fp32 PyTorch only.

Both use the same ``max_length`` (128 by default, for fairness; production uses 256) and the same
tokenizer: kobert-transformers' ``KoBertTokenizer`` over a SentencePiece model trained on the
sample here (target 8,002 pieces; KoBERT's own needs the hub, which this benchmark never calls).
Random weights cost the same FLOPs as trained ones; the labels are meaningless.

Runs from the repository root without installing the project::

    PYTHONPATH=. python benchmarks/inference.py --json --device cpu --n 64
    PYTHONPATH=. python benchmarks/inference.py --json --device cuda --n 996 --train-epoch

Needs torch, transformers, sentencepiece, kobert-transformers, numpy, safetensors, tqdm (and
onnxruntime + onnx for the int8 runtime); uses
polars when present (else the csv module). The last printed line is JSON:
``{"ours_per_s", "seed_loop_per_s", "ratio", "ours_runtime", "device", "n", ...}``.

``--train-epoch`` also times one fine-tuning epoch (:func:`voc.classify.kobert.fine_tune`,
subject head + an empty work head, batch 32, AdamW + linear schedule) on the sample's labelled
rows, fp32 and, on CUDA, with bf16 autocast and with fp16 autocast + GradScaler
(``train_epoch_s_fp32``, ``train_epoch_s_bf16``, ``train_epoch_s_fp16``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SAMPLE = ROOT / "voc" / "datasets" / "incheon_junggu_minwon" / "voc.csv"


def sample_rows() -> list[dict[str, str]]:
    """Rows of the shipped sample, first occurrence of each voc_id, file order."""
    try:
        from config.settings import sample_csv_path

        path = sample_csv_path()
    except ImportError:  # no pydantic-settings on a bare GPU host
        path = SAMPLE
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    seen: set[str] = set()
    out = []
    for r in rows:
        if r["voc_id"] in seen:
            continue
        seen.add(r["voc_id"])
        out.append(r)
    return out


def sample_texts(rows: list[dict[str, str]]) -> list[str]:
    """``all_text`` (title + request + reply) of each row, as :func:`voc.tagger.frame_texts`
    builds it (that function wraps :func:`voc.text.build_all_texts`, called directly here so
    the benchmark needs neither scikit-learn nor Kiwi)."""
    from voc.text import build_all_texts

    texts, _ = build_all_texts(
        [r["title"] for r in rows],
        [r["request_contents"] for r in rows],
        [r["reply"] for r in rows],
        with_reply=True,
    )
    return texts


def subject_labels(rows: list[dict[str, str]]) -> list[str | None]:
    out: list[str | None] = []
    for r in rows:
        major, minor = (r.get("subject_major") or "").strip(), (r.get("subject_minor") or "").strip()
        out.append(f"{major or minor}>{minor}" if minor else None)
    return out


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    """``model name`` and ``flags`` of the first CPU in /proc/cpuinfo (Linux); ("", set()) elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return "", set()
    fields = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("model name", ""), set(fields.get("flags", "").split())


def machine() -> dict[str, object]:
    import torch

    cpu_model, flags = _cpu_model_and_flags()
    info: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "cpu": cpu_model or platform.processor() or platform.machine(),
        # the widest SIMD level torch dispatches to (e.g. AVX2, AVX512), and whether the CPU has an
        # int8 dot-product instruction (VNNI, AMX): the int8 copy's speed-up depends on it
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_int8_dot": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}),
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seed_loop(models, tok, texts, *, max_length: int, device: str) -> list[tuple[str, float]]:
    """The seed's way: per text, pad to max_length, one full model per dimension."""
    import torch

    out = []
    for text in texts:
        enc = tok(text, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt").to(device)
        for model, labels in models:
            with torch.no_grad():
                logits = model(**enc).logits
            p = torch.softmax(logits, dim=-1)[0]
            conf, k = p.max(dim=0)
            out.append((labels[int(k.item())], float(conf.item())))
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the JSON summary as the last line (always printed)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when present")
    ap.add_argument("--n", type=int, default=64, help="texts tagged by ours (default 64; the sample has 996)")
    ap.add_argument("--seed-n", type=int, default=None, help="texts tagged by the seed loop (default: --n)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch (and ONNX Runtime) intra-op threads (default: theirs)")
    ap.add_argument("--runtime", choices=["auto", "torch"], default="auto",
                    help="auto: on CPU 'ours' is the tagger's default CPU runtime, the int8 ONNX Runtime copy "
                         "(fp32 PyTorch also reported); torch: fp32 PyTorch only")
    ap.add_argument("--vocab", type=int, default=8002, help="SentencePiece target size (KoBERT: 8002)")
    ap.add_argument("--train-epoch", action="store_true", help="also time one fine-tuning epoch: fp32; bf16 and fp16 on CUDA")
    ap.add_argument("--train-n", type=int, default=None, help="labelled rows in the timed epoch (default: all)")
    ap.add_argument("--train-max-length", type=int, default=256)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from voc.classify import kobert as kb
    from voc.taxonomy import default_taxonomy

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = sample_rows()
    texts_all = sample_texts(rows)
    n = min(args.n, len(texts_all))
    seed_n = min(args.seed_n or n, len(texts_all))
    texts = texts_all[:n]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="voc-bench-") as tmp:  # the tokenizer is kept in memory
        base = kb.build_tiny_base(texts_all, Path(tmp) / "tok", vocab_size=args.vocab, character_coverage=0.9995, seed=0)
        tok = kb.load_kobert_tokenizer(base)
    print(f"tokenizer: {type(tok).__module__}.{type(tok).__name__}, {len(tok)} pieces ({time.perf_counter() - t0:.1f} s)")

    tax = default_taxonomy()
    labels = {d: tax.labels(d) for d in tax.dimensions()}
    cfg = BertConfig(**kb.KOBERT_BASE_SHAPE, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    ours_model = kb.MultiHeadClassifier(BertModel(cfg), {d: len(v) for d, v in labels.items()})
    tagger = kb.KoBERTTagger(
        version="bench", taxonomy=tax, model=ours_model, tokenizer=tok, labels=labels,
        max_length=args.max_length, batch_size=args.batch_size, device=device, precision="fp32",
    )
    seed_models = []
    for labs in labels.values():
        m = BertForSequenceClassification(BertConfig(**kb.KOBERT_BASE_SHAPE, pad_token_id=tok.pad_token_id, num_labels=len(labs)))
        seed_models.append((m.to(device).eval(), labs))
    print(f"models: KoBERT-base shape {kb.KOBERT_BASE_SHAPE}, random weights, device {device}")

    # warm-up (allocator, kernels, CUDA context) - not timed
    tagger.tag(texts[:8])
    seed_loop(seed_models, tok, texts[:2], max_length=args.max_length, device=device)
    _sync(device)

    t0 = time.perf_counter()
    seqs = kb.encode_texts(tok, texts, max_length=args.max_length)
    ours_tok_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tags = tagger.tag(texts)
    _sync(device)
    ours_s = time.perf_counter() - t0
    lengths = np.array([len(s) for s in seqs])
    print(f"ours: {n} texts in {ours_s:.2f} s ({n / ours_s:.1f} texts/s; tokenization {ours_tok_s:.2f} s); "
          f"tokens/text mean {lengths.mean():.0f}, {np.mean(lengths == args.max_length):.0%} at max_length")

    t0 = time.perf_counter()
    for text in texts_all[:seed_n]:
        tok(text, padding="max_length", truncation=True, max_length=args.max_length, return_tensors="pt")
    seed_tok_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    seed_out = seed_loop(seed_models, tok, texts_all[:seed_n], max_length=args.max_length, device=device)
    _sync(device)
    seed_s = time.perf_counter() - t0
    print(f"seed loop: {seed_n} texts in {seed_s:.2f} s ({seed_n / seed_s:.1f} texts/s; tokenization {seed_tok_s:.2f} s)")
    assert len(seed_out) == 2 * seed_n and all(len(t) == n for t in tags.values())

    result: dict[str, object] = {}
    ours_fp32_per_s = n / ours_s
    ours_runtime = tagger.active_runtime
    if device == "cpu" and args.runtime == "auto":
        # the tagger's CPU default: the int8 ONNX Runtime copy (voc.classify.kobert_onnx)
        from voc.classify import kobert_onnx as ko

        if not ko.onnx_runtime_available():
            print(f"int8 runtime skipped: {ko.INSTALL_HINT}")
        else:
            with tempfile.TemporaryDirectory(prefix="voc-bench-onnx-") as tmp:
                t0 = time.perf_counter()
                folder = ko.export_onnx(ours_model, tmp, quantize=True)
                export_s = time.perf_counter() - t0
                tagger.onnx = ko.OnnxRunner(folder / ko.ONNX_MODEL, list(ours_model.heads), threads=args.threads)
                size_mb = (folder / ko.ONNX_MODEL).stat().st_size / 1e6
                tagger.runtime = "torch"
                p32 = tagger.predict_proba(texts)
                tagger.runtime = "auto"
                tagger.tag(texts[:8])  # warm-up
                t0 = time.perf_counter()
                tags8 = tagger.tag(texts)
                int8_s = time.perf_counter() - t0
                p8 = tagger.predict_proba(texts)
                cmp = ko.compare_probabilities(p32, p8)
                assert all(len(t) == n for t in tags8.values())
                ours_s, ours_runtime = int8_s, tagger.active_runtime
                result["ours_fp32_per_s"] = round(ours_fp32_per_s, 2)
                result["int8_export_s"] = round(export_s, 1)
                result["int8_file_mb"] = round(size_mb, 1)
                result["int8_vs_fp32"] = cmp
                agreement = ", ".join(
                    f"{d} arg-max agreement {c['agreement']:.1%}, max |Δp| {c['max_abs_prob_diff']:.4f}" for d, c in cmp.items()
                )
                print(f"ours, int8 ONNX Runtime: {n / int8_s:.1f} texts/s (export + quantize {export_s:.1f} s, {size_mb:.0f} MB); "
                      f"vs fp32 on these texts: {agreement}"
                      " (random weights: near-uniform probabilities, so agreement here understates a trained model's)")
            tagger.onnx = None
    if device.startswith("cuda"):
        tagger.precision = "auto"
        tagger.tag(texts[:8])
        _sync(device)
        t0 = time.perf_counter()
        tagger.tag(texts)
        _sync(device)
        amp_s = time.perf_counter() - t0
        result["ours_amp_per_s"] = round(n / amp_s, 2)
        result["amp"] = kb.resolve_precision("auto", device)
        print(f"ours with {result['amp']} autocast: {n / amp_s:.1f} texts/s")
        tagger.precision = "fp32"

    if args.train_epoch:
        subj = subject_labels(rows)
        idx = [i for i, s in enumerate(subj) if s][: args.train_n]
        classes = sorted({subj[i] for i in idx})
        y = np.array([classes.index(subj[i]) for i in idx])
        tseqs = kb.encode_texts(tok, [texts_all[i] for i in idx], max_length=args.train_max_length)
        cuda = device.startswith("cuda")
        for prec in ("fp32", "bf16", "fp16"):
            if prec == "bf16" and not (cuda and torch.cuda.is_bf16_supported()):
                # CPUs without native bf16 (this AMD EPYC Zen 3) emulate it: 428 s vs 20 s for
                # one 32-row epoch at max_length 64, so it is measured on CUDA only
                print("bf16 epoch skipped: measured on a bf16-capable CUDA GPU only")
                continue
            if prec == "fp16" and not cuda:  # fp16 autocast + GradScaler is a CUDA path
                continue
            torch.manual_seed(0)
            model = kb.MultiHeadClassifier(BertModel(cfg), {"subject": len(classes), "work": 2})
            hist = kb.fine_tune(
                model, tseqs, {"subject": y, "work": np.full(len(y), -100)}, pad_id=tok.pad_token_id,
                options=kb.KoBertTrainingOptions(epochs=1, batch_size=32, seed=0, device=device, precision=prec, progress=False),
                weights={"subject": kb.class_weights(y, len(classes))},
            )
            result[f"train_epoch_s_{prec}"] = hist[0]["seconds"]
            print(f"one epoch, {len(idx)} rows, max_length {args.train_max_length}, {prec}: {hist[0]['seconds']:.1f} s")
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        result["train_rows"] = len(idx)
        result["train_max_length"] = args.train_max_length

    summary = {
        "ours_per_s": round(n / ours_s, 2),
        "seed_loop_per_s": round(seed_n / seed_s, 2),
        "ratio": round((n / ours_s) / (seed_n / seed_s), 2),
        "ours_runtime": ours_runtime,
        "device": device,
        "n": n,
        "seed_n": seed_n,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "ours_tokenize_s": round(ours_tok_s, 3),
        "seed_tokenize_s": round(seed_tok_s, 3),
        **result,
        "machine": machine(),
    }
    print(json.dumps(summary, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
