"""VOC sources: a CSV file in the VOC schema (default: the shipped sample) or PostgreSQL.

Every source returns *validated* VOC frames (:func:`voc.schema.validate_voc_frame`): one row
per ``voc_id``, ``created_at`` as a date, input labels as ``reviewed_*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

from config.settings import VocSettings
from voc.months import month_range, parse_month
from voc.schema import VOCInputError, building_sort_key, validate_voc_frame
from voc.taxonomy import Taxonomy

__all__ = ["VocSource", "CsvSource", "open_source", "SourceError"]


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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._df: pl.DataFrame | None = None

    def frame(self) -> pl.DataFrame:
        if self._df is None:
            if not self.path.is_file():
                raise SourceError(f"VOC source file not found: {self.path}")
            try:
                raw = pl.read_csv(self.path, infer_schema=False, encoding="utf8-lossy")
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


def buildings_of(df: pl.DataFrame) -> list[tuple[str, str]]:
    """``(building_id, building_name)`` pairs present in ``df``, ids sorted naturally."""
    pairs = {}
    for bid, name in zip(df["building_id"].to_list(), df["building_name"].to_list()):
        pairs.setdefault(bid, name or "")
    return sorted(pairs.items(), key=lambda kv: building_sort_key(kv[0]))


def open_source(settings: VocSettings) -> VocSource:
    """A CSV source for a path, a PostgreSQL source for a ``postgresql://`` DSN."""
    if settings.source_is_postgres:
        from flows.db import PostgresSource

        return PostgresSource.from_settings(settings)
    return CsvSource(settings.source)


__all__ += ["buildings_of", "VOCInputError"]
