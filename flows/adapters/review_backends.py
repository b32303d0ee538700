"""Review backends: where building managers edit the month's review sheet.

Two implementations of :class:`ReviewBackend` (``VOC_REVIEW__BACKEND``):

* :class:`XlsxReviewBackend` (default, no service needed): one workbook per month in storage at
  ``{prefix}/{yyyymm}/review_{yyyymm}.xlsx`` with a data sheet named ``{yyyymm}``, a ``검수 안내``
  sheet explaining the columns and a hidden sheet ``분류체계`` holding the dropdown lists.
* :class:`GSheetsReviewBackend`: Google Sheets through a real ``gspread`` client — one
  spreadsheet per month (title ``ReviewSettings.spreadsheet_title_template``) or, with
  ``ReviewSettings.spreadsheet_key``, one configured spreadsheet with a worksheet per month
  (title ``{yyyymm}``), plus one ``검수 안내`` worksheet.

Both lay the sheet out for a person (issue 14): dropdowns of the offered classes only (active,
not retired, sorted: :func:`dropdown_lists`) with the 중분류 list depending on the row's 대분류
(XLSX: named ranges + ``INDIRECT``; Sheets: one list per row), wrapped text, model columns
protected without a password (Sheets: warning only) and reviewer columns open.

Both store the sheet frame of :mod:`voc.review` (columns :data:`voc.review.REVIEW_COLUMNS` plus
any extra columns a reviewer added) and read back exactly that frame: every column ``Utf8``,
empty cells ``""`` (never null), confidences as ``"0.00"`` text, dates as ``YYYY-MM-DD``. Cells
are written through :func:`voc.review.neutralize_cell`, so the round trip is exact for any frame
whose cells already are what that function returns (every frame :func:`voc.review.build_review_rows`
and :func:`voc.review.merge_into_sheet` produce). Completely empty trailing rows are not returned;
an empty row in the middle is (as all ``""``), so data row ``i`` is spreadsheet row ``i + 2``
(what :class:`voc.review.ReviewIssue` reports).

Formula injection: text cells are never parsed as formulas — XLSX text cells are written with
``data_type = "s"`` (plus Excel's ``quotePrefix`` when the text looks like a formula), Google
Sheets values with ``valueInputOption=RAW``.

Concurrent edits — :meth:`ReviewBackend.update_month` is the way to change a sheet that
reviewers may be editing (the monthly flow's ``sync-review-sheet`` and the simulated reviewer use
it). It reads the sheet, applies a change (``voc.review.merge_into_sheet`` of the run's rows:
reviewer cells are kept) and writes the result only if nobody wrote in between, else re-reads,
re-applies and tries again (``attempts``, then :class:`ReviewConflictError`; nothing is
overwritten):

* XLSX: compare-and-swap on the workbook's storage key (:meth:`flows.adapters.storage.Storage.write_if`):
  locally a SHA-256 check and ``os.replace`` under the directory's ``filelock.FileLock`` (a lock
  file in ``{root}/.locks/``); on S3 a conditional
  ``PutObject`` on the ETag that was read (``If-Match``; ``If-None-Match: *`` for a new one). A
  reviewer's upload landing between the run's read and its write makes the write fail, and the
  run merges again on top of the upload.
* Google Sheets (no conditional write in the API): the worksheet is read, merged, read again —
  a difference means a reviewer typed meanwhile, so it merges again — and then only the cells
  whose value changes are written (one ``values:batchUpdate``, RAW); the grid only grows. The
  reviewer cells of existing rows never change in a merge, so a reviewer typing at any moment,
  even between that last read and the write, keeps their value. (A reviewer *re-sorting* the
  rows in that last second could still misplace model cells; the reviewer cells stay theirs.)

``write_month`` *replaces* the month's sheet with the frame it is given (the Google worksheet is
resized to it), unconditionally: only for a sheet nobody edits (tests, a new month).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast, overload, runtime_checkable

import polars as pl

from config.settings import ReviewSettings
from flows.adapters.storage import Storage, StorageConflict, StorageError, join_key, update_with_cas
from voc.label_fixes import (
    AUDIT_COLUMN_GUIDE,
    AUDIT_COLUMNS,
    AUDIT_REVIEWER_COLUMNS,
    AUDIT_SHEET,
    COL_AUDIT_MODEL,
    COL_DIMENSION,
    COL_FIX_LABEL,
    COL_SCORE,
    COL_VERDICT,
    DIMENSION_NAMES,
    VERDICT_FIX,
    VERDICT_KEEP,
    canon_score,
)
from voc.months import parse_month, yyyymm
from voc.review import (
    ADDED_COLUMNS,
    COL_BUILDING_ID,
    COL_CREATED,
    COL_DONE,
    COL_FLAG,
    COL_GROUP_APPLY,
    COL_MODEL_VERSION,
    COL_RUN_ID,
    COL_URGENT,
    COL_VOC_ID,
    COLUMN_GUIDE,
    CONFIDENCE_COLUMNS,
    GUESS_SUFFIX,
    MODEL_COLUMNS,
    MODEL_TAG_COLUMNS,
    REVIEW_COLUMNS,
    REVIEW_GUIDE_INTRO,
    REVIEWER_COLUMNS,
    REVIEWER_LABEL_COLUMNS,
    TEXT_COLUMNS,
    URGENT_MARK,
    is_formula_like,
    neutralize_cell,
    split_guess,
)
from voc.taxonomy import Taxonomy

if TYPE_CHECKING:
    from openpyxl.styles import Alignment, Font, PatternFill, Protection
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "ReviewBackend",
    "ReviewBackendError",
    "ReviewConflictError",
    "XlsxReviewBackend",
    "PerBuildingXlsxReviewBackend",
    "GSheetsReviewBackend",
    "TAXONOMY_SHEET",
    "GUIDE_SHEET",
    "DONE_CHOICES",
    "COLUMN_WIDTHS",
    "SCREEN_WIDTH",
    "SHEET_ZOOM",
    "frozen_columns",
    "dropdown_lists",
    "minor_lists",
    "row_minor_choices",
    "guide_rows",
    "list_name",
    "frame_from_grid",
    "routed_http_client",
    "make_gspread_client",
    "build_workbook",
    "WorksheetLayout",
    "sheet_format_requests",
    "urgent_row_requests",
    "guide_requests",
    "audit_frame",
    "AUDIT_WIDTHS",
    "PROTECTION_NOTE",
]

log = logging.getLogger(__name__)

TAXONOMY_SHEET = "분류체계"
"""Hidden sheet (XLSX) holding the dropdown lists."""

GUIDE_SHEET = "검수 안내"
"""Sheet explaining every column in Korean (:data:`voc.review.COLUMN_GUIDE`)."""

DONE_CHOICES: tuple[str, ...] = ("Y", "N", "예", "아니오", "아니요", "O", "X", "✓", "1", "0", "TRUE", "FALSE")
"""The 검수완료 and 묶음 적용 dropdowns and what their validation lets through: exactly what
``voc refresh`` reads — :data:`voc.review.DONE_VALUES` (done: ``Y 예 O ✓ 1 TRUE``) and
:data:`voc.review.NOT_DONE_VALUES` (not done: ``N 아니오 아니요 X 0 FALSE``), ``Y``/``N``
first. Both programs compare list entries case-insensitively, so ``y`` and ``o`` pass too."""

COLUMN_WIDTHS: dict[str, int] = {
    "검토 우선": 6,
    "긴급": 5,
    "반복": 8,
    "검토 사유": 12,
    "신뢰도": 7,
    "voc_id": 10,
    "building_id": 12,
    "건물명": 10,
    "등록일": 11,
    "묶음": 8,
    "제목": 18,
    "요청내용": 30,
    "답변": 12,
    "주제 대분류": 9,
    "주제 중분류": 11,
    "주제 신뢰도": 7,
    "작업유형 대분류": 9,
    "작업유형 중분류": 11,
    "작업유형 신뢰도": 9,
    "유사 검수 VOC": 14,
    "답변 초안": 14,
    "검수_주제 대분류": 12,
    "검수_주제 중분류": 14,
    "검수_작업유형 대분류": 14,
    "검수_작업유형 중분류": 14,
    "묶음 적용": 6,
    "검수완료": 9,
    "검수 메모": 24,
    "model_version": 22,
    "run_id": 22,
}
"""Column widths in Excel character units (Google Sheets: × 7 + 10 pixels). Narrow, with the
texts wrapped and headers on two lines, so that everything left of the first reviewer column
(frozen: voc_id, 제목, 요청내용, the model's tags) plus the 검수_ columns through 검수완료 fit
:data:`SCREEN_WIDTH` (issue 22; the widths were 337 units before the first reviewer column).
긴급, 반복 and 답변 초안 (issues 24–25) added 27 units: 302 in all."""

SCREEN_WIDTH = 320
"""Column units a reviewer sees at once: a 1920-pixel-wide window at the workbook's
:data:`SHEET_ZOOM` holds (1900 / 0.75 − 29 × 5) / 7 ≈ 340 units (Excel: a unit is 7 pixels
plus 5 of padding per column, Calibri 11); 20 are left for the row numbers and scroll bar."""

SHEET_ZOOM = 75
"""Zoom (percent) the XLSX data sheet opens at (85 until 긴급, 반복 and 답변 초안 joined the
columns on screen: at 85 % the screen holds about 280 units, 22 fewer than they need)."""

_HIDDEN_COLUMNS: tuple[str, ...] = (COL_MODEL_VERSION, COL_RUN_ID)
_URGENT_RGB = "FFF8CBAD"
"""Fill (ARGB) of an urgent row's machine cells (not the grey model or yellow reviewer cells)."""
_LITERAL_COLUMNS: frozenset[str] = frozenset((*REVIEWER_COLUMNS, COL_VOC_ID))
"""Columns read as typed: a formula there comes back as its formula text (``=VLOOKUP(…)``),
never as its value, so ``voc.review.validate_reviews`` reports it instead of reading an
uncached formula as an empty cell (which a done row would take as confirming the model's tag)."""
_DEFAULT_WIDTH = 14
_XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

UPDATE_ATTEMPTS = 5
"""Read-change-write rounds :meth:`ReviewBackend.update_month` makes before giving up."""

R = TypeVar("R")
Change = Callable[[pl.DataFrame | None], tuple[pl.DataFrame, R]]
"""What :meth:`ReviewBackend.update_month` applies: the sheet as read (``None``: no sheet yet) →
``(new sheet, anything to hand back)``, e.g. ``lambda old: merge_into_sheet(old, rows)``. It may
be called more than once (once per round); it must not have side effects."""

AuditChange = Callable[[pl.DataFrame | None, frozenset[str] | None], tuple[pl.DataFrame, R]]
"""What ``update_audit`` applies to the :data:`voc.label_fixes.AUDIT_SHEET` sheet: ``(the sheet as
read or None, the buildings that have a workbook or None for one month workbook)`` → ``(new
sheet, anything to hand back)``; called once per round, without side effects."""


class ReviewBackendError(RuntimeError):
    """A review sheet could not be read or written; the message names the month and location
    (never a credential)."""


class ReviewConflictError(ReviewBackendError):
    """The sheet changed under every one of :data:`UPDATE_ATTEMPTS` rounds of
    :meth:`ReviewBackend.update_month`; nothing was overwritten: rerun."""


@runtime_checkable
class ReviewBackend(Protocol):
    """Where the month's review sheet lives."""

    def read_month(self, month: str) -> pl.DataFrame | None:
        """The month's sheet frame.

        Parameters
        ----------
        month
            ``YYYY-MM`` (any form :func:`voc.months.parse_month` accepts).

        Returns
        -------
        pl.DataFrame or None
            ``M × C``, all ``Utf8``, ``""`` for empty; None when the month has no sheet yet.
        """

    def write_month(self, month: str, sheet: pl.DataFrame, taxonomy: Taxonomy) -> str:
        """Replace the month's sheet with ``sheet``, unconditionally.

        Parameters
        ----------
        month
            ``YYYY-MM``.
        sheet
            ``M × C`` sheet frame (:data:`voc.review.REVIEW_COLUMNS` and any extra columns).
        taxonomy
            The dropdowns' classes (offered ones only).

        Returns
        -------
        str
            The sheet's location (URI or URL).
        """

    def location(self, month: str) -> str:
        """Where the month's sheet is (or will be).

        Parameters
        ----------
        month
            ``YYYY-MM``.

        Returns
        -------
        str
            A storage URI or a URL.
        """

    def update_month(
        self, month: str, change: Change[R], taxonomy: Taxonomy, *, attempts: int = UPDATE_ATTEMPTS
    ) -> tuple[str, R]:
        """Read the month's sheet, apply ``change``, write the result unless someone wrote in
        between (then re-read and re-apply).

        Parameters
        ----------
        month
            ``YYYY-MM``.
        change
            The sheet as read (None: no sheet yet) → (new sheet, result); may run once per round.
        taxonomy
            The dropdowns' classes.
        attempts
            Rounds before giving up.

        Returns
        -------
        tuple[str, R]
            The location and what the last ``change`` returned.

        Raises
        ------
        ReviewConflictError
            Every attempt met a concurrent write (nothing overwritten).
        """


# --------------------------------------------------------------------------------------------
# shared helpers


def dropdown_lists(taxonomy: Taxonomy) -> dict[str, list[str]]:
    """Dropdown values per reviewer column: for 대분류 the offered majors, for 중분류 every
    offered minor of the dimension (the list shown when no 대분류 is chosen: a reviewer may fill
    the minor alone), :data:`DONE_CHOICES` for 검수완료 and 묶음 적용. *Offered* = active classes
    of majors no reorganisation retired, sorted (:meth:`voc.taxonomy.Taxonomy.offered_rows`):
    retired names are never offered (typed by hand they still count, mapped to their successor
    by ``voc.review.validate_reviews``). Dimensions without offered classes get no entry.

    Parameters
    ----------
    taxonomy
        The classes to offer.

    Returns
    -------
    dict[str, list[str]]
        ``{reviewer column: values}``: majors and minors sorted (Hangul order, ``기타`` last),
        :data:`DONE_CHOICES` for 검수완료 and 묶음 적용.
    """
    out: dict[str, list[str]] = {}
    for dim, (col_major, col_minor) in REVIEWER_LABEL_COLUMNS.items():
        rows = taxonomy.offered_rows(dim)
        if not rows:
            continue
        out[col_major] = list(dict.fromkeys(r.major for r in rows))
        out[col_minor] = sorted(dict.fromkeys(r.minor for r in rows), key=lambda m: (m == "기타", m))
    out[COL_GROUP_APPLY] = list(DONE_CHOICES)
    out[COL_DONE] = list(DONE_CHOICES)
    return out


def minor_lists(taxonomy: Taxonomy) -> dict[str, dict[str, list[str]]]:
    """The dependent 중분류 dropdowns.

    Parameters
    ----------
    taxonomy
        The classes to offer.

    Returns
    -------
    dict[str, dict[str, list[str]]]
        Per reviewer 중분류 column, ``{offered major: its offered minors}``, sorted as
        :meth:`voc.taxonomy.Taxonomy.offered_rows`; dimensions without offered classes absent.
    """
    out: dict[str, dict[str, list[str]]] = {}
    for dim, (_col_major, col_minor) in REVIEWER_LABEL_COLUMNS.items():
        per: dict[str, list[str]] = {}
        for r in taxonomy.offered_rows(dim):
            per.setdefault(r.major, []).append(r.minor)
        if per:
            out[col_minor] = per
    return out


def row_minor_choices(row: dict[str, str], taxonomy: Taxonomy, dimension: str) -> list[str]:
    """The 중분류 dropdown of one sheet row (Google Sheets' per-row lists): the offered minors of
    the row's 대분류 — the reviewer's 검수_ 대분류 when it names an offered or retired major
    (a retired one stands for its successor), else the model's 대분류 (guess marker removed,
    retired mapped the same way) — or every offered minor when neither names one.

    Parameters
    ----------
    row
        One sheet row by column name.
    taxonomy
        The classes to offer.
    dimension
        ``"subject"`` or ``"work"``.

    Returns
    -------
    list[str]
        The row's 중분류 choices (``[]`` when the dimension has no offered class).
    """
    col_major, col_minor = REVIEWER_LABEL_COLUMNS[dimension]
    per = minor_lists(taxonomy).get(col_minor, {})
    retired = taxonomy.retired_majors(dimension)
    for cell in (row.get(col_major, ""), split_guess(row.get(MODEL_TAG_COLUMNS[dimension][0], ""))[0]):
        major = (cell or "").strip()
        major = retired.get(major) or major
        if major in per:
            return per[major]
    return dropdown_lists(taxonomy).get(col_minor, [])


def list_name(dimension: str, index: int | None = None) -> str:
    """Workbook-level defined name of a dropdown list (XLSX): ``VOC_S_MAJORS`` (the majors),
    ``VOC_S_ALL`` (every minor) and ``VOC_S_{k}`` (the minors of the k-th major, 1-based, in the
    order of ``VOC_S_MAJORS``); ``W`` for the work type. ASCII so that any major name works:
    the 중분류 validation finds k with ``MATCH`` and the list with ``INDIRECT``.

    Parameters
    ----------
    dimension
        ``"subject"`` (``S``) or anything else (``W``).
    index
        None: the majors' list; 0: every minor; k ≥ 1: the minors of the k-th major.

    Returns
    -------
    str
    """
    d = "S" if dimension == "subject" else "W"
    if index is None:
        return f"VOC_{d}_MAJORS"
    return f"VOC_{d}_{index}" if index > 0 else f"VOC_{d}_ALL"


def frozen_columns(columns: Sequence[str]) -> int:
    """How many leading columns stay put when scrolling right: every column before the first
    reviewer column (:data:`voc.review.REVIEWER_COLUMNS`), so ``voc_id``, 제목, 요청내용 and the
    model's tags stay beside the 검수_ cells; 0 when the sheet has no reviewer column.

    Parameters
    ----------
    columns
        The sheet's columns, in order.

    Returns
    -------
    int
    """
    for j, c in enumerate(columns):
        if c in REVIEWER_COLUMNS:
            return j
    return 0


def guide_rows() -> list[list[str]]:
    """The 검수 안내 sheet as rows of text: the opening lines, a blank row, then a header
    ``열 | 입력 | 설명`` and one row per column of :data:`voc.review.REVIEW_COLUMNS` (입력 =
    ``검수자`` for reviewer columns, ``-`` otherwise).

    Returns
    -------
    list[list[str]]
        Rows of three cells (열, 입력, 설명); the opening lines fill the first cell only.
    """
    rows: list[list[str]] = [[line, "", ""] for line in REVIEW_GUIDE_INTRO]
    rows.append(["", "", ""])
    rows.append(["열", "입력", "설명"])
    for c in REVIEW_COLUMNS:
        rows.append([c, "검수자" if c in REVIEWER_COLUMNS else "-", COLUMN_GUIDE[c]])
    return rows


def _check_frame(sheet: pl.DataFrame) -> pl.DataFrame:
    """``sheet`` as stored: review columns first (missing :data:`voc.review.ADDED_COLUMNS` added
    empty), all text; :class:`ReviewBackendError` when another review column is missing."""
    missing = [c for c in REVIEW_COLUMNS if c not in sheet.columns and c not in ADDED_COLUMNS]
    if missing:
        raise ReviewBackendError(f"review sheet frame is missing column(s) {missing}")
    add = [pl.lit("").alias(c) for c in ADDED_COLUMNS if c not in sheet.columns]  # a sheet from before them
    if add:
        sheet = sheet.with_columns(add)
    cols = [*REVIEW_COLUMNS, *[c for c in sheet.columns if c not in REVIEW_COLUMNS]]
    return sheet.select(cols).with_columns(
        [pl.col(c).cast(pl.Utf8, strict=False).fill_null("") for c in cols]
    )


def _read_cell(value: Any) -> str:
    """A cell value as read back: text as is, anything else :func:`voc.review.neutralize_cell`."""
    return value if isinstance(value, str) else neutralize_cell(value)


def _canon_conf(text: str) -> str:
    """A confidence cell as ``"0.00"`` (``""`` when blank; a non-number unchanged)."""
    t = text.strip()
    if not t:
        return ""
    try:
        return f"{float(t):.2f}"
    except ValueError:
        return text


def frame_from_grid(grid: Sequence[Sequence[Any]]) -> pl.DataFrame:
    """A sheet frame from cell values, header first (what both backends read).

    Cells: ``None`` → ``""``, text as is, other values via :func:`voc.review.neutralize_cell`
    (dates ``YYYY-MM-DD``, integral numbers without ``.0``, booleans ``TRUE``/``FALSE``);
    confidence columns are re-formatted ``"0.00"`` when numeric. Trailing all-empty rows are
    dropped (inner ones kept, so row numbers stay those of the spreadsheet); header-less
    columns that hold nothing are dropped, others are named ``column_{n}``; a repeated header
    gets a ``_2``, ``_3`` suffix.

    Parameters
    ----------
    grid
        Rows of cell values (ragged rows allowed), the header row first.

    Returns
    -------
    pl.DataFrame
        ``M × C`` all ``Utf8``; with no header row, a 0-row frame of :data:`REVIEW_COLUMNS`.
    """
    rows = [[_read_cell(v) for v in r] for r in grid]
    if not rows or not any(h.strip() for h in rows[0]):
        return pl.DataFrame(schema={c: pl.Utf8 for c in REVIEW_COLUMNS})
    header, body = rows[0], rows[1:]
    width = max([len(header), *(len(r) for r in body)])
    header = header + [""] * (width - len(header))
    body = [r + [""] * (width - len(r)) for r in body]
    while body and not any(v.strip() for v in body[-1]):
        body.pop()
    keep: list[int] = []
    names: list[str] = []
    seen: dict[str, int] = {}
    for j, h in enumerate(header):
        name = h.strip()
        if not name:
            if not any(r[j].strip() for r in body):
                continue
            name = f"column_{j + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        keep.append(j)
        names.append(name)
    data = {n: [r[j] for r in body] for n, j in zip(names, keep)}
    for c in CONFIDENCE_COLUMNS:
        if c in data:
            data[c] = [_canon_conf(v) for v in data[c]]
    return pl.DataFrame(data, schema={n: pl.Utf8 for n in names})


def _iso_date(text: str) -> date | None:
    """The date of a ``YYYY-MM-DD`` text, else None."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    """The number a text holds, else None (blank too)."""
    try:
        return float(text) if text.strip() else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# XLSX in storage


class XlsxReviewBackend:
    """Review workbooks in storage (the embedded default).

    One workbook per month at ``{prefix}/{yyyymm}/review_{yyyymm}.xlsx``, built in memory with
    openpyxl and written with ``storage.write_bytes``. Sheets: the data sheet ``{yyyymm}`` first,
    then :data:`GUIDE_SHEET` (every column explained in Korean, :func:`guide_rows`) and the
    hidden :data:`TAXONOMY_SHEET` with the dropdown lists.

    Data sheet: bold header on two lines, frozen header row *and* every column left of the first
    reviewer column (:func:`frozen_columns`; ``freeze_panes = "V2"`` for the standard columns),
    opened at :data:`SHEET_ZOOM` % with :data:`COLUMN_WIDTHS` so that the frozen part and the
    검수 columns fit one screen; printed landscape, one page wide, header row repeated. Autofilter over the data, model
    tag columns grey, reviewer columns yellow, the other cells of an urgent row (긴급 filled,
    :data:`voc.review.URGENT_MARK`) light red, ``model_version``/``run_id`` hidden, confidences
    as numbers (``0.00``), 등록일 as a date, all other cells text (``data_type "s"``;
    formula-like text also gets ``quotePrefix`` so Excel keeps it text when edited). Text columns
    (:data:`voc.review.TEXT_COLUMNS`) wrap, every cell is top-aligned, and each row is as high
    as its longest text needs, at most six lines (:func:`row_height`).

    **Reading**: reviewer cells and ``voc_id`` are read as typed — a formula as its formula
    text (``=VLOOKUP(…)``, cached value or not), an error as ``#N/A`` — so
    ``voc.review.validate_reviews`` reports them; a formula in any other column (a helper
    column a reviewer added) reads as its cached value (a second, value-only pass, made only
    when there is one).

    **Protection**: the sheet is protected without a password — every cell is locked except the
    reviewer columns (and columns a reviewer added), so model values cannot be changed by
    accident; filtering and resizing stay allowed (sorting a protected range does not). Anyone
    can lift it (검토 › 시트 보호 해제): it guards against slips, not people.

    **Dropdowns** (``DataValidation`` type ``list``, error on other values): the lists live on
    :data:`TAXONOMY_SHEET` (column per list, header in row 1) under workbook-level names
    (:func:`list_name`): ``VOC_S_MAJORS`` for 검수_주제 대분류, ``VOC_S_ALL`` and
    ``VOC_S_1`` … for the minors of each major. 검수_주제 중분류 is **dependent** on the row's
    대분류 — the reviewer's 검수_주제 대분류 (column V), or the model's 주제 대분류 (column N)
    while that is empty: with ``K = IF($V2="",$N2,$V2)``, ``IF(ISNA(MATCH(K,VOC_S_MAJORS,0)),
    VOC_S_ALL,INDIRECT("VOC_S_"&MATCH(K,VOC_S_MAJORS,0)))`` (every minor when K is no offered
    major: a retired name); the same with ``VOC_W_*`` for the work type. The model's 대분류 of a
    keyword guess reads ``값 (추정)``: ``SUBSTITUTE`` removes :data:`voc.review.GUESS_SUFFIX`
    before the lookup, so a guessed major gets its own minors too. Only offered classes (active, not retired,
    sorted: :func:`dropdown_lists`). 검수완료 and 묶음 적용: an inline list of
    :data:`DONE_CHOICES` (every value ``voc refresh`` reads, nothing else).

    Parameters
    ----------
    storage
        Any :class:`flows.adapters.storage.Storage`.
    prefix
        The environment prefix (``VocSettings.prefix``, e.g. ``stat/voc-dev``).
    """

    def __init__(self, storage: Storage, prefix: str) -> None:
        """Workbooks of ``prefix`` in ``storage``."""
        self.storage = storage
        self.prefix = prefix

    def key(self, month: str) -> str:
        """Storage key of the month's workbook.

        Parameters
        ----------
        month
            ``YYYY-MM``.

        Returns
        -------
        str
            ``{prefix}/{yyyymm}/review_{yyyymm}.xlsx`` (:func:`flows.storage_layout.review_workbook_key`).
        """
        from flows.storage_layout import review_workbook_key

        return review_workbook_key(self.prefix, month)

    def location(self, month: str) -> str:
        """The storage URI of :meth:`key` (see :meth:`ReviewBackend.location`)."""
        return self.storage.uri(self.key(month))

    def read_month(self, month: str) -> pl.DataFrame | None:
        """The month's sheet frame, ``None`` when the workbook does not exist
        (:meth:`ReviewBackend.read_month`).

        Raises
        ------
        ReviewBackendError
            The file is not a readable XLSX workbook, or has no data sheet.
        """
        return self._read_versioned(month)[0]

    def _read_versioned(self, month: str) -> tuple[pl.DataFrame | None, str | None]:
        """The sheet frame and the storage version it was read at (``(None, None)``: no workbook)."""
        key = self.key(month)
        try:
            got = self.storage.read_versioned(key)
        except StorageError as e:
            raise ReviewBackendError(f"review workbook {key}: {e}") from e
        if got is None:
            return None, None
        data, version = got
        return self._frame(key, month, data), version

    @staticmethod
    def _frame(key: str, month: str, data: bytes) -> pl.DataFrame:
        """The sheet frame of a workbook's bytes (its ``yyyymm`` sheet, else its first data sheet)."""
        import openpyxl

        def sheet_grid(*, data_only: bool) -> tuple[list[list[Any]], list[tuple[int, int]]]:
            """Cell values (formulas as their text unless ``data_only``) and the formula cells."""
            try:
                wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=data_only)
            except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException, …
                raise ReviewBackendError(f"review workbook {key} is not a readable .xlsx file: {e}") from e
            try:
                ym = yyyymm(month)
                names = [n for n in wb.sheetnames if n not in (TAXONOMY_SHEET, GUIDE_SHEET, AUDIT_SHEET)]
                if not names:
                    raise ReviewBackendError(f"review workbook {key} has no data sheet")
                ws = wb[ym] if ym in wb.sheetnames else wb[names[0]]
                ws.reset_dimensions()  # some writers store a wrong <dimension>: read every cell
                grid: list[list[Any]] = []
                formulas: list[tuple[int, int]] = []
                for i, cells in enumerate(ws.iter_rows()):
                    row = []
                    for j, c in enumerate(cells):
                        v = c.value
                        if getattr(c, "data_type", None) == "f":  # ArrayFormula/DataTableFormula: their text
                            v = v if isinstance(v, str) else (getattr(v, "text", None) or "=")
                            formulas.append((i, j))
                        row.append(v)
                    grid.append(row)
                return grid, formulas
            finally:
                wb.close()

        grid, formulas = sheet_grid(data_only=False)
        header = [str(v).strip() if v is not None else "" for v in (grid[0] if grid else [])]
        literal_only = {j for j, h in enumerate(header) if h in _LITERAL_COLUMNS}
        cached = [(i, j) for i, j in formulas if i == 0 or j not in literal_only]
        if cached:  # a formula outside the reviewer cells (a helper column): its cached value, as before
            values, _ = sheet_grid(data_only=True)
            for i, j in cached:
                grid[i][j] = values[i][j] if i < len(values) and j < len(values[i]) else None
        return frame_from_grid(grid)

    def write_month(self, month: str, sheet: pl.DataFrame, taxonomy: Taxonomy) -> str:
        """Write the month's workbook (replacing it); return its storage URI
        (:meth:`ReviewBackend.write_month`).

        Raises
        ------
        ReviewBackendError
            ``sheet`` lacks a :data:`voc.review.REVIEW_COLUMNS` column.
        """
        frame = _check_frame(sheet)
        data = build_workbook(frame, taxonomy, title=yyyymm(month))
        return self.storage.write_bytes(self.key(month), data, content_type=_XLSX_TYPE)

    def update_month(
        self, month: str, change: Change[R], taxonomy: Taxonomy, *, attempts: int = UPDATE_ATTEMPTS,
        audit: AuditChange[Any] | None = None,
    ) -> tuple[str, R]:
        """Compare-and-swap of the workbook (:func:`flows.adapters.storage.update_with_cas`): read
        it with its version, apply ``change``, write with
        :meth:`flows.adapters.storage.Storage.write_if` on that version; on
        :class:`flows.adapters.storage.StorageConflict` (a reviewer uploaded meanwhile) start again from
        the new workbook. Parameters and result as :meth:`ReviewBackend.update_month`; the
        :data:`voc.label_fixes.AUDIT_SHEET` sheet is kept as it is, or, with ``audit`` (an
        :data:`AuditChange` called with ``(sheet as read or None, None)``; its result is not
        returned), replaced by ``audit``'s in the same write: the workbook is built once.

        Raises
        ------
        ReviewConflictError
            Every one of ``attempts`` rounds met a concurrent write (nothing overwritten).
        ReviewBackendError
            Unreadable workbook; a frame without the review columns.
        flows.adapters.storage.StorageError
            The storage cannot be read or written.
        """
        key = self.key(month)

        def merge(data: bytes | None) -> tuple[bytes, R]:
            """The new workbook's bytes on top of the stored ones, and ``change``'s result."""
            sheet, result = change(self._frame(key, month, data) if data is not None else None)
            old = audit_frame(key, data) if data is not None else None  # the 이전 라벨 점검 sheet stays as it is …
            rows = audit(old, None)[0] if audit is not None else old  # … unless ``audit`` changes it
            return build_workbook(_check_frame(sheet), taxonomy, title=yyyymm(month), audit=rows), result

        try:
            return update_with_cas(self.storage, key, merge, attempts=attempts, content_type=_XLSX_TYPE)
        except StorageConflict as e:
            raise ReviewConflictError(
                f"review workbook {self.storage.uri(key)} changed during each of {attempts} attempts to update it; "
                "nothing was overwritten: rerun the same run"
            ) from e

    def read_audit(self, month: str) -> pl.DataFrame | None:
        """The month's :data:`voc.label_fixes.AUDIT_SHEET` frame.

        Parameters
        ----------
        month
            ``YYYY-MM``.

        Returns
        -------
        pl.DataFrame or None
            :func:`audit_frame` of the workbook; None when the workbook or the sheet does not exist.

        Raises
        ------
        ReviewBackendError
            The workbook is not a readable XLSX file, or storage cannot be read.
        """
        key = self.key(month)
        try:
            data = self.storage.read_bytes(key) if self.storage.exists(key) else None
        except StorageError as e:
            raise ReviewBackendError(f"review workbook {key}: {e}") from e
        return audit_frame(key, data) if data is not None else None

    def update_audit(
        self, month: str, change: AuditChange[R], taxonomy: Taxonomy, *, attempts: int = UPDATE_ATTEMPTS
    ) -> tuple[str, R]:
        """Compare-and-swap of the :data:`voc.label_fixes.AUDIT_SHEET` sheet: ``change(sheet as
        read or None, None)`` gives the new one (an empty frame: no sheet); the data sheet is
        rewritten as read (reviewer cells unchanged), the workbook written unless nothing changed.

        Parameters
        ----------
        month
            ``YYYY-MM``.
        change
            See :data:`AuditChange`.
        taxonomy
            The dropdowns' classes.
        attempts
            Rounds before giving up.

        Returns
        -------
        tuple[str, R]
            The workbook's URI and what the last ``change`` returned.

        Raises
        ------
        ReviewBackendError
            The month has no workbook, or it is unreadable.
        ReviewConflictError
            Every one of ``attempts`` rounds met a concurrent write (nothing overwritten).
        """
        key = self.key(month)

        def merge(data: bytes | None) -> tuple[bytes, R]:
            """The workbook with ``change``'s audit sheet (the stored bytes when it is the same)."""
            if data is None:
                raise ReviewBackendError(f"no review workbook for {yyyymm(month)} at {self.location(month)}")
            old = audit_frame(key, data)
            audit, result = change(old, None)
            if _same_audit(old, audit):
                return data, result
            return build_workbook(_check_frame(self._frame(key, month, data)), taxonomy, title=yyyymm(month), audit=audit), result

        try:
            return update_with_cas(self.storage, key, merge, attempts=attempts, content_type=_XLSX_TYPE)
        except StorageConflict as e:
            raise ReviewConflictError(
                f"review workbook {self.storage.uri(key)} changed during each of {attempts} attempts to update it; "
                "nothing was overwritten: rerun"
            ) from e

    def __repr__(self) -> str:
        """``XlsxReviewBackend(storage, prefix=…)``."""
        return f"XlsxReviewBackend({self.storage!r}, prefix={self.prefix!r})"


class PerBuildingXlsxReviewBackend(XlsxReviewBackend):
    """Review workbooks in storage, one per building (``VOC_REVIEW__PER_BUILDING=true``).

    Building ``B``'s rows of the month live at
    ``{prefix}/{yyyymm}/{B}/review_{B}_{yyyymm}.xlsx`` (:meth:`building_key`), each laid out
    like the monthly workbook of :class:`XlsxReviewBackend` (same sheets, dropdowns,
    protection), so a reviewer gets only their building's rows.

    * :meth:`write_month` splits the sheet by ``building_id`` and writes one workbook per building;
    * :meth:`read_month` (what ``refresh`` reads) concatenates every building's workbook of the
      month (buildings in :func:`voc.schema.building_sort_key` order): the same frame the monthly
      workbook would give;
    * :meth:`update_month` reads every building's workbook with its storage version, applies
      ``change`` to the concatenation, and writes back only the buildings whose rows changed,
      each with :meth:`flows.adapters.storage.Storage.write_if` on the version it read. A concurrent
      write makes it start again from a fresh read; the changes (merges) are idempotent, so a
      building written before the conflict is simply read back. A push of one building's rows
      writes that building's workbook only.

    Raises
    ------
    ReviewBackendError
        From :meth:`write_month` / :meth:`update_month` for a row without ``building_id`` (it
        would have no workbook), or an unsafe building id.
    """

    def building_key(self, month: str, building_id: str) -> str:
        """Storage key of one building's workbook.

        Parameters
        ----------
        month
            ``YYYY-MM``.
        building_id
            The building (a safe path segment).

        Returns
        -------
        str
            ``{prefix}/{yyyymm}/{building_id}/review_{building_id}_{yyyymm}.xlsx``.

        Raises
        ------
        ValueError
            ``building_id`` is no safe path segment (:func:`flows.storage_layout.safe_segment`).
        """
        from flows.storage_layout import safe_segment

        ym = yyyymm(month)
        bid = safe_segment(building_id, "building_id")
        return join_key(self.prefix, ym, bid, f"review_{bid}_{ym}.xlsx")

    def key(self, month: str) -> str:
        """The month's folder ``{prefix}/{yyyymm}`` (there is no single workbook).

        Parameters
        ----------
        month
            ``YYYY-MM``.

        Returns
        -------
        str
        """
        return join_key(self.prefix, yyyymm(month))

    def building_ids(self, month: str) -> list[str]:
        """The buildings that have a workbook of the month.

        Parameters
        ----------
        month
            ``YYYY-MM``.

        Returns
        -------
        list[str]
            Building ids, sorted by :func:`voc.schema.building_sort_key`.
        """
        from voc.schema import building_sort_key

        ym = yyyymm(month)
        base = join_key(self.prefix, ym)
        found = []
        for k in self.storage.list(base):
            parts = k[len(base):].strip("/").split("/")
            if len(parts) == 2 and parts[1] == f"review_{parts[0]}_{ym}.xlsx":
                found.append(parts[0])
        return sorted(found, key=building_sort_key)

    def _read_buildings(self, month: str, *, audits: dict[str, pl.DataFrame | None] | None = None) -> dict[str, tuple[pl.DataFrame, str]]:
        """``{building_id: (sheet frame, version)}``; with ``audits``, each workbook's
        :data:`voc.label_fixes.AUDIT_SHEET` frame (None without one) is put there too."""
        out: dict[str, tuple[pl.DataFrame, str]] = {}
        try:
            for bid in self.building_ids(month):
                key = self.building_key(month, bid)
                got = self.storage.read_versioned(key)
                if got is not None:
                    out[bid] = (self._frame(key, month, got[0]), got[1])
                    if audits is not None:
                        audits[bid] = audit_frame(key, got[0])
        except StorageError as e:
            raise ReviewBackendError(f"review workbooks of {yyyymm(month)} under {self.location(month)}: {e}") from e
        return out

    @staticmethod
    def _concat(frames: Sequence[pl.DataFrame]) -> pl.DataFrame | None:
        """Frames stacked (all text, missing columns ``""``); None for none."""
        if not frames:
            return None
        return pl.concat([f.cast({c: pl.Utf8 for c in f.columns}) for f in frames], how="diagonal").fill_null("")

    def read_month(self, month: str) -> pl.DataFrame | None:
        """Every building's rows of the month, concatenated; ``None`` when no building has a workbook
        (:meth:`ReviewBackend.read_month`).

        Raises
        ------
        ReviewBackendError
            A workbook is not a readable XLSX file, or has no data sheet.
        """
        return self._concat([f for f, _ in self._read_buildings(month).values()])

    def _split(self, month: str, sheet: pl.DataFrame) -> dict[str, pl.DataFrame]:
        """``{building_id: its rows}`` of a sheet; :class:`ReviewBackendError` for a row without one."""
        frame = _check_frame(sheet)
        if COL_BUILDING_ID not in frame.columns:
            raise ReviewBackendError(f"review sheet of {yyyymm(month)} has no {COL_BUILDING_ID} column: cannot split it by building")
        bids = frame[COL_BUILDING_ID].cast(pl.Utf8).fill_null("").str.strip_chars()
        blank = [i + 2 for i, b in enumerate(bids.to_list()) if not b]
        if blank:
            raise ReviewBackendError(
                f"review sheet of {yyyymm(month)}: row {blank[0]} (sheet row, header = 1) has an empty {COL_BUILDING_ID}: "
                "it would belong to no building's workbook"
            )
        frame = frame.with_columns(bids.alias("__bid"))
        return {str(b): part.drop("__bid") for (b,), part in frame.group_by("__bid", maintain_order=True)}

    def write_month(self, month: str, sheet: pl.DataFrame, taxonomy: Taxonomy) -> str:
        """Write one workbook per building of ``sheet`` (replacing each); return the month folder's URI
        (:meth:`ReviewBackend.write_month`).

        Raises
        ------
        ReviewBackendError
            A :data:`voc.review.REVIEW_COLUMNS` column is missing; a row without ``building_id``.
        """
        for bid, part in self._split(month, sheet).items():
            self.storage.write_bytes(
                self.building_key(month, bid), build_workbook(part, taxonomy, title=yyyymm(month)), content_type=_XLSX_TYPE
            )
        return self.location(month)

    def update_month(
        self, month: str, change: Change[R], taxonomy: Taxonomy, *, attempts: int = UPDATE_ATTEMPTS,
        audit: AuditChange[Any] | None = None,
    ) -> tuple[str, R]:
        """Compare-and-swap per building workbook (class docstring); parameters and result as
        :meth:`ReviewBackend.update_month`. With ``audit``, each workbook's
        :data:`voc.label_fixes.AUDIT_SHEET` sheet is replaced in the same write, as
        :meth:`update_audit` would (``audit`` gets every building's sheet rows and the buildings
        that will have a workbook; its result is not returned).

        Raises
        ------
        ReviewConflictError
            Every one of ``attempts`` rounds met a concurrent write.
        ReviewBackendError
            Unreadable workbook; a frame without the review columns; a row without ``building_id``.
        """
        for attempt in range(1, max(1, attempts) + 1):
            audits: dict[str, pl.DataFrame | None] = {}
            read = self._read_buildings(month, audits=audits)
            sheet, result = change(self._concat([f for f, _ in read.values()]))
            parts = self._split(month, sheet)
            new_audits = self._new_audits(audits, audit, frozenset(parts) | frozenset(read))
            try:
                for bid, part in parts.items():
                    before = read.get(bid)
                    same_audit = bid not in new_audits or _same_audit(audits.get(bid), new_audits[bid])
                    if before is not None and _check_frame(before[0]).equals(part) and same_audit:
                        continue
                    data = build_workbook(part, taxonomy, title=yyyymm(month), audit=new_audits.get(bid, audits.get(bid)))
                    self.storage.write_if(
                        self.building_key(month, bid), data, version=before[1] if before else None, content_type=_XLSX_TYPE
                    )
                return self.location(month), result
            except StorageConflict as e:
                log.warning(
                    "a review workbook of %s was written by someone else while merging (%s); "
                    "re-reading and merging again (attempt %d/%d)", yyyymm(month), e, attempt, attempts,
                )
        raise ReviewConflictError(
            f"review workbooks under {self.location(month)} changed during each of {attempts} attempts to update them; "
            "nothing was overwritten: rerun the same run"
        )

    def _new_audits(
        self, audits: dict[str, pl.DataFrame | None], audit: AuditChange[Any] | None, buildings: frozenset[str]
    ) -> dict[str, pl.DataFrame]:
        """``{building_id: its new audit rows}`` for ``buildings`` from ``audit`` (empty: no
        ``audit``, every workbook keeps its sheet); rows of other buildings are dropped."""
        if audit is None:
            return {}
        rows, _ = audit(self._concat([a for a in audits.values() if a is not None]), buildings)
        return _audit_parts(rows, buildings)

    def read_audit(self, month: str) -> pl.DataFrame | None:
        """Every building's :data:`voc.label_fixes.AUDIT_SHEET` rows, concatenated; None when no
        workbook has the sheet (:meth:`XlsxReviewBackend.read_audit`)."""
        audits: dict[str, pl.DataFrame | None] = {}
        self._read_buildings(month, audits=audits)
        return self._concat([a for a in audits.values() if a is not None])

    def update_audit(
        self, month: str, change: AuditChange[R], taxonomy: Taxonomy, *, attempts: int = UPDATE_ATTEMPTS
    ) -> tuple[str, R]:
        """:meth:`XlsxReviewBackend.update_audit` over the buildings' workbooks: ``change`` gets
        every building's sheet rows and the set of buildings with a workbook; its rows go to
        their ``building_id``'s workbook (rows of other buildings are dropped), each workbook
        written by compare-and-swap only when its rows changed. Parameters and result as
        :meth:`XlsxReviewBackend.update_audit` (the location: the month folder's URI).

        Raises
        ------
        ReviewBackendError
            The month has no workbook, or one is unreadable.
        ReviewConflictError
            Every one of ``attempts`` rounds met a concurrent write.
        """
        for attempt in range(1, max(1, attempts) + 1):
            audits: dict[str, pl.DataFrame | None] = {}
            read = self._read_buildings(month, audits=audits)
            if not read:
                raise ReviewBackendError(f"no review workbook for {yyyymm(month)} under {self.location(month)}")
            audit, result = change(self._concat([a for a in audits.values() if a is not None]), frozenset(read))
            parts = _audit_parts(audit, frozenset(read))
            try:
                for bid, (frame, version) in read.items():
                    part = parts[bid]
                    if _same_audit(audits.get(bid), part):
                        continue
                    data = build_workbook(_check_frame(frame), taxonomy, title=yyyymm(month), audit=part)
                    self.storage.write_if(self.building_key(month, bid), data, version=version, content_type=_XLSX_TYPE)
                return self.location(month), result
            except StorageConflict as e:
                log.warning("a review workbook of %s changed while updating %s (%s); again (attempt %d/%d)",
                            yyyymm(month), AUDIT_SHEET, e, attempt, attempts)
        raise ReviewConflictError(
            f"review workbooks under {self.location(month)} changed during each of {attempts} attempts to update them; "
            "nothing was overwritten: rerun"
        )

    def __repr__(self) -> str:
        """``PerBuildingXlsxReviewBackend(storage, prefix=…)``."""
        return f"PerBuildingXlsxReviewBackend({self.storage!r}, prefix={self.prefix!r})"


_ROW_LINE_PT = 15.0
_MAX_ROW_LINES = 6


def _display_width(text: str) -> float:
    """Width of a text in Excel column units: wide (Hangul, CJK) characters count 2."""
    return float(len(text) + sum(1 for ch in text if ch >= "\u1100" and _wide(ch)))


@cache
def _wide(ch: str) -> bool:
    """Whether ``ch`` is East Asian wide or fullwidth (none is below U+1100, Unicode UAX #11)."""
    import unicodedata as ud

    return ud.east_asian_width(ch) in ("W", "F")


def _lines(text: str, width: float) -> int:
    """Lines a wrapped cell of ``width`` column units needs for ``text`` (each paragraph at least
    one)."""
    if not text:
        return 1
    per = max(1.0, width - 1.0)
    return sum(max(1, int(-(-_display_width(p) // per))) for p in text.split("\n"))


def row_height(cells: dict[str, str]) -> float:
    """Height in points of a data row whose :data:`voc.review.TEXT_COLUMNS` wrap: enough lines
    for its longest text column, at most :data:`_MAX_ROW_LINES` (a long request shows its
    beginning; the cell holds all of it).

    Parameters
    ----------
    cells
        The row's cell texts by column (missing columns count as empty).

    Returns
    -------
    float
        15 points per line, 1 to 6 lines (a line of a column is its :data:`COLUMN_WIDTHS`
        minus one unit, wide characters counting two).
    """
    lines = max([1, *(_lines(cells.get(c, ""), COLUMN_WIDTHS.get(c, _DEFAULT_WIDTH)) for c in TEXT_COLUMNS)])
    return _ROW_LINE_PT * min(lines, _MAX_ROW_LINES)


def _urgent_flags(frame: pl.DataFrame) -> list[bool]:
    """Per data row of a sheet frame: 긴급 holds :data:`voc.review.URGENT_MARK` (all False
    without the column: a sheet from before it)."""
    if COL_URGENT not in frame.columns:
        return [False] * frame.height
    return [neutralize_cell(v).strip() == URGENT_MARK for v in frame[COL_URGENT].to_list()]


def build_workbook(frame: pl.DataFrame, taxonomy: Taxonomy, *, title: str, audit: pl.DataFrame | None = None) -> bytes:
    """The XLSX workbook of a sheet frame, laid out for a reviewer (see :class:`XlsxReviewBackend`).

    Parameters
    ----------
    frame
        ``M × C`` sheet frame (:data:`voc.review.REVIEW_COLUMNS`, then any columns a reviewer
        added); cells pass through :func:`voc.review.neutralize_cell`.
    taxonomy
        The dropdowns' classes (offered ones only: :func:`dropdown_lists`).
    title
        The data sheet's name (``yyyymm``).
    audit
        The :data:`voc.label_fixes.AUDIT_SHEET` frame (:data:`voc.label_fixes.AUDIT_COLUMNS`);
        when it has rows, that sheet follows the data sheet (:func:`_add_audit_sheet`).

    Returns
    -------
    bytes
        The ``.xlsx`` file: the data sheet (active), [the audit sheet], :data:`GUIDE_SHEET` and
        the hidden :data:`TAXONOMY_SHEET`.
    """
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    columns = frame.columns
    wb = Workbook()
    ws = cast(Worksheet, wb.active)  # a new workbook's only sheet is a worksheet
    ws.title = title
    styles = _XlsxStyles.make()
    _write_header(ws, columns, styles)
    urgent_rows = _urgent_flags(frame)
    for i, row in enumerate(frame.iter_rows(), start=2):
        _write_data_row(ws, i, list(zip(columns, row)), styles, urgent=urgent_rows[i - 2])
    _lay_out_data_sheet(ws, columns, frame.height)
    _add_dropdowns(wb, ws, columns, frame.height, taxonomy)
    _add_guide_sheet(wb, styles)
    if audit is not None and audit.height:
        _add_audit_sheet(wb, audit, taxonomy)
    wb.active = 0
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@dataclass(frozen=True)
class _XlsxStyles:
    """The fills, fonts, alignments and protection of the data and guide sheets."""

    grey: PatternFill
    grey_head: PatternFill
    yellow: PatternFill
    yellow_head: PatternFill
    urgent: PatternFill
    bold: Font
    flag_font: Font
    head_align: Alignment
    wrap: Alignment
    top: Alignment
    unlocked: Protection
    cell_styles: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    """Per kind of data cell (:func:`_write_data_cell`), the openpyxl style array its first cell
    got: later cells of the kind copy it instead of registering each style again (the
    workbook's style tables come out the same, 3× faster)."""

    @classmethod
    def make(cls) -> _XlsxStyles:
        """The workbook's styles (model cells grey, reviewer cells yellow, urgent rows light red)."""
        from openpyxl.styles import Alignment, Font, PatternFill, Protection

        def fill(argb: str) -> PatternFill:
            """A solid fill of one ARGB colour."""
            return PatternFill("solid", start_color=argb, end_color=argb)

        return cls(
            grey=fill("FFE7E6E6"),
            grey_head=fill("FFBFBFBF"),
            yellow=fill("FFFFF2CC"),
            yellow_head=fill("FFFFD966"),
            urgent=fill(_URGENT_RGB),
            bold=Font(bold=True),
            flag_font=Font(bold=True, color="FFC00000"),
            head_align=Alignment(vertical="center", wrap_text=True),
            wrap=Alignment(vertical="top", wrap_text=True),
            top=Alignment(vertical="top"),
            unlocked=Protection(locked=False),
        )


def _write_header(ws: Worksheet, columns: Sequence[str], styles: _XlsxStyles) -> None:
    """The data sheet's header row: bold, wrapped, model columns grey and reviewer ones yellow."""
    for j, name in enumerate(columns, start=1):
        c = ws.cell(row=1, column=j)
        c.value = neutralize_cell(name)
        c.data_type = "s"
        c.font = styles.bold
        c.alignment = styles.head_align
        if name in MODEL_COLUMNS:
            c.fill = styles.grey_head
        elif name in REVIEWER_COLUMNS:
            c.fill = styles.yellow_head


def _write_data_row(ws: Worksheet, i: int, cells: Sequence[tuple[str, Any]], styles: _XlsxStyles, *, urgent: bool) -> None:
    """Sheet row ``i`` from ``(column, value)`` pairs (:func:`_write_data_cell`), as high as its
    texts need (:func:`row_height`)."""
    texts: dict[str, str] = {}
    for j, (name, raw) in enumerate(cells, start=1):
        text = neutralize_cell(raw)
        texts[name] = text
        _write_data_cell(ws.cell(row=i, column=j), name, text, styles, urgent=urgent)
    ws.row_dimensions[i].height = row_height(texts)


def _write_data_cell(c: Any, name: str, text: str, styles: _XlsxStyles, *, urgent: bool) -> None:
    """One data cell of column ``name``: a confidence a number ``0.00``, 등록일 a date, any other
    text stored as text (``quotePrefix`` when formula-like); aligned, filled by who owns it
    (an urgent row's machine cells light red), reviewer and added columns unlocked."""
    from copy import copy

    number_format, quote = None, False
    if name in CONFIDENCE_COLUMNS and (v := _float(text)) is not None:
        c.value, number_format = v, "0.00"
    elif name == COL_CREATED and (d := _iso_date(text)) is not None:
        c.value, number_format = d, "yyyy-mm-dd"
    elif text:
        c.value = text
        c.data_type = "s"  # never a formula, whatever the text starts with
        quote = is_formula_like(text)
    kind = (name, urgent, number_format, quote, bool(text))  # everything the style below depends on
    if (done := styles.cell_styles.get(kind)) is not None:
        c._style = copy(done)
        return
    if number_format:
        c.number_format = number_format
    if quote:
        c.quotePrefix = True
    c.alignment = styles.wrap if name in TEXT_COLUMNS else styles.top
    if name in MODEL_COLUMNS:
        c.fill = styles.grey
    elif name in REVIEWER_COLUMNS:
        c.fill = styles.yellow
        c.protection = styles.unlocked
    elif name not in REVIEW_COLUMNS:
        c.protection = styles.unlocked  # a column the reviewer added is theirs
    elif urgent:  # the row's machine cells; grey and yellow keep saying who owns a cell
        c.fill = styles.urgent
    if name in (COL_FLAG, COL_URGENT) and text:
        c.font = styles.flag_font
    styles.cell_styles[kind] = copy(c._style)


def _lay_out_data_sheet(ws: Worksheet, columns: Sequence[str], n: int) -> None:
    """Column widths (hidden ``model_version``/``run_id``), header height, frozen panes, zoom,
    printing, the autofilter over ``n`` data rows and the password-less protection."""
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    for j, name in enumerate(columns, start=1):
        dim = ws.column_dimensions[get_column_letter(j)]
        dim.width = COLUMN_WIDTHS.get(name, _DEFAULT_WIDTH)
        if name in _HIDDEN_COLUMNS:
            dim.hidden = True
    ws.row_dimensions[1].height = _ROW_LINE_PT * max(
        [1, *(_lines(c, COLUMN_WIDTHS.get(c, _DEFAULT_WIDTH)) for c in columns)]
    )
    ws.freeze_panes = f"{get_column_letter(frozen_columns(columns) + 1)}2"
    ws.sheet_view.zoomScale = SHEET_ZOOM
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = "1:1"
    last = get_column_letter(max(len(columns), 1))
    ws.auto_filter.ref = f"A1:{last}{n + 1}"
    # model columns locked, reviewer columns unlocked; no password (it only prevents accidents);
    # filtering, column widths and row heights stay allowed
    ws.protection.sheet = True
    ws.protection.autoFilter = False
    ws.protection.formatColumns = False
    ws.protection.formatRows = False


def _add_guide_sheet(wb: Any, styles: _XlsxStyles) -> None:
    """The :data:`GUIDE_SHEET` sheet (second tab): :func:`guide_rows`, header lines bold, the
    explanations wrapped, protected without a password."""
    guide = wb.create_sheet(GUIDE_SHEET, 1)
    for r, values in enumerate(guide_rows(), start=1):
        for j, v in enumerate(values, start=1):
            if v:
                c = guide.cell(row=r, column=j, value=v)
                c.data_type = "s"
                c.alignment = styles.wrap if j == 3 else styles.top
                if r == 1 or values[0] == "열":
                    c.font = styles.bold
    guide.column_dimensions["A"].width = 22
    guide.column_dimensions["B"].width = 8
    guide.column_dimensions["C"].width = 90
    guide.protection.sheet = True


def _add_dropdowns(wb: Any, ws: Worksheet, columns: Sequence[str], n: int, taxonomy: Taxonomy) -> None:
    """Lists on the hidden sheet :data:`TAXONOMY_SHEET` (one column per list, header in row 1),
    workbook-level names for them (:func:`list_name`) and the validations: 대분류 from the majors'
    name; 중분류 dependent on the row's 대분류 through ``INDIRECT`` — the 검수_ 대분류, or while
    it is empty the model's 대분류 — and every offered minor when that is no listed major (a
    retired name; a keyword guess ``값 (추정)`` is looked up without its marker); 검수완료 and
    묶음 적용 an inline list of :data:`DONE_CHOICES`."""
    from openpyxl.utils import get_column_letter as letter
    from openpyxl.workbook.defined_name import DefinedName
    from openpyxl.worksheet.datavalidation import DataValidation

    lists = dropdown_lists(taxonomy)
    per_major = minor_lists(taxonomy)
    tax = wb.create_sheet(TAXONOMY_SHEET)
    tax.sheet_state = "hidden"
    tax.protection.sheet = True
    end_row = max(n + 1, 2)
    k = 0

    def put(header: str, values: Sequence[str], name: str) -> str:
        """``values`` in the next column of the list sheet under ``header``, named ``name``."""
        nonlocal k
        k += 1
        lc = letter(k)
        tax.cell(row=1, column=k, value=header).data_type = "s"
        for r, v in enumerate(values, start=2):
            cell = tax.cell(row=r, column=k)
            cell.value = v
            cell.data_type = "s"
        ref = f"'{TAXONOMY_SHEET}'!${lc}$2:${lc}${len(values) + 1}"
        wb.defined_names[name] = DefinedName(name, attr_text=ref)
        return name

    def validate(col_name: str, formula: str) -> None:
        """A list validation of the data rows of column ``col_name`` (other values refused)."""
        col = letter(columns.index(col_name) + 1)
        dv = DataValidation(type="list", formula1=formula, allow_blank=True)
        dv.showErrorMessage = True
        dv.errorTitle = "목록에 없는 값"
        dv.error = "목록에서 선택하세요 (분류체계)."
        dv.add(f"{col}2:{col}{end_row}")
        ws.add_data_validation(dv)

    for dim, (col_major, col_minor) in REVIEWER_LABEL_COLUMNS.items():
        if col_major not in lists or col_major not in columns:
            continue
        majors = put(col_major, lists[col_major], list_name(dim))
        validate(col_major, majors)
        if col_minor not in columns:
            continue
        every = put(col_minor, lists[col_minor], list_name(dim, 0))
        for idx, major in enumerate(lists[col_major], start=1):
            put(f"{col_minor}: {major}", per_major[col_minor][major], list_name(dim, idx))
        major_cell = f"${letter(columns.index(col_major) + 1)}2"
        model_major = MODEL_TAG_COLUMNS[dim][0]
        if model_major in columns:  # no pick yet: the model's 대분류, a guess without its " (추정)"
            model_cell = f'SUBSTITUTE(${letter(columns.index(model_major) + 1)}2,"{GUESS_SUFFIX}","")'
            major_cell = f'IF({major_cell}="",{model_cell},{major_cell})'
        match = f"MATCH({major_cell},{majors},0)"
        prefix = list_name(dim, 1)[:-1]
        validate(col_minor, f'IF(ISNA({match}),{every},INDIRECT("{prefix}"&{match}))')
    for name in (COL_GROUP_APPLY, COL_DONE):
        if name in columns:
            validate(name, '"' + ",".join(lists[name]) + '"')


AUDIT_WIDTHS: dict[str, int] = {
    COL_VOC_ID: 10, COL_BUILDING_ID: 10, COL_CREATED: 11, "제목": 22, "내용": 44, COL_DIMENSION: 8,
    "현재 라벨": 20, "제안 라벨": 20, COL_SCORE: 7, COL_VERDICT: 8, COL_FIX_LABEL: 24, "검토자 메모": 24,
}
"""Column widths of the :data:`voc.label_fixes.AUDIT_SHEET` sheet (Excel character units)."""

_AUDIT_WRAP: frozenset[str] = frozenset(("제목", "내용", "검토자 메모"))


def _audit_parts(rows: pl.DataFrame, buildings: frozenset[str]) -> dict[str, pl.DataFrame]:
    """``{building_id: its rows of the audit sheet}`` for each of ``buildings`` (one workbook per
    building); rows of other buildings are dropped."""
    if not rows.height:
        return {bid: rows for bid in buildings}
    bids = rows[COL_BUILDING_ID].cast(pl.Utf8).fill_null("").str.strip_chars()
    return {bid: rows.filter(bids == bid) for bid in buildings}


def _same_audit(old: pl.DataFrame | None, new: pl.DataFrame) -> bool:
    """Whether writing ``new`` would leave the audit sheet as it is (no rows = no sheet)."""
    if old is None or old.height == 0:
        return new.height == 0
    return new.height > 0 and old.select(AUDIT_COLUMNS).equals(new.select(AUDIT_COLUMNS))


def _formula_text(cell: Any) -> str:
    """A formula cell's text (``ArrayFormula``/``DataTableFormula``: theirs, else ``"="``)."""
    v = cell.value
    return v if isinstance(v, str) else (getattr(v, "text", None) or "=")


def audit_frame(key: str, data: bytes) -> pl.DataFrame | None:
    """The :data:`voc.label_fixes.AUDIT_SHEET` sheet of a workbook's bytes as a frame (every
    column text, :data:`voc.label_fixes.AUDIT_COLUMNS` first, a missing one ``""``; a formula as
    its formula text, so ``voc.label_fixes.read_decisions`` reports it; 점수 as ``"0.000"``);
    None when the workbook has no such sheet.

    Parameters
    ----------
    key
        The workbook's storage key (for messages).
    data
        The ``.xlsx`` file's bytes.

    Returns
    -------
    pl.DataFrame or None
        ``M × C``, all ``Utf8``; no rows when the sheet has none.

    Raises
    ------
    ReviewBackendError
        ``data`` is no readable XLSX workbook.
    """
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException, …
        raise ReviewBackendError(f"review workbook {key} is not a readable .xlsx file: {e}") from e
    try:
        if AUDIT_SHEET not in wb.sheetnames:
            return None
        ws = wb[AUDIT_SHEET]
        ws.reset_dimensions()
        grid = [[_formula_text(c) if getattr(c, "data_type", None) == "f" else c.value for c in cells] for cells in ws.iter_rows()]
    finally:
        wb.close()
    frame = frame_from_grid(grid)
    if frame.height == 0:
        return pl.DataFrame(schema={c: pl.Utf8 for c in AUDIT_COLUMNS})
    frame = frame.with_columns([pl.lit("").alias(c) for c in AUDIT_COLUMNS if c not in frame.columns])
    frame = frame.with_columns(pl.col(COL_SCORE).map_elements(canon_score, return_dtype=pl.Utf8))
    return frame.select([*AUDIT_COLUMNS, *[c for c in frame.columns if c not in AUDIT_COLUMNS]])


def _add_audit_sheet(wb: Any, audit: pl.DataFrame, taxonomy: Taxonomy) -> None:
    """The :data:`voc.label_fixes.AUDIT_SHEET` sheet (second tab): the label audit's suspects,
    laid out like the data sheet — bold header (machine columns grey, reviewer columns yellow,
    a comment on each explained column), frozen header and columns left of 판정, text cells
    ``data_type "s"`` (``quotePrefix`` when formula-like), 등록일 a date, 점수 a number
    ``0.000``, ``audit_model`` hidden, protected without a password except the reviewer cells
    (:data:`voc.label_fixes.AUDIT_REVIEWER_COLUMNS`). Dropdowns: 판정 ``유지,수정``; 수정 라벨
    per row the offered ``major>minor`` labels of its 구분's dimension (lists on
    :data:`TAXONOMY_SHEET`, names ``VOC_S_LABELS`` / ``VOC_W_LABELS``)."""
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill, Protection
    from openpyxl.utils import get_column_letter

    frame = audit.select([c for c in AUDIT_COLUMNS if c in audit.columns]).cast({c: pl.Utf8 for c in AUDIT_COLUMNS if c in audit.columns})
    frame = frame.with_columns([pl.lit("").alias(c) for c in AUDIT_COLUMNS if c not in frame.columns]).select(AUDIT_COLUMNS).fill_null("")
    ws = wb.create_sheet(AUDIT_SHEET, 1)
    grey, yellow = (PatternFill("solid", start_color=c, end_color=c) for c in ("FFE7E6E6", "FFFFF2CC"))
    heads = {False: PatternFill("solid", start_color="FFBFBFBF", end_color="FFBFBFBF"),
             True: PatternFill("solid", start_color="FFFFD966", end_color="FFFFD966")}
    wrap, top = Alignment(vertical="top", wrap_text=True), Alignment(vertical="top")
    mine = set(AUDIT_REVIEWER_COLUMNS)
    for j, name in enumerate(AUDIT_COLUMNS, start=1):
        c = ws.cell(row=1, column=j, value=name)
        c.data_type, c.font, c.fill = "s", Font(bold=True), heads[name in mine]
        c.alignment = Alignment(vertical="center", wrap_text=True)
        if name in AUDIT_COLUMN_GUIDE:
            c.comment = Comment(AUDIT_COLUMN_GUIDE[name], "voc")
    for i, row in enumerate(frame.iter_rows(named=True), start=2):
        for j, name in enumerate(AUDIT_COLUMNS, start=1):
            text, c = neutralize_cell(row[name]), ws.cell(row=i, column=j)
            if name == COL_CREATED and (d := _iso_date(text)) is not None:
                c.value, c.number_format = d, "yyyy-mm-dd"
            elif name == COL_SCORE and (v := _float(text)) is not None:
                c.value, c.number_format = v, "0.000"
            elif text:
                c.value, c.data_type = text, "s"
                c.quotePrefix = is_formula_like(text)
            c.alignment = wrap if name in _AUDIT_WRAP else top
            c.fill = yellow if name in mine else grey
            if name in mine:
                c.protection = Protection(locked=False)
        long = max(_lines(str(row[c]), AUDIT_WIDTHS.get(c, _DEFAULT_WIDTH)) for c in _AUDIT_WRAP)
        ws.row_dimensions[i].height = _ROW_LINE_PT * min(long, _MAX_ROW_LINES)
    for j, name in enumerate(AUDIT_COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(j)].width = AUDIT_WIDTHS.get(name, _DEFAULT_WIDTH)
    ws.column_dimensions[get_column_letter(AUDIT_COLUMNS.index(COL_AUDIT_MODEL) + 1)].hidden = True
    ws.freeze_panes = f"{get_column_letter(AUDIT_COLUMNS.index(AUDIT_REVIEWER_COLUMNS[0]) + 1)}2"
    ws.sheet_view.zoomScale = SHEET_ZOOM
    ws.auto_filter.ref = f"A1:{get_column_letter(len(AUDIT_COLUMNS))}{frame.height + 1}"
    ws.protection.sheet = True
    ws.protection.autoFilter = ws.protection.formatColumns = ws.protection.formatRows = False
    _audit_dropdowns(wb, ws, frame[COL_DIMENSION].to_list(), taxonomy)


def _audit_dropdowns(wb: Any, ws: Any, dims: Sequence[str], taxonomy: Taxonomy) -> None:
    """The :data:`voc.label_fixes.AUDIT_SHEET` sheet's validations: 판정 an inline ``유지,수정``;
    수정 라벨 of each row the offered labels of its 구분's dimension (``dims``, one per data
    row), listed on :data:`TAXONOMY_SHEET` under ``VOC_S_LABELS`` / ``VOC_W_LABELS``."""
    from openpyxl.utils import get_column_letter
    from openpyxl.workbook.defined_name import DefinedName
    from openpyxl.worksheet.datavalidation import DataValidation

    def column(name: str) -> str:
        """The audit sheet's column letter of ``name``."""
        return get_column_letter(AUDIT_COLUMNS.index(name) + 1)

    n = len(dims)
    verdict = DataValidation(type="list", formula1=f'"{VERDICT_KEEP},{VERDICT_FIX}"', allow_blank=True)
    verdict.showErrorMessage = True
    verdict.add(f"{column(COL_VERDICT)}2:{column(COL_VERDICT)}{n + 1}")
    ws.add_data_validation(verdict)
    tax = wb[TAXONOMY_SHEET] if TAXONOMY_SHEET in wb.sheetnames else wb.create_sheet(TAXONOMY_SHEET)
    tax.sheet_state, tax.protection.sheet = "hidden", True
    k = tax.max_column + 1 if tax.cell(row=1, column=1).value is not None else 1
    for dim, shown in DIMENSION_NAMES.items():
        labels = [r.label for r in taxonomy.offered_rows(dim)]
        rows = [i for i, d in enumerate(dims, start=2) if d.strip() in (dim, shown)]
        if not labels or not rows:
            continue
        lc = get_column_letter(k)
        tax.cell(row=1, column=k, value=f"{COL_FIX_LABEL}: {shown}").data_type = "s"
        for r, label in enumerate(labels, start=2):
            tax.cell(row=r, column=k, value=label).data_type = "s"
        name = f"VOC_{'S' if dim == 'subject' else 'W'}_LABELS"
        wb.defined_names[name] = DefinedName(name, attr_text=f"'{TAXONOMY_SHEET}'!${lc}$2:${lc}${len(labels) + 1}")
        k += 1
        dv = DataValidation(type="list", formula1=name, allow_blank=True)
        for dv_attr, text in (("errorTitle", "목록에 없는 라벨"), ("error", f"{shown} 분류체계의 대분류>중분류에서 고르세요.")):
            setattr(dv, dv_attr, text)
        dv.showErrorMessage = True
        for r in rows:
            dv.add(f"{column(COL_FIX_LABEL)}{r}")
        ws.add_data_validation(dv)


# --------------------------------------------------------------------------------------------
# Google Sheets

_GOOGLE_PREFIXES: tuple[str, ...] = ("https://sheets.googleapis.com", "https://www.googleapis.com")


def _normalize_base(url: str) -> str:
    """``url`` without a trailing ``/``, ``/v4`` or ``/v4/spreadsheets``."""
    base = url.rstrip("/")
    for suffix in ("/v4/spreadsheets", "/v4"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def routed_http_client(base_url: str) -> type:
    """A :class:`gspread.http_client.HTTPClient` subclass sending every request to ``base_url``.

    gspread 6 builds request URLs from module constants in :mod:`gspread.urls`
    (``https://sheets.googleapis.com/v4/spreadsheets…`` for Sheets,
    ``https://www.googleapis.com/drive/v3/files…`` for Drive, used to open a spreadsheet by
    title and to create one). Patching those constants would change every client in the process,
    so instead the returned class overrides ``HTTPClient.request`` — the one method every API
    call goes through — and replaces the two origins with ``base_url``: Sheets paths become
    ``{base_url}/v4/spreadsheets/…`` and Drive paths ``{base_url}/drive/v3/files…``.
    ``gspread.Client(auth, session, http_client=routed_http_client(url))`` is the supported way to
    plug it in (``Client`` instantiates the class it is given). A trailing ``/v4/spreadsheets``
    in ``base_url`` is ignored, so the setting may name either form.

    Parameters
    ----------
    base_url
        Where to send the requests (``ReviewSettings.sheets_api_url``, e.g. a local stand-in).

    Returns
    -------
    type
        A subclass of ``gspread.http_client.HTTPClient``.
    """
    from gspread.http_client import HTTPClient

    base = _normalize_base(base_url)

    class RoutedHTTPClient(HTTPClient):
        routed_base = base

        def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any):
            """``HTTPClient.request`` with a Google origin of ``endpoint`` replaced by ``routed_base``."""
            for origin in _GOOGLE_PREFIXES:
                if endpoint.startswith(origin):
                    endpoint = self.routed_base + endpoint[len(origin):]
                    break
            return super().request(method, endpoint, *args, **kwargs)

    return RoutedHTTPClient


def make_gspread_client(settings: ReviewSettings) -> Any:
    """A real ``gspread.Client`` for the settings.

    * ``service_account_json`` set: ``gspread.service_account_from_dict(json.loads(secret))``
      (the secret is read once, never logged, and kept out of error messages);
    * ``sheets_api_url`` set: requests go to that base URL (:func:`routed_http_client`); without
      a service account the client is unauthenticated — only useful against a local stand-in.

    Every HTTP request of the client waits at most ``settings.timeout_s`` seconds to connect and
    as long for each read of the answer (``Client.set_timeout``); a timeout raises
    ``requests.Timeout``, which the Prefect task retries (:mod:`flows.adapters.retries`).

    Parameters
    ----------
    settings
        ``VocSettings.review``: ``service_account_json``, ``sheets_api_url``, ``timeout_s``
        (seconds).

    Returns
    -------
    gspread.Client

    Raises
    ------
    ReviewBackendError
        Neither setting given, or the service-account JSON is not valid JSON / not a service
        account key.
    """
    import gspread
    import requests

    http_client = routed_http_client(settings.sheets_api_url) if settings.sheets_api_url else gspread.HTTPClient
    secret = settings.service_account_json
    if secret is not None and secret.get_secret_value().strip():
        try:
            info = json.loads(secret.get_secret_value())
        except ValueError:
            raise ReviewBackendError(
                "review.service_account_json (VOC_REVIEW__SERVICE_ACCOUNT_JSON) is not valid JSON"
            ) from None
        try:
            client = gspread.service_account_from_dict(info, http_client=http_client)
        except Exception as e:  # noqa: BLE001 - google-auth raises many types whose message may quote the key: only the type is kept
            raise ReviewBackendError(
                "review.service_account_json is not a Google service-account key "
                f"({type(e).__name__})"
            ) from None
        client.set_timeout(settings.timeout_s)
        return client
    if settings.sheets_api_url:
        client = gspread.Client(
            auth=None,  # type: ignore[arg-type]  # no credentials (a local stand-in): gspread's annotation wants some
            session=requests.Session(),
            http_client=http_client,
        )
        client.set_timeout(settings.timeout_s)
        return client
    raise ReviewBackendError(
        "the gsheets review backend needs review.service_account_json "
        "(VOC_REVIEW__SERVICE_ACCOUNT_JSON: the service-account key's JSON content)"
    )


T = TypeVar("T")


_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def _is_retryable(exc: BaseException) -> bool:
    """HTTP 429, 5xx, and Drive's 403 rate-limit errors (``usageLimits``) are worth a retry."""
    from gspread.exceptions import APIError

    if not isinstance(exc, APIError):
        return False
    status = getattr(exc.response, "status_code", None) or exc.code
    if status == 429 or (isinstance(status, int) and 500 <= status < 600):
        return True
    if status == 403:
        errors = (exc.error.get("errors") or []) if isinstance(exc.error, dict) else []
        return any(
            isinstance(e, dict) and (e.get("domain") == "usageLimits" or e.get("reason") in _RATE_LIMIT_REASONS)
            for e in errors
        )
    return False


class GSheetsReviewBackend:
    """Review sheets in Google Sheets.

    Layout: with ``settings.spreadsheet_key`` one spreadsheet, a worksheet per month titled
    ``{yyyymm}`` (added when missing); otherwise one spreadsheet per month titled
    ``settings.spreadsheet_title_template.format(yyyymm=…, month=…)``, created on first write
    (and shared as writer with ``settings.share_with``), its first worksheet renamed ``{yyyymm}``.

    A write reads the spreadsheet's metadata, then sends one ``spreadsheets.batchUpdate`` —
    grid resized to the frame, header row frozen and bold, model tag columns grey, reviewer
    columns yellow, the other cells of urgent rows light red (:func:`urgent_row_requests`), text
    columns wrapped and rows sized to their text (at most six lines), confidences formatted
    ``0.00``, data validation ``ONE_OF_LIST`` with dropdowns (offered classes only, sorted:
    :func:`dropdown_lists`): strict on the 대분류 columns, 검수완료 and
    묶음 적용, and **per row** on the 중분류 columns with the minors of that row's 대분류
    (:func:`row_minor_choices`), column widths, ``model_version``/``run_id`` hidden, a basic
    filter, a warning-only protected range over the model columns (the reviewer columns left
    out; :data:`PROTECTION_NOTE`, replacing the previous one), and the :data:`GUIDE_SHEET`
    worksheet — followed by one ``values.update`` of all cells with ``valueInputOption=RAW``
    (text is never parsed: no formula, no date or number guessing). The batch goes first so
    that the grid is large enough for the values (Sheets rejects values outside the grid).
    Reading is one ``values.get`` (``Worksheet.get_all_values``, formatted values: what the
    reviewer sees) and one with ``valueRenderOption=FORMULA``: a formula in a reviewer cell or
    ``voc_id`` is read as its formula text, so ``voc.review.validate_reviews`` reports it. Sheets
    has no dependent dropdown without scripts; the per-row lists follow the 대분류 the sheet held
    at the last layout (every run's update), so the 중분류 validation is not strict and
    ``voc.review.validate_reviews`` checks the pair.

    Every API call is retried on HTTP 429 and 5xx with exponential backoff (tenacity):
    ``backoff_s × 2^k`` seconds, at most ``max_backoff_s``, ``max_attempts`` tries in all. A
    retried create after a 5xx the server did apply may leave an empty duplicate spreadsheet;
    the per-month spreadsheet id is cached for the backend's lifetime.

    Parameters
    ----------
    settings
        ``VocSettings.review``.
    client
        A ``gspread.Client`` to use; default :func:`make_gspread_client` (``settings``).
    max_attempts
        Tries per API call (≥ 1).
    backoff_s, max_backoff_s
        First wait and cap of the exponential backoff.

    Raises
    ------
    ReviewBackendError
        From :func:`make_gspread_client` when no client is given and none can be built.
    """

    def __init__(
        self,
        settings: ReviewSettings,
        *,
        client: Any | None = None,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 32.0,
    ) -> None:
        """See the class docstring; :class:`ValueError` for ``max_attempts`` < 1."""
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.settings = settings
        self.client = client if client is not None else make_gspread_client(settings)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._ids: dict[str, str] = {}

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, retried with backoff on a retryable API error (``what``: for the log)."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        def before_sleep(state: Any) -> None:
            """Log the failed call and the wait before the next try."""
            exc = state.outcome.exception() if state.outcome else None
            code = getattr(getattr(exc, "response", None), "status_code", None)
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "Google Sheets %s failed (HTTP %s); retry %d/%d in %.1f s",
                what, code, state.attempt_number, self.max_attempts - 1, wait,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential(multiplier=self.backoff_s, min=self.backoff_s, max=self.max_backoff_s),
            retry=retry_if_exception(_is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)

    def _title(self, month: str) -> str:
        """The month's spreadsheet title (``spreadsheet_title_template``)."""
        return self.settings.spreadsheet_title_template.format(yyyymm=yyyymm(month), month=parse_month(month))

    @overload
    def _open(self, month: str, *, create: Literal[True]) -> Any: ...

    @overload
    def _open(self, month: str, *, create: bool) -> Any | None: ...

    def _open(self, month: str, *, create: bool) -> Any | None:
        """The month's spreadsheet (the configured one, or the month's by title, its id cached);
        a missing one is created with ``create``, else None."""
        from gspread.exceptions import SpreadsheetNotFound

        key = self.settings.spreadsheet_key
        if key:
            try:
                return self._call("open spreadsheet", self.client.open_by_key, key)
            except SpreadsheetNotFound:
                raise ReviewBackendError(
                    f"review spreadsheet {key!r} not found or not shared with the service account"
                ) from None
        title = self._title(month)
        if title in self._ids:
            try:
                return self._call("open spreadsheet", self.client.open_by_key, self._ids[title])
            except SpreadsheetNotFound:  # deleted meanwhile: look it up again
                del self._ids[title]
        try:
            sh = self._call("find spreadsheet", self.client.open, title)
        except SpreadsheetNotFound:
            if not create:
                return None
            sh = self._create(title)
        self._ids[title] = sh.id
        return sh

    def _create(self, title: str) -> Any:
        """``Client.create`` split in its two API calls, each retried on its own (retrying the
        pair after a failed *open* would create a second spreadsheet)."""
        from gspread.urls import DRIVE_FILES_API_V3_URL
        from gspread.utils import MimeType

        r = self._call(
            "create spreadsheet",
            self.client.http_client.request,
            "post",
            DRIVE_FILES_API_V3_URL,
            json={"name": title, "mimeType": MimeType.google_sheets},
            params={"supportsAllDrives": True},
        )
        sid = r.json()["id"]
        self._ids[title] = sid
        sh = self._call("open spreadsheet", self.client.open_by_key, sid)
        for email in self.settings.share_with:
            self._call("share spreadsheet", sh.share, email, perm_type="user", role="writer")
        log.info("created review spreadsheet %r (%s)", title, sid)
        return sh

    def _worksheet(self, sh: Any, month: str) -> Any | None:
        """The month's worksheet of ``sh`` (titled ``yyyymm``, or a per-month spreadsheet's first data one), else None."""
        ym = yyyymm(month)
        sheets = self._call("list worksheets", sh.worksheets)
        for ws in sheets:
            if ws.title == ym:
                return ws
        data = [ws for ws in sheets if ws.title != GUIDE_SHEET]
        if not self.settings.spreadsheet_key and data:
            return data[0]  # a per-month spreadsheet: its first worksheet (renamed by us)
        return None

    def _layout(
        self, sh: Any, ws: Any, frame: pl.DataFrame, taxonomy: Taxonomy, title: str, *, min_rows: int = 0, min_cols: int = 0
    ) -> None:
        """One ``batchUpdate``: :func:`sheet_format_requests` of the month's worksheet (replacing
        this backend's earlier protection of it) and :func:`guide_requests` of the
        :data:`GUIDE_SHEET` worksheet (added when missing). Reads the spreadsheet's metadata
        first (sheet ids and protected ranges)."""
        meta = self._call("read spreadsheet metadata", sh.fetch_sheet_metadata)
        guide_id: int | None = None
        used: set[int] = set()
        for sheet in meta.get("sheets", []):
            props = sheet.get("properties", {})
            used.add(int(props.get("sheetId", 0)))
            if props.get("title") == GUIDE_SHEET:
                guide_id = int(props["sheetId"])
        mine = {ws.id, guide_id}
        ours = [
            int(pr["protectedRangeId"])
            for sheet in meta.get("sheets", [])
            for pr in sheet.get("protectedRanges", []) or []
            if pr.get("description") == PROTECTION_NOTE
            and "protectedRangeId" in pr
            and pr.get("range", {}).get("sheetId", 0) in mine
        ]
        spec = WorksheetLayout(
            ws.id, tuple(frame.columns), frame.height, title, min_rows=min_rows, min_cols=min_cols, frame=frame,
            protected_range_ids=tuple(ours),
        )
        requests = sheet_format_requests(spec, taxonomy)
        requests += guide_requests(guide_id if guide_id is not None else max(used, default=0) + 1, exists=guide_id is not None)
        self._call("format worksheet", sh.batch_update, {"requests": requests})

    def _read_grid(self, ws: Any) -> list[list[Any]]:
        """The worksheet's cells as the reviewer sees them (``values.get``, formatted values),
        except that a reviewer cell or ``voc_id`` holding a formula gives its formula text: a
        second ``values.get`` with ``valueRenderOption=FORMULA`` returns formulas as ``=…``;
        a cell counts as a formula where that text starts with ``=`` and differs from the
        formatted value (text stored RAW reads the same both ways)."""
        from gspread.utils import ValueRenderOption

        values = [list(r) for r in self._call("read values", ws.get_all_values)]
        if not values:
            return values
        raw = self._call("read formulas", ws.get, value_render_option=ValueRenderOption.formula)
        literal_only = [j for j, h in enumerate(values[0]) if str(h).strip() in _LITERAL_COLUMNS]
        for i, row in enumerate(raw[1:], start=1):
            if i >= len(values):
                break
            for j in literal_only:
                f = row[j] if j < len(row) else ""
                cur = values[i][j] if j < len(values[i]) else ""
                if isinstance(f, str) and f.startswith("=") and f != cur:
                    values[i] += [""] * (j + 1 - len(values[i]))
                    values[i][j] = f
        return values

    # -- protocol ----------------------------------------------------------------------------
    def location(self, month: str) -> str:
        """URL of the month's spreadsheet; with one spreadsheet per month it is looked up by
        title (``gsheets:{title}`` when it does not exist yet). See :meth:`ReviewBackend.location`."""
        from gspread.urls import SPREADSHEET_DRIVE_URL

        if self.settings.spreadsheet_key:
            return SPREADSHEET_DRIVE_URL % self.settings.spreadsheet_key
        sh = self._open(month, create=False)
        return SPREADSHEET_DRIVE_URL % sh.id if sh is not None else f"gsheets:{self._title(month)}"

    def read_month(self, month: str) -> pl.DataFrame | None:
        """The month's sheet frame; ``None`` when its spreadsheet (or worksheet) does not exist
        (:meth:`ReviewBackend.read_month`).

        Raises
        ------
        ReviewBackendError
            The configured ``spreadsheet_key`` does not exist.
        gspread.exceptions.APIError
            Any other API failure, after the retries.
        """
        sh = self._open(month, create=False)
        if sh is None:
            return None
        ws = self._worksheet(sh, month)
        if ws is None:
            return None
        return frame_from_grid(self._read_grid(ws))

    def write_month(self, month: str, sheet: pl.DataFrame, taxonomy: Taxonomy) -> str:
        """Replace the month's worksheet with ``sheet``; return the worksheet URL
        (:meth:`ReviewBackend.write_month`).

        Raises
        ------
        ReviewBackendError
            ``sheet`` lacks a :data:`voc.review.REVIEW_COLUMNS` column; the configured
            ``spreadsheet_key`` does not exist.
        gspread.exceptions.APIError
            Any other API failure, after the retries.
        """
        from gspread.utils import ValueInputOption, absolute_range_name

        frame = _check_frame(sheet)
        ym = yyyymm(month)
        sh = self._open(month, create=True)
        ws = self._worksheet(sh, month)
        n_rows, n_cols = frame.height + 1, len(frame.columns)
        if ws is None:
            ws = self._call("add worksheet", sh.add_worksheet, title=ym, rows=n_rows + 1, cols=n_cols)
        self._layout(sh, ws, frame, taxonomy, ym)
        values = _sheet_values(frame)
        self._call(
            "write values",
            sh.values_update,
            absolute_range_name(ym, "A1"),
            params={"valueInputOption": ValueInputOption.raw},
            body={"values": values, "majorDimension": "ROWS"},
        )
        log.info("wrote review sheet %s (%d rows) to %s", ym, frame.height, sh.id)
        return ws.url

    def update_month(
        self, month: str, change: Change[R], taxonomy: Taxonomy, *, attempts: int = UPDATE_ATTEMPTS
    ) -> tuple[str, R]:
        """Read the worksheet, apply ``change``, read it again: if it differs (a reviewer typed
        meanwhile) apply ``change`` to the new values and check again, up to ``attempts`` rounds;
        then lay out the grid (never shrinking it) and write only the cells whose value changes,
        in one ``values:batchUpdate`` (RAW). Reviewer cells of existing rows are never among them
        (``merge_into_sheet`` keeps them), so an edit typed at any moment stays. Parameters and
        result as :meth:`ReviewBackend.update_month` (the location: the worksheet URL).

        Raises
        ------
        ReviewConflictError
            The worksheet changed between the two reads of every round (nothing written).
        ReviewBackendError
            A frame without the review columns; the configured ``spreadsheet_key`` does not exist.
        gspread.exceptions.APIError
            Any other API failure, after the retries.
        """
        ym = yyyymm(month)
        sh = self._open(month, create=True)
        ws = self._worksheet(sh, month)
        if ws is None:
            ws = self._call("add worksheet", sh.add_worksheet, title=ym, rows=2, cols=len(REVIEW_COLUMNS))
        grid = self._read_grid(ws)
        for attempt in range(1, max(1, attempts) + 1):
            existing = frame_from_grid(grid) if any(any(str(v).strip() for v in r) for r in grid) else None
            sheet, result = change(existing)
            frame = _check_frame(sheet)
            again = self._read_grid(ws)
            if again == grid:
                break
            log.warning(
                "review sheet %s changed while merging (a reviewer is editing); merging again (attempt %d/%d)",
                ym, attempt, attempts,
            )
            grid = again
        else:
            raise ReviewConflictError(
                f"review sheet {ym} ({sh.id}) changed during each of {attempts} attempts to update it; "
                "nothing was written: rerun the same run"
            )
        self._layout(sh, ws, frame, taxonomy, ym, min_rows=ws.row_count, min_cols=ws.col_count)
        data = _changed_ranges(ym, grid, frame)
        if data:
            self._call(
                "write values",
                sh.values_batch_update,
                body={"valueInputOption": "RAW", "data": data},
            )
        log.info("updated review sheet %s (%d rows, %d ranges written) in %s", ym, frame.height, len(data), sh.id)
        return ws.url, result

    def __repr__(self) -> str:
        """``GSheetsReviewBackend('key or title template')``."""
        where = self.settings.spreadsheet_key or self.settings.spreadsheet_title_template
        return f"GSheetsReviewBackend({where!r})"


def _changed_ranges(title: str, grid: Sequence[Sequence[Any]], frame: pl.DataFrame) -> list[dict[str, Any]]:
    """``values:batchUpdate`` data writing ``frame`` (header + rows) over the worksheet values
    ``grid`` (formatted, as read): only the cells whose text differs, as one range per run of
    adjacent changed cells in a row. Cells of ``grid`` outside the frame are cleared (rows the
    merge dropped because every cell was empty shift the ones below up)."""
    from gspread.utils import absolute_range_name, rowcol_to_a1

    values = _sheet_values(frame)
    target = [[neutralize_cell(c) for c in frame.columns], *([neutralize_cell(v) for v in r] for r in frame.iter_rows())]
    conf = {j for j, c in enumerate(frame.columns) if c in CONFIDENCE_COLUMNS}
    n_rows = max(len(target), len(grid))
    n_cols = max([len(frame.columns), *(len(r) for r in grid)]) if grid else len(frame.columns)
    out: list[dict[str, Any]] = []
    for i in range(n_rows):
        cur_row = grid[i] if i < len(grid) else []
        changed: list[tuple[int, Any]] = []
        for j in range(n_cols):
            cur = _read_cell(cur_row[j]) if j < len(cur_row) else ""
            if i < len(target) and j < len(target[i]):
                new, write = target[i][j], values[i][j]
            else:
                new, write = "", ""
            same = _canon_conf(cur) == _canon_conf(new) if i > 0 and j in conf else cur == new
            if not same:
                changed.append((j, write))
        for start, end in _runs([j for j, _ in changed]):
            cells = dict(changed)
            rng = f"{rowcol_to_a1(i + 1, start + 1)}:{rowcol_to_a1(i + 1, end)}"
            out.append({"range": absolute_range_name(title, rng), "values": [[cells[j] for j in range(start, end)]]})
    return out


def _sheet_values(frame: pl.DataFrame) -> list[list[Any]]:
    """Header + rows; confidences as numbers, everything else text (written RAW)."""
    conf_idx = {j for j, c in enumerate(frame.columns) if c in CONFIDENCE_COLUMNS}
    out: list[list[Any]] = [[neutralize_cell(c) for c in frame.columns]]
    for row in frame.iter_rows():
        cells: list[Any] = []
        for j, raw in enumerate(row):
            text = neutralize_cell(raw)
            v = _float(text) if j in conf_idx else None
            cells.append(v if v is not None else text)
        out.append(cells)
    return out


def _grid(sheet_id: int, r0: int, r1: int, c0: int, c1: int) -> dict[str, int]:
    """A ``GridRange``: rows [r0, r1), columns [c0, c1), 0-based."""
    return {"sheetId": sheet_id, "startRowIndex": r0, "endRowIndex": r1, "startColumnIndex": c0, "endColumnIndex": c1}


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous [start, end) runs of sorted indices."""
    runs: list[tuple[int, int]] = []
    for i in sorted(indices):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


PROTECTION_NOTE = "voc review: model columns (warning only)"
"""Description of the protected ranges the Google Sheets backend sets (and replaces on every
layout): model columns and the 검수 안내 sheet warn before an edit, reviewer columns do not."""

_MINOR_HINT = "이 행의 대분류(검수_ 대분류, 비어 있으면 모델의 대분류)의 중분류입니다. 대분류를 바꿨다면 다음 갱신 때 목록이 바뀝니다."


def _validation(sheet_id: int, r0: int, r1: int, col: int, values: Sequence[str], *, strict: bool, hint: str) -> dict[str, Any]:
    """A ``setDataValidation`` request: a ``ONE_OF_LIST`` dropdown of ``values`` on rows [r0, r1) of column ``col``."""
    return {
        "setDataValidation": {
            "range": _grid(sheet_id, r0, r1, col, col + 1),
            "rule": {
                "condition": {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": v} for v in values]},
                "strict": strict,
                "showCustomUi": True,
                "inputMessage": hint,
            },
        }
    }


@dataclass(frozen=True, eq=False)
class WorksheetLayout:
    """What :func:`sheet_format_requests` lays out: a month's review worksheet.

    Attributes
    ----------
    sheet_id
        The worksheet's ``sheetId``.
    columns
        The frame's columns, in sheet order.
    n_data_rows
        Data rows of the frame (the header not counted).
    title
        The worksheet's title (``yyyymm``).
    min_rows, min_cols
        The grid is sized to the frame but never below ``min_rows`` × ``min_cols`` (the
        current size, when nothing may be cut off).
    frame
        The sheet's rows (``n_data_rows × len(columns)``): per-row 중분류 lists, row heights and
        urgent rows; None: the flat 중분류 list on every row, default heights, no urgent fill.
    protected_range_ids
        This backend's earlier protected ranges (:data:`PROTECTION_NOTE`) to delete before the
        current one is added.
    """

    sheet_id: int
    columns: tuple[str, ...]
    n_data_rows: int
    title: str
    min_rows: int = 0
    min_cols: int = 0
    frame: pl.DataFrame | None = None
    protected_range_ids: tuple[int, ...] = ()


def sheet_format_requests(spec: WorksheetLayout, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """The ``batchUpdate`` requests that lay out a review worksheet (see :class:`GSheetsReviewBackend`).

    With ``spec.frame`` each data row's 중분류 gets its own ``ONE_OF_LIST``: the minors of the
    row's 대분류 (:func:`row_minor_choices`; consecutive rows with the same list share one
    request), not strict, since a reviewer who picks another 대분류 sees the new list only after
    the next layout (``voc.review.validate_reviews`` checks the pair on read); rows below the data
    and every row without ``frame`` get the flat list. Rows are as high as :func:`row_height`
    says.

    Parameters
    ----------
    spec
        The worksheet, its columns and rows, the grid's minimum size and the protected ranges
        to replace.
    taxonomy
        The dropdowns' classes (offered ones only: :func:`dropdown_lists`).

    Returns
    -------
    list[dict]
        In order: grid properties (size, frozen rows and columns, title), header and cell
        formats, fills (model grey, reviewer yellow, urgent rows), confidence number format,
        validations, column widths (pixels: units × 7 + 10), row heights (pixels: points × 4/3),
        the basic filter, deletion of ``spec.protected_range_ids`` and the new warning-only
        protected range (reviewer and added columns left out).
    """
    grid_rows = max(spec.n_data_rows + 1, 2, spec.min_rows)  # a frozen row needs at least one row below it
    rows = list(spec.frame.iter_rows(named=True)) if spec.frame is not None else []
    return [
        *_grid_requests(spec, grid_rows),
        *_fill_requests(spec.sheet_id, spec.columns, grid_rows),
        *urgent_row_requests(spec.sheet_id, spec.columns, spec.frame, grid_rows),
        *_confidence_requests(spec.sheet_id, spec.columns, grid_rows),
        *_dropdown_requests(spec.sheet_id, spec.columns, taxonomy, rows, grid_rows),
        *_column_requests(spec.sheet_id, spec.columns),
        *_row_height_requests(spec.sheet_id, rows),
        *_protection_requests(spec, grid_rows),
    ]


def _grid_requests(spec: WorksheetLayout, grid_rows: int) -> list[dict[str, Any]]:
    """Grid size, title and frozen panes; the header bold and wrapped; data cells top-aligned."""
    n_cols = len(spec.columns)
    return [
        {
            "updateSheetProperties": {
                "properties": {
                    "sheetId": spec.sheet_id,
                    "title": spec.title,
                    "gridProperties": {
                        "rowCount": grid_rows,
                        "columnCount": max(n_cols, spec.min_cols),
                        "frozenRowCount": 1,
                        "frozenColumnCount": frozen_columns(spec.columns),
                    },
                },
                "fields": "title,gridProperties.rowCount,gridProperties.columnCount,gridProperties.frozenRowCount,"
                "gridProperties.frozenColumnCount",
            }
        },
        {
            "repeatCell": {
                "range": _grid(spec.sheet_id, 0, 1, 0, n_cols),
                "cell": {"userEnteredFormat": {"textFormat": {"bold": True}, "wrapStrategy": "WRAP"}},
                "fields": "userEnteredFormat.textFormat.bold,userEnteredFormat.wrapStrategy",
            }
        },
        {
            "repeatCell": {
                "range": _grid(spec.sheet_id, 1, grid_rows, 0, n_cols),
                "cell": {"userEnteredFormat": {"verticalAlignment": "TOP"}},
                "fields": "userEnteredFormat.verticalAlignment",
            }
        },
    ]


def _fill_requests(sheet_id: int, columns: Sequence[str], grid_rows: int) -> list[dict[str, Any]]:
    """Text columns wrapped; model columns grey and reviewer columns yellow (header included)."""
    idx = {c: j for j, c in enumerate(columns)}
    reqs: list[dict[str, Any]] = []
    for c0, c1 in _runs([idx[c] for c in TEXT_COLUMNS if c in idx]):
        reqs.append(
            {
                "repeatCell": {
                    "range": _grid(sheet_id, 1, grid_rows, c0, c1),
                    "cell": {"userEnteredFormat": {"wrapStrategy": "WRAP"}},
                    "fields": "userEnteredFormat.wrapStrategy",
                }
            }
        )
    for cols, rgb in (
        (MODEL_COLUMNS, {"red": 0.906, "green": 0.902, "blue": 0.902}),
        (REVIEWER_COLUMNS, {"red": 1.0, "green": 0.949, "blue": 0.8}),
    ):
        for c0, c1 in _runs([idx[c] for c in cols if c in idx]):
            reqs.append(
                {
                    "repeatCell": {
                        "range": _grid(sheet_id, 0, grid_rows, c0, c1),
                        "cell": {"userEnteredFormat": {"backgroundColor": rgb}},
                        "fields": "userEnteredFormat.backgroundColor",
                    }
                }
            )
    return reqs


def _confidence_requests(sheet_id: int, columns: Sequence[str], grid_rows: int) -> list[dict[str, Any]]:
    """The confidence columns' number format ``0.00``."""
    idx = {c: j for j, c in enumerate(columns)}
    return [
        {
            "repeatCell": {
                "range": _grid(sheet_id, 1, grid_rows, idx[c], idx[c] + 1),
                "cell": {"userEnteredFormat": {"numberFormat": {"type": "NUMBER", "pattern": "0.00"}}},
                "fields": "userEnteredFormat.numberFormat",
            }
        }
        for c in CONFIDENCE_COLUMNS
        if c in idx
    ]


def _dropdown_requests(
    sheet_id: int, columns: Sequence[str], taxonomy: Taxonomy, rows: Sequence[dict[str, Any]], grid_rows: int
) -> list[dict[str, Any]]:
    """The validations: strict lists for 대분류, 검수완료 and 묶음 적용; for 중분류 a list per run
    of data ``rows`` with the same choices, then the flat list below them."""
    idx = {c: j for j, c in enumerate(columns)}
    minor_cols = {col_minor: dim for dim, (_a, col_minor) in REVIEWER_LABEL_COLUMNS.items()}
    reqs: list[dict[str, Any]] = []
    for name, values in dropdown_lists(taxonomy).items():
        if name not in idx:
            continue
        if name not in minor_cols:
            reqs.append(_validation(sheet_id, 1, grid_rows, idx[name], values, strict=True, hint="목록에서 선택하세요"))
            continue
        per_row = [row_minor_choices(r, taxonomy, minor_cols[name]) for r in rows]
        start = 0
        for k in range(1, len(per_row) + 1):  # runs of rows with the same list
            if k == len(per_row) or per_row[k] != per_row[start]:
                reqs.append(_validation(sheet_id, 1 + start, 1 + k, idx[name], per_row[start], strict=False, hint=_MINOR_HINT))
                start = k
        if 1 + len(per_row) < grid_rows:
            reqs.append(_validation(sheet_id, 1 + len(per_row), grid_rows, idx[name], values, strict=False, hint=_MINOR_HINT))
    return reqs


def _column_requests(sheet_id: int, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Column widths in pixels (:data:`COLUMN_WIDTHS` × 7 + 10); ``model_version``/``run_id`` hidden."""
    return [
        {
            "updateDimensionProperties": {
                "range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": j, "endIndex": j + 1},
                "properties": {
                    "pixelSize": COLUMN_WIDTHS.get(c, _DEFAULT_WIDTH) * 7 + 10,
                    "hiddenByUser": c in _HIDDEN_COLUMNS,
                },
                "fields": "pixelSize,hiddenByUser",
            }
        }
        for j, c in enumerate(columns)
    ]


def _row_height_requests(sheet_id: int, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Data rows as high as their texts need (:func:`row_height`, in pixels), one request per run
    of rows of one height."""
    heights = [round(row_height({c: "" if v is None else str(v) for c, v in r.items()}) * 4 / 3) for r in rows]
    reqs: list[dict[str, Any]] = []
    start = 0
    for k in range(1, len(heights) + 1):
        if k == len(heights) or heights[k] != heights[start]:
            reqs.append(
                {
                    "updateDimensionProperties": {
                        "range": {"sheetId": sheet_id, "dimension": "ROWS", "startIndex": 1 + start, "endIndex": 1 + k},
                        "properties": {"pixelSize": heights[start]},
                        "fields": "pixelSize",
                    }
                }
            )
            start = k
    return reqs


def _protection_requests(spec: WorksheetLayout, grid_rows: int) -> list[dict[str, Any]]:
    """The basic filter over header and data; this backend's old protected ranges deleted and a
    warning-only one added over the sheet, reviewer and added columns left out."""
    n_rows, n_cols = spec.n_data_rows + 1, len(spec.columns)
    open_cols = [j for j, c in enumerate(spec.columns) if c in REVIEWER_COLUMNS or c not in REVIEW_COLUMNS]
    return [
        {"setBasicFilter": {"filter": {"range": _grid(spec.sheet_id, 0, n_rows, 0, n_cols)}}},
        *({"deleteProtectedRange": {"protectedRangeId": int(p)}} for p in spec.protected_range_ids),
        {
            "addProtectedRange": {
                "protectedRange": {
                    "range": {"sheetId": spec.sheet_id},
                    "description": PROTECTION_NOTE,
                    "warningOnly": True,
                    "unprotectedRanges": [_grid(spec.sheet_id, 1, grid_rows, c0, c1) for c0, c1 in _runs(open_cols)],
                }
            }
        },
    ]


def urgent_row_requests(sheet_id: int, columns: Sequence[str], frame: pl.DataFrame | None, grid_rows: int) -> list[dict[str, Any]]:
    """``repeatCell`` requests that paint the machine cells (review columns neither model nor
    reviewer: 검토 우선, 긴급, voc_id, 제목, …) of each urgent data row (긴급 =
    :data:`voc.review.URGENT_MARK`) light red, after clearing that fill on every data row — so a
    layout after a merge or a reviewer's re-sorting paints exactly the rows urgent now. Grey model
    and yellow reviewer cells keep their colours. ``[]`` without ``frame`` or a 긴급 column.

    Parameters
    ----------
    sheet_id
        The worksheet's ``sheetId``.
    columns
        The sheet's columns, in order.
    frame
        The sheet's rows (``M`` data rows), or None.
    grid_rows
        Rows of the grid, header included (the clearing covers rows 1 … ``grid_rows`` − 1).

    Returns
    -------
    list[dict]
        Clearing requests, then one per run of urgent rows and run of machine columns.
    """
    if frame is None or COL_URGENT not in frame.columns:
        return []
    plain = _runs([j for j, c in enumerate(columns) if c in REVIEW_COLUMNS and c not in MODEL_COLUMNS and c not in REVIEWER_COLUMNS])
    urgent = [i for i, u in enumerate(_urgent_flags(frame), start=1) if u]
    rgb = {k: int(_URGENT_RGB[i : i + 2], 16) / 255 for k, i in (("red", 2), ("green", 4), ("blue", 6))}
    reqs: list[dict[str, Any]] = []
    for rows, fmt in (([(1, grid_rows)], {}), (_runs(urgent), {"backgroundColor": rgb})):
        for r0, r1 in rows:
            for c0, c1 in plain:
                reqs.append({
                    "repeatCell": {
                        "range": _grid(sheet_id, r0, r1, c0, c1),
                        "cell": {"userEnteredFormat": fmt},  # {}: the field mask clears the fill
                        "fields": "userEnteredFormat.backgroundColor",
                    }
                })
    return reqs


def guide_requests(sheet_id: int, *, exists: bool) -> list[dict[str, Any]]:
    """``batchUpdate`` requests writing the :data:`GUIDE_SHEET` worksheet (``sheet_id``; added
    first unless it ``exists``): :func:`guide_rows` as text, the table header bold, widths, and
    a warning-only protection (:data:`PROTECTION_NOTE`).

    Parameters
    ----------
    sheet_id
        The guide worksheet's ``sheetId`` (a free one when it does not exist yet).
    exists
        Whether the worksheet exists (else an ``addSheet`` comes first).

    Returns
    -------
    list[dict]
    """
    rows = guide_rows()
    reqs: list[dict[str, Any]] = []
    if not exists:
        reqs.append(
            {
                "addSheet": {
                    "properties": {
                        "sheetId": sheet_id,
                        "title": GUIDE_SHEET,
                        "gridProperties": {"rowCount": len(rows) + 5, "columnCount": 3},
                    }
                }
            }
        )
    reqs.append(
        {
            "updateCells": {
                "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": 0},
                "rows": [
                    {
                        "values": [
                            {
                                "userEnteredValue": {"stringValue": v},
                                "userEnteredFormat": {
                                    "wrapStrategy": "WRAP",
                                    "verticalAlignment": "TOP",
                                    "textFormat": {"bold": r[0] == "열" or i == 0},
                                },
                            }
                            for v in r
                        ]
                    }
                    for i, r in enumerate(rows)
                ],
                "fields": "userEnteredValue,userEnteredFormat.wrapStrategy,userEnteredFormat.verticalAlignment,"
                "userEnteredFormat.textFormat.bold",
            }
        }
    )
    for j, width in enumerate((22, 8, 90)):
        reqs.append(
            {
                "updateDimensionProperties": {
                    "range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": j, "endIndex": j + 1},
                    "properties": {"pixelSize": width * 7 + 10},
                    "fields": "pixelSize",
                }
            }
        )
    reqs.append(
        {"addProtectedRange": {"protectedRange": {"range": {"sheetId": sheet_id}, "description": PROTECTION_NOTE, "warningOnly": True}}}
    )
    return reqs


# --------------------------------------------------------------------------------------------


