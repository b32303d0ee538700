"""Storage keys of the production layout (see docs/architecture.md) and run ids."""

from __future__ import annotations

import re
from datetime import datetime

from voc.months import KST, yyyymm

__all__ = [
    "new_run_id",
    "month_dir",
    "building_dir",
    "tagged_key",
    "reviewed_key",
    "dashboard_key",
    "latest_dashboard_key",
    "review_workbook_key",
    "models_dir",
    "champion_key",
    "run_stamp",
    "latest_output",
]

MODES = ("full", "refresh", "tagging-only")
_RUN_RE = re.compile(r"_(?P<mode>full|refresh|tagging-only|train)_(?P<stamp>\d{8}_\d{6})\.")


def new_run_id(mode: str, now: datetime | None = None) -> str:
    """``{mode}_{yyyymmdd}_{hhmmss}`` in KST (production run_id format)."""
    return f"{mode}_{(now or datetime.now(KST)).astimezone(KST).strftime('%Y%m%d_%H%M%S')}"


def month_dir(prefix: str, month: str) -> str:
    return f"{prefix}/{yyyymm(month)}"


def building_dir(prefix: str, month: str, building_id: str) -> str:
    return f"{month_dir(prefix, month)}/{building_id}"


def tagged_key(prefix: str, month: str, building_id: str, run_id: str) -> str:
    return f"{building_dir(prefix, month, building_id)}/tagged_{building_id}_{yyyymm(month)}_{run_id}.csv"


def reviewed_key(prefix: str, month: str, building_id: str, run_id: str) -> str:
    return f"{building_dir(prefix, month, building_id)}/reviewed_{building_id}_{yyyymm(month)}_{run_id}.csv"


def dashboard_key(prefix: str, month: str, building_id: str, run_id: str) -> str:
    return f"{building_dir(prefix, month, building_id)}/dashboard_{building_id}_{yyyymm(month)}_{run_id}.html"


def latest_dashboard_key(prefix: str, month: str, building_id: str) -> str:
    """The month's dashboard that users bookmark; every full/refresh run overwrites it."""
    return f"{building_dir(prefix, month, building_id)}/dashboard_{building_id}_{yyyymm(month)}.html"


def review_workbook_key(prefix: str, month: str) -> str:
    return f"{month_dir(prefix, month)}/review_{yyyymm(month)}.xlsx"


def models_dir(prefix: str) -> str:
    return f"{prefix}/models"


def champion_key(prefix: str) -> str:
    return f"{models_dir(prefix)}/champion.json"


def run_stamp(key: str) -> str:
    """The ``yyyymmdd_hhmmss`` of a run-scoped key (``""`` when the key has none)."""
    m = _RUN_RE.search(key.rsplit("/", 1)[-1])
    return m.group("stamp") if m else ""


def latest_output(keys: list[str], kind: str) -> str | None:
    """The newest ``{kind}_*.csv`` among ``keys`` (``kind`` = tagged or reviewed), by run stamp."""
    cands = [k for k in keys if k.rsplit("/", 1)[-1].startswith(f"{kind}_") and k.endswith(".csv")]
    return max(cands, key=run_stamp) if cands else None
