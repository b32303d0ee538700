"""One huge building-month through ``voc.pipeline.tag_building``: time and peak memory (not a test).

Issue 21: a building-month of 200,000 VOCs once reached 4.8 GB RSS and crashed after tagging.
This generates a **synthetic single-building month** from the shipped real complaints (the
generator of ``benchmarks/month.py``: real titles, requests and replies drawn with replacement,
seeded, fresh ids ``SYN-…``, building ``B001``, dates spread over 2020-01), trains one small
model first (``voc.tagger.train_tagger``, linear, on the sample's VOCs before ``--train-until``,
with its evidence pool and group vectorizer, as tests do), and runs ``tag_building`` on each size
in a **fresh process** so that each size's peak resident memory (``resource.getrusage``
``ru_maxrss`` of that process) is its own.

Each row of the sample is drawn about ``size / 996`` times, so a large month is full of exact
copies: the near-duplicate grouping of a cell above ``voc.groups.MAX_CELL_ROWS`` (MinHash LSH)
groups them, which is the hostile case (a flood of re-sent posts).

Usage::

    nice -n 10 python benchmarks/huge_building.py --sizes 5000 50000 [200000] [--mode full]

Prints one JSON object per size (``vocs``, ``seconds``, ``vocs_per_s``, ``peak_rss_mb``,
``groups``, ``grouped_vocs``, ``evidence_rows``) and records nothing; docs/benchmarks.md "Huge
building" holds the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_model(path: Path, until: str) -> None:
    """Train the small linear model and pickle it to ``path``."""
    from datetime import date

    import polars as pl

    from config.settings import sample_csv_path
    from voc.schema import validate_voc_frame
    from voc.tagger import resolve_taxonomy, train_tagger
    from voc.taxonomy import default_taxonomy

    df = validate_voc_frame(pl.read_csv(sample_csv_path(), infer_schema=False))
    train = df.filter(pl.col("created_at") < date.fromisoformat(until))
    tax, _ = resolve_taxonomy(default_taxonomy(), train, tokenizer=None)
    tagger, _ = train_tagger(train, tax, kind="linear", version="bench")
    path.write_bytes(pickle.dumps(tagger))


def run_one(model: Path, size: int, mode: str, seed: int) -> dict:
    """Tag one synthetic building-month of ``size`` VOCs in this process; its figures."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from month import synthetic_month

    from voc import pipeline
    from voc.months import Month
    from voc.schema import validate_voc_frame

    tagger = pickle.loads(model.read_bytes())
    rows = validate_voc_frame(synthetic_month(1, size, "2020-01", seed))
    ctx = None
    if mode == "full":
        ctx = pipeline.DashboardContext("B001", "합성 건물 001", Month.parse("2020-01"), "bench", "2020-02-01 02:00 KST")
    t0 = time.perf_counter()
    out = pipeline.tag_building(
        rows, tagger, run_id="bench", dashboard=ctx, progress=lambda line: print(line, file=sys.stderr, flush=True)
    )
    wall = time.perf_counter() - t0
    gids = [g for g in out.groups if g]
    return {
        "vocs": out.frame.height,
        "mode": mode,
        "seconds": round(wall, 1),
        "vocs_per_s": round(out.frame.height / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # Linux: KiB
        "groups": len(set(gids)),
        "grouped_vocs": len(gids),
        "evidence_rows": None if out.evidence is None else len(out.evidence),
        "dashboard_mb": None if out.dashboard_html is None else round(len(out.dashboard_html) / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5_000, 50_000])
    ap.add_argument("--mode", choices=("tagging-only", "full"), default="tagging-only")
    ap.add_argument("--train-until", default="2014-01-01", help="train on sample VOCs before this date")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)  # child process: the pickled model
    args = ap.parse_args()
    if args.model is not None:  # child: one size
        print(json.dumps(run_one(args.model, args.sizes[0], args.mode, args.seed), ensure_ascii=False))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tagger.pkl"
        t0 = time.perf_counter()
        train_model(model, args.train_until)
        print(json.dumps({"train_s": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count(),
                          "python": platform.python_version()}), flush=True)
        for size in args.sizes:
            res = subprocess.run(
                [sys.executable, __file__, "--model", str(model), "--sizes", str(size), "--mode", args.mode,
                 "--seed", str(args.seed)],
                cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
            )
            print(res.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
