"""Label-audit recall on the shipped sample (docs/model-quality.md, "Label audit").

The sample's subject labels (``major>minor``, every labelled row, canonicalised by the taxonomy as
``voc labels audit`` and ``voc train`` do: 73 classes) get 5 % flipped at random
(seeded; half of the flips to another class of the same major: :func:`voc.label_audit.flip_labels`);
``voc.label_audit.audit_labels`` (recipe ``default``, 5 grouped folds by building-month, with the
reply) ranks every row; the measure is the share of flipped rows among the top k (k = number
flipped), next to the label-health score of the clean and the noisy labels.

``--recovery`` measures what fixing the audit's suspects is worth to the tagger: on the training
block of a temporal split (S2 of benchmarks/experiments.py: rows registered before 2019-01 train,
2019-01…12 test, test labels untouched) 5 % of the training labels are flipped (seeded), the
audit ranks the noisy training rows, and the top k (k = number flipped) get their original label
back (a simulated reviewer who corrects what is shown to them). The ``default`` recipe is fitted
on the clean, the noisy and the fixed training labels; the measure is held-out subject accuracy
(``major>minor``, i.e. the minor class) and the share of the accuracy the noise cost that the fix
recovers, ``(fixed − noisy) / (clean − noisy)``.

Usage::

    python benchmarks/label_audit.py [--seeds 0,1,2] [--share 0.05] [--json out.json]
    python benchmarks/label_audit.py --recovery [--seeds 0,1,2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl

from voc.label_audit import audit_labels, building_month_groups, flip_labels, top_k_recall
from voc.schema import validate_voc_frame
from voc.tagger import canonical_labels, frame_texts, labels_of, resolve_taxonomy
from voc.taxonomy import default_taxonomy
from voc.tokenize import KiwiTokenizer

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


def subject_accuracy(train: list[int], test: list[int], labels: list[str], texts: list[str], tokens: list[list[str]],
                     times: list, truth: list[str], *, seed: int = 0) -> float:
    """Held-out accuracy (0–1) on ``test`` rows (against ``truth``) of the ``default`` recipe
    fitted on ``train`` rows with ``labels``."""
    import warnings

    from voc.recipes import recipe

    clf = recipe("default").make(None, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit([texts[i] for i in train], [labels[i] for i in train], tokens=[tokens[i] for i in train],
                times=[times[i] for i in train])
        pred = clf.predict([texts[i] for i in test], tokens=[tokens[i] for i in test])
    return float(sum(str(p) == truth[i] for p, i in zip(pred, test)) / len(test))


def recovery(seeds: list[int], share: float, *, before: str = "2019-01", until: str = "2019-12") -> dict:
    """The ``--recovery`` measurement (module docstring); JSON-ready."""
    ids, texts, labels, times, tokens, groups = labelled_sample()
    month = [str(t)[:7] for t in times]
    train = [i for i, m in enumerate(month) if m < before]
    test = [i for i, m in enumerate(month) if before <= m <= until]
    clean = subject_accuracy(train, test, labels, texts, tokens, times, labels)
    out: dict = {"split": f"<{before} → {before}..{until}", "n_train": len(train), "n_test": len(test),
                 "clean_accuracy": round(clean, 4), "runs": []}
    print(f"train {len(train)} rows (< {before}), test {len(test)} rows ({before}..{until}); clean accuracy {clean:.4f}")
    for seed in seeds:
        t0 = time.perf_counter()
        tr_noisy, rows = flip_labels([labels[i] for i in train], share=share, seed=seed)
        noisy = list(labels)
        for j, i in enumerate(train):
            noisy[i] = tr_noisy[j]
        audit = audit_labels([ids[i] for i in train], [texts[i] for i in train], tr_noisy, [times[i] for i in train],
                             [tokens[i] for i in train], [groups[i] for i in train])
        top = set(audit.issues.head(len(rows))["voc_id"].to_list())
        fixed = [labels[i] if ids[i] in top else noisy[i] for i in range(len(labels))]
        acc_noisy = subject_accuracy(train, test, noisy, texts, tokens, times, labels)
        acc_fixed = subject_accuracy(train, test, fixed, texts, tokens, times, labels)
        flipped = {ids[train[j]] for j in rows}
        cost = clean - acc_noisy
        run = {"seed": seed, "flipped": len(rows), "fixed_flips": len(flipped & top),
               "noisy_accuracy": round(acc_noisy, 4), "fixed_accuracy": round(acc_fixed, 4),
               "noise_cost": round(cost, 4), "recovered": round((acc_fixed - acc_noisy) / cost, 4) if cost > 0 else None,
               "seconds": round(time.perf_counter() - t0, 1)}
        out["runs"].append(run)
        print(json.dumps(run))
    n = len(out["runs"])
    mean = {k: sum(r[k] for r in out["runs"]) / n for k in ("noisy_accuracy", "fixed_accuracy")}
    cost = clean - mean["noisy_accuracy"]
    out["mean_noisy_accuracy"], out["mean_fixed_accuracy"] = round(mean["noisy_accuracy"], 4), round(mean["fixed_accuracy"], 4)
    out["mean_recovered"] = round((mean["fixed_accuracy"] - mean["noisy_accuracy"]) / cost, 4) if cost > 0 else None
    print(f"mean: clean {clean:.4f}, noisy {mean['noisy_accuracy']:.4f}, fixed {mean['fixed_accuracy']:.4f}; "
          f"recovered {out['mean_recovered']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--share", type=float, default=0.05)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--recovery", action="store_true", help="measure the accuracy regained by fixing the top-k suspects")
    args = ap.parse_args()
    if args.recovery:
        res = recovery([int(s) for s in args.seeds.split(",")], args.share)
        if args.json:
            args.json.write_text(json.dumps(res, ensure_ascii=False, indent=2), "utf-8")
        return
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
