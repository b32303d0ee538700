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

**An existing cluster** (``--cluster 0,1,2``): instead of the two runs above, a Prefect server
(``prefect server start`` on a free port, its own ``PREFECT_HOME``) is started, then the month is
run once per worker count N (0: ``VOC_TASK_RUNNER=thread`` against that server) on a Dask cluster
started outside the flow — ``dask scheduler`` and N ``dask worker --nthreads 1 --nworkers 1``
processes on free ports, ``VOC_TASK_RUNNER=tcp://127.0.0.1:PORT``, workers and CLI with
``PREFECT_API_URL`` of that server — as deployments/README.md describes. Each run's flow process
times its own steps (the CLI is started through :data:`_TIMED_CLI`, which wraps the named
functions of :mod:`flows.monthly`): ``serial_s`` is the CLI's wall time minus the time in
``_run_buildings`` (the building tasks, cluster connection included), i.e. what no number of
workers shortens; ``steps`` gives the wrapped steps' seconds. JSON: ``{vocs, server_thread_s,
cluster: {N: {wall_s, serial_s, steps}}, speedup_1_to_2, same_outputs, …}``::

    python benchmarks/month.py --json --buildings 60 --per-building 40 --cluster 0,1,2
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
from typing import Any

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


_TIMED_STEPS = ("read_month", "_run_model", "_reserve_run_id", "read_review_sheet", "_run_buildings",
                "_sync_month_review", "_finish_month")
_TIMED_CLI = """
import atexit, json, sys, time
t0 = time.perf_counter()
import flows.monthly as fm
spent = {}
def timed(name, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
    return wrapper
for name in __STEPS__:
    setattr(fm, name, timed(name, getattr(fm, name)))
atexit.register(lambda: print("VOC_BENCH_STEPS " + json.dumps({"process_s": time.perf_counter() - t0, **spent}), flush=True))
from flows.cli.main import main
sys.argv = ["voc", *sys.argv[1:]]
main()
""".replace("__STEPS__", repr(_TIMED_STEPS))
"""The CLI with the named steps of :mod:`flows.monthly` timed; prints ``VOC_BENCH_STEPS {json}``."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """A background process in its own session (stopped with :func:`_stop`), output to ``log``."""
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each started process's own group (its children too), SIGKILL after 30 s."""
    import signal

    for p in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _wait_for(check: Any, what: str, timeout: float = 600.0) -> None:
    t0 = time.perf_counter()
    while not check():
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"{what} not up after {timeout:.0f} s")
        time.sleep(1.0)


def start_prefect_server(env: dict[str, str], work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``prefect server start`` on a free port (its own PREFECT_HOME); returns it and its API URL."""
    import urllib.request

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    proc = _start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
                   "--no-ui"], env, work, work / "prefect-server.log")

    def healthy() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"prefect server exited {proc.returncode}: see {work / 'prefect-server.log'}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    _wait_for(healthy, "prefect server")
    return proc, url


def start_dask_cluster(workers: int, env: dict[str, str], work: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    """``dask scheduler`` and ``workers`` × ``dask worker --nthreads 1 --nworkers 1``; returns the
    processes (scheduler first) and the scheduler address once every worker has joined."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{_free_port()}"
    log = work / f"dask-{workers}.log"
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"], env, work, log)]
    _wait_for(lambda: "Scheduler at" in log.read_text(errors="replace"), "dask scheduler")
    from flows.runners import SINGLE_THREAD_ENV

    worker_env = {**env, **SINGLE_THREAD_ENV}  # as deployments/README.md starts them
    procs += [_start([dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"], worker_env, work, log)
              for _ in range(workers)]
    with Client(address, timeout=120) as client:
        client.wait_for_workers(workers, timeout=600)
    return procs, address


def run_timed_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict[str, float]]:
    """``voc …`` through :data:`_TIMED_CLI`: (wall seconds, seconds per timed step). Raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _TIMED_CLI, *args], env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write((proc.stdout + proc.stderr)[-4000:])
        raise SystemExit(f"voc {' '.join(args)} exited {proc.returncode}")
    line = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("VOC_BENCH_STEPS ")][-1]
    return wall, json.loads(line.split(" ", 1)[1])


def cluster_runs(a: argparse.Namespace, base: dict[str, str], work: Path, src: Path) -> dict[str, Any]:
    """The ``--cluster`` case (module docstring): one run per worker count (0: the thread runner)."""
    counts = [int(n) for n in a.cluster.split(",")]
    base = dict(base, PREFECT_HOME=str(work / "prefect-home"))
    server, url = start_prefect_server(base, work)
    env = dict(base, PREFECT_API_URL=url)
    runs: dict[str, Any] = {}
    outputs = {}
    try:
        for n in counts:  # 0: the thread runner against the same server
            procs, address = start_dask_cluster(n, env, work) if n else ([], "thread")
            try:
                storage = work / f"out-cluster-{n}"
                subprocess.run(["cp", "-r", str(work / "models"), str(storage)], check=True)
                wall, steps = run_timed_cli(["run", "--mode", "full", "--month", a.month, "--source", str(src),
                                             "--storage", str(storage)], dict(env, VOC_TASK_RUNNER=address), work)
            finally:
                _stop(procs)
            outputs[n] = tagged_outputs(storage, a.month)
            runs[str(n)] = {"wall_s": round(wall, 1), "serial_s": round(wall - steps.get("_run_buildings", 0.0), 1),
                            "steps": {k: round(v, 2) for k, v in steps.items()}}
            if not a.json:
                print(f"{'thread' if n == 0 else f'{n} worker(s)'}: {runs[str(n)]}", flush=True)
    finally:
        _stop([server])
    res: dict[str, Any] = {"vocs": a.buildings * a.per_building}
    if "0" in runs:
        res["server_thread_s"] = runs.pop("0")["wall_s"]
    res["cluster"] = runs
    if "1" in runs and "2" in runs:
        res["speedup_1_to_2"] = round(runs["1"]["wall_s"] / runs["2"]["wall_s"], 2)
    first = next(iter(outputs.values()))
    res["same_outputs"] = all(o == first for o in outputs.values()) and len(first) == a.buildings
    return res


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
    ap.add_argument("--cluster", default="", help="worker counts, e.g. 0,1,2 (0: threads): runs on an existing Dask cluster (docstring)")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="voc-month-bench-") as tmp:
        work = Path(tmp)
        src = work / "month.csv"
        synthetic_month(a.buildings, a.per_building, a.month, a.seed).write_csv(src)
        base = {k: v for k, v in os.environ.items() if not k.startswith("VOC_")}
        base.update({"VOC_MODEL__CACHE_DIR": str(work / "cache"), "PYTHONPATH": str(ROOT)})
        run_cli(["train", "--until", "2019-11", "--storage", str(work / "models")], base, work)
        if a.cluster:
            res = cluster_runs(a, base, work, src)
            print(json.dumps({"buildings": a.buildings, **res, "cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)}))
            return
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
