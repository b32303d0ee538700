"""The VOC table schema and its validation.

Input schema (one row per VOC, the shipped sample's columns; see ``voc/datasets/.../README.md``):

==================  ======  ====================================================
column              type    meaning
==================  ======  ====================================================
voc_id              str     unique id of the complaint (ints are kept as text)
building_id         str     site / building id
building_name       str     display name of the building (may be empty)
created_at          date    registration date, ISO ``YYYY-MM-DD`` (a time part is ignored)
title               str     VOC 제목
request_contents    str     VOC 요청 내용
reply               str     worker / office reply (작업자 답변), may be empty
==================  ======  ====================================================

Optional label columns that arrive with the input are *reviewed history*:
``subject_major``, ``subject_minor``, ``work_major``, ``work_minor``. They are renamed to
``reviewed_*`` by :func:`validate_voc_frame` so they never mix with the model's tags.

All ids are strings so that customer ids such as ``"B-95"`` work as well as the sample's ints.

What :func:`validate_voc_frame` does with bad input — nothing wrong gets in, nothing right is lost:

* **ids** (``voc_id``, ``building_id``): surrounding whitespace is removed; what remains must be
  a *safe id* (:func:`id_problem`), else the run stops with :class:`VOCInputError`. A
  ``building_id`` names a storage folder (``{prefix}/{yyyymm}/{building_id}/``), so an id that is
  a path (``../x``, ``a/b``) would write outside its month or lose its VOCs.
* **control characters** (NUL and the other C0 controls except tab, newline and carriage return)
  are removed from every text column (``building_name``, ``title``, ``request_contents``,
  ``reply``, labels, any other text column) — the text is otherwise kept as it was — and the row
  is flagged ``control`` in ``input_flags`` (hence in the tagged CSV's ``flags``).
* **duplicate voc_id**: rows of one building with the same ``voc_id`` are one VOC (merged,
  flagged ``duplicate_merged``); the same ``voc_id`` in two buildings stops the run, naming both
  rows, the id and both buildings (``voc_id`` is unique in the VOC and classification tables).
* **created_at** must be a date ``YYYY-MM-DD``, optionally followed by ``T`` or whitespace and a
  time (ignored): ``2019-11-02``, ``2019-11-02 14:30:00``, ``2019-11-02T14:30:00+09:00``. Empty,
  impossible (``2019-02-30``) or run-on (``2019-11-0212``) values stop the run; the message
  shows the value as the user sees it (an empty cell as ``''``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date

import polars as pl

from voc.text import C0_CONTROL_RE

__all__ = [
    "VOCInputError",
    "MAX_ID_CHARS",
    "MAX_ID_BYTES",
    "id_problem",
    "REQUIRED_COLUMNS",
    "TEXT_COLUMNS",
    "LABEL_COLUMNS",
    "REVIEWED_LABEL_COLUMNS",
    "TAG_COLUMNS",
    "TAGGED_COLUMNS",
    "validate_voc_frame",
    "building_sort_key",
]

REQUIRED_COLUMNS: tuple[str, ...] = (
    "voc_id",
    "building_id",
    "building_name",
    "created_at",
    "title",
    "request_contents",
    "reply",
)
TEXT_COLUMNS: tuple[str, ...] = ("title", "request_contents", "reply")
LABEL_COLUMNS: tuple[str, ...] = ("subject_major", "subject_minor", "work_major", "work_minor")
REVIEWED_LABEL_COLUMNS: tuple[str, ...] = tuple(f"reviewed_{c}" for c in LABEL_COLUMNS)

TAG_COLUMNS: tuple[str, ...] = (
    "subject_major",
    "subject_minor",
    "subject_confidence",
    "subject_source",
    "work_major",
    "work_minor",
    "work_confidence",
    "work_source",
    "classify_source",
    "model_version",
    "flags",
)
"""Columns the tagger adds. ``*_confidence`` in [0, 1]; ``*_source`` is the method that
produced that tag (``model``, ``keyword``, ``reviewer``, ``none``); ``classify_source`` is the
row's provenance class used for upsert priority (``batch``, ``reviewed``, ``realtime``);
``flags`` is a ``;``-joined list of input problems (``empty_text``, ``truncated``, …)."""

TAGGED_COLUMNS: tuple[str, ...] = (
    *REQUIRED_COLUMNS,
    "yyyymm",
    *TAG_COLUMNS,
    "run_id",
    *REVIEWED_LABEL_COLUMNS,
    "urgent",
    "repeat_of",
)
"""Column order of the tagged CSV (``tagged_{building_id}_{yyyymm}_{run_id}.csv``). The last two
(:mod:`voc.urgency`): ``urgent`` (bool, a safety/service-critical VOC) and ``repeat_of`` (str or
null, the earlier VOC of the same building this one repeats within 30 days); CSVs written before
they existed are read with :func:`voc.urgency.with_alert_columns`."""


class VOCInputError(ValueError):
    """Input that cannot be processed without losing or inventing data.

    The message names the 1-based data row, the ``voc_id`` when known, the field and the value.
    """


MAX_ID_CHARS = 128
"""Longest ``voc_id``/``building_id`` accepted (characters). A building id is a storage folder name
and part of file names; see also :data:`MAX_ID_BYTES`."""

MAX_ID_BYTES = 160
"""Longest ``voc_id``/``building_id`` accepted in UTF-8 bytes (Hangul takes 3 bytes, most emoji 4:
53 Hangul syllables, 128 ASCII characters). The longest file name built from a building id,
``dashboard_{id}_{yyyymm}_tagging-only_{yyyymmdd}_{hhmmss}.html`` (51 bytes besides the id) plus
local storage's temporary suffix ``.{pid}.{thread}.part`` (at most 34 bytes), then stays within
the 255-byte file-name limit of ext4, XFS and APFS; S3's key limit is 1,024 bytes."""

_ID_FORBIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a surrogate",
}
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_RESERVED_ID_RE = re.compile(r"index\.(?:html|json)|review_[0-9]{6}\.xlsx", re.IGNORECASE)
"""Names of the month folder's own files (``{prefix}/{yyyymm}/index.html``, ``index.json``,
``review_{yyyymm}.xlsx``): a building folder of that name would collide with them (any letter
case: local storage on a case-insensitive file system)."""


def id_problem(value: object) -> str | None:
    r"""Why ``value`` is not a safe id, or None when it is one.

    A *safe id* (``voc_id``, ``building_id``) is a string of 1 to :data:`MAX_ID_CHARS` characters
    and at most :data:`MAX_ID_BYTES` bytes in UTF-8

    * with no ``/`` and no ``\`` (a building id is one folder name in storage),
    * that is not ``.`` or ``..``,
    * with no control character (Unicode category Cc: NUL, tab, newline, DEL, C1), invisible format
      character (Cf: zero-width space/joiner, BOM, soft hyphen, the bidirectional marks and
      overrides such as U+200F and U+202E), line or paragraph separator (Zl, Zp) or surrogate (Cs),
    * without whitespace at either end,
    * that is not the name of a file of the month folder (``index.html``, ``index.json``,
      ``review_201911.xlsx``, in any letter case).

    Everything else is allowed: Korean and other letters, digits, punctuation (``-``, ``_``,
    ``.``, ``#``, …), symbols and emoji, combining marks, and spaces *inside* the id
    (``"본관 A-1"``). Ids are compared exactly (no Unicode normalisation).

    As a regular expression (Unicode classes): ``^(?!\.\.?$)(?!\s)[^/\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]{1,128}(?<!\s)$``.
    """
    if value is None or value == "":
        return "is empty"
    if not isinstance(value, str):
        return f"is not text ({type(value).__name__})"
    if len(value) > MAX_ID_CHARS:
        return f"is longer than {MAX_ID_CHARS} characters ({len(value)})"
    if not value.isascii() and len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return f"is longer than {MAX_ID_BYTES} bytes in UTF-8 ({len(value.encode('utf-8', 'surrogatepass'))}; Hangul takes 3 bytes)"
    if value in (".", ".."):
        return "is a relative path ('.' or '..'), not an id"
    if "/" in value or "\\" in value:
        return "contains a path separator ('/' or '\\')"
    if value.isascii():
        m = _ASCII_CONTROL_RE.search(value)
        if m:
            return f"contains {_ID_FORBIDDEN_CATEGORIES['Cc']} (U+{ord(m.group()):04X})"
    else:
        for ch in value:
            what = _ID_FORBIDDEN_CATEGORIES.get(unicodedata.category(ch))
            if what is not None:
                return f"contains {what} (U+{ord(ch):04X})"
    if value != value.strip():
        return "has whitespace at its start or end"
    if _RESERVED_ID_RE.fullmatch(value):
        return "is the name of a file of the month folder (index.html, index.json, review_{yyyymm}.xlsx)"
    return None


def _row_ref(i: int, voc_id: object) -> str:
    return f"row {i + 1}" + (f" (voc_id={voc_id})" if voc_id not in (None, "") else "")


def _shown(value: object, limit: int = 80) -> str:
    """A value in an error message as the user sees it: quoted, escapes visible, an empty cell
    (null) as ``''``, a long one cut after ``limit`` characters (with its length)."""
    value = "" if value is None else value
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    return repr(value)


def validate_voc_frame(df: pl.DataFrame, *, on_duplicate: str = "merge") -> pl.DataFrame:
    """Check and normalise a VOC frame.

    Parameters
    ----------
    df
        ``N × C`` frame with at least :data:`REQUIRED_COLUMNS` (any dtypes).
    on_duplicate
        What to do when a ``voc_id`` occurs on several rows *of one building* (boards do this
        when two departments answer one complaint; the shipped sample has 31 such ids):
        ``"merge"`` keeps one row per ``voc_id`` (first row's fields, the distinct replies joined
        by a blank line, first non-empty label) and adds ``duplicate_merged`` to
        ``input_flags``; ``"error"`` raises. A ``voc_id`` in two *different* buildings always
        raises: merging would silently drop one building's VOC, and ``voc_id`` is the one key of
        the VOC and classification tables.

    Returns
    -------
    pl.DataFrame
        ``M × C'`` frame, one row per ``voc_id`` in first-seen order (M = distinct ids): ids and
        texts as ``Utf8`` (nulls in text columns become ``""``), ``created_at`` as ``Date``, input
        label columns renamed to ``reviewed_*`` (all four present, null where absent), and
        ``input_flags`` (``;``-joined, ``""`` when none: ``control`` where C0 control characters
        were removed from the row's texts, ``duplicate_merged``; flags an ``input_flags`` input
        column already had are kept). ``voc_id`` and ``building_id`` are stripped of surrounding
        whitespace and are safe ids (:func:`id_problem`); no text column holds a character of
        :data:`voc.text.C0_CONTROL_RE` (removed, the text otherwise unchanged).

    Raises
    ------
    VOCInputError
        Missing column; an empty or unsafe ``voc_id`` or ``building_id`` (:func:`id_problem`:
        a path such as ``../x`` or ``a/b``, control or invisible characters, over
        :data:`MAX_ID_CHARS` characters); duplicate ``voc_id`` with ``on_duplicate="error"``;
        one ``voc_id`` in two buildings (the message names both rows, the id and both
        ``building_id`` values);
        a ``created_at`` that is not a date ``YYYY-MM-DD`` (optionally followed by ``T`` or a
        space and a time) from :data:`MIN_DATE` on. The message names the first such row
        (1-based, with its ``voc_id`` when that is valid), the field and the value as the user sees
        it (``repr``; an empty cell as ``''``).
    """
    if on_duplicate not in ("merge", "error"):
        raise ValueError(f"on_duplicate must be 'merge' or 'error', got {on_duplicate!r}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise VOCInputError(
            f"input is missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}"
        )
    out = df.with_columns(
        [pl.col(c).cast(pl.Utf8, strict=False) for c in ("voc_id", "building_id", "building_name")]
        + [pl.col(c).cast(pl.Utf8, strict=False).fill_null("") for c in TEXT_COLUMNS]
    ).with_columns(
        pl.col("voc_id").str.strip_chars(),
        pl.col("building_id").str.strip_chars(),
        pl.col("building_name").fill_null(""),
    )
    _check_ids(df, out)
    ids = out["voc_id"].to_list()
    buildings = out["building_id"].to_list()
    seen: dict[str, int] = {}
    dup = False
    for i, v in enumerate(ids):
        if v in seen:
            j = seen[v]
            if buildings[i] != buildings[j]:
                raise VOCInputError(
                    f"rows {j + 1} and {i + 1}: voc_id {_shown(v)} is in two buildings, "
                    f"building_id {_shown(buildings[j])} (row {j + 1}) and {_shown(buildings[i])} (row {i + 1}); "
                    "a voc_id names one VOC of one building: give one of them another id or fix its building_id"
                )
            if on_duplicate == "error":
                raise VOCInputError(f"{_row_ref(i, v)}: field 'voc_id' duplicates row {j + 1}")
            dup = True
        else:
            seen[v] = i
    out = out.with_columns(_parse_dates(out["created_at"], ids))
    for c in LABEL_COLUMNS:
        rc = f"reviewed_{c}"
        if c in out.columns:
            col = pl.col(c).cast(pl.Utf8, strict=False).str.strip_chars()
            out = out.with_columns(pl.when(col == "").then(None).otherwise(col).alias(rc)).drop(c)
        elif rc in out.columns:
            out = out.with_columns(pl.col(rc).cast(pl.Utf8, strict=False))
        else:
            out = out.with_columns(pl.lit(None, dtype=pl.Utf8).alias(rc))
    if "input_flags" not in out.columns:
        out = out.with_columns(pl.lit("").alias("input_flags"))
    out = _remove_controls(out.with_columns(pl.col("input_flags").cast(pl.Utf8, strict=False).fill_null("")))
    if dup:
        out = _merge_duplicates(out)
    return out


def _check_ids(raw: pl.DataFrame, out: pl.DataFrame) -> None:
    """Raise on the first row (voc_id before building_id) whose id is not safe (:func:`id_problem`);
    the message shows the value as it came in."""
    cols = {f: out[f].to_list() for f in ("voc_id", "building_id")}
    problems = {f: {v: id_problem(v) for v in set(vals)} for f, vals in cols.items()}
    if not any(p for ps in problems.values() for p in ps.values()):
        return
    for i in range(out.height):
        for f in ("voc_id", "building_id"):
            why = problems[f][cols[f][i]]
            if why is not None:
                ref = _row_ref(i, cols["voc_id"][i] if f != "voc_id" else None)
                raise VOCInputError(f"{ref}: field '{f}' {why}: {_shown(raw[f][i])}")


def _remove_controls(df: pl.DataFrame) -> pl.DataFrame:
    """Remove :data:`voc.text.C0_CONTROL_RE` characters from every text column but the ids
    (validated, never changed) and flag the rows that had any ``control`` in ``input_flags``."""
    cols = [c for c, t in df.schema.items() if t == pl.Utf8 and c not in ("voc_id", "building_id", "input_flags")]
    pattern = C0_CONTROL_RE.pattern
    hits = df.select([pl.col(c).str.contains(pattern).fill_null(False) for c in cols])
    cols = [c for c in cols if hits[c].any()]  # one scan per column when there is nothing to remove
    if not cols:
        return df
    flags = pl.when(hits.select(pl.any_horizontal(cols)).to_series()).then(
        pl.concat_str([pl.col("input_flags"), pl.lit("control")], separator=";").str.strip_chars(";")
    ).otherwise(pl.col("input_flags"))
    return df.with_columns(
        *[pl.col(c).str.replace_all(pattern, "") for c in cols],
        flags.alias("input_flags"),
    )


def _merge_duplicates(df: pl.DataFrame) -> pl.DataFrame:
    keys = df["voc_id"].to_list()
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    replies = (
        df.select("voc_id", "reply")
        .filter(pl.col("reply") != "")
        .unique(maintain_order=True)
        .group_by("voc_id", maintain_order=True)
        .agg(pl.col("reply").str.join("\n\n").alias("_reply"))
    )
    aggs = [pl.col(c).drop_nulls().first().alias(c) if c.startswith("reviewed_") else pl.col(c).first()
            for c in df.columns if c not in ("voc_id", "input_flags")]
    # a flag of any of the rows (``control`` in the second row's reply) is the merged VOC's flag
    aggs.append(pl.col("input_flags").str.join(";"))
    merged = df.group_by("voc_id", maintain_order=True).agg(aggs).with_columns(
        pl.col("input_flags").str.split(";").list.eval(pl.element().filter(pl.element() != ""))
        .list.unique(maintain_order=True).list.join(";")
    )
    merged = merged.join(replies, on="voc_id", how="left", maintain_order="left").with_columns(
        pl.col("_reply").fill_null("").alias("reply")
    ).drop("_reply")
    n = pl.Series([counts[k] for k in merged["voc_id"].to_list()])
    flag = pl.when(n > 1).then(pl.lit("duplicate_merged")).otherwise(pl.lit(""))
    return merged.with_columns(
        pl.concat_str([pl.col("input_flags"), flag], separator=";").str.strip_chars(";").alias("input_flags")
    ).select(df.columns)


_DATE_RE = r"(?s)^([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})(?:[T\s].*)?$"
"""``YYYY-MM-DD`` (month and day may have one digit), optionally followed by ``T`` or whitespace
and a time part, which is ignored. ``2019-11-0212`` is not a date."""
MIN_DATE = date(1900, 1, 1)
"""Earliest ``created_at`` accepted: an earlier year is a typo (``0219-11-02``)."""


def _parse_dates(s: pl.Series, ids: Sequence[str]) -> pl.Series:
    if s.dtype == pl.Date:
        parsed = s
    elif isinstance(s.dtype, pl.Datetime):
        parsed = s.dt.date()
    else:
        text = s.cast(pl.Utf8, strict=False).str.strip_chars()
        parsed = text.str.extract(_DATE_RE, 1).str.to_date("%Y-%m-%d", strict=False)
    bad = parsed.is_null() | (parsed < MIN_DATE).fill_null(True)
    if bad.any():
        i = int(bad.arg_true()[0])
        raise VOCInputError(
            f"{_row_ref(i, ids[i])}: field 'created_at' is not a date 'YYYY-MM-DD' "
            f"(from {MIN_DATE.year}): {_shown(s[i])}"
        )
    return parsed.alias("created_at")


def building_sort_key(building_id: str) -> tuple[int, int | str]:
    """Sort numeric ids (ASCII digits) numerically (``"2" < "10"``), others after them
    alphabetically (``"²"`` and ``"١٢"`` are digits to :meth:`str.isdigit` but not ASCII: text)."""
    return (0, int(building_id)) if building_id.isascii() and building_id.isdigit() else (1, building_id)
