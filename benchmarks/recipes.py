"""Recipe selection across regimes, probes for registration-time text, and the time budget
(docs/model-quality.md, "Recipe selection").

Regimes (the shipped sample, temporal splits S1–S4 of ``benchmarks/experiments.py``):

* ``reply``: title + request + reply;
* ``no_reply``: title + request (registration time);
* ``masked``: title + request + reply with every taxonomy class name and department name
  replaced by a placeholder (:func:`mask_names`): a synthetic customer whose texts carry no
  class-name evidence.

For each regime and split, every recipe of :data:`voc.recipes.RECIPES` is trained on the
split's training part and scored on its test block, and the product's choice
(:func:`voc.recipes.select_recipe` on the training part's own rolling-origin folds) is recorded.
``--probes`` adds registration-time ideas that are not recipes (yet): the labels of the 5 nearest
reviewed VOCs, the building as a feature, self-training judged by the temporal splits.

Usage::

    nice -n 10 python benchmarks/recipes.py --json /tmp/recipes_runs.json --write-doc
    nice -n 10 python benchmarks/recipes.py --regimes no_reply --probes all --no-selection \
        --recipes default,anchor --json /tmp/recipes_probes.json
    nice -n 10 python benchmarks/recipes.py --timing 5000      # train_tagger with selection

Kiwi tokens are cached per text (``--cache``, shared with ``benchmarks/experiments.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from experiments import SPLITS, CachingTokenizer, SelfTraining, fmt_table, load_sample, split

from voc.backtest import backtest_labels
from voc.classify.base import Tags
from voc.recipes import CANDIDATES, RECIPES, CandidateScore, choose

DOC = REPO / "docs" / "model-quality.md"
START, END = "<!-- recipes:start -->", "<!-- recipes:end -->"
LABELS = ("subject_minor", "subject")
REGIMES: dict[str, tuple[bool, bool]] = {"reply": (True, False), "no_reply": (False, False), "masked": (True, True)}
"""regime: (use_reply, names masked)."""
PLACEHOLDER = "[부서]"


# ------------------------------------------------------------------------------------------
# the "no name evidence" customer


def name_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """One regex matching any of ``names`` and their parts (split at ``/ · ,`` and spaces, 2+
    characters), longest first, with optional whitespace between characters (the class-name
    evidence of ``voc.classify.linear.name_mentions`` ignores spaces too)."""
    from voc.classify.linear import _name_parts

    parts = {p for n in names if n for p in (n, *_name_parts(n)) if len(p) >= 2}
    alts = [r"\s*".join(re.escape(c) for c in p if not c.isspace()) for p in sorted(parts, key=len, reverse=True)]
    return re.compile("|".join(alts))


def mask_names(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with every class name (reviewed 국 and 과) and ``department`` value replaced by
    :data:`PLACEHOLDER` in title, request and reply."""
    names = set()
    for c in ("reviewed_subject_major", "reviewed_subject_minor", "department"):
        if c in df.columns:
            names |= set(df[c].drop_nulls().to_list())
    pat = name_pattern(names)

    def sub(s: str | None) -> str | None:
        return None if s is None else pat.sub(PLACEHOLDER, s)

    return df.with_columns(
        [pl.col(c).map_elements(sub, return_dtype=pl.Utf8) for c in ("title", "request_contents", "reply")]
    )


# ------------------------------------------------------------------------------------------
# probes (registration-time ideas), as backtest classifier factories


class NeighbourVote:
    """A recipe's classifier blended with the labels of the k nearest training VOCs:
    score = (1 − w) · p_recipe + w · v, v = cosine-weighted vote of the k nearest training rows
    in the recipe's own TF-IDF space (w = 1: plain k-NN)."""

    def __init__(self, base: Any, *, k: int = 5, weight: float = 0.5) -> None:
        self.base, self.k, self.weight = base, k, weight

    def fit(self, texts, labels, *, tokens=None, times=None):
        self.base.fit(texts, labels, tokens=tokens, times=times)
        self.X_ = self.base._features(texts, tokens, fit=False)
        index = {c: i for i, c in enumerate(self.base.classes_)}
        self.y_ = np.array([index[str(v)] for v in labels])
        return self

    def predict_tags(self, texts, *, tokens=None) -> Tags:
        p = self.base.predict_proba(texts, tokens=tokens)
        sims = (self.base._features(texts, tokens, fit=False) @ self.X_.T).toarray()
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        v = np.zeros_like(p)
        for i, row in enumerate(top):
            np.add.at(v[i], self.y_[row], np.maximum(sims[i, row], 1e-9))
        v /= v.sum(axis=1, keepdims=True)
        s = (1 - self.weight) * p + self.weight * v
        best = s.argmax(axis=1)
        return Tags([str(self.base.classes_[b]) for b in best], s[np.arange(len(best)), best], ["model"] * len(best))


class WithBuilding:
    """A recipe's classifier that also reads the VOC's building as one extra token
    (``건물=<id>``): the SVM learns each building's label prior. ``building_of`` maps a text to
    its building (the benchmark knows the frame; the product would pass the column)."""

    def __init__(self, base: Any, building_of: dict[str, str]) -> None:
        self.base, self.building_of = base, building_of

    def _tok(self, texts, tokens):
        return [[*t, f"건물={self.building_of.get(x, '?')}"] for x, t in zip(texts, tokens)]

    def fit(self, texts, labels, *, tokens=None, times=None):
        self.base.fit(texts, labels, tokens=self._tok(texts, tokens), times=times)
        return self

    def predict_tags(self, texts, *, tokens=None) -> Tags:
        return self.base.predict_tags(texts, tokens=self._tok(texts, tokens))


class SelfTrainingUnchecked(SelfTraining):
    """Self-training without its random 20 % held-out check: the temporal splits judge it."""

    def fit(self, texts, labels, *, tokens=None, times=None):
        self.model_, self.pseudo_ = self._self_train(texts, labels, times)
        return self


def probes(df: pl.DataFrame, test: pl.DataFrame, use_reply: bool) -> dict[str, Callable]:
    """Probe name → classifier factory ``(taxonomy, dimension, tokenizer, seed)``."""
    from voc.tagger import frame_texts

    texts, _ = frame_texts(df, use_reply=use_reply)
    building_of = dict(zip(texts, df["building_id"].to_list()))
    unl, _ = frame_texts(test, use_reply=use_reply)

    def rec(name: str) -> Callable[..., Any]:
        return lambda tx, dim, tok, seed: RECIPES[name].make(tok, seed=seed)

    return {
        "knn5": lambda tx, dim, tok, seed: NeighbourVote(RECIPES["default"].make(tok, seed=seed), weight=1.0),
        "default+knn5": lambda tx, dim, tok, seed: NeighbourVote(RECIPES["default"].make(tok, seed=seed)),
        "default+building": lambda tx, dim, tok, seed: WithBuilding(RECIPES["default"].make(tok, seed=seed), building_of),
        "default+self_training": lambda tx, dim, tok, seed: SelfTrainingUnchecked(rec("default"), tx, dim, tok, seed, unl),
    }


# ------------------------------------------------------------------------------------------
# runs


def _row(regime: str, sname: str, name: str, lab: str, r: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"regime": regime, "split": sname, "model": name, "label": lab, "n_train": r["n_train"],
            "n_test": r["n_test"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"], **extra}


def run(regimes: Sequence[str], tok: CachingTokenizer, *, recipes: Sequence[str], probe_names: Sequence[str] = (),
        with_selection: bool = True, selection_only: bool = False) -> list[dict[str, Any]]:
    base = load_sample()
    rows: list[dict[str, Any]] = []
    for regime in regimes:
        use_reply, masked = REGIMES[regime]
        df = mask_names(base) if masked else base
        for sname, spec in SPLITS.items():
            tr, te = split(df, spec)
            t0 = time.time()
            common = dict(labels=LABELS, use_reply=use_reply, seed=0, tokenizer=tok)
            if with_selection:  # every recipe a candidate; subsets are chosen offline (derive_selected)
                res = backtest_labels(tr, te, select=True, candidates=list(dict.fromkeys(["anchor", *recipes])), **common)
                sel = res["subject"]["selection"]
                for lab, r in res.items():
                    rows.append(_row(regime, sname, "selected_all", lab, r, recipe=r["recipe"], selection=sel))
            for name in [] if selection_only else recipes:
                res = backtest_labels(tr, te, recipe=name, **common)
                for lab, r in res.items():
                    rows.append(_row(regime, sname, name, lab, r))
            if probe_names:
                facs = probes(df, te, use_reply)
                for name in probe_names:
                    fac = facs[name]
                    res = backtest_labels(tr, te, classifier_factory=fac, **common)
                    for lab, r in res.items():
                        rows.append(_row(regime, sname, name, lab, r))
            print(f"{regime} {sname}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return rows


def merge_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of several runs (``--from-json a.json,b.json``) as one: a later row replaces an
    earlier one of the same regime × split × model × label, and the ``selected_all`` rows pool
    their candidates' fold scores (a recipe's fold scores do not depend on the other
    candidates; the same recipe and seed give the same scores)."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["regime"], r["split"], r["model"], r["label"])
        if r["model"] == "selected_all" and key in out:
            cands = {c["recipe"]: c for c in out[key]["selection"]["candidates"]}
            cands.update({c["recipe"]: c for c in r["selection"]["candidates"]})
            r = {**r, "selection": {**r["selection"], "candidates": list(cands.values())}}
        out[key] = r
    return list(out.values())


def derive_selected(rows: list[dict[str, Any]], candidates: Sequence[str] = CANDIDATES) -> list[dict[str, Any]]:
    """``rows`` plus a ``selected`` row per regime × split × label: the recipe
    :func:`voc.recipes.choose` picks among ``candidates`` from the fold scores recorded by the
    all-recipe selection (the scores of a recipe do not depend on the other candidates, so this
    is the product's choice with ``candidates``), with that recipe's test-block scores."""
    by = {(r["regime"], r["split"], r["model"], r["label"]): r for r in rows}
    out = [r for r in rows if r["model"] != "selected"]
    for r in rows:
        if r["model"] != "selected_all":
            continue
        scores = [CandidateScore(c["recipe"], c["accuracy"], c["macro_f1"], worst_month=c.get("worst_month"),
                                 se_accuracy=c.get("se_accuracy", 0.0), se_macro_f1=c.get("se_macro_f1", 0.0))
                  for c in r["selection"]["candidates"] if c["recipe"] in candidates]
        chosen, _ = choose(scores)
        got = by[(r["regime"], r["split"], chosen, r["label"])]
        out.append({**got, "model": "selected", "recipe": chosen,
                    "selection": {**r["selection"], "chosen": chosen,
                                  "candidates": [c for c in r["selection"]["candidates"] if c["recipe"] in candidates]}})
    return out


def means(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Mean over splits per regime × model × label."""
    return (
        pl.DataFrame([{k: v for k, v in r.items() if k != "selection"} for r in rows])
        .group_by("regime", "model", "label", maintain_order=True)
        .agg(pl.col("accuracy", "macro_f1").mean(), pl.len().alias("splits"))
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    """The tables of docs/model-quality.md "Recipe selection"."""
    m = means(rows)
    out: list[str] = []
    present = {r["regime"] for r in rows}
    for regime in [g for g in REGIMES if g in present]:
        sub = m.filter(pl.col("regime") == regime)
        a = sub.filter(pl.col("model") == "anchor").select("label", a_acc="accuracy", a_f1="macro_f1")
        d = sub.filter(pl.col("model") == "default").select("label", d_acc="accuracy", d_f1="macro_f1")
        s = sub.filter(pl.col("model") == "selected").select("label", "accuracy", "macro_f1")
        if s.height and a.height:
            j = a.join(d, on="label").join(s, on="label").with_columns(
                (pl.col("accuracy") - pl.col("a_acc")).alias("Δacc"), (pl.col("macro_f1") - pl.col("a_f1")).alias("ΔF1")
            )
            out.append(f"\n#### Regime `{regime}`: mean over S1–S4\n")
            out.append(fmt_table(
                j, ["label", "a_acc", "d_acc", "accuracy", "Δacc", "a_f1", "d_f1", "macro_f1", "ΔF1"],
                ["label", "anchor acc", "default acc", "selected acc", "Δacc vs anchor", "anchor F1", "default F1",
                 "selected F1", "ΔF1 vs anchor"],
            ))
            picks = [r for r in rows if r["regime"] == regime and r["model"] == "selected" and r["label"] == "subject"]
            out.append("\nChosen per split (scores on the split's own rolling-origin folds, pooled): " + "; ".join(
                f"{r['split'].split()[0]} → **{r['recipe']}**" for r in picks) + "\n")
        out.append(f"\nEvery recipe and probe, regime `{regime}` (mean over S1–S4, test blocks):\n")
        out.append(fmt_table(sub.sort("label", "macro_f1", descending=[False, True]),
                             ["model", "label", "accuracy", "macro_f1", "splits"],
                             ["model", "label", "accuracy", "macro-F1", "splits"]))
    return "\n".join(out)


def selection_folds_table(rows: list[dict[str, Any]]) -> str:
    """Each split's candidate scores on its own folds (what the selection saw)."""
    lines = []
    for r in rows:
        if r["model"] != "selected" or r["label"] != "subject" or not r.get("selection"):
            continue
        sel = r["selection"]
        cells = ", ".join(f"{c['recipe']} {c['macro_f1']:.3f}/{c['accuracy']:.3f}" for c in sel["candidates"])
        lines.append(f"| {r['regime']} | {r['split'].split()[0]} | {sel['chosen']} | {len(sel['folds'])} | {cells} |")
    head = "| regime | split | chosen | folds | candidates: macro-F1/accuracy on the folds |\n|---|---|---|---|---|\n"
    return head + "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# time budget


def resample(df: pl.DataFrame, n: int, *, seed: int = 0) -> pl.DataFrame:
    """``n`` labelled VOCs drawn with replacement from ``df``, each a distinct VOC: a new id and
    a numbered title (Kiwi then analyses every one; the number is not a model token)."""
    lab = df.filter(pl.col("reviewed_subject_minor").is_not_null())
    idx = np.random.default_rng(seed).integers(0, lab.height, n)
    out = lab[idx.tolist()]
    return out.with_columns(
        pl.Series("voc_id", [f"r{k}" for k in range(n)]),
        (pl.col("title").fill_null("") + pl.Series([f" {k}" for k in range(n)])).alias("title"),
    )


def timing(n: int) -> dict[str, Any]:
    """Wall and CPU seconds of ``train_tagger(kind="linear", select=True)`` on ``n`` resampled
    VOCs, reply-aware and registration-time variants (a fresh, uncached Kiwi)."""
    from voc.tagger import train_tagger
    from voc.taxonomy import default_taxonomy
    from voc.tokenize import KiwiTokenizer

    df = resample(load_sample(), n)
    from voc.tagger import resolve_taxonomy

    out: dict[str, Any] = {"n": n, "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    tok = KiwiTokenizer(cache_size=200_000)
    t0, c0 = time.perf_counter(), time.process_time()
    tax, _ = resolve_taxonomy(default_taxonomy(), df, tokenizer=tok, use_reply=True)
    out["taxonomy"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
    for variant, use_reply in (("reply", True), ("registration", False)):
        lines: list[str] = []
        t0, c0 = time.perf_counter(), time.process_time()
        _, report = train_tagger(df, tax, kind="linear", version="timing", use_reply=use_reply, tokenizer=tok,
                                      select=True, progress=lines.append)
        out[variant] = {
            "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(time.process_time() - c0, 1),
            "chosen": {d: s["chosen"] for d, s in report.selection.items()},
            "selection_s": {d: s["seconds"] for d, s in report.selection.items()},
            "progress": lines,
        }
        print(json.dumps(out[variant], ensure_ascii=False), file=sys.stderr, flush=True)
    out["load_after"] = os.getloadavg()
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


# ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", default=",".join(REGIMES), help=f"comma-separated, of {list(REGIMES)}")
    ap.add_argument("--recipes", default="", help="comma-separated recipe names (default: all of RECIPES)")
    ap.add_argument("--probes", default="", help="comma-separated probes to run too ('all' for every one)")
    ap.add_argument("--no-selection", action="store_true", help="skip the selection runs")
    ap.add_argument("--selection-only", action="store_true",
                    help="only the selection runs (test-block scores of the recipes come from other --json files)")
    ap.add_argument("--splits", default="", help="comma-separated split prefixes, e.g. S1,S2 (default: all)")
    ap.add_argument("--cache", default="/tmp/voc_kiwi_tokens.pkl", help="pickle of Kiwi tokens per text")
    ap.add_argument("--json", default="", help="write the raw rows here")
    ap.add_argument("--from-json", default="", help="skip the runs: rebuild tables from rows saved with --json "
                    "(several files: comma-separated)")
    ap.add_argument("--write-doc", action="store_true", help=f"refresh the tables in {DOC.relative_to(REPO)}")
    ap.add_argument("--timing", type=int, default=0, help="measure train_tagger with selection on this many VOCs")
    args = ap.parse_args(argv)
    if args.timing:
        print(json.dumps(timing(args.timing), ensure_ascii=False, indent=1))
        return 0
    if args.splits:
        keep = tuple(x.strip() for x in args.splits.split(","))
        for k in [k for k in SPLITS if not k.startswith(keep)]:
            del SPLITS[k]
    regimes = [r for r in args.regimes.split(",") if r]
    bad = [r for r in regimes if r not in REGIMES]
    recipes = [r for r in args.recipes.split(",") if r] or list(RECIPES)
    bad += [r for r in recipes if r not in RECIPES]
    if bad:
        ap.error(f"unknown regime(s)/recipe(s) {bad}")
    known = list(probes(load_sample().head(1), load_sample().head(1), True))
    probe_names = known if args.probes == "all" else [p for p in args.probes.split(",") if p]
    if set(probe_names) - set(known):
        ap.error(f"unknown probe(s) {sorted(set(probe_names) - set(known))}; known: {known}")
    if args.from_json:
        rows = [r for p in args.from_json.split(",") for r in json.loads(Path(p).read_text("utf-8"))]
    else:
        cache = pickle.loads(Path(args.cache).read_bytes()) if os.path.exists(args.cache) else {}
        tok = CachingTokenizer(cache)
        rows = run(regimes, tok, recipes=recipes, probe_names=probe_names, with_selection=not args.no_selection,
                   selection_only=args.selection_only)
        if tok.misses:
            Path(args.cache).write_bytes(pickle.dumps(tok.cache))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, ensure_ascii=False, indent=1, default=str), "utf-8")
    rows = derive_selected(merge_runs(rows))
    shown = [r for r in rows if r["model"] == "selected" or r["model"] in RECIPES or r["model"] in probe_names]
    text = (
        markdown(shown)
        + "\n##### What the selection saw (subject models, pooled rolling-origin folds of each split's training part)\n\n"
        + selection_folds_table(rows)
    )
    print(text)
    if args.write_doc:
        doc = DOC.read_text("utf-8")
        a, b = doc.index(START) + len(START), doc.index(END)
        DOC.write_text(doc[:a] + "\n" + text + "\n" + doc[b:], "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
