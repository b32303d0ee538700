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


def test_missing_column_is_named(sample_raw):
    with pytest.raises(VOCInputError, match="missing column.*'reply'"):
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
