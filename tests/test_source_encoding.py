"""A CSV source is decoded strictly: UTF-8 (BOM or not) by default, cp949/euc-kr when declared;
a Korean Excel export read as UTF-8 stops with the line, byte offset and the fix, and no
replacement character ever reaches a frame."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.adapters.sources import CsvSource, SourceEncodingError, decode_csv_bytes
from flows.cli.main import app


def _encodable(df: pl.DataFrame, encoding: str) -> pl.DataFrame:
    """Rows whose every cell the legacy codec can represent (cp949 lacks emoji and some Hanja)."""
    keep = []
    for row in df.iter_rows(named=True):
        try:
            "".join(str(v or "") for v in row.values()).encode(encoding)
            keep.append(True)
        except UnicodeEncodeError:
            keep.append(False)
    return df.filter(pl.Series(keep))


@pytest.fixture(scope="module")
def november(sample_raw: pl.DataFrame) -> pl.DataFrame:
    return sample_raw.filter(pl.col("created_at").str.starts_with("2019-11"))


@pytest.mark.parametrize("encoding", ["cp949", "euc-kr"])
def test_declared_korean_encoding_reads_the_same_vocs_as_utf8(tmp_path: Path, november: pl.DataFrame, encoding: str) -> None:
    rows = _encodable(november, encoding)
    assert rows.height >= 10, "real 2019-11 complaints representable in the legacy codec"
    text = rows.write_csv()
    (tmp_path / "utf8.csv").write_bytes(text.encode("utf-8"))
    (tmp_path / "legacy.csv").write_bytes(text.encode(encoding))
    want = CsvSource(tmp_path / "utf8.csv").frame()
    got = CsvSource(tmp_path / "legacy.csv", encoding=encoding).frame()
    assert got.equals(want)
    assert not any("\ufffd" in (t or "") for t in got["title"].to_list() + got["request_contents"].to_list())


def test_korean_export_read_as_utf8_stops_naming_line_offset_and_fix(tmp_path: Path, november: pl.DataFrame) -> None:
    rows = _encodable(november, "cp949")
    data = rows.write_csv().encode("cp949")
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    with pytest.raises(SourceEncodingError) as e:
        CsvSource(path).frame()
    msg = str(e.value)
    first_bad = next(i for i, b in enumerate(data) if b >= 0x80)
    assert f"byte offset {first_bad}" in msg and "line " in msg and "--encoding cp949" in msg and str(path) in msg


def test_utf8_bom_is_accepted_and_stripped(tmp_path: Path, november: pl.DataFrame) -> None:
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + november.write_csv().encode("utf-8"))
    (tmp_path / "plain.csv").write_bytes(november.write_csv().encode("utf-8"))
    assert CsvSource(tmp_path / "bom.csv").frame().equals(CsvSource(tmp_path / "plain.csv").frame())


def test_decode_names_the_line_of_a_bad_byte_and_refuses_unknown_codecs() -> None:
    data = "voc_id,title\n1,가\n2,".encode() + b"\xff" + b"\n"
    with pytest.raises(SourceEncodingError, match=r"line 3, byte offset 21 \(bytes ff\)"):
        decode_csv_bytes(data)
    with pytest.raises(SourceEncodingError, match="unsupported source encoding 'latin-1'"):
        decode_csv_bytes(b"a", "latin-1")


@pytest.mark.slow  # a Prefect flow run end to end
def test_cli_declares_the_encoding(tmp_path: Path, november: pl.DataFrame, prefect_server) -> None:
    rows = _encodable(november, "cp949")
    src = tmp_path / "export.csv"
    src.write_bytes(rows.write_csv().encode("cp949"))
    store = tmp_path / "store"
    base = ["run", "--mode", "tagging-only", "--month", "2019-11", "--storage", str(store), "--source", str(src)]
    res = CliRunner().invoke(app, base)
    # refused before any flow starts (flows.cli.main.preflight), naming the line, the byte and the fix
    from flows.cli.main import InputError

    assert isinstance(res.exception, InputError) and not store.exists()
    assert "is not valid utf-8: line 2" in str(res.exception) and "--encoding cp949" in str(res.exception)
    res = CliRunner().invoke(app, [*base, "--encoding", "cp949"], env={"VOC_MODEL__ALLOW_KEYWORD_ONLY": "true"})
    assert res.exit_code == 0, res.output
    tagged = pl.concat([pl.read_csv(p, infer_schema=False) for p in store.rglob("tagged_*.csv")])
    assert tagged.height == CsvSource(src, encoding="cp949").frame().height
    assert not any("\ufffd" in t for t in tagged["title"].to_list())
