import re
from datetime import date

import polars as pl
import pytest

from voc.schema import REQUIRED_COLUMNS, VOCInputError, validate_voc_frame


def test_sample_validates_and_merges_duplicate_ids(sample_raw, sample_df):
    assert sample_raw.height == 1054
    # the board lists some complaints twice (answered by two departments): one VOC each
    assert sample_df["voc_id"].n_unique() == sample_df.height == sample_raw["voc_id"].n_unique()
    merged = sample_df.filter(pl.col("input_flags").str.contains("duplicate_merged"))
    assert merged.height == 31
    vid = "5588"
    replies = sample_raw.filter(pl.col("voc_id") == vid)["reply"].to_list()
    merged_reply = sample_df.filter(pl.col("voc_id") == vid)["reply"][0]
    assert len(replies) == 2 and all(r in merged_reply for r in replies)
    assert sample_df.schema["created_at"] == pl.Date
    # input labels are reviewed history, never the model's columns
    assert "subject_minor" not in sample_df.columns
    # 20 raw rows have no label; one of them shares its voc_id with a labelled row
    assert sample_df["reviewed_subject_minor"].null_count() == 19


def test_duplicate_ids_can_be_an_error(sample_raw):
    with pytest.raises(VOCInputError, match=r"row 50 \(voc_id=5588\): field 'voc_id' duplicates row 49"):
        validate_voc_frame(sample_raw, on_duplicate="error")


def test_one_voc_id_in_two_buildings_is_refused_naming_rows_id_and_buildings(sample_raw):
    """Merging would silently drop one building's VOC (voc_id is unique in PostgreSQL)."""
    moved = sample_raw.with_columns(
        pl.when(pl.int_range(0, pl.len()) == 49).then(pl.lit("1")).otherwise(pl.col("building_id")).alias("building_id")
    )
    msg = r"^rows 49 and 50: voc_id '5588' is in two buildings, building_id '2' \(row 49\) and '1' \(row 50\)"
    for how in ("merge", "error"):
        with pytest.raises(VOCInputError, match=msg):
            validate_voc_frame(moved, on_duplicate=how)
    # a real VOC of building 1 repeated as building 2's at the end of the file
    row = sample_raw.filter(pl.col("building_id") == "1").head(1)
    twice = pl.concat([sample_raw, row.with_columns(pl.lit("2").alias("building_id"))])
    vid = row["voc_id"][0]
    first = sample_raw["voc_id"].to_list().index(vid) + 1
    with pytest.raises(VOCInputError, match=rf"rows {first} and 1055: voc_id '{vid}' is in two buildings, building_id '1' .* and '2'"):
        validate_voc_frame(twice)
    # within one building the same id stays one merged VOC
    assert validate_voc_frame(pl.concat([sample_raw, row])).height == 996


def test_missing_column_is_named(sample_raw):
    with pytest.raises(VOCInputError, match=r"missing column.*'reply'"):
        validate_voc_frame(sample_raw.drop("reply"))


def test_bad_date_names_row_field_and_value(sample_raw):
    bad = sample_raw.head(5).with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("2019-13-45")).otherwise(pl.col("created_at")).alias("created_at")
    )
    vid = bad["voc_id"][3]
    with pytest.raises(VOCInputError, match=rf"row 4 \(voc_id={vid}\): field 'created_at'.*'2019-13-45'"):
        validate_voc_frame(bad)


def test_empty_id_is_named(sample_raw):
    bad = sample_raw.head(3).with_columns(pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("voc_id")).alias("voc_id"))
    with pytest.raises(VOCInputError, match="row 2: field 'voc_id' is empty"):
        validate_voc_frame(bad)


def test_nulls_in_text_become_empty_and_rows_are_kept():
    df = pl.DataFrame({c: ["1", "2"] for c in REQUIRED_COLUMNS}).with_columns(
        pl.lit("2019-11-02").alias("created_at"), pl.Series("reply", [None, "답변"], dtype=pl.Utf8)
    )
    out = validate_voc_frame(df)
    assert out.height == 2 and out["reply"].to_list() == ["", "답변"]
    assert out["reviewed_work_major"].null_count() == 2


# --- "Nothing wrong gets in, nothing right gets lost" -------------------------------------------

MAX_ID_CHARS = 128  # voc.schema.MAX_ID_CHARS (imported inside the tests: new in this change)


def _frame(**cols) -> pl.DataFrame:
    """Two valid VOCs (voc_id 1 and 2, building 1, November 2019), ``cols`` replacing columns."""
    base = {
        "voc_id": ["1", "2"],
        "building_id": ["1", "1"],
        "building_name": ["본관", "본관"],
        "created_at": ["2019-11-02", "2019-11-03"],
        "title": ["누수", "소음"],
        "request_contents": ["화장실 천장에서 물이 샙니다", "밤마다 소음"],
        "reply": ["조치했습니다", ""],
    }
    base.update(cols)
    return pl.DataFrame(base, schema={c: pl.Utf8 for c in base})


UNSAFE_IDS = [
    "../x",  # wrote stat/voc-dev/x/tagged_../x_201911_….csv, outside the month; refresh lost a VOC
    "a/b",  # refresh failed
    "a\\b",
    "..",
    ".",
    "x/../../y",
    "1\x00",
    "1\n2",
    "1\t2",
    "\x7f",
    "1\x852",  # C1 control (NEL)
    "\u202e1",  # right-to-left override
    "1\u200b",  # zero-width space
    "\ufeff1",  # BOM
    "1\u20282",
    "x" * (MAX_ID_CHARS + 1),
]


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_unsafe_building_id_is_refused_naming_row_field_and_value(bad):
    with pytest.raises(VOCInputError) as e:
        validate_voc_frame(_frame(building_id=["1", bad]))
    shown = repr(bad) if len(bad) <= 80 else repr(bad[:80])
    assert str(e.value).startswith("row 2 (voc_id=2): field 'building_id' ")
    assert shown in str(e.value)
    assert "\x00" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_unsafe_voc_id_is_refused_naming_row_field_and_value(bad):
    with pytest.raises(VOCInputError) as e:
        validate_voc_frame(_frame(voc_id=[bad, "2"]))
    shown = repr(bad) if len(bad) <= 80 else repr(bad[:80])
    assert str(e.value).startswith("row 1: field 'voc_id' ") and shown in str(e.value)


@pytest.mark.parametrize("raw,bad", [("   ", "'   '"), (None, "''"), ("", "''")])
def test_empty_id_shows_the_value(raw, bad):
    with pytest.raises(VOCInputError, match=rf"row 2 \(voc_id=2\): field 'building_id' is empty: {bad}$"):
        validate_voc_frame(_frame(building_id=["1", raw]))


SAFE_IDS = ["B-95", "본관", "본관 A-1", "1.5", "..x", "x..", "#3", "e\u0301", "😀", "ｂ１", "x" * MAX_ID_CHARS, "a\u00a0b"]


@pytest.mark.parametrize("good", SAFE_IDS)
def test_safe_ids_are_kept_exactly(good):
    out = validate_voc_frame(_frame(voc_id=[good, "2"], building_id=[good, f" {good} "]))
    assert out["voc_id"].to_list() == [good, "2"]
    assert out["building_id"].to_list() == [good, good]  # surrounding whitespace removed, as before
    from voc.schema import id_problem

    assert id_problem(good) is None


def test_id_rule():
    from voc.schema import MAX_ID_CHARS as limit
    from voc.schema import id_problem

    assert limit == MAX_ID_CHARS
    assert [id_problem(v) for v in ("1", "본관 A-1")] == [None, None]
    assert "path separator" in id_problem("../x")
    assert "relative path" in id_problem("..")
    assert "control character (U+0000)" in id_problem("a\x00")
    assert "format character (U+202E)" in id_problem("\u202ea")
    assert "longer than 128" in id_problem("x" * 129)
    assert "whitespace" in id_problem(" a")
    assert id_problem("") == id_problem(None) == "is empty"


def test_csv_source_with_a_path_as_building_id_stops_the_run(tmp_path):
    from flows.adapters.sources import CsvSource

    p = tmp_path / "vocs.csv"
    _frame(building_id=["1", "../x"]).write_csv(p)
    with pytest.raises(VOCInputError, match=r"row 2 \(voc_id=2\): field 'building_id' .*'\.\./x'"):
        CsvSource(p).read_month("2019-11")


def test_control_characters_are_removed_from_texts_and_flagged():
    df = _frame(
        building_name=["본\x00관", "본관"],
        title=["누\x00수", "소음"],
        request_contents=["물이\x07 샙니다\r\n\t둘째 줄", "밤마다 소음"],
        reply=["", "조치\x1f했습니다"],
    ).with_columns(pl.Series("subject_minor", ["건축\x0b과", None], dtype=pl.Utf8))
    out = validate_voc_frame(df)
    assert out["building_name"].to_list() == ["본관", "본관"]
    assert out["title"].to_list() == ["누수", "소음"]
    assert out["request_contents"].to_list() == ["물이 샙니다\r\n\t둘째 줄", "밤마다 소음"]  # tab, CR, LF kept
    assert out["reply"].to_list() == ["", "조치했습니다"]
    assert out["reviewed_subject_minor"].to_list() == ["건축과", None]
    assert out["input_flags"].to_list() == ["control", "control"]
    assert not _frame()["title"].str.contains("\x00").any()
    assert validate_voc_frame(_frame())["input_flags"].to_list() == ["", ""]


def test_control_flag_survives_merging_duplicates():
    out = validate_voc_frame(_frame(voc_id=["1", "1"], reply=["첫 답변", "둘째\x00 답변"]))
    assert out.height == 1
    assert out["reply"][0] == "첫 답변\n\n둘째 답변"
    assert out["input_flags"][0].split(";") == ["control", "duplicate_merged"]


def test_nul_only_change_reaches_the_tagged_flags_and_no_output():
    from flows.adapters.model_store import keyword_only_tagger
    from voc.tagger import tag_frame

    vocs = validate_voc_frame(_frame(title=["누수\x00", "소음"], reply=["조치했습니다", "\x00"]))
    tagger = keyword_only_tagger()
    for use_reply in (True, False):  # without the reply, cleaning never sees the second row's NUL
        tagger.use_reply = use_reply
        tagged = tag_frame(vocs, tagger, run_id="full_20261122_020000")
        assert tagged["flags"].to_list() == ["control", "control"]
        assert tagged["title"].to_list() == ["누수", "소음"]
        for c, t in tagged.schema.items():
            if t == pl.Utf8:
                assert not tagged[c].str.contains("\x00").fill_null(False).any(), c


@pytest.mark.parametrize("how", ["csv", "text", "date"])
def test_empty_date_is_shown_as_empty_string(how, tmp_path):
    df = _frame(created_at=["2019-11-02", ""])
    if how == "csv":  # what a user's CSV gives: the empty cell reads as null
        p = tmp_path / "v.csv"
        p.write_text(
            "voc_id,building_id,building_name,created_at,title,request_contents,reply\n"
            "1,1,본관,2019-11-02,누수,물이 샙니다,\n2,1,본관,,소음,밤마다 소음,\n",
            encoding="utf-8",
        )
        df = pl.read_csv(p, infer_schema=False)
        assert df["created_at"][1] is None
    elif how == "date":  # a database's NULL date
        df = df.with_columns(pl.Series("created_at", [date(2019, 11, 2), None], dtype=pl.Date))
    with pytest.raises(VOCInputError) as e:
        validate_voc_frame(df)
    assert re.search(r"row 2 \(voc_id=2\): field 'created_at' .*: ''$", str(e.value)), str(e.value)
    assert "None" not in str(e.value)


@pytest.mark.parametrize("bad", ["2019-11-0212", "2019-11-02x", "0219-11-02", "2019-02-30", "2019/11/02", "2019-11-02\x00"])
def test_dates_that_are_not_dates_are_refused(bad):
    with pytest.raises(VOCInputError, match=rf"row 2 \(voc_id=2\): field 'created_at' .*{re.escape(repr(bad))}$"):
        validate_voc_frame(_frame(created_at=["2019-11-02", bad]))


@pytest.mark.parametrize(
    "good,want",
    [("2019-11-02", "2019-11-02"), (" 2019-11-02 ", "2019-11-02"), ("2019-11-02 14:30:00", "2019-11-02"),
     ("2019-11-02T14:30:00+09:00", "2019-11-02"), ("2019-1-5", "2019-01-05"), ("2019-11-02 오후 3:12:00", "2019-11-02")],
)
def test_dates_with_a_time_part_are_kept(good, want):
    out = validate_voc_frame(_frame(created_at=[good, "2019-11-03"]))
    assert str(out["created_at"][0]) == want
