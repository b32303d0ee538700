"""The label audit's suspects in the month's review workbook, and reviewers' fixes as labels.

``voc-train`` writes the label audit of each model version (``models/<name>/label_audit.csv``,
:mod:`voc.label_audit`). Here, with the pure rules of :mod:`voc.label_fixes`:

* :func:`audit_sheet_change` (the ``full`` run, in the review sheet's own write, so each
  workbook is built once) and :func:`sync_audit_sheet` (that change alone): the champion's top
  :data:`voc.label_fixes.AUDIT_SHEET_TOP` suspects not yet decided become the sheet
  :data:`voc.label_fixes.AUDIT_SHEET` of the month's XLSX workbook (per building with one
  workbook per building), keeping what reviewers already typed there. XLSX only: the Google
  Sheets backend has no such tab (the run summary says so).
* :func:`apply_audit_sheet` (``refresh``) and :func:`push_audit_sheet` (``voc review push`` and
  the upload page) turn the sheet's decisions into the month's label-fix table
  ``{prefix}/label_fixes/{yyyymm}.csv`` (:data:`voc.label_fixes.FIX_COLUMNS`): 수정 with a valid
  수정 라벨 → ``fix``, 유지 → ``confirm``; anything else is an issue naming the row and value,
  never a label. Reading the same sheet again writes the same file.
* :func:`read_label_fixes` stacks every month's table: ``voc-train`` applies the newest fixes on
  top of the history (``flows/train.py``) and its label audit skips the settled rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import polars as pl

from flows import storage_layout as layout
from flows.adapters.storage import Storage, join_key, update_with_cas
from voc.csvsafe import csv_bytes, read_csv_bytes
from voc.label_fixes import (
    AUDIT_COLUMNS,
    AUDIT_REVIEWER_COLUMNS,
    AUDIT_SHEET,
    FIX_COLUMNS,
    audit_row_key,
    audit_sheet_rows,
    decided_keys,
    empty_fixes,
    merge_decisions,
    read_decisions,
)
from voc.months import KST, yyyymm
from voc.taxonomy import Taxonomy

__all__ = [
    "AUDIT_FILE",
    "AuditSheetBackend",
    "XLSX_ONLY",
    "AuditMonth",
    "read_suspects",
    "read_label_fixes",
    "sync_audit_sheet",
    "audit_sheet_change",
    "record_decisions",
    "apply_audit_sheet",
    "push_audit_sheet",
]

AUDIT_FILE = "label_audit.csv"
"""The label audit's suspects in a model version directory (``voc.label_audit.write_audit_report``)."""

XLSX_ONLY = f"{AUDIT_SHEET}: XLSX review workbooks only (VOC_REVIEW__BACKEND=xlsx); the Google Sheet has no such tab"



@runtime_checkable
class AuditSheetBackend(Protocol):
    """A review backend that carries the 이전 라벨 점검 sheet (the XLSX workbooks; the Google
    Sheet has no such tab): read the month's sheet, and compare-and-swap a change to it."""

    def location(self, month: str) -> str:
        """Where the month's workbook is (as :meth:`ReviewBackend.location`)."""
        ...

    def read_audit(self, month: str) -> pl.DataFrame | None:
        """The month's audit sheet as a frame, or None when the workbook has none."""
        ...

    def update_audit(self, month: str, change: Any, taxonomy: Any, *, attempts: int = ...) -> tuple[str, Any]:
        """Apply ``change`` to the month's audit sheet (compare-and-swap); (location, change's result)."""
        ...

    def update_month(self, month: str, change: Any, taxonomy: Any, *, attempts: int = ..., audit: Any = ...) -> tuple[str, Any]:
        """The review sheet's compare-and-swap, with ``audit`` applied to the audit sheet in the same write."""
        ...

@dataclass(frozen=True)
class AuditMonth:
    """One month's label audit: where its workbook and label-fix table are, and the taxonomy
    the 수정 라벨 are checked against.

    Attributes
    ----------
    storage
        Holds the label-fix tables ``{prefix}/label_fixes/{yyyymm}.csv``.
    backend
        The review backend (``read_audit`` / ``update_audit`` / ``location``; the Google Sheets
        one has no audit sheet).
    prefix
        The environment's storage prefix.
    month
        ``YYYY-MM`` of the review workbook.
    taxonomy
        The champion's taxonomy (the workbook's dropdowns).
    """

    storage: Storage
    backend: Any
    prefix: str
    month: str
    taxonomy: Taxonomy


def read_suspects(storage: Storage, prefix: str, model_name: str) -> pl.DataFrame | None:
    """A model version's label-audit suspects.

    Parameters
    ----------
    storage, prefix
        Where the models are.
    model_name
        The version directory under ``models/``.

    Returns
    -------
    pl.DataFrame or None
        ``models/<model_name>/label_audit.csv``, all columns text; None when the version has
        none (label audit off, or skipped).

    Raises
    ------
    flows.adapters.storage.StorageError
        The storage cannot be read.
    """
    key = join_key(layout.models_dir(prefix), model_name, AUDIT_FILE)
    if not storage.exists(key):
        return None
    return pl.read_csv(storage.read_bytes(key), infer_schema=False)


def read_label_fixes(storage: Storage, prefix: str) -> pl.DataFrame:
    """Every month's label-fix table, stacked.

    Parameters
    ----------
    storage, prefix
        Where the tables ``{prefix}/label_fixes/{yyyymm}.csv`` are.

    Returns
    -------
    pl.DataFrame
        Oldest month first; columns :data:`voc.label_fixes.FIX_COLUMNS`, all text, empty cells
        ``""`` (a column an older table lacks too); no rows when there is no table.

    Raises
    ------
    flows.adapters.storage.StorageError
        The storage cannot be read.
    """
    base = layout.label_fixes_dir(prefix)
    keys = sorted(k for k in storage.list(base) if k.rsplit("/", 1)[-1][:6].isdigit() and k.endswith(".csv"))
    frames = []
    for k in keys:
        df = read_csv_bytes(storage.read_bytes(k))
        frames.append(df.with_columns([pl.lit(None, dtype=pl.Utf8).alias(c) for c in FIX_COLUMNS if c not in df.columns])
                      .select(FIX_COLUMNS).fill_null(""))
    return pl.concat(frames, how="vertical") if frames else empty_fixes()


def sync_audit_sheet(
    storage: Storage, backend: Any, prefix: str, month: str, model_name: str | None, taxonomy: Taxonomy, *, top: int | None = None
) -> dict[str, Any]:
    """Put the champion's undecided top suspects on the month's :data:`AUDIT_SHEET` sheet.

    Parameters
    ----------
    storage, prefix
        Where models and label fixes are.
    backend
        The review backend; one without ``update_audit`` (Google Sheets) is skipped.
    month
        The workbook's month (it must exist: the run's review sheet was written first).
    model_name
        The champion's version directory (None: keyword-only, nothing to show).
    taxonomy
        The workbook's dropdowns (the champion's).
    top
        Rows per workbook (default :data:`voc.label_fixes.AUDIT_SHEET_TOP`).

    Returns
    -------
    dict
        ``{"rows", "location", "model"}`` or ``{"skipped": reason}``.

    Raises
    ------
    flows.adapters.review_backends.ReviewBackendError, flows.adapters.storage.StorageError
        The workbook or storage cannot be read or written.
    """
    change, skipped = audit_sheet_change(storage, backend, prefix, model_name, top=top)
    if change is None:
        return skipped
    location, n = backend.update_audit(month, change, taxonomy)
    return {"rows": n, "location": location, "model": model_name}


def audit_sheet_change(
    storage: Storage, backend: Any, prefix: str, model_name: str | None, *, top: int | None = None
) -> tuple[Callable[[pl.DataFrame | None, frozenset[str] | None], tuple[pl.DataFrame, int]] | None, dict[str, Any]]:
    """What :func:`sync_audit_sheet` applies to the :data:`AUDIT_SHEET` sheet, for a caller that
    writes it together with the review sheet (``backend.update_month(..., audit=change)``: the
    ``full`` run builds each workbook once).

    Parameters
    ----------
    storage, backend, prefix, model_name, top
        As :func:`sync_audit_sheet`.

    Returns
    -------
    tuple
        ``(change, {"model": model_name})``: ``change(sheet as read or None, buildings or None)``
        gives ``(new sheet rows, their number)`` (see
        :data:`flows.adapters.review_backends.AuditChange`); or ``(None, {"skipped": reason})``.

    Raises
    ------
    flows.adapters.storage.StorageError
        The suspects or the label fixes cannot be read.
    """
    if not isinstance(backend, AuditSheetBackend):
        return None, {"skipped": XLSX_ONLY}
    if not model_name:
        return None, {"skipped": "no trained model: no label audit"}
    suspects = read_suspects(storage, prefix, model_name)
    if suspects is None:
        return None, {"skipped": f"model {model_name} has no {AUDIT_FILE}"}
    decided = decided_keys(read_label_fixes(storage, prefix))
    extra = {} if top is None else {"top": top}

    def change(existing: pl.DataFrame | None, buildings: frozenset[str] | None) -> tuple[pl.DataFrame, int]:
        """The sheet's new rows on top of what it holds (``buildings``: one workbook's)."""
        rows = audit_sheet_rows(suspects, decided=decided, existing=existing, model=model_name, buildings=buildings, **extra)
        return rows, rows.height

    return change, {"model": model_name}


def record_decisions(
    where: AuditMonth, sheet: pl.DataFrame | None, *, recorded_by: str, review_sheet: str, now: datetime | None = None
) -> dict[str, Any]:
    """Write the month's label-fix table from its :data:`AUDIT_SHEET` sheet
    (:func:`voc.label_fixes.read_decisions` + :func:`voc.label_fixes.merge_decisions`), by
    compare-and-swap; nothing is written when the table would not change (or would be empty and
    there is none).

    Parameters
    ----------
    where
        The month, its storage and the taxonomy (``where.backend`` is not used).
    sheet
        The :data:`AUDIT_SHEET` sheet as read back (all text), or None.
    recorded_by, review_sheet
        Provenance of new decisions (:func:`voc.label_fixes.merge_decisions`).
    now
        Time of new decisions (default the clock, in KST).

    Returns
    -------
    dict
        ``{"key": URI or None, "fixes": n, "confirmed": n, "issues": [text per issue], "written": bool}``.

    Raises
    ------
    flows.adapters.storage.StorageError, flows.adapters.storage.StorageConflict
        The storage cannot be read or written, or the compare-and-swap kept failing.
    """
    storage, month = where.storage, where.month
    decisions, issues = read_decisions(sheet, where.taxonomy)
    key = layout.label_fixes_key(where.prefix, month)
    stamp = (now or datetime.now(KST)).astimezone(KST).isoformat(timespec="seconds")

    def merge(data: bytes | None) -> tuple[bytes, bool]:
        """The table's new bytes on top of the stored ones, and whether they differ."""
        previous = read_csv_bytes(data).fill_null("") if data is not None else None
        table = merge_decisions(previous, decisions, month=yyyymm(month), decided_at=stamp, recorded_by=recorded_by,
                                review_sheet=review_sheet)
        new = csv_bytes(table)
        return new, new != data

    current = storage.read_versioned(key)
    written = False
    if (current is not None or decisions) and merge(current[0] if current else None)[1]:
        _, written = update_with_cas(storage, key, merge, content_type="text/csv")
    return {
        "key": storage.uri(key) if (current is not None or written) else None,
        "fixes": sum(d.decision == "fix" for d in decisions),
        "confirmed": sum(d.decision == "confirm" for d in decisions),
        "issues": [str(i) for i in issues],
        "written": written,
    }


def apply_audit_sheet(storage: Storage, backend: Any, prefix: str, month: str, taxonomy: Taxonomy, *, recorded_by: str) -> dict[str, Any]:
    """``refresh``: the decisions on the stored workbook's :data:`AUDIT_SHEET` sheet →
    :func:`record_decisions`.

    Parameters
    ----------
    storage, backend, prefix, month, taxonomy
        As :class:`AuditMonth`.
    recorded_by
        Provenance of new decisions (``"refresh <run>"``).

    Returns
    -------
    dict
        :func:`record_decisions`' result; ``{"skipped": reason}`` for a backend without the
        sheet (Google Sheets) or a workbook without it.

    Raises
    ------
    flows.adapters.review_backends.ReviewBackendError, flows.adapters.storage.StorageError
        The workbook or storage cannot be read or written.
    """
    if not isinstance(backend, AuditSheetBackend):
        return {"skipped": XLSX_ONLY}
    sheet = backend.read_audit(month)
    if sheet is None:
        return {"skipped": f"the review workbook of {yyyymm(month)} has no {AUDIT_SHEET} sheet"}
    return record_decisions(AuditMonth(storage, backend, prefix, month, taxonomy), sheet, recorded_by=recorded_by,
                            review_sheet=backend.location(month))


_NOTE_CODES = frozenset({"verdict_missing"})
"""Issues of an uploaded row that do not stop its cells from being stored (not applied until 판정 is set)."""


def _merge_upload(
    stored: pl.DataFrame | None, upload: pl.DataFrame, bad: dict[int, list[Any]], buildings: Collection[str] | None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``stored`` with the reviewer cells of ``upload``'s rows (matched by VOC and 구분) that
    changed them and have no issue in ``bad`` (file row → issues); the push's row report."""
    rows = [] if stored is None else stored.cast({c: pl.Utf8 for c in stored.columns}).fill_null("").to_dicts()
    index = {audit_row_key(r): i for i, r in reversed(list(enumerate(rows)))}
    report: dict[str, Any] = {"accepted": [], "unchanged": 0, "rejected": []}
    for i, row in enumerate(upload.iter_rows(named=True)):
        sheet_row, key = i + 2, audit_row_key(row)
        mine = {c: str(row.get(c) or "") for c in AUDIT_REVIEWER_COLUMNS}
        if not any(v.strip() for v in mine.values()):
            continue  # an empty row never clears a decision stored meanwhile
        target = rows[index[key]] if key in index else None
        reasons: list[str] = []
        codes: list[str] = []
        if target is None:
            reasons, codes = [f"이 달 {AUDIT_SHEET} 시트에 없는 행입니다(voc_id={key[0]!r}, 구분={row.get('구분')!r})"], ["unknown_row"]
        elif buildings is not None and str(target.get("building_id") or "").strip() not in buildings:
            reasons, codes = [f"building_id={target.get('building_id')!r}: 이 검수자가 맡은 건물의 행이 아닙니다"], ["other_building"]
        elif all(mine[c] == str(target.get(c) or "") for c in AUDIT_REVIEWER_COLUMNS):
            report["unchanged"] += 1
            continue
        else:
            found = [x for x in bad.get(sheet_row, []) if x.code not in _NOTE_CODES]
            reasons, codes = [f"{x.column}={x.value!r}: {x.message}" for x in found], [x.code for x in found]
        if reasons or target is None:
            report["rejected"].append({"sheet_row": sheet_row, "voc_id": key[0], "codes": codes, "reasons": reasons})
            continue
        target.update(mine)
        report["accepted"].append({"sheet_row": sheet_row, "voc_id": key[0], "dimension": key[1]})
    cols = list(rows[0]) if rows else list(AUDIT_COLUMNS)
    merged = pl.DataFrame({c: [r.get(c, "") for r in rows] for c in cols}, schema={c: pl.Utf8 for c in cols})
    return merged, report


def push_audit_sheet(
    where: AuditMonth, upload: pl.DataFrame | None, *, source: str, buildings: Collection[str] | None = None
) -> dict[str, Any] | None:
    """``voc review push``: merge the reviewer cells (판정, 수정 라벨, 검토자 메모) of a pushed
    file's :data:`AUDIT_SHEET` rows into the stored workbook, then :func:`record_decisions` of
    the stored sheet (``recorded_by = "push <source>"``, plus the reviewer's buildings when given).

    Per row (matched by ``voc_id`` and 구분): reviewer cells all empty → skipped (never clears a
    stored decision); not on the stored sheet → ``unknown_row``; with ``buildings``, a row of
    another building → ``other_building``; equal to the stored cells → unchanged; an issue of
    :func:`voc.label_fixes.read_decisions` (e.g. ``not_in_taxonomy`` for an invalid 수정 라벨)
    → rejected, not stored; else accepted. The workbook is written (compare-and-swap) only when a
    row is accepted.

    Parameters
    ----------
    where
        The month's workbook (``where.backend``), label-fix table and taxonomy.
    upload
        The pushed file's :data:`AUDIT_SHEET` sheet (all text), or None when it has none.
    source
        The file's name (``recorded_by``).
    buildings
        The reviewer's buildings, or None for all.

    Returns
    -------
    dict or None
        None when the file has no such sheet or the backend none (Google Sheets); else
        ``{"accepted": [...], "unchanged": n, "rejected": [{sheet_row, voc_id, codes, reasons}],
        "written": bool, "fixes": record_decisions(...) or None}``.

    Raises
    ------
    flows.adapters.review_backends.ReviewBackendError, flows.adapters.storage.StorageError
        The workbook or storage cannot be read or written.
    """
    backend, month = where.backend, where.month
    if upload is None or not isinstance(backend, AuditSheetBackend):
        return None
    _, issues = read_decisions(upload, where.taxonomy)
    bad: dict[int, list[Any]] = {}
    for x in issues:
        bad.setdefault(x.sheet_row, []).append(x)
    allowed = frozenset(buildings) if buildings is not None else None

    def change(stored: pl.DataFrame | None, _buildings: frozenset | None) -> tuple[pl.DataFrame, dict[str, Any]]:
        """The stored sheet with the upload's accepted rows, and the row report."""
        merged, report = _merge_upload(stored, upload, bad, allowed)
        return merged, {**report, "sheet": merged}

    _, report = change(backend.read_audit(month), None)
    written = bool(report["accepted"])
    if written:  # compare-and-swap: decided again on top of a concurrent write
        _, report = backend.update_audit(month, change, where.taxonomy)
    merged = report.pop("sheet")
    report["written"] = written
    report["fixes"] = (
        record_decisions(where, merged, review_sheet=backend.location(month),
                         recorded_by=f"push {source}" + (f" (reviewer of buildings {','.join(sorted(allowed))})" if allowed else ""))
        if merged.height else None
    )
    return report
