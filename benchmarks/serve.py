"""Latency and throughput of the real-time tagging service (``voc serve``), not a test.

Sends the shipped sample's real texts (title + request, and every other one with its reply, as
registered and as answered VOCs) to a running service:

1. **single-request latency**: ``--n`` requests one after another (after ``--warmup``), half
   without reply (registration-time tagger) and half with (reply-aware tagger); p50 and p99 in
   milliseconds, overall and per variant, measured at the client (connection reused);
2. **throughput**: ``--requests`` requests from ``--concurrency`` connections at once (16);
   ``rps`` = requests / wall seconds, with the latency percentiles under that load;
3. **errors**: any answer other than 200, or a transport error, in either phase.

Usage::

    voc serve --storage ./voc-data &          # with VOC_SERVE__API_KEYS='["<key>"]'
    python benchmarks/serve.py --json --url http://127.0.0.1:8000 --key <key>

The last line printed is the JSON object ``{p50_ms, p99_ms, rps, errors, …}`` (``p50_ms`` and
``p99_ms`` are the single-request figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time

import httpx
import numpy as np

from config.settings import sample_csv_path
from flows.adapters.sources import CsvSource


def sample_bodies(n: int) -> list[dict[str, str]]:
    """``n`` request bodies over the sample's VOCs that have a reply, alternating without and
    with it (so both variants answer the same texts)."""
    df = CsvSource(sample_csv_path()).frame()
    rows = [r for r in df.select("title", "request_contents", "reply").to_dicts() if r["reply"].strip()]
    out = []
    for i in range(n):
        r = rows[(i // 2) % len(rows)]
        body = {"title": r["title"], "request_contents": r["request_contents"]}
        if i % 2:
            body["reply"] = r["reply"]
        out.append(body)
    return out


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 (numpy's linear interpolation) of durations in seconds, as milliseconds."""
    if not seconds:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    a = np.asarray(seconds) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2)}


def sequential(client: httpx.Client, bodies: list[dict[str, str]]) -> tuple[dict[str, list[float]], int]:
    """Latency per variant (seconds) of one request at a time, and the errors."""
    lat: dict[str, list[float]] = {}
    errors = 0
    for b in bodies:
        t0 = time.perf_counter()
        try:
            r = client.post("/v1/tag", json=b)
        except httpx.HTTPError:
            errors += 1
            continue
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            errors += 1
            continue
        lat.setdefault(r.json()["variant"], []).append(dt)
    return lat, errors


async def concurrent(url: str, key: str, bodies: list[dict[str, str]], concurrency: int) -> tuple[list[float], int, float]:
    """Latencies (seconds), errors and wall seconds of ``bodies`` sent from ``concurrency``
    connections."""
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits) as c:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                b = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    r = await c.post("/v1/tag", json=b)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return lat, errors, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="Base URL of a running `voc serve`")
    ap.add_argument("--key", default=os.environ.get("VOC_BENCH_KEY"), help="A bearer key (default $VOC_BENCH_KEY)")
    ap.add_argument("--n", type=int, default=400, help="Single requests, half with a reply (default 400)")
    ap.add_argument("--warmup", type=int, default=20, help="Requests sent first and not measured")
    ap.add_argument("--requests", type=int, default=800, help="Requests of the throughput phase (default 800)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--json", action="store_true", help="Print only the JSON line")
    a = ap.parse_args()
    if not a.key:
        ap.error("--key (or VOC_BENCH_KEY) is required")

    bodies = sample_bodies(max(a.n, a.requests) + a.warmup)
    headers = {"Authorization": f"Bearer {a.key}"}
    with httpx.Client(base_url=a.url, headers=headers, timeout=60) as c:
        ready = c.get("/readyz").json()
        sequential(c, bodies[: a.warmup])
        lat, seq_errors = sequential(c, bodies[a.warmup : a.warmup + a.n])
    load_lat, load_errors, wall = asyncio.run(concurrent(a.url, a.key, bodies[a.warmup : a.warmup + a.requests], a.concurrency))
    every = [x for v in lat.values() for x in v]
    res = {
        **percentiles_ms(every),
        "rps": round((a.requests - load_errors) / wall, 2),
        "errors": seq_errors + load_errors,
        "n": len(every),
        "per_variant": {v: {**percentiles_ms(x), "n": len(x)} for v, x in sorted(lat.items())},
        "under_load": {**percentiles_ms(load_lat), "concurrency": a.concurrency, "requests": a.requests, "wall_s": round(wall, 2)},
        "mean_chars": round(sum(len(b["title"]) + len(b["request_contents"]) + len(b.get("reply", "")) for b in bodies) / len(bodies), 1),
        "model_version": ready.get("model_version"),
        "client_machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    if not a.json:
        print(
            f"single request: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms ({res['n']} requests); "
            f"concurrency {a.concurrency}: {res['rps']} req/s; errors {res['errors']}"
        )
    print(json.dumps(res, ensure_ascii=False))


if __name__ == "__main__":
    main()
