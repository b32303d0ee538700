"""Reviewers' round trip of the XLSX review workbook (``voc review pull`` / ``voc review push``).

**pull** copies the month's stored workbook (``{prefix}/{yyyymm}/review_{yyyymm}.xlsx``,
:class:`flows.adapters.review_backends.XlsxReviewBackend`) to a local file, or — with a building id — a
workbook of that building's rows only, laid out like the stored one (dropdowns, protection,
guide: :func:`flows.adapters.review_backends.build_workbook`). Either file gets one more, hidden sheet
:data:`PULL_SHEET`, the *pull record*: the month, the storage version read, and per row the
``voc_id`` with a fingerprint (SHA-256, 16 hex digits) of its reviewer cells as pulled.

**push** reads the reviewer's file as the backends read a sheet (reviewer cells as typed:
formulas as their text), checks every row with :func:`voc.review.validate_reviews` and
:func:`voc.review.unknown_voc_id_issues` against the champion model's taxonomy (the one
``refresh`` checks against), and merges **only the reviewer columns**
(:data:`voc.review.REVIEWER_COLUMNS`) of the accepted rows into the stored workbook, matched by
``voc_id``. Row by row:

* rows whose reviewer cells equal the stored ones: unchanged (nothing to write);
* rejected — the row is not merged at all, the stored row keeps its cells, and the reason is
  printed: an issue of :func:`voc.review.validate_reviews` (not in the taxonomy, minor not under
  its major, a formula / error value / date / number in a 검수_ cell, an unrecognised 검수완료,
  a duplicate or missing ``voc_id``, 묶음 적용 on a row without 묶음), an ``unknown_voc_id``
  (no row of the stored workbook has it), ``conflict`` (the stored row's reviewer cells changed
  since the pull — another reviewer pushed — so neither edit is silently lost: pull again) or
  ``model_changed`` (the row's model tag in the file differs from the stored one: a run retagged
  it after the pull, and a done row with empty cells would confirm a tag the reviewer never saw);
* accepted otherwise; ``not_done`` / ``group_not_done`` are printed as notes (stored, but not
  applied by ``refresh`` until 검수완료 = Y).

The write is the backends' compare-and-swap (:meth:`XlsxReviewBackend.update_month`: SHA-256 under
a ``filelock.FileLock`` in ``{root}/.locks/`` locally, ``If-Match`` on S3): when someone writes the workbook between push's read and
its write, push reads again and re-decides every row on top of that write, so a concurrent push
shows up as ``conflict`` rows, never as a lost edit. A file without a pull record (downloaded
through the link in the month index) is merged without the ``conflict`` check: its changed rows
replace the stored reviewer cells.

With ``VOC_REVIEW__PER_BUILDING=true`` (:class:`flows.adapters.review_backends.PerBuildingXlsxReviewBackend`)
a building's pull is its own stored workbook, and a push rewrites only the workbooks of the
buildings whose rows it changed. :func:`pull_review_bytes` / :func:`push_review_bytes` are the same
in memory, for the upload page of ``voc serve`` (:mod:`flows.service.review_upload`), whose push accepts
only the reviewer's buildings (others: ``other_building``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from config.settings import VocSettings
from flows import storage_layout as layout
from flows.adapters.label_review import AuditMonth, push_audit_sheet
from flows.adapters.review_backends import (
    GUIDE_SHEET,
    TAXONOMY_SHEET,
    PerBuildingXlsxReviewBackend,
    ReviewBackendError,
    XlsxReviewBackend,
    _check_frame,
    audit_frame,
    build_workbook,
)
from flows.adapters.storage import Storage, join_key
from voc.months import KST, parse_month, yyyymm
from voc.review import (
    COL_BUILDING_ID,
    COL_VOC_ID,
    MODEL_COLUMNS,
    REVIEWER_COLUMNS,
    ReviewIssue,
    ReviewSheetError,
    unknown_voc_id_issues,
    validate_reviews,
)
from voc.taxonomy import Taxonomy, default_taxonomy

__all__ = [
    "PULL_SHEET",
    "NOTE_CODES",
    "ReviewExchangeError",
    "PullResult",
    "PulledWorkbook",
    "RowRejection",
    "PushResult",
    "review_taxonomy",
    "reviewer_fingerprint",
    "pull_review",
    "pull_review_bytes",
    "push_review",
    "push_review_bytes",
]

PULL_SHEET = "voc_pull"
"""Hidden sheet of a pulled file: ``month``, ``version``, ``building_id``, ``pulled_at`` rows,
then a ``voc_id`` / ``fingerprint`` header and one row per data row."""

NOTE_CODES: frozenset[str] = frozenset({"not_done", "group_not_done"})
"""Issues that do not reject a row: its cells are stored, ``refresh`` applies them once done."""


class ReviewExchangeError(RuntimeError):
    """Pull or push cannot proceed (no workbook for the month, an unreadable file, a file that
    would be overwritten, the Google Sheets backend); the message says what to do."""


@dataclass(frozen=True)
class PullResult:
    """What :func:`pull_review` wrote: ``path`` holds ``rows`` data rows of ``month`` (only
    ``building_id``'s when set), copied from ``location``."""

    path: Path
    month: str
    rows: int
    building_id: str | None
    location: str


@dataclass(frozen=True)
class PulledWorkbook:
    """What :func:`pull_review_bytes` made: the ``.xlsx`` bytes (with the pull record), the
    month, its ``rows`` data rows (only ``building_id``'s when set), the stored ``location`` and
    the file name a download should get."""

    data: bytes
    month: str
    rows: int
    building_id: str | None
    location: str
    filename: str


@dataclass(frozen=True)
class RowRejection:
    """A row of the pushed file that was not merged: file row ``sheet_row`` (header = 1),
    its ``voc_id``, and one Korean reason per problem with its ``code``."""

    sheet_row: int
    voc_id: str
    reasons: tuple[str, ...]
    codes: tuple[str, ...]

    def __str__(self) -> str:
        """``row {sheet_row} (voc_id=…): reason; reason``."""
        return f"row {self.sheet_row} (voc_id={self.voc_id}): " + "; ".join(self.reasons)


@dataclass
class PushResult:
    """What :func:`push_review` did.

    Attributes
    ----------
    month, location
        The month and the stored workbook's URI.
    accepted
        ``(file row, voc_id)`` of the rows whose reviewer cells were merged.
    unchanged
        Rows whose reviewer cells already equal the stored ones.
    blank
        Rows without ``voc_id`` and without reviewer input (skipped).
    rejected
        Rows not merged, with the reasons.
    notes
        Issues of accepted (or unchanged) rows that do not reject them (``not_done``, …, and
        problems already in the stored sheet).
    written
        Whether the stored workbook was written (only when a row was accepted).
    checked_against_pull
        Whether the file had a pull record (so concurrent changes were detected per row).
    label_audit
        What happened to the file's ``이전 라벨 점검`` sheet (:func:`flows.adapters.label_review.push_audit_sheet`:
        accepted / unchanged / rejected rows and the label fixes recorded); None without one.
    """

    month: str
    location: str
    accepted: list[tuple[int, str]] = field(default_factory=list)
    unchanged: int = 0
    blank: int = 0
    rejected: list[RowRejection] = field(default_factory=list)
    notes: list[ReviewIssue] = field(default_factory=list)
    written: bool = False
    checked_against_pull: bool = False
    label_audit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (``voc review push --json``, the upload page).

        Returns
        -------
        dict[str, Any]
            The attributes by name; ``accepted`` and ``rejected`` as lists of dicts, ``notes`` as text.
        """
        return {
            "month": self.month,
            "location": self.location,
            "accepted": [{"sheet_row": r, "voc_id": v} for r, v in self.accepted],
            "unchanged": self.unchanged,
            "blank": self.blank,
            "rejected": [
                {"sheet_row": r.sheet_row, "voc_id": r.voc_id, "codes": list(r.codes), "reasons": list(r.reasons)}
                for r in self.rejected
            ],
            "notes": [str(i) for i in self.notes],
            "written": self.written,
            "checked_against_pull": self.checked_against_pull,
            "label_audit": self.label_audit,
        }


# --------------------------------------------------------------------------------------------
# helpers


def _storage_and_backend(settings: VocSettings) -> tuple[Storage, XlsxReviewBackend]:
    """The storage and the XLSX review backend of ``settings`` (:class:`ReviewExchangeError` for Google Sheets)."""
    if settings.review.backend != "xlsx":
        raise ReviewExchangeError(
            "VOC_REVIEW__BACKEND is gsheets: reviewers edit the month's Google Sheet directly (its link is in the "
            "month index and the run summary); pull/push exchange the XLSX workbook of the default backend"
        )
    from flows.resources import open_storage

    storage = open_storage(settings)
    cls = PerBuildingXlsxReviewBackend if settings.review.per_building else XlsxReviewBackend
    return storage, cls(storage, settings.prefix)


def review_taxonomy(settings: VocSettings, storage: Storage) -> Taxonomy:
    """The taxonomy ``refresh`` checks reviewer values against.

    Parameters
    ----------
    settings
        The environment prefix.
    storage
        Where the models and ``champion.json`` are.

    Returns
    -------
    voc.taxonomy.Taxonomy
        The champion model's (``models/{name}/meta.json``, ``taxonomy``; read without loading
        the model), else the shipped default (a keyword-only month).

    Raises
    ------
    flows.adapters.storage.StorageError
        ``champion.json`` names a model whose ``meta.json`` is missing.
    """
    from flows.adapters.model_store import champion_name, read_champion
    from voc.modelstore import META_FILE

    info = read_champion(storage, settings.prefix)
    if info is None:
        return default_taxonomy()
    meta = json.loads(storage.read_bytes(join_key(layout.models_dir(settings.prefix), champion_name(info), META_FILE)))
    records = meta.get("taxonomy")
    return Taxonomy.from_records(records) if records else default_taxonomy()


def reviewer_fingerprint(row: Mapping[str, Any]) -> str:
    """The fingerprint of a row's reviewer cells in a pull record.

    Parameters
    ----------
    row
        One sheet row by column name.

    Returns
    -------
    str
        16 hex digits of the SHA-256 of the reviewer cells (:data:`REVIEWER_COLUMNS`, in order,
        missing or None ``""``, joined by U+001F): equal cells, equal fingerprint.
    """
    text = "\x1f".join(str(row.get(c) or "") for c in REVIEWER_COLUMNS)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _text_cell(ws: Any, row: int, col: int, value: str) -> None:
    """Write ``value`` to a worksheet cell as text (never a formula)."""
    c = ws.cell(row=row, column=col, value=value)
    c.data_type = "s"  # never a formula, whatever the text


def _with_pull_record(data: bytes, *, month: str, version: str, building_id: str | None, frame: pl.DataFrame) -> bytes:
    """``data`` (an XLSX workbook) with the hidden :data:`PULL_SHEET` added."""
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(data))
    if PULL_SHEET in wb.sheetnames:
        del wb[PULL_SHEET]
    ws = wb.create_sheet(PULL_SHEET)
    ws.sheet_state = "hidden"
    meta = [("month", month), ("version", version), ("building_id", building_id or ""),
            ("pulled_at", datetime.now(KST).isoformat(timespec="seconds")), ("voc_id", "fingerprint")]
    for i, (k, v) in enumerate(meta, start=1):
        _text_cell(ws, i, 1, k)
        _text_cell(ws, i, 2, v)
    for i, row in enumerate(frame.iter_rows(named=True), start=len(meta) + 1):
        _text_cell(ws, i, 1, str(row.get(COL_VOC_ID) or "").strip())
        _text_cell(ws, i, 2, reviewer_fingerprint(row))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _read_file(path: Path, data: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """The pull record of a pushed file (``None`` without one) and its sheet names."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    except Exception as e:  # zipfile.BadZipFile, InvalidFileException, KeyError, …
        raise ReviewExchangeError(f"{path} is not a readable .xlsx workbook: {e}") from e
    try:
        names = list(wb.sheetnames)
        if PULL_SHEET not in names:
            return None, names
        record: dict[str, Any] = {"rows": {}}
        in_rows = False
        for cells in wb[PULL_SHEET].iter_rows(values_only=True):
            k, v = (str(x) if x is not None else "" for x in [*cells, None, None][:2])
            if in_rows:
                if k.strip():
                    record["rows"].setdefault(k.strip(), v)
            elif k == "voc_id":
                in_rows = True
            else:
                record[k] = v
        return record, names
    finally:
        wb.close()


def _push_month(path: Path, month: str | None, record: Mapping[str, Any] | None, sheets: Sequence[str]) -> str:
    """The month a pushed file belongs to: ``--month``, checked against the file's pull record
    and data-sheet name when present, else taken from them."""
    data_sheets = [s for s in sheets if s not in (TAXONOMY_SHEET, GUIDE_SHEET, PULL_SHEET)]
    named = next((s for s in data_sheets if re.fullmatch(r"\d{6}", s)), None)
    found = (record or {}).get("month") or (parse_month(named) if named else None)
    if month is None:
        if not found:
            raise ReviewExchangeError(f"{path}: no month in the file (no pull record, no YYYYMM sheet); pass --month")
        return parse_month(found)
    m = parse_month(month)
    if found and parse_month(found) != m:
        raise ReviewExchangeError(f"{path} holds the review sheet of {parse_month(found)}, not of --month {m}")
    return m


# --------------------------------------------------------------------------------------------
# pull


def pull_review(
    settings: VocSettings,
    month: str,
    *,
    building_id: str | None = None,
    out: Path | None = None,
    force: bool = False,
) -> PullResult:
    """Write the month's review workbook (or one building's rows of it) to ``out``.

    Parameters
    ----------
    settings
        Storage, environment prefix and review backend (must be ``xlsx``).
    month
        ``YYYY-MM`` (any form :func:`voc.months.parse_month` accepts).
    building_id
        Only this building's rows (the ``building_id`` cell, stripped).
    out
        Target file; default ``review_{yyyymm}.xlsx`` (``review_{yyyymm}_{building}.xlsx``) in the
        working directory.
    force
        Overwrite ``out`` when it exists (it may hold a reviewer's unsent edits).

    Returns
    -------
    PullResult

    Raises
    ------
    ReviewExchangeError
        Google Sheets backend; no workbook for the month; no row of ``building_id``; ``out``
        exists without ``force``; the stored workbook is unreadable.
    flows.adapters.storage.StorageError
        The storage cannot be read.
    """
    got = pull_review_bytes(settings, month, building_id=building_id)
    m, bid, data, name = got.month, got.building_id, got.data, got.filename
    path = Path(out) if out is not None else Path.cwd() / name
    if path.is_dir():
        path = path / name
    if path.exists() and not force:
        raise ReviewExchangeError(f"{path} exists (it may hold edits not pushed yet); push it first, pass --force, or -o another file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return PullResult(path=path, month=m, rows=got.rows, building_id=bid, location=got.location)


def pull_review_bytes(settings: VocSettings, month: str, *, building_id: str | None = None) -> PulledWorkbook:
    """The month's review workbook (or one building's rows of it) with its pull record, in memory
    (what :func:`pull_review` writes and the upload page of ``voc serve`` sends).

    With ``VOC_REVIEW__PER_BUILDING=true`` a building's workbook is its own stored one; the whole
    month is rebuilt from every building's workbook.

    Parameters
    ----------
    settings
        Storage, environment prefix and review backend (must be ``xlsx``).
    month
        ``YYYY-MM`` (any form :func:`voc.months.parse_month` accepts).
    building_id
        Only this building's rows (the ``building_id`` cell, stripped).

    Returns
    -------
    PulledWorkbook

    Raises
    ------
    ReviewExchangeError
        Google Sheets backend; no workbook for the month; no row of ``building_id``; the stored
        workbook is unreadable.
    flows.adapters.storage.StorageError
        The storage cannot be read.
    """
    m = parse_month(month)
    storage, backend = _storage_and_backend(settings)
    bid = building_id.strip() if building_id is not None else None
    missing = f"no review workbook for {m} at {backend.location(m)}; run `voc run --mode full --month {m}` first"
    rebuilt = False
    try:
        if isinstance(backend, PerBuildingXlsxReviewBackend):
            if bid is not None:
                key = backend.building_key(m, bid)
                got = storage.read_versioned(key)
                if got is None:
                    listed = backend.building_ids(m)
                    if not listed:
                        raise ReviewExchangeError(missing)
                    raise ReviewExchangeError(f"--building-id {bid!r}: no review workbook of {m} for it (buildings: {', '.join(listed)})")
                data, version = got
                frame = XlsxReviewBackend._frame(key, m, data)
                location = storage.uri(key)
            else:
                whole = backend.read_month(m)
                if whole is None:
                    raise ReviewExchangeError(missing)
                frame, data, version, location, rebuilt = whole, b"", "", backend.location(m), True
        else:
            key = backend.key(m)
            got = storage.read_versioned(key)
            if got is None:
                raise ReviewExchangeError(missing)
            data, version = got
            frame = XlsxReviewBackend._frame(key, m, data)
            location = storage.uri(key)
            if bid is not None:
                have = frame[COL_BUILDING_ID].str.strip_chars() if COL_BUILDING_ID in frame.columns else pl.Series([], dtype=pl.Utf8)
                frame = frame.filter(have == bid) if COL_BUILDING_ID in frame.columns else frame.clear()
                if frame.height == 0:
                    listed = sorted({b for b in have.to_list() if b})
                    raise ReviewExchangeError(
                        f"--building-id {bid!r}: no row of the {m} review workbook has it (buildings: {', '.join(listed) or 'none'})"
                    )
                rebuilt = True
    except ReviewBackendError as e:
        raise ReviewExchangeError(str(e)) from e
    except ValueError as e:  # an unsafe building id (flows.storage_layout.safe_segment)
        raise ReviewExchangeError(f"--building-id: {e}") from e
    if rebuilt:
        audit = backend.read_audit(m)  # the 이전 라벨 점검 sheet travels with the rows (a building's only)
        if audit is not None and bid is not None:
            audit = audit.filter(pl.col(COL_BUILDING_ID).str.strip_chars() == bid)
        data = build_workbook(_check_frame(frame), review_taxonomy(settings, storage), title=yyyymm(m), audit=audit)
    data = _with_pull_record(data, month=m, version=version, building_id=bid, frame=frame)
    ym = yyyymm(m)
    name = f"review_{ym}.xlsx" if bid is None else f"review_{ym}_{re.sub(r'[^0-9A-Za-z가-힣._-]', '_', bid)}.xlsx"
    return PulledWorkbook(data=data, month=m, rows=frame.height, building_id=bid, location=location, filename=name)


# --------------------------------------------------------------------------------------------
# push


@dataclass
class _Plan:
    sheet: pl.DataFrame
    accepted: list[tuple[int, str]]
    unchanged: int
    blank: int
    rejected: list[RowRejection]
    notes: list[ReviewIssue]


def _plan(
    stored: pl.DataFrame,
    upload: pl.DataFrame,
    issues: Sequence[ReviewIssue],
    base: Mapping[str, str] | None,
    buildings: frozenset[str] | None = None,
) -> _Plan:
    """Decide every row of ``upload`` against ``stored`` (module docstring) and return the
    merged sheet: ``stored`` with the accepted rows' reviewer cells replaced."""
    sheet = _check_frame(stored)
    rows = sheet.to_dicts()
    index: dict[str, int] = {}
    for i, r in enumerate(rows):
        vid = str(r.get(COL_VOC_ID) or "").strip()
        if vid and vid not in index:
            index[vid] = i
    by_row: dict[int, list[ReviewIssue]] = {}
    for issue in [*issues, *unknown_voc_id_issues(upload, list(index))]:
        by_row.setdefault(issue.sheet_row, []).append(issue)
    accepted: list[tuple[int, str]] = []
    rejected: list[RowRejection] = []
    notes: list[ReviewIssue] = []
    unchanged = blank = 0
    for i, row in enumerate(upload.iter_rows(named=True)):
        sheet_row = i + 2
        vid = str(row.get(COL_VOC_ID) or "").strip()
        mine = {c: str(row.get(c) or "") for c in REVIEWER_COLUMNS}
        found = by_row.get(sheet_row, [])
        if not vid and not any(v.strip() for v in mine.values()):
            blank += 1
            continue
        target = rows[index[vid]] if vid in index else None
        if buildings is not None:  # the stored row's building decides (a building_id cell typed over does not)
            bid = str((target if target is not None else row).get(COL_BUILDING_ID) or "").strip()
            if bid not in buildings:
                rejected.append(RowRejection(
                    sheet_row, vid,
                    (f"building_id={bid!r}: 이 검수자가 맡은 건물({', '.join(sorted(buildings))})의 행이 아니어서 반영하지 않았습니다",),
                    ("other_building",),
                ))
                continue
        if target is not None and all(mine[c] == str(target.get(c) or "") for c in REVIEWER_COLUMNS) and not any(
            x.code == "duplicate_voc_id" for x in found
        ):
            unchanged += 1
            notes += found
            continue
        reasons = [x for x in found if x.code not in NOTE_CODES]
        if reasons:
            rejected.append(RowRejection(
                sheet_row, vid, tuple(f"{x.column}={x.value!r}: {x.message}" for x in reasons), tuple(x.code for x in reasons)
            ))
            continue
        if target is None:  # no voc_id, with only a memo or 묶음 적용 filled
            rejected.append(RowRejection(sheet_row, vid, ("voc_id가 비어 있어 이 행은 반영하지 않았습니다",), ("missing_voc_id",)))
            continue
        if base is not None and vid in base and reviewer_fingerprint(target) != base[vid]:
            now = ", ".join(f"{c}={target.get(c) or ''!r}" for c in REVIEWER_COLUMNS if str(target.get(c) or "").strip())
            rejected.append(RowRejection(
                sheet_row, vid,
                (f"내려받은 뒤 저장된 시트에서 이 행의 검수 값이 바뀌었습니다 (다른 검수자?; 지금: {now or '모두 비어 있음'}); "
                 "덮어쓰지 않았습니다: `voc review pull`로 다시 받아 확인한 뒤 올리세요",),
                ("conflict",),
            ))
            continue
        moved = [c for c in MODEL_COLUMNS if c in row and str(row.get(c) or "") != str(target.get(c) or "")]
        if moved:
            c = moved[0]
            rejected.append(RowRejection(
                sheet_row, vid,
                (f"모델 태그가 저장된 시트와 다릅니다 ({c}: 파일 {row.get(c) or ''!r}, 저장 {target.get(c) or ''!r}); "
                 "내려받은 뒤 다시 태그된 행입니다: `voc review pull`로 다시 받아 새 태그를 보고 검수하세요",),
                ("model_changed",),
            ))
            continue
        target.update(mine)
        accepted.append((sheet_row, vid))
        notes += found
    merged = pl.DataFrame({c: [r[c] for r in rows] for c in sheet.columns}, schema={c: pl.Utf8 for c in sheet.columns})
    return _Plan(merged, accepted, unchanged, blank, rejected, notes)


def push_review(settings: VocSettings, path: Path, *, month: str | None = None) -> PushResult:
    """Merge the reviewer columns of the rows in ``path`` into the month's stored workbook.

    Parameters
    ----------
    settings
        Storage, environment prefix and review backend (must be ``xlsx``).
    path
        An ``.xlsx`` file: one pulled by :func:`pull_review` (then edited), or any workbook whose
        data sheet has the review columns (``voc_id`` and :data:`voc.review.REVIEWER_COLUMNS`).
    month
        ``YYYY-MM``; default the file's (pull record, else a ``YYYYMM`` data sheet).

    Returns
    -------
    PushResult
        Accepted, unchanged, rejected rows (file row numbers, header = row 1) and notes.

    Raises
    ------
    ReviewExchangeError
        Google Sheets backend; unreadable file; no month; a file of another month; no stored
        workbook; the file lacks ``voc_id`` or a reviewer column.
    flows.adapters.review_backends.ReviewConflictError
        The stored workbook changed under each of the compare-and-swap rounds (nothing written).
    flows.adapters.storage.StorageError
        The storage cannot be read or written.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ReviewExchangeError(f"cannot read {path}: {e.strerror or e}") from e
    return push_review_bytes(settings, data, source=str(path), month=month)


def push_review_bytes(
    settings: VocSettings,
    data: bytes,
    *,
    source: str,
    month: str | None = None,
    buildings: frozenset[str] | None = None,
) -> PushResult:
    """:func:`push_review` of a file's bytes (an upload of the ``voc serve`` review page).

    Parameters
    ----------
    settings
        Storage, environment prefix and review backend (must be ``xlsx``).
    data
        The ``.xlsx`` file's bytes.
    source
        The file's name, for messages.
    month
        ``YYYY-MM``; default the file's.
    buildings
        When set, only rows whose **stored** row (else the file's row) has one of these
        ``building_id`` values may be merged; every other non-blank row is rejected with the
        code ``other_building``.

    Returns
    -------
    PushResult

    Raises
    ------
    ReviewExchangeError, flows.adapters.review_backends.ReviewConflictError, flows.adapters.storage.StorageError
        As :func:`push_review`.
    """
    path = Path(source)
    record, sheets = _read_file(path, data)
    m = _push_month(path, month, record, sheets)
    storage, backend = _storage_and_backend(settings)
    try:
        upload = XlsxReviewBackend._frame(str(path), m, data)
    except ReviewBackendError as e:
        raise ReviewExchangeError(str(e)) from e
    taxonomy = review_taxonomy(settings, storage)
    try:
        _, issues = validate_reviews(upload, taxonomy)
    except ReviewSheetError as e:
        raise ReviewExchangeError(f"{path}: {e}") from e
    base = record["rows"] if record is not None else None
    missing = f"no review workbook for {m} at {backend.location(m)}; run `voc run --mode full --month {m}` first"

    def decide(stored: pl.DataFrame | None) -> tuple[pl.DataFrame, _Plan]:
        """The merged sheet and the plan of every row, on top of the stored sheet."""
        if stored is None:
            raise ReviewExchangeError(missing)
        plan = _plan(stored, upload, issues, base, buildings)
        return plan.sheet, plan

    try:
        _, plan = decide(backend.read_month(m))
        location, written = backend.location(m), False
        if plan.accepted:  # compare-and-swap; a concurrent write makes it decide again on top of it
            location, plan = backend.update_month(m, decide, taxonomy)
            written = True
    except ReviewSheetError as e:
        raise ReviewExchangeError(f"stored review workbook of {m}: {e}") from e
    try:  # the 이전 라벨 점검 sheet: reviewer cells merged, decisions recorded as label fixes
        label_audit = push_audit_sheet(AuditMonth(storage, backend, settings.prefix, m, taxonomy), audit_frame(str(path), data),
                                       source=path.name, buildings=buildings)
    except ReviewBackendError as e:
        raise ReviewExchangeError(str(e)) from e
    return PushResult(
        month=m, location=location, accepted=plan.accepted, unchanged=plan.unchanged, blank=plan.blank,
        rejected=plan.rejected, notes=plan.notes, written=written, checked_against_pull=record is not None,
        label_audit=label_audit,
    )
