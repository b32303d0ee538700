"""Review-sheet measurements on the shipped sample (docs/model-quality.md, "Review budget",
"Evidence" and "Mass complaints").

For the demo month and each temporal split of ``benchmarks/experiments.py`` the product's CPU
model is trained the way ``voc train`` trains it (``voc.tagger.train_tagger``, kind ``linear``,
with the reply, taxonomy from ``voc.tagger.resolve_taxonomy``, the fixed 20 % held-out split),
then measured:

* **budget** on the model's held-out rows: the subject threshold ``train_tagger`` stores
  (``voc.metrics.review_budget``: 80 % of the errors, at most 30 % of the rows), the share of
  rows it flags and the share of errors among them; and on the later block (train before the
  cut, test after): the same threshold applied to complaints the model never saw;
* **old rule** on the later block: 검토 우선 as before issue 14 — min(subject, work) confidence
  below the uncapped held-out threshold, the work type being keyword-only here; and the later
  block's **sheet** (``voc.review.build_review_rows`` with the stored thresholds and 묶음):
  rows flagged and subject errors inside a flagged item, new rule with and without groups vs
  the old rule;
* **evidence**: error AUROC (``voc.metrics.error_detection_auroc``) of the subject confidence,
  of the agreement between the tag and its 3 most similar training VOCs
  (``voc.evidence.neighbour_agreement``) and of their mean, on held-out rows and on the block;
* **groups**: sizes of the largest group of building 1 in 2019-11 and building 2 in 2018-08 for
  a range of thresholds (``voc.groups``, IDF from the VOCs before the month).

Usage::

    python benchmarks/review_budget.py [--json out.json] [--cache /tmp/voc_kiwi_tokens.pkl]

Kiwi tokens come from (and new ones go to) ``--cache``, as in ``benchmarks/experiments.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from experiments import SPLITS, CachingTokenizer, load_sample, split

from voc.evidence import neighbour_agreement, tagger_evidence
from voc.groups import fit_group_vectorizer, group_texts, near_duplicate_groups
from voc.metrics import error_detection_auroc, review_capture
from voc.review import COL_FLAG, COL_GROUP, COL_VOC_ID, build_review_rows, review_thresholds_of
from voc.tagger import canonical_labels, frame_texts, labels_of, resolve_taxonomy, tag_frame, train_tagger
from voc.taxonomy import default_taxonomy

BLOCKS: dict[str, tuple[str, str, str]] = {"demo <2019-11 → 2019-11": ("2019-11", "2019-11", "2019-11"), **SPLITS}
GROUP_THRESHOLDS = (0.08, 0.10, 0.12, 0.15, 0.18, 0.20)


def _auroc(correct: np.ndarray, score: np.ndarray) -> float | None:
    return error_detection_auroc(correct, np.clip(score, 0.0, 1.0)) if len(correct) else None


def _scores(tagger: Any, frame: pl.DataFrame, truth: list[str | None]) -> dict[str, Any]:
    """Subject tags of ``frame`` (rows with a true label) against ``truth``: correctness,
    confidence, neighbour agreement, and the work type's confidence (for the old rule)."""
    keep = [i for i, t in enumerate(truth) if t]
    frame = frame[keep]
    truth = [truth[i] for i in keep]
    texts, _ = frame_texts(frame, use_reply=tagger.use_reply)
    tags = tagger.tag(texts)
    sub = tags["subject"]
    correct = np.array([p == t for p, t in zip(sub.labels, truth)])
    conf = np.clip(np.asarray(sub.confidence, dtype=float), 0, 1)
    nbs = tagger_evidence(tagger, texts, ids=frame["voc_id"].to_list())
    agree = neighbour_agreement(nbs, sub.labels, "subject") if nbs is not None else np.full(len(truth), np.nan)
    work = np.clip(np.asarray(tags["work"].confidence, dtype=float), 0, 1) if "work" in tags else conf
    return {"correct": correct, "conf": conf, "agree": agree, "work_conf": work, "n": len(truth)}


def _evidence(s: dict[str, Any]) -> dict[str, Any]:
    c, conf, agree = s["correct"], s["conf"], s["agree"]
    filled = np.where(np.isnan(agree), conf, agree)
    mixed = (conf + filled) / 2
    return {
        "auroc_confidence": _auroc(c, conf),
        "auroc_agreement": _auroc(c, filled),
        "auroc_mean": _auroc(c, mixed),
        "capture20_confidence": review_capture(c, conf, shares=(0.2,))["0.2"],
        "capture20_mean": review_capture(c, mixed, shares=(0.2,))["0.2"],
        "agreement_missing": float(np.isnan(agree).mean()) if len(agree) else 0.0,
        "accuracy_when_all_agree": float(c[filled >= 0.999].mean()) if (filled >= 0.999).any() else None,
        "accuracy_when_none_agree": float(c[filled <= 0.001].mean()) if (filled <= 0.001).any() else None,
    }


def _flagged(s: dict[str, Any], threshold: float) -> dict[str, float]:
    flag = s["conf"] < threshold
    errors = int((~s["correct"]).sum())
    return {
        "n": s["n"],
        "errors": errors,
        "share": float(flag.mean()) if s["n"] else 0.0,
        "capture": float((flag & ~s["correct"]).sum() / errors) if errors else 1.0,
    }


def _sheet(tagger: Any, test: pl.DataFrame, old_threshold: float) -> dict[str, Any]:
    """The later block's review sheet as the product writes it (all rows, groups per
    building-month with the model's group vectorizer) against the rule before issue 14: rows
    flagged, and subject errors inside a flagged item (a flagged row, or a member of a 묶음 whose
    first row is flagged: one decision covers it)."""
    tagged = tag_frame(test.drop("ym"), tagger, run_id="bench")
    groups = near_duplicate_groups(tagged, vectorizer=tagger.group_vectorizer)
    new = build_review_rows(tagged, threshold=None, thresholds=review_thresholds_of(tagger), groups=groups)
    flat = build_review_rows(tagged, threshold=None, thresholds=review_thresholds_of(tagger))
    old = build_review_rows(tagged.drop(["subject_source", "work_source"]), threshold=old_threshold)
    truth = dict(zip(test["voc_id"], labels_of(test, "subject")))
    wrong = {
        r["voc_id"] for r in tagged.iter_rows(named=True)
        if truth[r["voc_id"]] and truth[r["voc_id"]] != f"{r['subject_major']}>{r['subject_minor']}"
    }

    def covered(rows: pl.DataFrame) -> tuple[int, int]:
        flagged = set(rows.filter(pl.col(COL_FLAG) == "Y")[COL_VOC_ID].to_list())
        flagged_groups = rows.filter(pl.col(COL_FLAG) == "Y")[COL_GROUP].to_list()
        decided = set(rows.filter(pl.col(COL_GROUP).is_in(flagged_groups) & (pl.col(COL_GROUP) != ""))[COL_VOC_ID].to_list())
        return len(flagged), len(wrong & (flagged | decided))

    out: dict[str, Any] = {"rows": tagged.height, "errors": len(wrong), "groups": groups.drop_nulls().n_unique(),
                           "grouped_rows": int(groups.is_not_null().sum())}
    for name, rows in (("new", new), ("new_without_groups", flat), ("old", old)):
        n, c = covered(rows)
        out[name] = {"flagged": n, "errors_covered": c}
    return out


def run_block(name: str, spec: tuple[str, str, str], df: pl.DataFrame, tok: CachingTokenizer) -> dict[str, Any]:
    train, test = split(df, spec)
    labelled_all = df.filter(pl.col("reviewed_subject_minor").is_not_null())
    in_train = np.array(labelled_all["voc_id"].is_in(train["voc_id"].implode()).to_list(), dtype=bool)
    taxonomy, _ = resolve_taxonomy(default_taxonomy(), labelled_all, keyword_rows=in_train, tokenizer=tok)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tagger, report = train_tagger(train, taxonomy, kind="linear", version="bench", tokenizer=tok)
    m = report.metrics["subject"]
    held = train.filter(pl.col("voc_id").is_in(report.holdout_ids["subject"]))
    held_truth = canonical_labels(labels_of(held, "subject"), tagger.taxonomy, "subject")
    hs = _scores(tagger, held, held_truth)
    later_truth = labels_of(test, "subject")  # as reviewed: a class renamed later is an error
    ls = _scores(tagger, test, later_truth)
    t = tagger.review_thresholds["subject"]
    old_t = m["review_threshold"]
    old_flag = np.minimum(ls["conf"], ls["work_conf"]) < old_t
    sheet = _sheet(tagger, test, old_t)
    return {
        "block": name,
        "n_train": report.n_train["subject"],
        "n_holdout": report.n_holdout["subject"],
        "holdout_accuracy": m["accuracy"],
        "threshold": t,
        "holdout": {**m["review_budget"], "recomputed": _flagged(hs, t)},
        "later": {**_flagged(ls, t), "accuracy": float(ls["correct"].mean()),
                  "capture20": review_capture(ls["correct"], ls["conf"], shares=(0.2,))["0.2"]},
        "old_rule_later": {"threshold": old_t, "share": float(old_flag.mean()),
                           "capture": float((old_flag & ~ls["correct"]).sum() / max(1, (~ls["correct"]).sum()))},
        "sheet_later": sheet,
        "evidence_holdout": _evidence(hs),
        "evidence_later": _evidence(ls),
        "seconds": round(time.time() - t0, 1),
    }


def run_groups(df: pl.DataFrame) -> list[dict[str, Any]]:
    out = []
    for ym, building in (("201911", "1"), ("201808", "2")):
        first = date(int(ym[:4]), int(ym[4:]), 1)
        vec = fit_group_vectorizer(group_texts(df.filter(pl.col("created_at") < first)))
        cell = df.filter((pl.col("created_at").dt.strftime("%Y%m") == ym) & (pl.col("building_id") == building))
        for t in GROUP_THRESHOLDS:
            g = near_duplicate_groups(cell, vectorizer=vec, threshold=t)
            sizes = sorted(g.drop_nulls().value_counts()["count"].to_list(), reverse=True)
            out.append({"month": ym, "building": building, "n": cell.height, "threshold": t, "sizes": sizes[:6], "n_groups": len(sizes)})
        g = near_duplicate_groups(cell)
        out.append({"month": ym, "building": building, "n": cell.height, "threshold": "near-copy (no reference IDF)",
                    "sizes": sorted(g.drop_nulls().value_counts()["count"].to_list(), reverse=True)[:6],
                    "n_groups": g.drop_nulls().n_unique()})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/voc_kiwi_tokens.pkl", help="pickle of Kiwi tokens per text")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--blocks", default="", help="comma-separated block prefixes (demo, S1, …; default all)")
    args = ap.parse_args(argv)
    cache = pickle.loads(Path(args.cache).read_bytes()) if os.path.exists(args.cache) else {}
    tok = CachingTokenizer(cache)
    df = load_sample()
    keep = tuple(x.strip() for x in args.blocks.split(",") if x.strip())
    results: dict[str, Any] = {"blocks": [], "groups": run_groups(df)}
    for name, spec in BLOCKS.items():
        if keep and not name.startswith(keep):
            continue
        r = run_block(name, spec, df, tok)
        results["blocks"].append(r)
        print(json.dumps(r, ensure_ascii=False, default=float), flush=True)
    if tok.misses:
        Path(args.cache).write_bytes(pickle.dumps(tok.cache))
    for g in results["groups"]:
        print(json.dumps(g, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1, default=float), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
