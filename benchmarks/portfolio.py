"""Portfolio page build time (docs/benchmarks.md "Portfolio page").

Builds ``{prefix}/index.json`` + ``index.html`` (``voc.portfolio.build_portfolio`` and
``render_portfolio``, font embedded as in production) from synthetic month indexes: 100
buildings × 24 months, VOC counts Poisson(40) with a few buildings rising in the last month,
review backlogs, urgent/repeat counts and one mass complaint per ten buildings — the shape
``flows.monthly.update_month_index`` stores. The storage reads of the flow (24 small JSON files)
are not included.

Usage::

    python benchmarks/portfolio.py [--buildings 100] [--months 24] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def synthetic_months(n_buildings: int, n_months: int, seed: int = 24) -> dict[str, dict[str, dict]]:
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict]] = {}
    y, m = 2018, 1
    for k in range(n_months):
        ym = f"{y + (m - 1 + k) // 12:04d}{(m - 1 + k) % 12 + 1:02d}"
        last = k == n_months - 1
        month: dict[str, dict] = {}
        for b in range(1, n_buildings + 1):
            n = int(rng.poisson(40 * (3 if last and b % 17 == 0 else 1)))
            bid = str(b)
            month[bid] = {
                "building_id": bid, "building_name": f"건물 {b}호관", "n_vocs": n, "n_reviewed": 0,
                "n_low_confidence_unreviewed": int(rng.integers(0, n // 3 + 1)), "n_estimated": {},
                "dashboard_href": f"{bid}/dashboard_{bid}_{ym}.html", "drift": [],
                "n_urgent": int(rng.poisson(1)), "n_repeat": int(rng.poisson(2)),
                "mass_issues": (
                    [{"size": 12, "voc_id": f"{bid}-1", "title": "주차장 누수 민원", "subject": "시설>누수"}] if b % 10 == 0 else []
                ),
            }
        out[ym] = month
    return out


def main() -> None:
    from voc.portfolio import build_portfolio, render_portfolio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=100)
    ap.add_argument("--months", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    months = synthetic_months(a.buildings, a.months)
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        data = build_portfolio(months)
        t1 = time.perf_counter()
        html = render_portfolio(data, generated_at="2026-12-01 02:00 KST", run_id="full_bench")
        t2 = time.perf_counter()
        times.append((t1 - t0, t2 - t1))
    build, render = (min(t[i] for t in times) for i in (0, 1))
    print(json.dumps({
        "buildings": a.buildings, "months": a.months, "build_s": round(build, 4), "render_s": round(render, 3),
        "html_kb": round(len(html.encode()) / 1024, 1), "json_kb": round(len(json.dumps(data, ensure_ascii=False).encode()) / 1024, 1),
        "rises": len(data["rises"]), "mass_issues": len(data["mass_issues"]),
    }))


if __name__ == "__main__":
    main()
