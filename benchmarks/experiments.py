"""Model-quality experiments on temporal splits of the shipped sample (docs/model-quality.md).

Every experiment is a classifier recipe run through :func:`voc.backtest.backtest_labels` on the
same temporal splits, seeds, labels (``subject_minor``, ``subject``) and text variants (with and
without the reply). Data: the shipped Incheon Jung-gu complaints (Incheon Jung-gu office
complaint board, via 2hy03/Civil_Complaint), read like ``flows.adapters.sources.CsvSource``.

Usage::

    python benchmarks/experiments.py                    # all experiments, print tables
    python benchmarks/experiments.py --write-doc        # also refresh docs/model-quality.md
    python benchmarks/experiments.py --only anchor,default

Kiwi tokens are cached per text in a pickle (``--cache``, default ``/tmp/voc_kiwi_tokens.pkl``):
Kiwi is the slow part and every experiment reads the same texts.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config.settings import sample_csv_path
from voc.backtest import backtest_labels
from voc.classify.hybrid import HybridClassifier
from voc.classify.keyword import KeywordClassifier
from voc.classify.linear import DEFAULT_PARAMS, LinearVOCClassifier
from voc.schema import validate_voc_frame
from voc.tagger import frame_texts, make_classifier
from voc.tokenize import KiwiTokenizer

DOC = REPO / "docs" / "model-quality.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

SPLITS: dict[str, tuple[str, str, str]] = {
    # name: (train before, test from, test until inclusive), months "YYYY-MM"
    "S1 <2018-08 → 2018-08..12": ("2018-08", "2018-08", "2018-12"),
    "S2 <2019-01 → 2019-01..12": ("2019-01", "2019-01", "2019-12"),
    "S3 <2018-01 → 2018-01..07": ("2018-01", "2018-01", "2018-07"),
    "S4 <2019-07 → 2019-07..12": ("2019-07", "2019-07", "2019-12"),
}
LABELS = ("subject_minor", "subject")
REPLIES = (True, False)
SEEDS = (0,)


class CachingTokenizer(KiwiTokenizer):
    """KiwiTokenizer whose batch methods look texts up in a dict first (experiments only)."""

    def __init__(self, cache: dict[tuple[str, str], list[str]] | None = None) -> None:
        super().__init__()
        self.cache = cache if cache is not None else {}
        self.misses = 0

    def _cached(self, kind: str, texts: Sequence[str], fn: Callable[[Sequence[str]], list[list[str]]]):
        todo = [t for t in dict.fromkeys(texts) if (kind, t) not in self.cache]
        if todo:
            self.misses += len(todo)
            for t, toks in zip(todo, fn(todo)):
                self.cache[(kind, t)] = toks
        return [list(self.cache[(kind, t)]) for t in texts]

    def model_tokens_batch(self, texts: Sequence[str]) -> list[list[str]]:
        return self._cached("model", texts, super().model_tokens_batch)

    def keyword_nouns_batch(self, texts: Sequence[str]) -> list[list[str]]:
        return self._cached("nouns", texts, super().keyword_nouns_batch)


# ------------------------------------------------------------------------------------------
# recipes: (taxonomy, dimension, tokenizer, seed) -> unfitted classifier

Factory = Callable[[Any, str, KiwiTokenizer, int], Any]


def linear(**params: Any) -> Factory:
    return lambda tx, dim, tok, seed: LinearVOCClassifier(tok, random_state=seed, **params)


def hybrid(**params: Any) -> Factory:
    return lambda tx, dim, tok, seed: HybridClassifier(
        KeywordClassifier(tx.rows_of(dim)), LinearVOCClassifier(tok, random_state=seed, **params), random_state=seed
    )


def kind(name: str) -> Factory:
    return lambda tx, dim, tok, seed: make_classifier(name, tx, dim, tok, seed=seed)


class SelfTraining:
    """Self-training around a base recipe (experiment): pseudo-label the unlabelled texts whose
    confidence is at least ``threshold``, refit on labelled + pseudo-labelled rows, at most
    ``rounds`` rounds, stopping when the pseudo-labels stop changing (self-training as in Yarowsky,
    ACL 1995, https://aclanthology.org/P95-1026). The held-out check: a seeded 20 % of the
    labelled rows is kept out of the self-training run and
    the self-trained model is used only if its accuracy there is not below the base model's
    (both then refit on all labelled rows + the final pseudo-labels).

    ``unlabelled``: texts of the months to be tagged (the test block, without labels): a
    transductive setting, as in a monthly run that retrains on the month it tags."""

    def __init__(self, base: Factory, taxonomy, dim: str, tok, seed: int, unlabelled: list[str], *,
                 threshold: float = 0.5, rounds: int = 3) -> None:
        self.base, self.taxonomy, self.dim, self.tok, self.seed = base, taxonomy, dim, tok, seed
        self.unlabelled, self.threshold, self.rounds = unlabelled, threshold, rounds

    def _new(self):
        return self.base(self.taxonomy, self.dim, self.tok, self.seed)

    def _self_train(self, texts, labels, times):
        u_tok = self.tok.model_tokens_batch(self.unlabelled)
        clf = self._new().fit(texts, labels, tokens=self.tok.model_tokens_batch(texts), times=times)
        prev = None
        self.rounds_run_ = 0
        for _ in range(self.rounds):
            t = clf.predict_tags(self.unlabelled, tokens=u_tok)
            keep = [i for i, c in enumerate(t.confidence) if c >= self.threshold]
            pseudo = [(self.unlabelled[i], t.labels[i]) for i in keep]
            if pseudo == prev:
                break
            prev = pseudo
            self.rounds_run_ += 1
            newest = max(times) if times else None
            x = list(texts) + [p[0] for p in pseudo]
            y = list(labels) + [p[1] for p in pseudo]
            tt = None if times is None else list(times) + [newest] * len(pseudo)
            clf = self._new().fit(x, y, tokens=self.tok.model_tokens_batch(x), times=tt)
        return clf, prev or []

    def fit(self, texts, labels, *, tokens=None, times=None):
        rng = np.random.default_rng(self.seed)
        hold = rng.random(len(texts)) < 0.2
        tr = [i for i in range(len(texts)) if not hold[i]]
        te = [i for i in range(len(texts)) if hold[i]]

        def sub(seq: Sequence[Any] | None, idx: list[int]) -> list[Any] | None:
            return None if seq is None else [seq[i] for i in idx]

        base = self._new().fit(sub(texts, tr), sub(labels, tr), tokens=self.tok.model_tokens_batch(sub(texts, tr)), times=sub(times, tr))
        st, _ = self._self_train(sub(texts, tr), sub(labels, tr), sub(times, tr))
        ht = sub(texts, te)

        def acc(m: Any) -> float:
            return float(np.mean(np.array(m.predict(ht, tokens=self.tok.model_tokens_batch(ht))) == np.array(sub(labels, te))))

        self.base_holdout_acc_, self.self_holdout_acc_ = float(acc(base)), float(acc(st))
        self.used_ = self.self_holdout_acc_ >= self.base_holdout_acc_
        if self.used_:
            self.model_, self.pseudo_ = self._self_train(texts, labels, times)
        else:
            self.model_ = self._new().fit(texts, labels, tokens=tokens, times=times)
            self.pseudo_ = []
        return self

    def predict_tags(self, texts, *, tokens=None):
        return self.model_.predict_tags(texts, tokens=tokens)


D = DEFAULT_PARAMS
ANCHOR_TOP1 = {"calibration": "top1", "calibration_cv": 5}


def _with(**kw: Any) -> dict[str, Any]:
    out = deepcopy(D)
    out.update(kw)
    return out


EXPERIMENTS: dict[str, tuple[str, Factory, dict[str, Any]]] = {
    # name: (what it tests, factory, backtest options)
    # -- from the anchor to the default, one step at a time (cumulative)
    "anchor": ("production recipe: make_classifier('anchor')", kind("anchor"), {}),
    "step1_one_svm_top1": ("anchor features; one SVM on all rows + temperature + top-1 confidence (cv 5)",
                           linear(**ANCHOR_TOP1), {}),
    "step2_name_prior": ("+ class-name evidence", linear(name_prior=True, **ANCHOR_TOP1), {}),
    "step3_unweighted": ("+ class_weight=None", linear(**_with(recency_half_life_days=None)), {}),
    "default": ("+ recency weights (half-life 730 days) = DEFAULT, make_classifier('linear')", kind("linear"), {}),
    # -- one change to the default each
    "default_no_name_prior": ("default without class-name evidence", linear(**_with(name_prior=False)), {}),
    "default_chars_13_30k": ("default + character 1–3-grams (30k), the first-round default",
                             linear(**_with(char_ngrams=30_000, char_ngram_range=(1, 3))), {}),
    "default_chars_24_20k": ("default + character 2–4-grams (20k), the old default's",
                             linear(**_with(char_ngrams=20_000, char_ngram_range=(2, 4))), {}),
    "default_all_vocab": ("default with the whole word vocabulary", linear(**_with(max_features=None)), {}),
    "default_balanced": ("default with class_weight='balanced'", linear(**_with(class_weight="balanced")), {}),
    "default_sqrt_weights": ("default with class weights (n/n_k)^½", linear(**_with(class_weight="sqrt")), {}),
    "default_prior_correction": ("default + fitted log-prior term", linear(**_with(prior_correction=True)), {}),
    "default_title2": ("default with the title counted twice", linear(**_with(title_weight=2)), {}),
    "default_C05": ("default with C=0.5", linear(**_with(C=0.5)), {}),
    "default_C2": ("default with C=2", linear(**_with(C=2.0)), {}),
    "default_half_life_365": ("default with a one-year half-life", linear(**_with(recency_half_life_days=365.0)), {}),
    "default_sigmoid": ("default features, production calibration (sigmoid, ensemble of 3 fold models)",
                        linear(**_with(calibration="sigmoid", calibration_cv=3)), {}),
    "default_temperature": ("default without the top-1 calibrator (temperature softmax only)",
                            linear(**_with(calibration="temperature")), {}),
    "default_forward_conf": ("default, top-1 calibrator fitted on forward-in-time folds",
                             linear(**_with(confidence_folds="forward")), {}),
    "default_cv3": ("default with 3 calibration folds", linear(**_with(calibration_cv=3)), {}),
    "hybrid": ("make_classifier('hybrid'): keywords derived from training labels vs the default", kind("hybrid"), {}),
    "self_training": ("default + self-training on the test block's texts (3 rounds, held-out check)",
                      kind("linear"), {"self_training": True}),
    "anchor_raw_labels": ("anchor trained on labels as reviewed (no canonical major)", kind("anchor"), {"canonicalise": False}),
    # -- stability over seeds (calibration folds, SVM shuffling)
    "anchor_seeds": ("anchor, seeds 0–2", kind("anchor"), {"seeds": (0, 1, 2)}),
    "default_seeds": ("default, seeds 0–2", kind("linear"), {"seeds": (0, 1, 2)}),
}


# ------------------------------------------------------------------------------------------


def load_sample() -> pl.DataFrame:
    raw = pl.read_csv(sample_csv_path(), infer_schema=False, encoding="utf8-lossy")
    return validate_voc_frame(raw).with_columns(ym=pl.col("created_at").dt.strftime("%Y-%m"))


def split(df: pl.DataFrame, spec: tuple[str, str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    before, start, until = spec
    return df.filter(pl.col("ym") < before), df.filter((pl.col("ym") >= start) & (pl.col("ym") <= until))


def run(names: Sequence[str], tok: CachingTokenizer, df: pl.DataFrame, *, seeds: Sequence[int] = SEEDS) -> list[dict]:
    rows: list[dict] = []
    for name in names:
        _, factory, opts = EXPERIMENTS[name]
        t0 = time.time()
        for sname, spec in SPLITS.items():
            tr, te = split(df, spec)
            for reply in REPLIES:
                for seed in opts.get("seeds", seeds):
                    fac = factory
                    if opts.get("self_training"):
                        unl, _ = frame_texts(te, use_reply=reply)
                        fac = (lambda f, u: lambda tx, dim, t, s: SelfTraining(f, tx, dim, t, s, u))(factory, unl)
                    res = backtest_labels(
                        tr, te, labels=LABELS, use_reply=reply, seed=seed, tokenizer=tok,
                        classifier_factory=fac, model="hybrid" if "hybrid" in name else "linear",
                        **{k: v for k, v in opts.items() if k not in ("self_training", "seeds")},
                    )
                    for lab, r in res.items():
                        rows.append({
                            "experiment": name, "split": sname, "reply": reply, "label": lab, "seed": seed,
                            "n_train": r["n_train"], "n_test": r["n_test"], "unseen": r["unseen_label_share"],
                            "accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "ece": r["ece"],
                            "capture20": r["review_capture"]["0.2"], "bound20": r["review_capture_bound"]["0.2"],
                            "auroc": r["error_auroc"],
                        })
        print(f"{name}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict]) -> pl.DataFrame:
    """Mean over splits (and seeds) per experiment × reply × label."""
    return (
        pl.DataFrame(rows)
        .group_by("experiment", "reply", "label", maintain_order=True)
        .agg(pl.col("accuracy", "macro_f1", "ece", "capture20", "bound20", "auroc").mean(), pl.len().alias("runs"))
    )


def fmt_table(df: pl.DataFrame, cols: Sequence[str], names: Sequence[str] | None = None) -> str:
    names = list(names or cols)
    head = "| " + " | ".join(names) + " |\n|" + "|".join("---" for _ in cols) + "|\n"
    lines = []
    for r in df.iter_rows(named=True):
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, bool):
                v = "yes" if v else "no"
            elif isinstance(v, float):
                v = f"{v:+.3f}" if c.startswith("Δ") else f"{v:.3f}"
            elif v is None:
                v = "–"
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def verdict(rows: list[dict], *, model: str = "default", anchor: str = "anchor") -> tuple[str, bool]:
    """Per split × reply × label: anchor vs default; and whether the default leads on the
    split-mean accuracy and macro-F1 in every reply × label cell."""
    df = pl.DataFrame(rows)
    a = df.filter(pl.col("experiment") == anchor).select("split", "reply", "label", a_acc="accuracy", a_f1="macro_f1")
    d = df.filter(pl.col("experiment") == model).select("split", "reply", "label", "accuracy", "macro_f1")
    j = a.join(d, on=["split", "reply", "label"], maintain_order="left").with_columns(
        (pl.col("accuracy") - pl.col("a_acc")).alias("Δacc"), (pl.col("macro_f1") - pl.col("a_f1")).alias("ΔF1")
    )
    table = fmt_table(
        j, ["split", "reply", "label", "a_acc", "accuracy", "Δacc", "a_f1", "macro_f1", "ΔF1"],
        ["split", "reply", "label", "anchor acc", "default acc", "Δacc", "anchor F1", "default F1", "ΔF1"],
    )
    m = j.group_by("reply", "label", maintain_order=True).agg(pl.col("Δacc", "ΔF1").mean())
    ok = bool((m["Δacc"] > 0).all() and (m["ΔF1"] > 0).all())
    return table, ok


def markdown(rows: list[dict]) -> str:
    df = pl.DataFrame(rows)
    s = summary(rows)
    cols = ["experiment", "reply", "label", "accuracy", "macro_f1", "ece", "capture20", "bound20", "auroc"]
    names = ["model", "reply", "label", "accuracy", "macro-F1", "ECE", "capture@20%", "best possible", "error AUROC"]
    out = ["### Mean over the four splits (one row per model × reply × label)\n", fmt_table(s, cols, names)]
    base = s.filter(pl.col("experiment") == "anchor").select("reply", "label", a_acc="accuracy", a_f1="macro_f1")
    delta = s.join(base, on=["reply", "label"], maintain_order="left").with_columns(
        (pl.col("accuracy") - pl.col("a_acc")).alias("Δacc"), (pl.col("macro_f1") - pl.col("a_f1")).alias("ΔF1")
    )
    out.append("\n### Difference to the anchor (mean over splits)\n")
    out.append(fmt_table(delta, ["experiment", "reply", "label", "Δacc", "ΔF1"], ["model", "reply", "label", "Δ accuracy", "Δ macro-F1"]))
    if {"anchor", "default"} <= set(df["experiment"].to_list()):
        table, ok = verdict(rows)
        out.append("\n### Default vs anchor, split by split\n")
        out.append(table)
        out.append(
            f"\nDefault ahead of the anchor on split-mean accuracy **and** macro-F1 in every reply × label cell: "
            f"**{'yes' if ok else 'no'}**.\n"
        )
    out.append("\n### Every run\n")
    for name in dict.fromkeys(df["experiment"].to_list()):
        sub = df.filter(pl.col("experiment") == name)
        out.append(f"\n#### {name}: {EXPERIMENTS[name][0]}\n")
        out.append(fmt_table(
            sub,
            ["experiment", "split", "reply", "label", "seed", "n_train", "n_test", "unseen", "accuracy", "macro_f1", "ece",
             "capture20"],
            ["model", "split", "reply", "label", "seed", "n train", "n test", "unseen labels", "accuracy", "macro-F1", "ECE",
             "capture@20%"],
        ))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated experiment names (default: all)")
    ap.add_argument("--cache", default="/tmp/voc_kiwi_tokens.pkl", help="pickle of Kiwi tokens per text")
    ap.add_argument("--json", default="", help="also write the raw rows here")
    ap.add_argument("--write-doc", action="store_true", help=f"refresh the tables in {DOC.relative_to(REPO)}")
    ap.add_argument("--from-json", default="", help="skip the runs: rebuild tables from rows saved with --json")
    ap.add_argument("--splits", default="", help="comma-separated split prefixes, e.g. S1,S2 (default: all)")
    args = ap.parse_args(argv)
    if args.splits:
        keep = tuple(x.strip() for x in args.splits.split(","))
        for k in [k for k in SPLITS if not k.startswith(keep)]:
            del SPLITS[k]
    names = [n for n in args.only.split(",") if n] or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        ap.error(f"unknown experiment(s) {unknown}; known: {list(EXPERIMENTS)}")
    if args.from_json:
        rows = json.loads(Path(args.from_json).read_text("utf-8"))
    else:
        cache = pickle.loads(Path(args.cache).read_bytes()) if os.path.exists(args.cache) else {}
        tok = CachingTokenizer(cache)
        rows = run(names, tok, load_sample())
        if tok.misses:
            Path(args.cache).write_bytes(pickle.dumps(tok.cache))
    print(fmt_table(summary(rows), ["experiment", "reply", "label", "accuracy", "macro_f1", "ece", "capture20"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, ensure_ascii=False, indent=1), "utf-8")
    if args.write_doc:
        text = DOC.read_text("utf-8")
        a, b = text.index(START) + len(START), text.index(END)
        DOC.write_text(text[:a] + "\n" + markdown(rows) + "\n" + text[b:], "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
