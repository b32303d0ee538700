"""A whole monthly ``full`` run at scale: thread runner vs a 2-process local Dask cluster (not a test).

Builds a **synthetic month** from the shipped real complaints (Incheon Jung-gu sample): for each
of ``--buildings`` buildings, ``--per-building`` rows drawn with replacement (seeded) from the
sample's 996 real VOCs — title, request, reply and labels unchanged — given fresh ids
(``SYN-000001`` …), building ``B001`` … (name ``합성 건물 001``) and a date in the benchmark month
(``--month``, default 2020-01: after the sample's last VOC, so no real row mixes in). The texts
are real; only the distribution over buildings is invented. One model is trained first
(``voc train --until 2019-11`` on the sample, the default linear kind), then the same month is
run twice from the command line, as an operator would run it:

* ``thread_s``: ``VOC_TASK_RUNNER=thread voc run --mode full`` (the default);
* ``dask_s``: ``VOC_TASK_RUNNER=dask VOC_DASK_WORKERS=2 voc run --mode full`` (cluster start and
  stop included).

Both write to local storage (a temporary directory) and both runs' tagged CSVs are compared
byte for byte with the ``run_id`` column removed (``same_outputs``). ``peak_rss_mb`` is the
largest resident memory of the whole process tree (CLI, Prefect's local server, Dask workers)
seen during the Dask run, sampled every 0.2 s with psutil.

Usage::

    python benchmarks/month.py --json [--buildings 100] [--per-building 100] [--workers 2]

The last line printed is the JSON object ``{buildings, vocs, thread_s, dask_s, ratio,
vocs_per_s, peak_rss_mb, …}`` (``ratio`` = thread_s / dask_s; ``vocs_per_s`` of the Dask run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import psutil

ROOT = Path(__file__).resolve().parents[1]


def synthetic_month(buildings: int, per_building: int, month: str, seed: int) -> pl.DataFrame:
    """``buildings × per_building`` real sample rows resampled into fresh buildings and ids."""
    from config.settings import sample_csv_path
    from flows.adapters.sources import CsvSource

    real = CsvSource(sample_csv_path()).frame()
    n = buildings * per_building
    rows = real.sample(n=n, with_replacement=True, seed=seed)
    y, m = map(int, month.split("-"))
    days = pl.Series([(i * 7919) % 28 + 1 for i in range(n)])  # spread over days 1..28
    bids = [f"B{(i // per_building) + 1:03d}" for i in range(n)]
    return rows.with_columns(
        pl.Series("voc_id", [f"SYN-{i + 1:06d}" for i in range(n)]),
        pl.Series("building_id", bids),
        pl.Series("building_name", [f"합성 건물 {b[1:]}" for b in bids]),
        pl.concat_str([pl.lit(f"{y:04d}-{m:02d}-"), days.cast(pl.Utf8).str.zfill(2)]).alias("created_at"),
    ).select(real.columns)


def _tree_rss(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):  # exited since it was listed
            total += q.memory_info().rss
    return total


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    """Run ``voc …``; return (wall seconds, peak RSS bytes of its process tree). Raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli.main", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(out[-4000:])
        raise SystemExit(f"voc {' '.join(args)} exited {proc.returncode}")
    return wall, peak


def tagged_outputs(storage: Path, month: str) -> dict[str, bytes]:
    """Per building, its tagged CSV without the run_id column (CSV bytes)."""
    out = {}
    for p in sorted((storage / "stat" / "voc-dev" / month.replace("-", "")).glob("*/tagged_*.csv")):
        df = pl.read_csv(p, infer_schema=False).drop("run_id")
        out[p.parent.name] = df.write_csv().encode()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buildings", type=int, default=100)
    ap.add_argument("--per-building", type=int, default=100)
    ap.add_argument("--month", default="2020-01")
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="voc-month-bench-") as tmp:
        work = Path(tmp)
        src = work / "month.csv"
        synthetic_month(a.buildings, a.per_building, a.month, a.seed).write_csv(src)
        base = {k: v for k, v in os.environ.items() if not k.startswith("VOC_")}
        base.update({"VOC_MODEL__CACHE_DIR": str(work / "cache"), "PYTHONPATH": str(ROOT)})
        run_cli(["train", "--until", "2019-11", "--storage", str(work / "models")], base, work)
        timings = {}
        outputs = {}
        for runner in ("thread", "dask"):
            storage = work / f"out-{runner}"
            # the trained model, copied into each run's storage (champion pointer included)
            subprocess.run(["cp", "-r", str(work / "models"), str(storage)], check=True)
            env = dict(base, VOC_TASK_RUNNER=runner, VOC_DASK_WORKERS=str(a.workers))
            wall, peak = run_cli(["run", "--mode", "full", "--month", a.month, "--source", str(src),
                                  "--storage", str(storage)], env, work)
            timings[runner] = (wall, peak)
            outputs[runner] = tagged_outputs(storage, a.month)
            if not a.json:
                print(f"{runner}: {wall:.1f} s, peak RSS {peak / 2**20:.0f} MiB", flush=True)

    vocs = a.buildings * a.per_building
    thread_s, dask_s = timings["thread"][0], timings["dask"][0]
    res = {
        "buildings": a.buildings,
        "vocs": vocs,
        "thread_s": round(thread_s, 1),
        "dask_s": round(dask_s, 1),
        "ratio": round(thread_s / dask_s, 2),
        "vocs_per_s": round(vocs / dask_s, 1),
        "thread_vocs_per_s": round(vocs / thread_s, 1),
        "peak_rss_mb": round(timings["dask"][1] / 2**20),
        "thread_peak_rss_mb": round(timings["thread"][1] / 2**20),
        "dask_workers": a.workers,
        "same_outputs": outputs["thread"] == outputs["dask"] and len(outputs["thread"]) == a.buildings,
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
