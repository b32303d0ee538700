"""voc.csvsafe: tagged/reviewed CSVs safe to open in a spreadsheet (OWASP "CSV Injection"), read
back exactly by the project's own readers (issue 21)."""

from __future__ import annotations

import io

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voc.csvsafe import FORMULA_CHARS, csv_bytes, escape_frame, escape_text, read_csv_bytes, unescape_text

PAYLOADS = [
    '=HYPERLINK("http://x","y")',
    "+1+1",
    "-2+3",
    "@SUM(1)",
    "=cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=1+1",  # a value that already starts with the escape character
    "'",
    "''",
]


@pytest.mark.parametrize("text", PAYLOADS)
def test_classic_payloads_are_escaped_and_restored(text):
    cell = escape_text(text)
    assert cell == "'" + text and unescape_text(cell) == text


@pytest.mark.parametrize("text", ["승강기 고장", "", "0.5", "a=b", " =1", "1-2"])
def test_harmless_text_is_left_alone(text):
    assert escape_text(text) == unescape_text(text) == text
    assert unescape_text("'quoted'") == "'quoted'"  # a CSV written before the escape: unchanged
    assert escape_text(None) is None and unescape_text(None) is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "a", "가", " ", "\n", '"', ","]), max_size=8))
def test_escape_round_trips_every_text(text):
    assert unescape_text(escape_text(text)) == text
    cell = escape_text(text)
    assert not cell or cell[0] not in FORMULA_CHARS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=6))
def test_csv_round_trip_is_lossless_for_text_columns(values):
    df = pl.DataFrame({"t": values, "n": list(range(len(values)))}, schema={"t": pl.Utf8, "n": pl.Int64})
    back = read_csv_bytes(csv_bytes(df))
    assert back["t"].to_list() == values  # "" is written as "" and null as an empty field
    assert back["n"].to_list() == [str(i) for i in range(len(values))]


def test_no_cell_of_the_written_file_starts_like_a_formula():
    df = pl.DataFrame({"title": PAYLOADS, "confidence": [-0.5] * len(PAYLOADS)})
    raw = pl.read_csv(io.BytesIO(csv_bytes(df)), infer_schema=False)  # what a spreadsheet sees
    assert all(v[0] not in FORMULA_CHARS for v in raw["title"].to_list())
    assert raw["confidence"].to_list() == ["-0.5"] * len(PAYLOADS), "numbers are data, not escaped"
    assert escape_frame(df)["confidence"].to_list() == df["confidence"].to_list()


def test_tagged_csv_round_trips_through_the_monthly_writer_and_reader(sample_df, tmp_path):
    """The real sample month with hostile titles and memos: what refresh and history read is
    what tagging wrote; training's reader too."""
    from flows.adapters.storage import LocalStorage
    from flows.monthly import _csv_bytes, read_output_csv

    month = sample_df.filter(pl.col("created_at").dt.strftime("%Y%m") == "201911")
    hostile = (PAYLOADS * (month.height // len(PAYLOADS) + 1))[: month.height]
    df = month.with_columns(pl.Series("title", hostile), pl.Series("review_memo", list(reversed(hostile))))
    storage = LocalStorage(tmp_path)
    storage.write_bytes("m/tagged.csv", _csv_bytes(df))
    back = read_output_csv(storage, "m/tagged.csv")
    for c, t in df.schema.items():
        if t == pl.Utf8:
            assert back[c].to_list() == df[c].to_list(), c
    assert back["created_at"].to_list() == df["created_at"].to_list()
    text = (tmp_path / "m/tagged.csv").read_text(encoding="utf-8")
    assert '\n"\'=HYPERLINK' in text or ",\"'=HYPERLINK" in text or ",'=HYPERLINK" in text
