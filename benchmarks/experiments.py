"""Model-quality experiments on temporal splits of the shipped sample (docs/model-quality.md).

Every experiment is a classifier recipe run through :func:`voc.backtest.backtest_labels` on the
same temporal splits, seeds, labels (``subject_minor``, ``subject``) and text variants (with and
without the reply). Data: the shipped Incheon Jung-gu complaints (Incheon Jung-gu office
complaint board, via 2hy03/Civil_Complaint), read like ``flows.sources.CsvSource``.

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

from config.settings import sample_csv_path  # noqa: E402
from voc.backtest import backtest_labels  # noqa: E402
from voc.classify.hybrid import HybridClassifier  # noqa: E402
from voc.classify.keyword import KeywordClassifier  # noqa: E402
from voc.classify.linear import DEFAULT_PARAMS, LinearVOCClassifier  # noqa: E402
from voc.schema import validate_voc_frame  # noqa: E402
from voc.tagger import frame_texts, make_classifier  # noqa: E402
from voc.tokenize import KiwiTokenizer  # noqa: E402

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
    ``rounds`` rounds, stopping when the pseudo-labels stop changing (production-notes.md). The
    held-out check: a seeded 20 % of the labelled rows is kept out of the self-training run and
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
        sub = lambda seq, idx: None if seq is None else [seq[i] for i in idx]  # noqa: E731
        base = self._new().fit(sub(texts, tr), sub(labels, tr), tokens=self.tok.model_tokens_batch(sub(texts, tr)), times=sub(times, tr))
        st, _ = self._self_train(sub(texts, tr), sub(labels, tr), sub(times, tr))
        ht = sub(texts, te)
        acc = lambda m: np.mean(np.array(m.predict(ht, tokens=self.tok.model_tokens_batch(ht))) == np.array(sub(labels, te)))  # noqa: E731
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


def _with(**kw: Any) -> dict[str, Any]:
    out = deepcopy(D)
    out.update(kw)
    return out


EXPERIMENTS: dict[str, tuple[str, Factory, dict[str, Any]]] = {
    # name: (what it tests, factory, backtest options)
    "anchor": ("production recipe (make_classifier('anchor'))", kind("anchor"), {}),
    "anchor_raw_labels": ("anchor trained on labels as reviewed (no canonical major)", kind("anchor"), {"canonicalise": False}),
    "anchor_temperature": ("anchor features, one SVM + temperature softmax", linear(calibration="temperature"), {}),
    "anchor_top1": ("anchor features, one SVM + top-1 calibrated confidence", linear(calibration="top1", calibration_cv=5), {}),
    "words_all_vocab": ("anchor with the whole vocabulary", linear(max_features=None, calibration="top1", calibration_cv=5), {}),
    "chars_24_20k": ("+ char_wb 2–4-grams (20k), old default", linear(char_ngrams=20_000, char_ngram_range=(2, 4), calibration="top1", calibration_cv=5), {}),
    "chars_13_30k": ("+ char_wb 1–3-grams (30k)", linear(char_ngrams=30_000, char_ngram_range=(1, 3), calibration="top1", calibration_cv=5), {}),
    "chars_13_30k_title2": ("+ title counted twice", linear(char_ngrams=30_000, char_ngram_range=(1, 3), title_weight=2, calibration="top1", calibration_cv=5), {}),
    "default_C1": ("default with C=1", linear(**_with(C=1.0)), {}),
    "default_C025": ("default with C=0.25", linear(**_with(C=0.25)), {}),
    "default_title1": ("default without title weighting", linear(**_with(title_weight=1)), {}),
    "default_title3": ("default with title ×3", linear(**_with(title_weight=3)), {}),
    "default_unbalanced": ("default without class_weight", linear(**_with(class_weight=None)), {}),
    "default_sigmoid": ("default features, production calibration (sigmoid ensemble cv=3)", linear(**_with(calibration="sigmoid", calibration_cv=3)), {}),
    "default_isotonic": ("default features, isotonic ensemble cv=3", linear(**_with(calibration="isotonic", calibration_cv=3)), {}),
    "default_temperature": ("default, temperature only (no top-1 calibrator)", linear(**_with(calibration="temperature")), {}),
    "default": ("DEFAULT: make_classifier('linear')", kind("linear"), {}),
    "hybrid": ("make_classifier('hybrid'): derived keywords vs default", kind("hybrid"), {}),
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
                for seed in seeds:
                    fac = factory
                    if opts.get("self_training"):
                        unl, _ = frame_texts(te, use_reply=reply)
                        fac = (lambda f, u: lambda tx, dim, t, s: SelfTraining(f, tx, dim, t, s, u))(factory, unl)
                    res = backtest_labels(
                        tr, te, labels=LABELS, use_reply=reply, seed=seed, tokenizer=tok,
                        classifier_factory=fac, model="hybrid" if "hybrid" in name else "linear",
                        **{k: v for k, v in opts.items() if k != "self_training"},
                    )
                    for lab, r in res.items():
                        rows.append({
                            "experiment": name, "split": sname, "reply": reply, "label": lab, "seed": seed,
                            "n_train": r["n_train"], "n_test": r["n_test"], "unseen": r["unseen_label_share"],
                            "accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "ece": r["ece"],
                            "capture20": r["review_capture"]["0.2"],
                        })
        print(f"{name}: {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict]) -> pl.DataFrame:
    """Mean over splits (and seeds) per experiment × reply × label."""
    return (
        pl.DataFrame(rows)
        .group_by("experiment", "reply", "label", maintain_order=True)
        .agg(pl.col("accuracy", "macro_f1", "ece", "capture20").mean(), pl.len().alias("runs"))
    )


def fmt_table(df: pl.DataFrame, cols: Sequence[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "|".join("---" for _ in cols) + "|\n"
    lines = []
    for r in df.iter_rows(named=True):
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, bool):
                v = "yes" if v else "no"
            elif isinstance(v, float):
                v = f"{v:.3f}"
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def markdown(rows: list[dict]) -> str:
    df = pl.DataFrame(rows)
    s = summary(rows)
    out = ["### Mean over the four splits (one row per experiment × reply × label)\n"]
    out.append(fmt_table(s.rename({"experiment": "model"}), ["model", "reply", "label", "accuracy", "macro_f1", "ece", "capture20"]))
    base = s.filter(pl.col("experiment") == "anchor").select("reply", "label", a_acc="accuracy", a_f1="macro_f1")
    delta = s.join(base, on=["reply", "label"]).with_columns(
        (pl.col("accuracy") - pl.col("a_acc")).alias("Δacc vs anchor"), (pl.col("macro_f1") - pl.col("a_f1")).alias("ΔF1 vs anchor")
    )
    out.append("\n### Difference to the anchor (mean over splits, percentage points ×100)\n")
    out.append(fmt_table(delta.rename({"experiment": "model"}), ["model", "reply", "label", "Δacc vs anchor", "ΔF1 vs anchor"]))
    for name in dict.fromkeys(df["experiment"].to_list()):
        sub = df.filter(pl.col("experiment") == name).rename({"experiment": "model"})
        out.append(f"\n#### {name}: {EXPERIMENTS[name][0]}\n")
        out.append(fmt_table(sub, ["model", "split", "reply", "label", "n_train", "n_test", "unseen", "accuracy", "macro_f1", "ece", "capture20"]))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated experiment names (default: all)")
    ap.add_argument("--cache", default="/tmp/voc_kiwi_tokens.pkl", help="pickle of Kiwi tokens per text")
    ap.add_argument("--json", default="", help="also write the raw rows here")
    ap.add_argument("--write-doc", action="store_true", help=f"refresh the tables in {DOC.relative_to(REPO)}")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        ap.error(f"unknown experiment(s) {unknown}; known: {list(EXPERIMENTS)}")
    cache = pickle.loads(Path(args.cache).read_bytes()) if os.path.exists(args.cache) else {}
    tok = CachingTokenizer(cache)
    df = load_sample()
    rows = run(names, tok, df)
    if tok.misses:
        Path(args.cache).write_bytes(pickle.dumps(tok.cache))
    print(summary(rows).to_pandas().to_string() if False else fmt_table(summary(rows), ["experiment", "reply", "label", "accuracy", "macro_f1", "ece", "capture20"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, ensure_ascii=False, indent=1), "utf-8")
    if args.write_doc:
        text = DOC.read_text("utf-8")
        a, b = text.index(START) + len(START), text.index(END)
        DOC.write_text(text[:a] + "\n" + markdown(rows) + "\n" + text[b:], "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
