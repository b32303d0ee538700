"""Storage keys of the production layout (see docs/architecture.md) and run ids."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from voc.months import KST, yyyymm
from voc.schema import id_problem

__all__ = [
    "new_run_id",
    "reserve_run_id",
    "run_marker_key",
    "RunIdError",
    "month_dir",
    "building_dir",
    "tagged_key",
    "reviewed_key",
    "dashboard_key",
    "latest_dashboard_key",
    "review_workbook_key",
    "models_dir",
    "champion_key",
    "label_fixes_dir",
    "label_fixes_key",
    "run_stamp",
    "latest_output",
    "OutputKey",
    "parse_output_key",
    "relative_href",
    "safe_segment",
]

MODES = ("full", "refresh", "tagging-only")
_RUN_ID_RE = re.compile(r"(?P<mode>full|refresh|tagging-only|train)_(?P<stamp>[0-9]{8}_[0-9]{6})")
"""A run id (:func:`new_run_id`), matched against a whole string (``fullmatch``)."""
_YYYYMM_RE = re.compile(r"[0-9]{6}")
OUTPUT_KINDS = ("tagged", "reviewed", "dashboard")


def new_run_id(mode: str, now: datetime | None = None) -> str:
    """``{mode}_{yyyymmdd}_{hhmmss}`` in KST (production run_id format). Not unique by itself
    (one-second resolution): a run that writes takes its id from :func:`reserve_run_id`."""
    return f"{mode}_{(now or datetime.now(KST)).astimezone(KST).strftime('%Y%m%d_%H%M%S')}"


class RunIdError(RuntimeError):
    """No run id could be reserved (every second tried was taken)."""


def run_marker_key(prefix: str, run_id: str) -> str:
    """``{prefix}/runs/{run_id}.json``: the marker that reserves a run id in storage."""
    return f"{prefix}/runs/{run_id}.json"


def reserve_run_id(
    storage: Any,
    prefix: str,
    mode: str,
    *,
    info: dict[str, Any] | None = None,
    attempts: int = 120,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """A run id no other run of this storage and prefix has, or will get.

    The id stays ``{mode}_{yyyymmdd}_{hhmmss}`` (KST, the layout's contract) and is reserved by
    creating :func:`run_marker_key` exclusively (``Storage.write_if(..., version=None)``: an
    exclusive create under the directory's ``filelock.FileLock`` (``{root}/.locks/``) locally,
    ``If-None-Match: *`` on S3). When a run started in the same
    second holds it, this run waits for the next second and tries that one, so ids stay in start
    order and never collide; two runs therefore never write each other's run-scoped keys.

    Parameters
    ----------
    storage
        A :class:`flows.adapters.storage.Storage`.
    prefix
        The environment prefix (``VocSettings.prefix``).
    mode
        ``full``, ``refresh``, ``tagging-only`` (or ``train``).
    info
        Written into the marker as JSON with ``run_id`` and ``reserved_at`` (e.g. the month and the
        Prefect flow-run id: who holds the id).
    attempts
        Seconds tried before :class:`RunIdError`.
    clock, sleep
        The time source (aware datetimes; default: now in KST) and how to wait (tests).

    Raises
    ------
    RunIdError
        ``attempts`` consecutive seconds were all taken.
    flows.adapters.storage.StorageError
        Storage failed (other than the id being taken).
    """
    from flows.adapters.storage import StorageConflict

    now = clock or (lambda: datetime.now(KST))
    t = now().astimezone(KST)
    for _ in range(max(1, attempts)):
        run_id = new_run_id(mode, t)
        body = {"run_id": run_id, "reserved_at": datetime.now(KST).isoformat(timespec="milliseconds"), **(info or {})}
        try:
            storage.write_if(
                run_marker_key(prefix, run_id),
                json.dumps(body, ensure_ascii=False, default=str).encode("utf-8"),
                version=None,
                content_type="application/json",
            )
            return run_id
        except StorageConflict:
            nxt = t.replace(microsecond=0) + timedelta(seconds=1)
            wait = (nxt - now().astimezone(KST)).total_seconds()
            if wait > 0:
                sleep(wait)
            t = max(nxt, now().astimezone(KST))
    raise RunIdError(f"no free run id for mode {mode!r} in {attempts} seconds under {prefix}/runs")


def month_dir(prefix: str, month: str) -> str:
    return f"{prefix}/{yyyymm(month)}"


def safe_segment(value: str, field: str) -> str:
    """``value`` when it is a safe id (:func:`voc.schema.id_problem`: one path segment, not ``.``/
    ``..``, no control characters), else ValueError naming ``field`` and the value. A second line
    of defence behind :func:`voc.schema.validate_voc_frame`: no key leaves its folder."""
    why = id_problem(value)
    if why is not None:
        raise ValueError(f"{field} {why}: {value!r} cannot be part of a storage key")
    return value


def building_dir(prefix: str, month: str, building_id: str) -> str:
    """Every per-building key (tagged, reviewed, dashboards) is built under this folder."""
    return f"{month_dir(prefix, month)}/{safe_segment(building_id, 'building_id')}"


def tagged_key(prefix: str, month: str, building_id: str, run_id: str) -> str:
    return f"{building_dir(prefix, month, building_id)}/tagged_{building_id}_{yyyymm(month)}_{run_id}.csv"


def reviewed_key(prefix: str, month: str, building_id: str, run_id: str) -> str:
    return f"{building_dir(prefix, month, building_id)}/reviewed_{building_id}_{yyyymm(month)}_{run_id}.csv"


def dashboard_key(prefix: str, month: str, building_id: str, run_id: str) -> str:
    return f"{building_dir(prefix, month, building_id)}/dashboard_{building_id}_{yyyymm(month)}_{run_id}.html"


def latest_dashboard_key(prefix: str, month: str, building_id: str) -> str:
    """The month's dashboard that users bookmark; every full/refresh run overwrites it."""
    return f"{building_dir(prefix, month, building_id)}/dashboard_{building_id}_{yyyymm(month)}.html"


def month_index_key(prefix: str, month: str) -> str:
    """The month's index page: every building's dashboard with its counts."""
    return f"{month_dir(prefix, month)}/index.html"


def month_index_data_key(prefix: str, month: str) -> str:
    """What the index page lists, per building (JSON), updated by each run for its buildings."""
    return f"{month_dir(prefix, month)}/index.json"


def portfolio_key(prefix: str) -> str:
    """The portfolio page of the environment (all buildings and months, ``voc.portfolio``)."""
    return f"{prefix}/index.html"


def portfolio_data_key(prefix: str) -> str:
    """The portfolio page's data (JSON, rebuilt from the month indexes by each monthly run)."""
    return f"{prefix}/index.json"


def review_workbook_key(prefix: str, month: str) -> str:
    """The month's XLSX review workbook (:meth:`flows.adapters.review_backends.XlsxReviewBackend.key`)."""
    return f"{month_dir(prefix, month)}/review_{yyyymm(month)}.xlsx"


def models_dir(prefix: str) -> str:
    return f"{prefix}/models"


def champion_key(prefix: str) -> str:
    return f"{models_dir(prefix)}/champion.json"


def label_fixes_dir(prefix: str) -> str:
    """Where reviewers' decisions on the label audit's suspects live (``flows/adapters/label_review.py``)."""
    return f"{prefix}/label_fixes"


def label_fixes_key(prefix: str, month: str) -> str:
    """The label-fix table of one review month (``voc.label_fixes.FIX_COLUMNS``)."""
    return f"{label_fixes_dir(prefix)}/{yyyymm(month)}.csv"


@dataclass(frozen=True)
class OutputKey:
    """The parts of a run-scoped output key (:func:`parse_output_key`)."""

    prefix: str
    yyyymm: str
    building_id: str
    kind: str
    run_id: str
    mode: str
    stamp: str
    ext: str


def parse_output_key(key: str) -> OutputKey | None:
    """The parts of ``{prefix}/{yyyymm}/{building_id}/{kind}_{building_id}_{yyyymm}_{run_id}.{ext}``
    (:func:`tagged_key`, :func:`reviewed_key`, :func:`dashboard_key`), or None for any other key
    (the month's latest dashboard, the index, the review workbook, models, run markers).

    The parse is anchored on the layout, not a search: the building id is the folder name, the
    file name must be exactly ``{kind}_{that id}_{yyyymm}_`` + a run id (:func:`new_run_id`,
    ``{mode}_{yyyymmdd}_{hhmmss}``) + ``.{ext}``. So a building id that itself looks like a run
    id or a stamp (``full_20990101_000000``, ``x_full_20991231_235959.y``) never lends its
    digits to the run stamp, and a folder named ``models`` or ``reviewed_x`` is just a building.
    """
    parts = key.split("/")
    if len(parts) < 3:
        return None
    yyyymm_, bid, name = parts[-3], parts[-2], parts[-1]
    if not _YYYYMM_RE.fullmatch(yyyymm_) or id_problem(bid) is not None:
        return None
    for kind in OUTPUT_KINDS:
        head = f"{kind}_{bid}_{yyyymm_}_"
        if not name.startswith(head):
            continue
        run_id, dot, ext = name[len(head):].rpartition(".")
        m = _RUN_ID_RE.fullmatch(run_id)
        if dot and ext and m:
            return OutputKey("/".join(parts[:-3]), yyyymm_, bid, kind, run_id, m.group("mode"), m.group("stamp"), ext)
    return None


def run_stamp(key: str) -> str:
    """The ``yyyymmdd_hhmmss`` of a run-scoped key (``""`` when the key has none), read from its
    run id part only (:func:`parse_output_key`), never from the building id."""
    p = parse_output_key(key)
    return p.stamp if p else ""


def latest_output(keys: list[str], kind: str) -> str | None:
    """The newest ``{kind}_*.csv`` among ``keys`` (``kind`` = tagged or reviewed), by run stamp
    (:func:`parse_output_key`; keys of other layouts are ignored)."""
    cands = [(p.stamp, k) for k in keys if (p := parse_output_key(k)) and p.kind == kind and p.ext == "csv"]
    return max(cands, key=lambda sk: sk[0])[1] if cands else None


def relative_href(key: str, base_dir: str) -> str:
    """A browser link to ``key`` relative to a page stored in ``base_dir`` (e.g. the month index
    in :func:`month_dir`): each path segment percent-encoded (``urllib.parse.quote(seg,
    safe="")``, RFC 3986), so an id such as ``a:b``, ``javascript:x``, ``#3`` or ``100%`` is
    read as a path, never as a scheme, fragment, query or escape.

    Raises
    ------
    ValueError
        ``key`` is not under ``base_dir``.
    """
    from urllib.parse import quote

    head = base_dir.rstrip("/") + "/"
    if not key.startswith(head):
        raise ValueError(f"{key!r} is not under {base_dir!r}")
    return "/".join(quote(seg, safe="") for seg in key[len(head):].split("/"))
