"""The portfolio page: what headquarters acts on, across all buildings and months.

``{prefix}/index.html`` (and its data, ``{prefix}/index.json``) is rebuilt by every monthly run
from the stored month indexes (``{prefix}/{yyyymm}/index.json``) only — nothing is re-tagged. It
shows

* a **heatmap** of VOC volume, buildings × the last :data:`HEATMAP_MONTHS` months (an HTML
  table whose cell colour deepens with the count; each cell links that month's dashboard);
* the **largest rises**: buildings whose share of the portfolio's VOCs in the latest month is
  significantly above their share in the :data:`BASELINE_MONTHS` months before — the drift
  alerts' rule (``voc.drift``): pooled two-proportion z-test
  (:func:`voc.drift.two_proportion_p_value`) at p < :data:`RISE_ALPHA`, at least
  :data:`RISE_MIN_VOCS` VOCs this month;
* the **open review backlog** (low-confidence VOCs nobody reviewed, the month index's
  ``n_low_confidence_unreviewed``) per building and month;
* **new mass complaints**: near-duplicate groups of at least :data:`MASS_MIN_SIZE` VOCs of the
  latest :data:`MASS_MONTHS` months (``mass_issues`` of the month index, :func:`index_extras`), and the month's
  urgent and repeated VOC counts (:mod:`voc.urgency`);
* **new-topic candidates** (신규 주제 후보, :mod:`voc.new_topics`) of the latest month: clusters of
  low-confidence VOCs that fit no class, for a person to judge — never added to the taxonomy;
* links to every month index and, per cell, dashboard (relative links as stored).

Pure: plain data in, HTML / JSON-native dicts out; texts masked
(:func:`voc.privacy.mask_personal_details`) and escaped (jinja2 autoescape).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from voc.privacy import mask_personal_details

__all__ = [
    "HEATMAP_MONTHS",
    "BASELINE_MONTHS",
    "RISE_ALPHA",
    "RISE_MIN_VOCS",
    "MASS_MIN_SIZE",
    "MASS_MONTHS",
    "index_extras",
    "build_portfolio",
    "render_portfolio",
]

HEATMAP_MONTHS = 12
"""Months shown in the heatmap and backlog tables (issue 24: the last 12 months)."""

BASELINE_MONTHS = 6
"""Months before the latest one pooled as a building's baseline (issue 24: 6-month baseline)."""

RISE_ALPHA = 0.05
"""Significance level of a rise (``voc.drift.SHIFT_ALPHA``'s rule: p < 0.05)."""

RISE_MIN_VOCS = 5
"""Fewest VOCs of a building in the latest month for a rise to be reported."""

MASS_MIN_SIZE = 5
"""Smallest near-duplicate group listed as a new mass complaint."""

MASS_MONTHS = 3
"""Mass complaints are listed from the latest month and the two before it (a campaign at the end
of one month is still news when the next month's page is read)."""


def index_extras(frame: pl.DataFrame, issues: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """What a building-month adds to its month index entry for the portfolio (JSON-native).

    Parameters
    ----------
    frame
        ``N × C`` tagged or reviewed frame of one building-month; ``urgent``/``repeat_of`` are
        counted when present.
    issues
        The building-month's 주요 이슈 (``voc.groups.group_summaries``), or None.

    Returns
    -------
    dict
        ``n_urgent`` (int), ``n_repeat`` (int) and ``mass_issues``: per group of at least
        :data:`MASS_MIN_SIZE` VOCs, ``size``, ``voc_id`` and ``title`` of its representative
        (masked), ``subject`` (its most frequent ``major>minor`` tag or ``""``).
    """
    n_urgent = int(frame["urgent"].cast(pl.Boolean, strict=False).fill_null(False).sum()) if "urgent" in frame.columns else 0
    n_repeat = int(frame["repeat_of"].is_not_null().sum()) if "repeat_of" in frame.columns else 0
    mass = []
    for g in issues or ():
        if int(g.get("size", 0)) < MASS_MIN_SIZE:
            continue
        rep = g.get("representative") or {}
        top = g.get("top_subject") or []
        mass.append({
            "size": int(g["size"]),
            "voc_id": str(rep.get("voc_id", "")),
            "title": mask_personal_details(str(rep.get("title") or "")),
            "subject": str(top[0][0]) if top else "",
        })
    return {"n_urgent": n_urgent, "n_repeat": n_repeat, "mass_issues": mass}


def _count(entry: Mapping[str, Any], key: str, where: str) -> int:
    v = entry.get(key, 0)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{where}.{key} must be a non-negative int, got {v!r}")
    return v


@dataclass(frozen=True, slots=True)
class _MonthIndexes:
    """The stored month indexes read once: months ascending, month page links, and per building
    its VOC counts, open backlog, masked name and dashboard links by ``yyyymm``."""

    order: list[str]
    hrefs: dict[str, str]
    counts: dict[str, dict[str, int]]
    backlog: dict[str, dict[str, int]]
    names: dict[str, str]
    dash: dict[str, dict[str, str]]


def _read_month_indexes(months: Mapping[str, Mapping[str, Any]], month_hrefs: Mapping[str, str] | None,
                        dashboard_hrefs: Mapping[str, Mapping[str, str]] | None = None) -> _MonthIndexes:
    """Check the ``yyyymm`` keys and each building entry's counts (:func:`build_portfolio`) and
    collect them; raises ``ValueError`` naming the entry."""
    for m in months:
        if not (isinstance(m, str) and len(m) == 6 and m.isdigit()):
            raise ValueError(f"months: key {m!r} is not a yyyymm month")
    order = sorted(months)
    idx = _MonthIndexes(order, {m: (month_hrefs or {}).get(m) or f"{m}/index.html" for m in order}, {}, {}, {}, {})
    for m in order:
        for bid, e in months[m].items():
            where = f"months[{m}][{bid}]"
            if bid == "new_topics" and isinstance(e, list):  # the month's 신규 주제 후보, not a building
                continue
            if not isinstance(e, Mapping):
                raise ValueError(f"{where} must be a mapping, got {type(e).__name__}")
            bid = str(bid)
            idx.counts.setdefault(bid, {})[m] = _count(e, "n_vocs", where)
            idx.backlog.setdefault(bid, {})[m] = _count(e, "n_low_confidence_unreviewed", where)
            if e.get("building_name"):
                idx.names[bid] = mask_personal_details(str(e["building_name"])).strip()
            given = (dashboard_hrefs or {}).get(m, {}).get(bid)
            if given:  # an absolute link (presigned on a private bucket): used as given
                idx.dash.setdefault(bid, {})[m] = given
            elif e.get("dashboard_href"):
                href = idx.hrefs[m]
                base = href.rsplit("/", 1)[0] + "/" if "/" in href else ""
                idx.dash.setdefault(bid, {})[m] = base + str(e["dashboard_href"])
    return idx


def _heatmap_rows(idx: _MonthIndexes, bids: list[str], heat: list[str]) -> list[dict[str, Any]]:
    """Per building, its counts, backlog and dashboard links over the ``heat`` months and their sums."""
    return [
        {
            "building_id": b,
            "name": idx.names.get(b, ""),
            "counts": [idx.counts[b].get(m) for m in heat],
            "backlog": [idx.backlog[b].get(m) if m in idx.counts[b] else None for m in heat],
            "hrefs": [idx.dash.get(b, {}).get(m) for m in heat],
            "total": sum(idx.counts[b].get(m, 0) for m in heat),
            "open_backlog": sum(idx.backlog[b].get(m, 0) for m in heat),
        }
        for b in bids
    ]


def _rises(idx: _MonthIndexes, bids: list[str], totals: Mapping[str, int], latest: str) -> list[dict[str, Any]]:
    """Buildings whose share of the ``latest`` month's VOCs is significantly above their share of
    the :data:`BASELINE_MONTHS` months before (most significant first)."""
    from voc.drift import two_proportion_p_value
    from voc.schema import building_sort_key

    base_months = [m for m in idx.order if m < latest][-BASELINE_MONTHS:]
    n1 = totals[latest]
    n2 = sum(totals[m] for m in base_months)
    rises: list[dict[str, Any]] = []
    for b in bids:
        x1 = idx.counts[b].get(latest, 0)
        x2 = sum(idx.counts[b].get(m, 0) for m in base_months)
        if x1 < RISE_MIN_VOCS or n1 < 1 or n2 < 1:
            continue
        if x1 / n1 <= x2 / n2:
            continue
        p = two_proportion_p_value(x1, n1, x2, n2)
        if p < RISE_ALPHA:
            mean = x2 / len(base_months)
            rises.append({
                "building_id": b, "name": idx.names.get(b, ""), "n_vocs": x1, "baseline_mean": round(mean, 1),
                "ratio": round(x1 / mean, 2) if mean else None, "p_value": p,
                "href": idx.dash.get(b, {}).get(latest),
            })
    rises.sort(key=lambda r: (r["p_value"], -r["n_vocs"], building_sort_key(r["building_id"])))
    return rises


def _mass_issues(months: Mapping[str, Mapping[str, Any]], idx: _MonthIndexes, bids: list[str], latest: str) -> list[dict[str, Any]]:
    """The stored mass complaints of the :data:`MASS_MONTHS` months up to ``latest`` (newest month,
    then largest, first)."""
    from voc.schema import building_sort_key

    mass: list[dict[str, Any]] = []
    for m in [m for m in idx.order if m <= latest][-MASS_MONTHS:]:
        for b in bids:
            for g in (months[m].get(b) or {}).get("mass_issues") or ():
                mass.append({
                    "building_id": b, "name": idx.names.get(b, ""), "size": int(g.get("size", 0)), "yyyymm": m,
                    "label": f"{m[:4]}-{m[4:]}",
                    "title": mask_personal_details(str(g.get("title") or "")), "subject": str(g.get("subject") or ""),
                    "href": idx.dash.get(b, {}).get(m),
                })
    mass.sort(key=lambda g: (-int(g["yyyymm"]), -g["size"], building_sort_key(g["building_id"])))
    return mass


def _alerts(months: Mapping[str, Mapping[str, Any]], idx: _MonthIndexes, bids: list[str], latest: str) -> list[dict[str, Any]]:
    """Buildings with urgent or repeated VOCs in the ``latest`` month (most urgent first)."""
    from voc.schema import building_sort_key

    alerts: list[dict[str, Any]] = []
    for b in bids:
        e = months[latest].get(b) or {}
        nu, nr = _count(e, "n_urgent", f"months[{latest}][{b}]"), _count(e, "n_repeat", f"months[{latest}][{b}]")
        if nu or nr:
            alerts.append({"building_id": b, "name": idx.names.get(b, ""), "n_urgent": nu, "n_repeat": nr,
                           "href": idx.dash.get(b, {}).get(latest)})
    alerts.sort(key=lambda a: (-a["n_urgent"], -a["n_repeat"], building_sort_key(a["building_id"])))
    return alerts


def build_portfolio(
    months: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    month_hrefs: Mapping[str, str] | None = None,
    dashboard_hrefs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The portfolio's data (what ``index.json`` stores and :func:`render_portfolio` shows).

    Parameters
    ----------
    months
        ``yyyymm`` (``"201911"``) → that month's index (``{prefix}/{yyyymm}/index.json``:
        ``building_id`` → entry with ``n_vocs``, ``n_low_confidence_unreviewed``, optionally
        ``building_name``, ``dashboard_href`` (relative to the month folder), ``n_urgent``,
        ``n_repeat``, ``mass_issues``).
    month_hrefs
        ``yyyymm`` → link to that month's index page relative to the portfolio page; default
        ``"{yyyymm}/index.html"``. A dashboard link is the month link's folder + ``dashboard_href``.
    dashboard_hrefs
        ``yyyymm`` → ``building_id`` → an absolute link to that dashboard, used instead of the
        relative one (a private bucket's pages need presigned links: a relative link from a
        presigned page is an unsigned, refused request).

    Returns
    -------
    dict
        ``months`` (all months, ascending, each ``yyyymm``, ``label``, ``href``, ``n_vocs``),
        ``heatmap_months`` (the last :data:`HEATMAP_MONTHS` ``yyyymm``), ``latest`` (``yyyymm`` or
        None), ``buildings`` (per building: ``building_id``, ``name`` (masked), ``counts`` and
        ``backlog`` (lists over ``heatmap_months``, None = no entry), ``hrefs``), ``rises``,
        ``mass_issues``, ``alerts`` (urgent/repeat counts) and ``new_topics`` (신규 주제 후보: the
        month index's ``new_topics`` list, ``voc.new_topics``) of the latest month; ``max_count``.

    Raises
    ------
    ValueError
        A month is not 6 digits, or an entry's count is not a non-negative int (the message names
        ``months[yyyymm][building_id]`` and the field).
    """
    from voc.schema import building_sort_key

    idx = _read_month_indexes(months, month_hrefs, dashboard_hrefs)
    order = idx.order
    heat = order[-HEATMAP_MONTHS:]
    latest = order[-1] if order else None
    bids = sorted(idx.counts, key=building_sort_key)
    totals = {m: sum(idx.counts[b].get(m, 0) for b in bids) for m in order}
    buildings = _heatmap_rows(idx, bids, heat)
    rises: list[dict[str, Any]] = []
    mass: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    if latest is not None:
        rises = _rises(idx, bids, totals, latest)
        mass = _mass_issues(months, idx, bids, latest)
        alerts = _alerts(months, idx, bids, latest)
    return {
        "months": [{"yyyymm": m, "label": f"{m[:4]}-{m[4:]}", "href": idx.hrefs[m], "n_vocs": totals[m]} for m in order],
        "heatmap_months": heat,
        "latest": latest,
        "baseline_months": [m for m in order if latest and m < latest][-BASELINE_MONTHS:],
        "buildings": buildings,
        "max_count": max((c for b in buildings for c in b["counts"] if c), default=0),
        "rises": rises,
        "mass_issues": mass,
        "alerts": alerts,
        "new_topics": _new_topics(months[latest].get("new_topics")) if latest is not None else [],
    }

def _new_topics(value: Any) -> list[dict[str, Any]]:
    """The latest month's 신규 주제 후보 (``voc.new_topics.new_topic_candidates``, stored in the
    month index) as shown: ``keywords``, ``size``, ``buildings``, ``examples`` (titles masked)."""
    if not isinstance(value, list):
        return []
    return [
        {
            "keywords": [str(k) for k in c.get("keywords") or ()],
            "size": int(c.get("size", 0)),
            "buildings": [str(b) for b in c.get("buildings") or ()],
            "examples": [mask_personal_details(str(e.get("title") or "")) for e in c.get("examples") or ()],
        }
        for c in value if isinstance(c, Mapping)
    ]


def _shade(count: int | None, top: int) -> str:
    """Background colour of a heatmap cell: white → accent blue with ``count / top``."""
    if not count or top <= 0:
        return "#ffffff"
    t = min(1.0, count / top) ** 0.6
    r, g, b = (int(255 + (c - 255) * t) for c in (37, 99, 235))
    return f"#{r:02x}{g:02x}{b:02x}"


def render_portfolio(
    data: Mapping[str, Any], *, generated_at: str | None = None, run_id: str | None = None, embed_font: bool = True
) -> str:
    """The portfolio page (one self-contained HTML5 document: inline CSS and the dashboards'
    embedded font subset, no script, no external request) from :func:`build_portfolio`'s data.

    Raises
    ------
    ValueError
        A link in ``data`` is neither relative nor an ``http(s)://host/…`` URL (another scheme, such
        as ``javascript:`` or ``file:``, or a path from the root would leave the stored pages).
    """
    from voc.dashboard import _CSS_FONT_STACK, _jinja_env, _render_with_font

    def rel(h: str | None, where: str) -> str | None:
        if h is None:
            return None
        if re.match(r"https?://[^/\s]+/", h):  # a presigned or public-base-URL link (private S3 buckets)
            return h
        if ":" in h.split("/", 1)[0] or h.startswith(("/", "\\")):
            raise ValueError(f"{where}: link {h!r} is neither relative nor an http(s) URL")
        return h

    top = int(data.get("max_count") or 0)
    heat = list(data.get("heatmap_months") or [])
    rows = []
    for b in data.get("buildings") or ():
        bid = b["building_id"]
        rows.append({
            **b,
            "display": f"{b['name']} ({bid})" if b.get("name") else f"건물 {bid}",
            "cells": [
                {"count": c, "bg": _shade(c, top), "dark": bool(c) and top > 0 and c / top > 0.45,
                 "href": rel(h, f"buildings[{bid}].hrefs")}
                for c, h in zip(b["counts"], b["hrefs"])
            ],
        })
    ctx = {
        "page_title": "VOC 포트폴리오 · 전체 건물",
        "heat_labels": [f"{m[2:4]}.{m[4:]}" for m in heat],
        "rows": rows,
        "backlog_rows": [r for r in rows if r["open_backlog"]],
        "months": [{**m, "href": rel(m["href"], "months")} for m in data.get("months") or ()],
        "latest": data.get("latest"),
        "latest_label": f"{data['latest'][:4]}-{data['latest'][4:]}" if data.get("latest") else "",
        "baseline": data.get("baseline_months") or [],
        "rises": [{**r, "href": rel(r.get("href"), "rises")} for r in data.get("rises") or ()],
        "mass": [{**g, "href": rel(g.get("href"), "mass_issues")} for g in data.get("mass_issues") or ()],
        "alerts": [{**a, "href": rel(a.get("href"), "alerts")} for a in data.get("alerts") or ()],
        "new_topics": list(data.get("new_topics") or ()),
        "generated_at": generated_at,
        "run_id": run_id,
        "source_credit": None,
        "font_stack": _CSS_FONT_STACK,
        "rise_min": RISE_MIN_VOCS,
        "mass_min": MASS_MIN_SIZE,
        "mass_months": MASS_MONTHS,
    }
    return _render_with_font(_jinja_env().get_template("portfolio.html.j2"), ctx, embed_font=embed_font)
