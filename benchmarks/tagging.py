"""Tagging throughput of the CPU model on the shipped real texts (not a test).

Trains the default CPU tagger (linear) on the sample's rows before --until, then times

* ``voc_per_s``: VOCs tagged per second by ``VOCTagger.tag`` (Kiwi analysis + TF-IDF + SVM for
  the subject, keyword scorer for the work type), fresh tokenizer, no cache;
* ``kiwi_only_per_s``: Kiwi model-token analysis alone on the same texts;
* ``ratio`` = voc_per_s / kiwi_only_per_s (how close tagging is to the tokenizer's bound).

Usage::

    python benchmarks/tagging.py [--n 400] [--repeat 3] [--json]

The last line printed is the JSON object. Median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import polars as pl

from config.settings import sample_csv_path
from flows.sources import CsvSource
from voc.tagger import frame_texts, resolve_taxonomy, train_tagger
from voc.taxonomy import default_taxonomy
from voc.tokenize import KiwiTokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400, help="texts to tag (default 400; 0 = all 996)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--until", default="2019-01", help="train on rows before this month")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    df = CsvSource(sample_csv_path()).frame()
    train = df.filter(pl.col("created_at") < pl.lit(a.until + "-01").str.to_date())
    tok = KiwiTokenizer(cache_size=100_000)
    tax, _ = resolve_taxonomy(default_taxonomy(), train, tokenizer=tok)
    tagger, _ = train_tagger(train, tax, kind="linear", version="bench", tokenizer=tok)
    texts, _ = frame_texts(df if a.n == 0 else df.tail(a.n), use_reply=True)

    tag_s, kiwi_s = [], []
    for _ in range(a.repeat):
        tagger.tokenizer = KiwiTokenizer()  # no cache: measure the real cost
        tagger.tokenizer.model_tokens("워밍업")
        t0 = time.perf_counter()
        tagger.tag(texts)
        tag_s.append(time.perf_counter() - t0)
        k = KiwiTokenizer()
        k.model_tokens("워밍업")
        t0 = time.perf_counter()
        k.model_tokens_batch(texts)
        kiwi_s.append(time.perf_counter() - t0)
    n = len(texts)
    res = {
        "n": n,
        "mean_chars": round(sum(map(len, texts)) / n, 1),
        "voc_per_s": round(n / statistics.median(tag_s), 2),
        "kiwi_only_per_s": round(n / statistics.median(kiwi_s), 2),
    }
    res["ratio"] = round(res["voc_per_s"] / res["kiwi_only_per_s"], 3)
    res["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    if not a.json:
        print(f"tagged {n} VOCs (mean {res['mean_chars']} chars): {res['voc_per_s']} VOC/s; Kiwi alone {res['kiwi_only_per_s']} texts/s")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
