"""CSV files that are safe to open in a spreadsheet program, and read back exactly.

The tagged and reviewed CSVs are meant for people, who open them in Excel or LibreOffice.
Those programs read a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return
as a *formula*: a VOC titled ``=HYPERLINK("http://x","y")`` or a 검수 메모 ``=cmd|' /C calc'!A0``
would run when the file is opened. This is the attack OWASP calls **CSV Injection** (formula
injection; https://owasp.org/www-community/attacks/CSV_Injection). Its recommended defence,
used here: prefix such a text cell with a single quote ``'`` so the program shows it as text,
and quote fields (polars quotes every field holding a separator, a quote or a line break).

To keep the files lossless for the project's own readers, the escape is reversible:

* :func:`escape_text` prefixes ``'`` to a text that starts with one of :data:`FORMULA_CHARS`
  (``= + - @ \\t \\r``) **or with** ``'`` itself;
* :func:`unescape_text` removes one leading ``'`` only where it is followed by one of those
  characters or another ``'`` — exactly the texts :func:`escape_text` produces — so
  ``unescape_text(escape_text(t)) == t`` for every text ``t``, and a text written before this
  escape existed (``'quoted'``) reads back unchanged unless it starts with ``'`` + one of them.

Only text (``Utf8``) columns are escaped; numbers, dates and booleans are written as they are
(a negative number is data, not a formula, and stays a number for the spreadsheet). Readers
that read every column as text (``infer_schema=False``) unescape every column: a numeric cell
never starts with ``'``.

Pure functions: bytes in, bytes out; no files, no clocks.
"""

from __future__ import annotations

import io

import polars as pl

__all__ = [
    "FORMULA_CHARS",
    "ESCAPE",
    "escape_text",
    "unescape_text",
    "escape_frame",
    "unescape_frame",
    "csv_bytes",
    "read_csv_bytes",
]

FORMULA_CHARS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet program read a CSV cell as a formula (OWASP, "CSV
Injection": equals, plus, minus, at, tab ``0x09``, carriage return ``0x0D``)."""

ESCAPE = "'"
"""The prefix OWASP recommends: spreadsheet programs show a cell starting with it as text."""

_ESCAPED_START = (*FORMULA_CHARS, ESCAPE)
_NEEDS_ESCAPE_RE = r"^[=+\-@\t\r']"
_IS_ESCAPED_RE = r"^'[=+\-@\t\r']"


def escape_text(value: str | None) -> str | None:
    """The CSV cell for a text meant for people: ``'`` + ``value`` when ``value`` starts with
    one of :data:`FORMULA_CHARS` or with :data:`ESCAPE`, else ``value`` (``None`` stays
    ``None``). OWASP "CSV Injection" (https://owasp.org/www-community/attacks/CSV_Injection).

    Examples: ``'=HYPERLINK("http://x","y")'`` → ``'\\'=HYPERLINK("http://x","y")'``;
    ``"-2+3"`` → ``"'-2+3"``; ``"'quoted"`` → ``"''quoted"``; ``"승강기"`` → ``"승강기"``.
    """
    if value and value.startswith(_ESCAPED_START):
        return ESCAPE + value
    return value


def unescape_text(value: str | None) -> str | None:
    """Inverse of :func:`escape_text`: drops the leading :data:`ESCAPE` of a cell that starts
    with it followed by one of :data:`FORMULA_CHARS` or another :data:`ESCAPE`; any other value
    (``None`` included) is returned unchanged. ``unescape_text(escape_text(t)) == t``."""
    if value and len(value) > 1 and value[0] == ESCAPE and value[1] in _ESCAPED_START:
        return value[1:]
    return value


def escape_frame(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with :func:`escape_text` applied to every ``Utf8`` column (other dtypes and nulls
    unchanged). Shape ``N × C`` kept."""
    cols = [c for c, t in df.schema.items() if t == pl.Utf8]
    if not cols:
        return df
    return df.with_columns(
        [pl.when(pl.col(c).str.contains(_NEEDS_ESCAPE_RE)).then(ESCAPE + pl.col(c)).otherwise(pl.col(c)).alias(c) for c in cols]
    )


def unescape_frame(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with :func:`unescape_text` applied to every ``Utf8`` column. Shape ``N × C`` kept."""
    cols = [c for c, t in df.schema.items() if t == pl.Utf8]
    if not cols:
        return df
    return df.with_columns(
        [pl.when(pl.col(c).str.contains(_IS_ESCAPED_RE)).then(pl.col(c).str.slice(1)).otherwise(pl.col(c)).alias(c) for c in cols]
    )


def csv_bytes(df: pl.DataFrame) -> bytes:
    """UTF-8 CSV (header, RFC 4180 quoting by polars) of ``df`` with its text columns escaped
    (:func:`escape_frame`): safe to open in a spreadsheet program."""
    buf = io.BytesIO()
    escape_frame(df).write_csv(buf)
    return buf.getvalue()


def read_csv_bytes(data: bytes) -> pl.DataFrame:
    """A CSV written by :func:`csv_bytes`, every column ``Utf8`` (``infer_schema=False``; empty
    cells null) and unescaped (:func:`unescape_frame`): the text cells are exactly those of the
    frame that was written.

    Raises
    ------
    polars.exceptions.ComputeError
        ``data`` is not a readable CSV.
    """
    return unescape_frame(pl.read_csv(io.BytesIO(data), infer_schema=False))
