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
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = [
    "VOCInputError",
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
)
"""Column order of the tagged CSV (``tagged_{building_id}_{yyyymm}_{run_id}.csv``)."""


class VOCInputError(ValueError):
    """Input that cannot be processed without losing or inventing data.

    The message names the 1-based data row, the ``voc_id`` when known, the field and the value.
    """


def _row_ref(i: int, voc_id: object) -> str:
    return f"row {i + 1}" + (f" (voc_id={voc_id})" if voc_id not in (None, "") else "")


def validate_voc_frame(df: pl.DataFrame, *, on_duplicate: str = "merge") -> pl.DataFrame:
    """Check and normalise a VOC frame.

    Parameters
    ----------
    df
        ``N × C`` frame with at least :data:`REQUIRED_COLUMNS` (any dtypes).
    on_duplicate
        What to do when a ``voc_id`` occurs on several rows (boards do this when two departments
        answer one complaint; the shipped sample has 31 such ids): ``"merge"`` keeps one row per
        ``voc_id`` (first row's fields, the distinct replies joined by a blank line, first
        non-empty label) and adds ``duplicate_merged`` to ``input_flags``; ``"error"`` raises.

    Returns
    -------
    pl.DataFrame
        ``M × C'`` frame, one row per ``voc_id`` in first-seen order (M = distinct ids): ids and
        texts as ``Utf8`` (nulls in text columns become ``""``), ``created_at`` as ``Date``, input
        label columns renamed to ``reviewed_*`` (all four present, null where absent), and
        ``input_flags`` (``""`` or ``duplicate_merged``).

    Raises
    ------
    VOCInputError
        Missing column; empty ``voc_id``; duplicate ``voc_id`` with ``on_duplicate="error"``;
        empty ``building_id``; a ``created_at`` that is not a date. The message names row, field
        and value.
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
    ids = out["voc_id"].to_list()
    for field in ("voc_id", "building_id"):
        for i, v in enumerate(out[field].to_list()):
            if v is None or v == "":
                raise VOCInputError(f"{_row_ref(i, ids[i])}: field '{field}' is empty")
    seen: dict[str, int] = {}
    dup = False
    for i, v in enumerate(ids):
        if v in seen:
            if on_duplicate == "error":
                raise VOCInputError(f"{_row_ref(i, v)}: field 'voc_id' duplicates row {seen[v] + 1}")
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
    if dup:
        out = _merge_duplicates(out)
    return out


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
            for c in df.columns if c != "voc_id"]
    merged = df.group_by("voc_id", maintain_order=True).agg(aggs)
    merged = merged.join(replies, on="voc_id", how="left", maintain_order="left").with_columns(
        pl.col("_reply").fill_null("").alias("reply")
    ).drop("_reply")
    n = pl.Series([counts[k] for k in merged["voc_id"].to_list()])
    flag = pl.when(n > 1).then(pl.lit("duplicate_merged")).otherwise(pl.lit(""))
    return merged.with_columns(
        pl.concat_str([pl.col("input_flags"), flag], separator=";").str.strip_chars(";").alias("input_flags")
    ).select(df.columns)


def _parse_dates(s: pl.Series, ids: Sequence[str]) -> pl.Series:
    if s.dtype == pl.Date:
        parsed = s
    elif s.dtype == pl.Datetime:
        parsed = s.dt.date()
    else:
        text = s.cast(pl.Utf8, strict=False).str.strip_chars()
        parsed = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    bad = parsed.is_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        raise VOCInputError(
            f"{_row_ref(i, ids[i])}: field 'created_at' is not a date 'YYYY-MM-DD': "
            f"{s[i]!r}"
        )
    return parsed.alias("created_at")


def building_sort_key(building_id: str) -> tuple[int, int | str]:
    """Sort numeric ids numerically (``"2" < "10"``), others after them alphabetically."""
    return (0, int(building_id)) if building_id.isdigit() else (1, building_id)
