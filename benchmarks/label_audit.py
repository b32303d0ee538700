"""Label-audit recall on the shipped sample (docs/model-quality.md, "Label audit").

The sample's subject labels (``major>minor``, every labelled row, canonicalised by the taxonomy as
``voc labels audit`` and ``voc train`` do: 73 classes) get 5 % flipped at random
(seeded; half of the flips to another class of the same major: :func:`voc.label_audit.flip_labels`);
``voc.label_audit.audit_labels`` (recipe ``default``, 5 grouped folds by building-month, with the
reply) ranks every row; the measure is the share of flipped rows among the top k (k = number
flipped), next to the label-health score of the clean and the noisy labels.

Usage::

    python benchmarks/label_audit.py [--seeds 0,1,2] [--share 0.05] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from voc.label_audit import audit_labels, building_month_groups, flip_labels, top_k_recall  # noqa: E402
from voc.schema import validate_voc_frame  # noqa: E402
from voc.tagger import canonical_labels, frame_texts, labels_of, resolve_taxonomy  # noqa: E402
from voc.taxonomy import default_taxonomy  # noqa: E402
from voc.tokenize import KiwiTokenizer  # noqa: E402

SAMPLE = ROOT / "voc" / "datasets" / "incheon_junggu_minwon" / "voc.csv"


def labelled_sample() -> tuple[list[str], list[str], list[str], list, list[list[str]], list[str]]:
    """ids, texts, subject labels, dates, Kiwi model tokens and building-month groups of the
    sample's subject-labelled rows."""
    df = validate_voc_frame(pl.read_csv(SAMPLE, infer_schema=False))
    tok = KiwiTokenizer()
    taxonomy, _ = resolve_taxonomy(default_taxonomy(), df, tokenizer=tok)  # as `voc labels audit` / voc train
    labs = canonical_labels(labels_of(df, "subject"), taxonomy, "subject")
    keep = [i for i, v in enumerate(labs) if v]
    df = df[keep]
    texts, _ = frame_texts(df, use_reply=True)
    tokens = tok.model_tokens_batch(texts)
    times = df["created_at"].to_list()
    return (df["voc_id"].to_list(), texts, [labs[i] for i in keep], times, tokens,
            building_month_groups(df["building_id"].to_list(), times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--share", type=float, default=0.05)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ids, texts, labels, times, tokens, groups = labelled_sample()
    clean = audit_labels(ids, texts, labels, times, tokens, groups)
    out = {"n_rows": clean.n_rows, "n_classes": clean.n_classes, "clean_health": round(clean.health, 4),
           "clean_issues": clean.n_issues, "runs": []}
    print(f"{clean.n_rows} rows, {clean.n_classes} classes; clean labels: health {clean.health:.3f}, "
          f"{clean.n_issues} flagged")
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        noisy, rows = flip_labels(labels, share=args.share, seed=seed)
        audit = audit_labels(ids, texts, noisy, times, tokens, groups)
        flipped = [ids[i] for i in rows]
        rec = top_k_recall(audit, flipped)
        flagged = set(audit.issues.filter(pl.col("issue"))["voc_id"].to_list())
        run = {"seed": seed, "flipped": len(rows), "top_k_recall": round(rec, 4), "health": round(audit.health, 4),
               "flagged": len(flagged), "flagged_recall": round(len(flagged & set(flipped)) / max(len(rows), 1), 4),
               "flagged_precision": round(len(flagged & set(flipped)) / max(len(flagged), 1), 4),
               "seconds": round(time.perf_counter() - t0, 1)}
        out["runs"].append(run)
        print(json.dumps(run))
    recs = [r["top_k_recall"] for r in out["runs"]]
    out["mean_top_k_recall"] = round(sum(recs) / len(recs), 4)
    print(f"mean top-k recall {out['mean_top_k_recall']:.3f} (min {min(recs):.3f})")
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2), "utf-8")


if __name__ == "__main__":
    main()
