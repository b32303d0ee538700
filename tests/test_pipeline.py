"""voc.pipeline: one building's month as pure functions, on the real sample month 2019-11, and the
per-process adapter bundle the flows wrap them with (flows.resources)."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from config.settings import VocSettings
from flows.models import keyword_only_tagger
from voc import pipeline
from voc.months import Month
from voc.review import COL_DONE, COL_VOC_ID, build_review_rows, simulate_review

MONTH = Month.parse("2019-11")


@pytest.fixture(scope="module")
def tagger(sample_df: pl.DataFrame):
    """Keyword-only tagging (fast) over a taxonomy that knows the sample's subject labels, as a
    trained model's would (reviewers' labels must be in it)."""
    from voc.taxonomy import default_taxonomy, join_label

    labelled = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null())
    labels = [join_label(a, b) for a, b in zip(labelled["reviewed_subject_major"], labelled["reviewed_subject_minor"])]
    return keyword_only_tagger(default_taxonomy().with_labels("subject", labels))


@pytest.fixture(scope="module")
def month_rows(sample_df: pl.DataFrame) -> pl.DataFrame:
    return sample_df.filter((pl.col("created_at") >= MONTH.start) & (pl.col("created_at") < MONTH.end))


@pytest.fixture(scope="module")
def tagged_b2(month_rows, tagger) -> pipeline.BuildingOutput:
    return pipeline.tag_building(month_rows.filter(pl.col("building_id") == "2"), tagger, run_id="full_x")


def test_tag_building_keeps_every_voc_once_in_order(month_rows, tagger) -> None:
    rows = month_rows.filter(pl.col("building_id") == "1")
    out = pipeline.tag_building(rows, tagger, run_id="full_20261201_020000")
    assert out.frame["voc_id"].to_list() == rows["voc_id"].to_list() and rows.height == 41
    assert out.frame["run_id"].unique().to_list() == ["full_20261201_020000"]
    assert out.dashboard_html is None and out.drift == []  # tagging-only: no dashboard
    assert out.flagged == int((out.frame["flags"] != "").sum())
    # keyword-only tags never drive 검토 우선 (no trained dimension to trust or distrust)
    assert out.low_confidence == 0 and len(out.groups) == 41 and out.evidence is None
    assert out.frame["subject_minor"].null_count() == 0


def test_tag_building_renders_the_dashboard_it_is_asked_for(month_rows, tagger) -> None:
    rows = month_rows.filter(pl.col("building_id") == "2")
    ctx = pipeline.DashboardContext("2", "영종", MONTH, "full_y", "2026-12-01 02:00 KST", source_credit=None)
    out = pipeline.tag_building(rows, tagger, run_id="full_y", dashboard=ctx)
    html = out.dashboard_html.decode("utf-8")
    assert "영종" in html and "full_y" in html and "2026-12-01 02:00 KST" in html
    assert all(t in html for t in out.frame["subject_minor"].unique().to_list())


def test_refresh_uses_only_its_buildings_sheet_rows(month_rows, tagger, tagged_b2) -> None:
    tagged_b1 = pipeline.tag_building(month_rows.filter(pl.col("building_id") == "1"), tagger, run_id="full_x").frame
    sheet = build_review_rows(pl.concat([tagged_b1, tagged_b2.frame]), threshold=None)
    reviewed_sheet = simulate_review(sheet, month_rows, fraction=1.0, seed=1, taxonomy=tagger.taxonomy)
    done_b2 = reviewed_sheet.filter(pl.col(COL_VOC_ID).is_in(tagged_b2.frame["voc_id"].implode()) & (pl.col(COL_DONE) == "Y"))
    ctx = pipeline.DashboardContext("2", "영종", MONTH, "refresh_x", "2026-12-15 02:00 KST")
    out = pipeline.refresh_building(tagged_b2.frame, reviewed_sheet, tagger, history=None, dashboard=ctx)
    assert out.frame["voc_id"].to_list() == tagged_b2.frame["voc_id"].to_list()
    labelled_b2 = month_rows.filter(pl.col("voc_id").is_in(done_b2[COL_VOC_ID].implode()) & pl.col("reviewed_subject_minor").is_not_null())
    # every done row of building 2 with a true label (a keyword guess left blank is not a human
    # label); building 1's 41 reviewed rows are not counted here
    assert done_b2.height == 4 and out.reviewed == labelled_b2.height >= 3
    assert out.review_issues == []
    truth = month_rows.select("voc_id", "reviewed_subject_minor")
    j = out.frame.join(truth, on="voc_id")
    assert (j["subject_minor"] == j["reviewed_subject_minor"]).all()  # the reviewer's labels, not the keywords'
    assert out.dashboard_html is not None and "refresh_x" in out.dashboard_html.decode("utf-8")


def test_refresh_without_a_sheet_reviews_nothing(tagger, tagged_b2) -> None:
    ctx = pipeline.DashboardContext("2", "영종", MONTH, "refresh_y", "t")
    out = pipeline.refresh_building(tagged_b2.frame, None, tagger, history=None, dashboard=ctx)
    assert out.reviewed == 0 and not out.frame["is_reviewed"].any()
    assert out.frame["subject_minor"].to_list() == tagged_b2.frame["subject_minor"].to_list()


def test_history_frames_are_combined_with_typed_columns(month_rows, tagged_b2) -> None:
    assert pipeline.combine_history([]) is None
    earlier = pipeline.history_from_source_rows(month_rows.filter(pl.col("building_id") == "2"), Month.parse("2019-10"))
    h = pipeline.combine_history([earlier, tagged_b2.frame.with_columns(pl.lit("201911").alias("yyyymm"))])
    assert list(h.columns) == list(pipeline.HISTORY_COLUMNS) and h.height == 8
    assert h.schema["created_at"] == pl.Date and h.schema["subject_confidence"] == pl.Float64
    assert h.filter(pl.col("yyyymm") == "201910")["subject_confidence"].null_count() == 4


def test_month_is_parsed_once_and_stays_a_plain_string() -> None:
    m = Month.parse(201911)
    assert m == "2019-11" and m.yyyymm == "201911" and Month.parse(m) is m
    assert pickle.loads(pickle.dumps(m)) == m and m.before(2) == ["2019-09", "2019-10"]
    with pytest.raises(ValueError, match="2019-13"):
        Month.parse("2019-13")


def test_resources_are_opened_once_per_process_and_settings(tmp_path, monkeypatch) -> None:
    import flows.models
    from flows.resources import ModelRef, close_all, resources

    a = VocSettings(storage=str(tmp_path / "a"))
    assert resources(a) is resources(VocSettings(storage=str(tmp_path / "a")))
    assert resources(a) is not resources(VocSettings(storage=str(tmp_path / "b")))
    assert resources(a).source is resources(a).source and resources(a).storage is resources(a).storage
    loads: list[str] = []
    monkeypatch.setattr(flows.models, "load_model_version", lambda s, st, name: loads.append(name) or object())
    ref = ModelRef("linear_1", kind="linear", version="1")
    assert resources(a).tagger(ref) is resources(a).tagger(ModelRef("linear_1", kind="linear", version="1"))
    assert loads == ["linear_1"]
    assert resources(a).champion().name is None  # nothing trained in this storage: keyword-only
    assert pickle.loads(pickle.dumps(ref)) == ref
    close_all()
    assert resources(a) is not None
