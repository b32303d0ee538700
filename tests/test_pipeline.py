"""voc.pipeline: one building's month as pure functions, on the real sample month 2019-11, and the
per-process adapter bundle the flows wrap them with (flows.resources)."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from config.settings import VocSettings
from flows.adapters.model_store import keyword_only_tagger
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


def test_a_rerun_without_dashboard_merges_the_same_reviews(month_rows, tagger, tagged_b2) -> None:
    """refresh_building with no dashboard (a tagging-only rerun of a reviewed month) merges the
    sheet exactly as with one, and renders nothing."""
    sheet = simulate_review(build_review_rows(tagged_b2.frame, threshold=None), month_rows, fraction=1.0, seed=1, taxonomy=tagger.taxonomy)
    ctx = pipeline.DashboardContext("2", "영종", MONTH, "full_z", "t")
    with_page = pipeline.refresh_building(tagged_b2.frame, sheet, tagger, history=None, dashboard=ctx)
    bare = pipeline.refresh_building(tagged_b2.frame, sheet, tagger, history=None, dashboard=None)
    assert bare.dashboard_html is None and bare.drift == [] and with_page.dashboard_html is not None
    assert bare.frame.equals(with_page.frame) and bare.reviewed == with_page.reviewed >= 3
    assert bare.low_confidence == with_page.low_confidence


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
    import flows.adapters.model_store
    from flows.resources import ModelRef, close_all, resources

    a = VocSettings(storage=str(tmp_path / "a"))
    assert resources(a) is resources(VocSettings(storage=str(tmp_path / "a")))
    assert resources(a) is not resources(VocSettings(storage=str(tmp_path / "b")))
    assert resources(a).source is resources(a).source and resources(a).storage is resources(a).storage
    loads: list[str] = []
    monkeypatch.setattr(flows.adapters.model_store, "load_model_version", lambda s, st, name: loads.append(name) or object())
    ref = ModelRef("linear_1", kind="linear", version="1")
    assert resources(a).tagger(ref) is resources(a).tagger(ModelRef("linear_1", kind="linear", version="1"))
    assert loads == ["linear_1"]
    assert resources(a).champion().name is None  # nothing trained in this storage: keyword-only
    assert pickle.loads(pickle.dumps(ref)) == ref
    before = resources(a)
    close_all()
    after = resources(a)  # the closed bundle is dropped: the next call opens a new one
    assert after is not before and after is resources(a)
    assert after.tagger(ref) is not before.tagger(ref) and loads == ["linear_1", "linear_1"]


def test_a_month_tagged_in_chunks_equals_it_tagged_at_once(sample_df, tokenizer) -> None:
    """Issue 21: tag_building analyses and tags a month chunk by chunk (bounded memory) with a
    progress line per chunk; tags, keywords (on the dashboard), groups and evidence are those of
    one chunk — here building 1's 41 VOCs of 2019-11 in chunks of 7, with a linear model trained
    on 2012–2013 (it has an evidence pool)."""
    from voc.tagger import resolve_taxonomy, train_tagger
    from voc.taxonomy import default_taxonomy

    train = sample_df.filter(pl.col("created_at") < pl.date(2014, 1, 1))
    tax, _ = resolve_taxonomy(default_taxonomy(), train, tokenizer=tokenizer)
    model, _ = train_tagger(train, tax, kind="linear", version="v1", tokenizer=tokenizer)
    rows = sample_df.filter(
        (pl.col("created_at") >= MONTH.start) & (pl.col("created_at") < MONTH.end) & (pl.col("building_id") == "1")
    )
    ctx = pipeline.DashboardContext("1", "본청", MONTH, "full_c", "2026-12-01 02:00 KST")
    whole = pipeline.tag_building(rows, model, run_id="full_c", dashboard=ctx, chunk_rows=rows.height)
    lines: list[str] = []
    chunked = pipeline.tag_building(rows, model, run_id="full_c", dashboard=ctx, chunk_rows=7, progress=lines.append)
    assert chunked.frame.equals(whole.frame) and chunked.groups == whole.groups
    assert whole.evidence is not None and chunked.evidence == whole.evidence and len(whole.evidence) == 41
    # 답변 초안 (issue 25): from the same neighbour search, the best reply the API offers; evidence stays 3
    from voc.replies import format_reply_draft, tagger_reply_suggestions
    from voc.tagger import frame_texts

    best = tagger_reply_suggestions(model, frame_texts(rows, use_reply=model.use_reply)[0], ids=rows["voc_id"].to_list())
    assert whole.reply_drafts == chunked.reply_drafts == [format_reply_draft(s[0] if s else None) for s in best]
    assert max(map(len, whole.evidence)) == 3  # (no 2019 VOC is that close to a 2012–2013 one)
    # two replied VOCs of the model's evidence pool registered again in 2019-11: their replies are the drafts
    pooled = pl.col("voc_id").is_in(list(model.evidence_pool.ids))
    again = train.filter(pooled & (pl.col("reply").str.len_chars() > 20)).head(2).with_columns(
        pl.format("9{}", pl.col("voc_id")).alias("voc_id"), pl.lit("1").alias("building_id"),
        pl.date(2019, 11, 20).alias("created_at"),
    )
    out = pipeline.tag_building(pl.concat([rows, again]), model, run_id="full_c", dashboard=ctx)
    texts = frame_texts(again, use_reply=model.use_reply)[0]
    best = tagger_reply_suggestions(model, texts, ids=again["voc_id"].to_list())
    assert out.reply_drafts[:41] == whole.reply_drafts and out.reply_drafts[41:] == [format_reply_draft(s[0]) for s in best]
    assert all(d.startswith("[유사 1.00 · voc_id ") for d in out.reply_drafts[41:])
    assert out.dashboard_html.decode("utf-8").count('<details class="draft">') == sum(map(bool, out.reply_drafts)) >= 2
    def page(out: pipeline.BuildingOutput) -> list[str]:  # the embedded font subset is not byte-stable
        return [ln for ln in out.dashboard_html.decode("utf-8").splitlines() if not ln.startswith("@font-face")]

    assert page(chunked) == page(whole)  # keywords and word cloud included
    # a near-duplicate group is never split between chunks (its members share one pooled tag)
    from voc.tagger import chunk_positions

    chunks = chunk_positions(41, 7, whole.groups)
    assert sorted(int(i) for c in chunks for i in c) == list(range(41))
    for g in {g for g in whole.groups if g}:
        assert sum(any(whole.groups[int(i)] == g for i in c) for c in chunks) == 1
    assert len(chunks) < 6 and lines[-1] == f"chunk {len(chunks)}/{len(chunks)}: 41 of 41 VOCs tagged"
    assert len(lines) == len(chunks) and all(ln.startswith(f"chunk {i + 1}/{len(chunks)}: ") for i, ln in enumerate(lines))
    assert chunk_positions(41, 7) and [len(c) for c in chunk_positions(41, 7)] == [7, 7, 7, 7, 7, 6]
    with pytest.raises(ValueError, match="chunk_rows"):
        pipeline.tag_building(rows, model, run_id="x", chunk_rows=0)


def test_refresh_issues_name_the_row_of_the_whole_sheet(month_rows, tagger, tagged_b2) -> None:
    """Issue 21: a building's rows sit anywhere in the month's sheet; its issues name their
    spreadsheet rows there (they were numbered as if the building's rows came first)."""
    from voc.review import COL_DONE, REVIEWER_LABEL_COLUMNS

    tagged_b1 = pipeline.tag_building(month_rows.filter(pl.col("building_id") == "1"), tagger, run_id="full_x").frame
    sheet = build_review_rows(pl.concat([tagged_b1, tagged_b2.frame]), threshold=None)
    vid = tagged_b2.frame["voc_id"][0]
    at = sheet[COL_VOC_ID].to_list().index(vid)
    assert at > 0
    sheet = sheet.with_columns(
        pl.when(pl.col(COL_VOC_ID) == vid).then(pl.lit(v)).otherwise(pl.col(c)).alias(c)
        for c, v in ((REVIEWER_LABEL_COLUMNS["subject"][1], "=A1"), (COL_DONE, "Y"))
    )
    ctx = pipeline.DashboardContext("2", "영종", MONTH, "refresh_x", "t")
    out = pipeline.refresh_building(tagged_b2.frame, sheet, tagger, history=None, dashboard=ctx)
    assert [(i["sheet_row"], i["code"]) for i in out.review_issues] == [(at + 2, "formula")]


def test_unknown_sheet_rows_go_to_their_building_or_the_summary() -> None:
    from flows.monthly import BuildingResult, attach_unknown_rows
    from voc.review import COL_BUILDING_ID, REVIEW_COLUMNS

    sheet = pl.DataFrame({c: ["", "", "", ""] for c in REVIEW_COLUMNS}).with_columns(
        pl.Series(COL_VOC_ID, ["1", "77777", "88888", ""]), pl.Series(COL_BUILDING_ID, ["1", "1", "", ""])
    )
    results = [BuildingResult("1", rows=1, review_issues=1, error="row 2 검수완료='x': …"), BuildingResult("2", rows=1)]
    orphans = attach_unknown_rows(sheet, ["1", "2"], results)
    assert results[0].review_issues == 2 and "row 3 voc_id='77777'" in results[0].error
    assert results[0].error.startswith("row 2 검수완료") and results[1].review_issues == 0
    assert len(orphans) == 1 and orphans[0].startswith("row 4 voc_id='88888'")
