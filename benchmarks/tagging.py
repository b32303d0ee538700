"""Tagging throughput of the CPU model on the shipped real texts (not a test).

Trains the default CPU tagger (linear) on the sample's rows before --until, then times, on the
last ``--n`` ``all_text``s (title + request + reply):

* ``voc_per_s``: VOCs tagged per second by ``VOCTagger.tag`` (Kiwi analysis in one batch call +
  TF-IDF + SVM for the subject, keyword scorer for the work type), fresh tokenizer with the
  default ``num_workers`` (-1: one Kiwi thread per core), no cache;
* ``voc_frame_per_s``: the month path of a pipeline, ``frame_analyses`` (one Kiwi pass giving
  model tokens and keyword nouns) + ``tag_frame(analyses=…)`` + ``keyword_counts``;
* ``kiwi_only_per_s``: ``KiwiTokenizer.model_tokens_batch`` alone on the same texts;
* ``kiwi_batch_per_s``: Kiwi's own best batch rate on the same texts, the larger of
  ``Kiwi().tokenize(list)`` (``kiwi_batch_default_per_s``, kiwipiepy's default workers) and
  ``Kiwi(num_workers=2).tokenize(list)`` (``kiwi_batch_2w_per_s``);
* ``kiwi_per_text_per_s``: ``Kiwi().tokenize(text)`` once per text (the old way);
* ``ratio`` = voc_per_s / kiwi_only_per_s and ``ratio_vs_batch`` = voc_per_s / kiwi_batch_per_s
  (goal ≥ 0.8: tagging costs little beyond Kiwi's best).

Usage::

    python benchmarks/tagging.py [--n 400] [--repeat 3] [--json]

Each repeat times every variant once, interleaved, so load from other jobs hits them alike;
figures are medians over the repeats. The last line printed is the JSON object (with ``nproc``,
the CPU model and the load average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from config.settings import sample_csv_path
from flows.adapters.sources import CsvSource
from voc.dashboard import keyword_counts
from voc.tagger import frame_analyses, frame_texts, resolve_taxonomy, tag_frame, train_tagger
from voc.taxonomy import default_taxonomy
from voc.tokenize import KiwiTokenizer


def cpu_model() -> str:
    """``model name`` of the first CPU in /proc/cpuinfo (else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    from kiwipiepy import Kiwi

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
    rows = df if a.n == 0 else df.tail(a.n)
    texts, _ = frame_texts(rows, use_reply=True)
    kiwis = {"default": Kiwi(), "2w": Kiwi(num_workers=2)}
    for k in kiwis.values():
        k.tokenize("워밍업")
    load_before = os.getloadavg()[0]

    times: dict[str, list[float]] = {k: [] for k in ("tag", "frame", "kiwi_only", "batch_default", "batch_2w", "per_text")}
    for _ in range(a.repeat):
        tagger.tokenizer = KiwiTokenizer()  # no cache: measure the real cost
        tagger.tokenizer.model_tokens("워밍업")
        times["tag"].append(seconds(lambda: tagger.tag(texts)))

        tagger.tokenizer = KiwiTokenizer()
        tagger.tokenizer.model_tokens("워밍업")

        def month_path() -> None:
            analyses = frame_analyses(rows, use_reply=True, tokenizer=tagger.tokenizer)
            tag_frame(rows, tagger, run_id="bench", analyses=analyses)
            keyword_counts([x.keyword_nouns for x in analyses])

        times["frame"].append(seconds(month_path))
        k = KiwiTokenizer()
        k.model_tokens("워밍업")
        times["kiwi_only"].append(seconds(lambda k=k: k.model_tokens_batch(texts)))
        times["batch_default"].append(seconds(lambda: list(kiwis["default"].tokenize(texts))))
        times["batch_2w"].append(seconds(lambda: list(kiwis["2w"].tokenize(texts))))
        times["per_text"].append(seconds(lambda: [kiwis["default"].tokenize(t) for t in texts]))
    n = len(texts)
    rate = {k: round(n / statistics.median(v), 2) for k, v in times.items()}
    res: dict[str, object] = {
        "n": n,
        "mean_chars": round(sum(map(len, texts)) / n, 1),
        "repeat": a.repeat,
        "voc_per_s": rate["tag"],
        "voc_frame_per_s": rate["frame"],
        "kiwi_only_per_s": rate["kiwi_only"],
        "kiwi_batch_default_per_s": rate["batch_default"],
        "kiwi_batch_2w_per_s": rate["batch_2w"],
        "kiwi_batch_per_s": max(rate["batch_default"], rate["batch_2w"]),
        "kiwi_per_text_per_s": rate["per_text"],
        "kiwi_default_workers": kiwis["default"].num_workers,
    }
    res["ratio"] = round(rate["tag"] / rate["kiwi_only"], 3)
    res["ratio_vs_batch"] = round(rate["tag"] / max(rate["batch_default"], rate["batch_2w"]), 3)
    res["nproc"] = len(os.sched_getaffinity(0))
    res["cpu"] = cpu_model()
    res["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if not a.json:
        print(
            f"tagged {n} VOCs (mean {res['mean_chars']} chars): {res['voc_per_s']} VOC/s "
            f"({res['voc_frame_per_s']} with keywords from the same pass); Kiwi batch best "
            f"{res['kiwi_batch_per_s']} texts/s, per text {res['kiwi_per_text_per_s']}; "
            f"ratio vs batch {res['ratio_vs_batch']}"
        )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
