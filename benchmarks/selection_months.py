"""The recipe the product would choose, month by month: default, anchor and the selection on
the temporal splits S1–S4 (``benchmarks/experiments.py``), with and without the reply.

For each split and text regime it trains ``default`` and ``anchor`` on the split's training
part, runs the product's recipe selection (:func:`voc.recipes.select_recipe`: rolling-origin
folds of the training part, mass complaints counted once, worst-month guard, one-standard-error
rule) and trains the chosen recipe, then reports on the test block: accuracy, macro-F1, the
worst test month's accuracy (months with ≥ 5 VOCs), accuracy with each near-duplicate group
counted once, and every month's accuracy (docs/model-quality.md, "Selection month by month").

Usage::

    nice -n 10 python benchmarks/selection_months.py --json /tmp/selection_months.json
    python benchmarks/selection_months.py --from-json /tmp/selection_months.json   # tables only
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from experiments import SPLITS, CachingTokenizer, load_sample, split

from voc.backtest import backtest_labels

LABEL = "subject_minor"
MODELS = ("default", "anchor", "selected")


def run(tok: CachingTokenizer, replies: Sequence[bool]) -> list[dict[str, Any]]:
    df = load_sample()
    rows: list[dict[str, Any]] = []
    for use_reply in replies:
        for sname, spec in SPLITS.items():
            tr, te = split(df, spec)
            t0 = time.time()
            for model in MODELS:
                kw: dict[str, Any] = {"select": True} if model == "selected" else {"recipe": model}
                r = backtest_labels(tr, te, labels=(LABEL,), use_reply=use_reply, seed=0, tokenizer=tok, **kw)[LABEL]
                rows.append({
                    "split": sname.split()[0], "reply": use_reply, "model": model, "recipe": r["recipe"],
                    "n_test": r["n_test"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"],
                    "worst_month": r["worst_month"], "worst_month_name": r["worst_month_name"],
                    "accuracy_groups_once": r["accuracy_groups_once"], "by_month": r["by_month"],
                })
            print(f"reply={use_reply} {sname}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = []
    for use_reply in sorted({r["reply"] for r in rows}, reverse=True):
        out.append(f"#### {'With the reply' if use_reply else 'Registration time (no reply)'} — `{LABEL}`\n")
        out.append("| split | model (recipe) | accuracy | macro-F1 | worst month | accuracy, groups once |")
        out.append("|---|---|---|---|---|---|")
        sub = [r for r in rows if r["reply"] == use_reply]
        for r in sub:
            wm = f"{r['worst_month']:.3f} ({r['worst_month_name']})" if r["worst_month"] is not None else "–"
            out.append(f"| {r['split']} | {r['model']} ({r['recipe']}) | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {wm} "
                       f"| {r['accuracy_groups_once']:.3f} |")
        for model in MODELS:
            m = [r for r in sub if r["model"] == model]
            if m:
                def mean(k: str, m: list[dict[str, Any]] = m) -> float:
                    return sum(x[k] for x in m) / len(m)

                worst = min(x["worst_month"] for x in m if x["worst_month"] is not None)
                out.append(f"| mean S1–S4 | {model} | {mean('accuracy'):.3f} | {mean('macro_f1'):.3f} | min {worst:.3f} "
                           f"| {mean('accuracy_groups_once'):.3f} |")
        out.append("\nPer month (accuracy, VOCs):\n")
        months = sorted({mo for r in sub for mo in r["by_month"]})
        out.append("| month | n | " + " | ".join(MODELS) + " |")
        out.append("|---|---|" + "---|" * len(MODELS))
        for mo in months:
            cells, n = [], None
            for model in MODELS:
                # a month can sit in two splits' test blocks: the later split (more training) is shown
                hit = [r for r in sub if r["model"] == model and mo in r["by_month"]]
                v = hit[-1]["by_month"][mo] if hit else None
                n = v["n"] if v else n
                cells.append(f"{v['accuracy']:.3f}" if v else "–")
            out.append(f"| {mo} | {n} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the runs here")
    ap.add_argument("--from-json", help="print the tables of saved runs")
    ap.add_argument("--no-reply-only", action="store_true")
    ap.add_argument("--cache", default="/tmp/voc_kiwi_tokens.pkl")
    a = ap.parse_args(argv)
    if a.from_json:
        rows = json.loads(Path(a.from_json).read_text("utf-8"))
    else:
        cache = pickle.loads(Path(a.cache).read_bytes()) if Path(a.cache).exists() else {}
        tok = CachingTokenizer(cache)
        rows = run(tok, (False,) if a.no_reply_only else (True, False))
        Path(a.cache).write_bytes(pickle.dumps(tok.cache))
        if a.json:
            Path(a.json).write_text(json.dumps(rows, ensure_ascii=False, indent=1), "utf-8")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
