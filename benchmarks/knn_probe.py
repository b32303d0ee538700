"""Accuracy past the linear ceiling (issue 20): place names as evidence, a shorter recency
half-life, √ class weights, and k-nearest-neighbour interpolation, on the temporal splits S1–S4
(docs/model-quality.md, "Place names as evidence").

For each regime (``reply``: title + request + reply; ``no_reply``: registration time;
``masked``: every class and department name replaced, as ``benchmarks/recipes.py``) and split,
each model is trained on the split's training part the way ``voc backtest --recipe NAME`` trains
it and labels the test block. Label: ``subject_minor`` (과). Scores per split: accuracy,
macro-F1 (classes present in the test block), the **worst test month**'s accuracy (months with
at least :data:`MIN_MONTH_ROWS` test VOCs) and the accuracy with **mass complaints counted
once** (each test row weighted 1 / size of its near-duplicate group,
``voc.groups.near_duplicate_groups``: S1's test block is 66 % one campaign).

Models: the recipes of :data:`MODELS` (``voc.recipes.RECIPES``) and the probe ``default+knn``:
the default's probabilities interpolated with the vote of the k most similar training VOCs
(cosine on the default's TF-IDF features), p = λ · p_kNN + (1 − λ) · p_model (Khandelwal et al.
2020, "Generalization through Memorization: Nearest Neighbor Language Models", eq. 2), k = 10,
λ = 0.3 (the best of k ∈ {3, 5, 10, 20, 40}, λ ∈ {0.1 … 0.7} was within ±0.5 points of the
default; it is here as the measured negative result).

Usage::

    nice -n 10 python benchmarks/knn_probe.py --json /tmp/knn_probe.json --write-doc
    python benchmarks/knn_probe.py --from-json /tmp/knn_probe.json --write-doc   # tables only

Kiwi tokens are cached per text (``--cache``, shared with ``benchmarks/experiments.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from experiments import SPLITS, CachingTokenizer, fmt_table, load_sample, split
from recipes import REGIMES, NeighbourVote, mask_names

from voc.backtest import _fit_and_tag, truth_labels
from voc.groups import near_duplicate_groups
from voc.recipes import RECIPES, _scores
from voc.taxonomy import split_label

DOC = REPO / "docs" / "model-quality.md"
START, END = "<!-- places:start -->", "<!-- places:end -->"
MODELS: tuple[str, ...] = ("default", "anchor", "places", "places_recent", "places_recent_sqrt", "default+knn")
MIN_MONTH_ROWS = 5
"""Test months with fewer VOCs are left out of the worst-month accuracy (one row is 0 or 100 %)."""
KNN_K, KNN_LAMBDA = 10, 0.3


def _factory(name: str):
    """``classifier_factory`` of a probe (None for a recipe)."""
    if name == "default+knn":
        return lambda tx, dim, tok, seed: NeighbourVote(RECIPES["default"].make(tok, seed=seed), k=KNN_K, weight=KNN_LAMBDA)
    return None


def evaluate(y: Sequence[str], pred: Sequence[str], months: Sequence[str], groups: Sequence[str | None]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-month accuracy, worst month and mass-complaints-once accuracy of
    N predictions (``groups``: near-duplicate group id per row or None)."""
    yt, yp = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    ok = yt == yp
    acc, f1 = _scores(list(yt), list(yp))
    per_month: dict[str, list[int]] = {}
    for m, c in zip(months, ok):
        per_month.setdefault(m, []).append(int(c))
    month_acc = {m: (float(np.mean(v)), len(v)) for m, v in sorted(per_month.items())}
    eligible = {m: a for m, (a, n) in month_acc.items() if n >= MIN_MONTH_ROWS}
    worst = min(eligible, key=eligible.get) if eligible else None
    size: dict[str, int] = {}
    for g in groups:
        if g is not None:
            size[g] = size.get(g, 0) + 1
    w = np.array([1.0 / size[g] if g is not None else 1.0 for g in groups])
    return {"accuracy": acc, "macro_f1": f1, "worst_month": worst, "worst_month_acc": eligible.get(worst, float("nan")),
            "acc_groups_once": float(np.sum(w * ok) / np.sum(w)),
            "months": {m: {"accuracy": a, "n": n} for m, (a, n) in month_acc.items()}}


def run(regimes: Sequence[str], models: Sequence[str], tok: CachingTokenizer) -> list[dict[str, Any]]:
    base = load_sample()
    rows: list[dict[str, Any]] = []
    for regime in regimes:
        use_reply, masked = REGIMES[regime]
        df = mask_names(base) if masked else base
        for sname, spec in SPLITS.items():
            tr, te = split(df, spec)
            ytr, yte = truth_labels(tr, "subject_minor"), truth_labels(te, "subject_minor")
            train = tr[[i for i, v in enumerate(ytr) if v]]
            te_idx = [i for i, v in enumerate(yte) if v]
            test = te[te_idx]
            truth = [str(yte[i]) for i in te_idx]
            months = test["ym"].to_list()
            groups = near_duplicate_groups(test).to_list()
            t0 = time.time()
            for name in models:
                fac = _factory(name)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    tags, _, _ = _fit_and_tag(
                        train, test, "subject", model="linear", use_reply=use_reply, seed=0, tokenizer=tok,
                        classifier_factory=fac, canonicalise=True, kobert_options=None,
                        recipe=None if fac is not None else name,
                    )
                pred = [split_label(lab)[1] for lab in tags.labels]
                rows.append({"regime": regime, "split": sname.split()[0], "model": name, "n_train": train.height,
                             "n_test": len(truth), **evaluate(truth, pred, months, groups)})
            print(f"{regime} {sname}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The tables of docs/model-quality.md "Place names as evidence"."""
    flat = pl.DataFrame([{k: v for k, v in r.items() if k != "months"} for r in rows])
    models = list(dict.fromkeys(flat["model"].to_list()))
    out: list[str] = []
    m = (flat.group_by("regime", "model", maintain_order=True)
         .agg(pl.col("accuracy", "macro_f1", "worst_month_acc", "acc_groups_once").mean(), pl.len().alias("splits")))
    d = m.filter(pl.col("model") == "default").select("regime", d_acc="accuracy", d_f1="macro_f1")
    a = m.filter(pl.col("model") == "anchor").select("regime", a_acc="accuracy", a_f1="macro_f1")
    m = m.join(d, on="regime", how="left").join(a, on="regime", how="left").with_columns(
        (pl.col("accuracy") - pl.col("d_acc")).alias("Δacc"), (pl.col("macro_f1") - pl.col("a_f1")).alias("ΔF1"),
        (pl.col("accuracy") - pl.col("a_acc")).alias("Δacc_a"))
    out.append("##### Mean over S1–S4 (과 = `subject_minor`)\n")
    out.append(fmt_table(m, ["regime", "model", "accuracy", "Δacc", "Δacc_a", "macro_f1", "ΔF1", "worst_month_acc",
                             "acc_groups_once", "splits"],
                         ["regime", "model", "accuracy", "Δacc vs default", "Δacc vs anchor", "macro-F1",
                          "ΔF1 vs anchor", "worst month acc (mean)", "acc, mass complaints once", "splits"]))
    out.append("\n##### Per split\n")
    out.append(fmt_table(flat.sort("regime", "split", maintain_order=True),
                         ["regime", "split", "model", "n_test", "accuracy", "macro_f1", "worst_month", "worst_month_acc",
                          "acc_groups_once"],
                         ["regime", "split", "model", "n test", "accuracy", "macro-F1", "worst month", "its accuracy",
                          "acc, mass complaints once"]))
    out.append("\n##### Per test month (accuracy; regimes `reply` and `no_reply`)\n")
    for regime in ("reply", "no_reply"):
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            if r["regime"] != regime:
                continue
            for mon, v in r["months"].items():
                cells.setdefault((r["split"], mon), {"n": v["n"]})[r["model"]] = v["accuracy"]
        if not cells:
            continue
        head = "| regime | split | month | n | " + " | ".join(models) + " |\n|" + "---|" * (4 + len(models)) + "\n"
        body = "\n".join(
            f"| {regime} | {s} | {mon} | {c['n']} | " + " | ".join(f"{c[mdl]:.2f}" if mdl in c else "–" for mdl in models) + " |"
            for (s, mon), c in sorted(cells.items()))
        out.append(head + body + "\n")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", default=",".join(REGIMES), help=f"comma-separated, of {list(REGIMES)}")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated recipe names and/or 'default+knn'")
    ap.add_argument("--splits", default="", help="comma-separated split prefixes, e.g. S1,S2 (default: all)")
    ap.add_argument("--cache", default="/tmp/voc_kiwi_tokens.pkl", help="pickle of Kiwi tokens per text")
    ap.add_argument("--json", default="", help="write the raw rows here")
    ap.add_argument("--from-json", default="", help="skip the runs: rebuild the tables from rows saved with --json")
    ap.add_argument("--write-doc", action="store_true", help=f"refresh the tables in {DOC.relative_to(REPO)}")
    args = ap.parse_args(argv)
    if args.splits:
        keep = tuple(x.strip() for x in args.splits.split(","))
        for k in [k for k in SPLITS if not k.startswith(keep)]:
            del SPLITS[k]
    regimes = [r for r in args.regimes.split(",") if r]
    models = [m for m in args.models.split(",") if m]
    bad = [r for r in regimes if r not in REGIMES] + [m for m in models if m not in RECIPES and _factory(m) is None]
    if bad:
        ap.error(f"unknown regime(s)/model(s) {bad}")
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text("utf-8"))
    else:
        cache = pickle.loads(Path(args.cache).read_bytes()) if os.path.exists(args.cache) else {}
        tok = CachingTokenizer(cache)
        rows = run(regimes, models, tok)
        if tok.misses:
            Path(args.cache).write_bytes(pickle.dumps(tok.cache))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, ensure_ascii=False, indent=1), "utf-8")
    text = markdown(rows)
    print(text)
    if args.write_doc:
        doc = DOC.read_text("utf-8")
        a, b = doc.index(START) + len(START), doc.index(END)
        DOC.write_text(doc[:a] + "\n" + text + "\n" + doc[b:], "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
