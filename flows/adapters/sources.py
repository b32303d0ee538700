"""VOC sources: a CSV file in the VOC schema (default: the shipped sample) or PostgreSQL.

Every source returns *validated* VOC frames (:func:`voc.schema.validate_voc_frame`): one row
per ``voc_id``, ``created_at`` as a date, input labels as ``reviewed_*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

from voc.months import month_range, parse_month
from voc.schema import VOCInputError, building_sort_key, validate_voc_frame
from voc.taxonomy import Taxonomy

__all__ = ["VocSource", "TagSink", "TrainingRowSource", "CsvSource", "SourceError"]


class SourceError(RuntimeError):
    """The source cannot be read (missing file, unreachable database, missing table/column)."""


@runtime_checkable
class VocSource(Protocol):
    def read_month(self, month: str, building_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """VOCs registered in ``month`` ("YYYY-MM"), optionally only these buildings."""

    def read_history(self, *, before: str | None = None) -> pl.DataFrame:
        """All VOCs registered before ``before`` (all when None), with their reviewed labels."""

    def read_taxonomy(self) -> Taxonomy | None:
        """The customer's taxonomy when the source holds one (``voc_taxonomy``), else None."""

    def describe(self) -> str:
        """Where the data comes from, without secrets."""

    def close(self) -> None:
        """Release connections (a later read reopens them); a file source has none."""


@runtime_checkable
class TagSink(Protocol):
    """A source that takes tags back (PostgreSQL: ``voc_classification``, under the priority
    rules of :mod:`flows.adapters.db`); the flows write to it when the source is one."""

    def write_tags(self, tagged: pl.DataFrame, *, classify_source: str = "batch", reviewed: bool = False) -> int:
        """Upsert the tags of ``tagged``'s rows; returns the rows written."""
        ...


@runtime_checkable
class TrainingRowSource(Protocol):
    """A source that also keeps rows marked reviewed outside the VOC table (PostgreSQL); training
    reads them on top of :meth:`VocSource.read_history`."""

    def read_training_rows(self) -> pl.DataFrame:
        """Validated VOC rows whose ``reviewed_*`` hold human labels (per dimension)."""
        ...


class CsvSource:
    """A CSV file in the VOC schema (UTF-8, RFC 4180 quoting, multi-line fields).

    The file is read once, all columns as text (ids keep leading zeros), and validated.

    Raises
    ------
    SourceError
        The file does not exist or is not CSV.
    VOCInputError
        A row breaks the schema (message names row, field and value).
    """

    def __init__(self, path: str | Path, encoding: str = "utf-8") -> None:
        self.path = Path(path)
        self.encoding = encoding
        self._df: pl.DataFrame | None = None

    def frame(self) -> pl.DataFrame:
        if self._df is None:
            if not self.path.is_file():
                raise SourceError(f"VOC source file not found: {self.path}")
            text = decode_csv_bytes(self.path.read_bytes(), self.encoding, name=str(self.path))
            try:
                raw = pl.read_csv(text.encode("utf-8"), infer_schema=False)
            except pl.exceptions.PolarsError as e:
                raise SourceError(f"cannot read {self.path} as CSV: {e}") from e
            self._df = validate_voc_frame(raw)
        return self._df

    def read_month(self, month: str, building_ids: Sequence[str] | None = None) -> pl.DataFrame:
        start, end = month_range(parse_month(month))
        df = self.frame().filter((pl.col("created_at") >= start) & (pl.col("created_at") < end))
        if building_ids:
            df = df.filter(pl.col("building_id").is_in([str(b) for b in building_ids]))
        return df

    def read_history(self, *, before: str | None = None) -> pl.DataFrame:
        df = self.frame()
        if before:
            df = df.filter(pl.col("created_at") < month_range(parse_month(before))[0])
        return df

    def read_taxonomy(self) -> Taxonomy | None:
        return None

    def describe(self) -> str:
        return f"csv:{self.path}"

    def close(self) -> None:
        """Nothing to release (the parsed frame stays cached)."""


SOURCE_ENCODINGS: tuple[str, ...] = ("utf-8", "cp949", "euc-kr")
"""Encodings a CSV source may declare: UTF-8 (with or without BOM) by default; cp949 (Windows
Korean, what Excel writes for a Korean "CSV") and its subset euc-kr on request."""


class SourceEncodingError(SourceError, ValueError):
    """The file's bytes are not text in the declared encoding (never guessed, never replaced)."""


def decode_csv_bytes(data: bytes, encoding: str = "utf-8", *, name: str = "input") -> str:
    """Strictly decode a CSV file: no byte is dropped or replaced by U+FFFD.

    ``utf-8`` also strips a leading BOM (``utf-8-sig``).

    Raises
    ------
    SourceEncodingError
        An encoding outside :data:`SOURCE_ENCODINGS`, or bytes invalid in it; the message names
        the line (1-based, counting physical lines), the byte offset, the bytes, and the fix.
    """
    enc = encoding.lower().replace("_", "-")
    if enc in ("utf8", "utf-8-sig"):
        enc = "utf-8"
    if enc not in SOURCE_ENCODINGS:
        raise SourceEncodingError(f"unsupported source encoding {encoding!r}; use one of {', '.join(SOURCE_ENCODINGS)}")
    try:
        return data.decode("utf-8-sig" if enc == "utf-8" else enc)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start : min(e.end, e.start + 4)].hex(" ")
        hint = (
            "if it is a Korean Excel/Windows export, declare it: --encoding cp949 (or VOC_SOURCE_ENCODING=cp949)"
            if enc == "utf-8"
            else "check the file's encoding (utf-8, cp949 or euc-kr)"
        )
        raise SourceEncodingError(
            f"{name} is not valid {enc}: line {line}, byte offset {e.start} (bytes {bad}); {hint}"
        ) from None


def buildings_of(df: pl.DataFrame) -> list[tuple[str, str]]:
    """``(building_id, building_name)`` pairs present in ``df``, ids sorted naturally."""
    pairs: dict[str, str] = {}
    for bid, name in zip(df["building_id"].to_list(), df["building_name"].to_list()):
        pairs.setdefault(bid, name or "")
    return sorted(pairs.items(), key=lambda kv: building_sort_key(kv[0]))


__all__ += ["buildings_of", "VOCInputError", "SourceEncodingError", "SOURCE_ENCODINGS", "decode_csv_bytes"]
