"""voc.review: review rows, merge rules (no reviewer edit is ever lost), validation, simulation.

Tagged frames are built from real sample rows (``sample_df``) with plausible tags from the
shipped taxonomy; see :func:`make_tagged`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from voc.review import (
    COL_CONFIDENCE,
    COL_DONE,
    COL_EVIDENCE,
    COL_FLAG,
    COL_GROUP,
    COL_GROUP_APPLY,
    COL_MEMO,
    COL_REASON,
    COL_REQUEST,
    COL_TITLE,
    COL_VOC_ID,
    GUESS_MARK,
    GUESS_SUFFIX,
    MODEL_COLUMNS,
    REVIEW_COLUMNS,
    REVIEWED_EXTRA_COLUMNS,
    REVIEWER_COLUMNS,
    REVIEWER_LABEL_COLUMNS,
    ReviewError,
    ReviewSheetError,
    build_review_rows,
    is_done,
    is_formula_like,
    mark_guess,
    merge_into_sheet,
    merge_reviews,
    neutralize_cell,
    simulate_review,
    split_guess,
    validate_reviews,
)
from voc.schema import TAGGED_COLUMNS
from voc.taxonomy import Taxonomy, TaxonomyRow, default_taxonomy, split_label
from voc.urgency import with_alert_columns

S_MAJ, S_MIN = REVIEWER_LABEL_COLUMNS["subject"]
W_MAJ, W_MIN = REVIEWER_LABEL_COLUMNS["work"]
HOSTILE = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1", "-1", "\t=1"]


def make_tagged(sample_df: pl.DataFrame, month: str = "201911", *, seed: int = 0, shift: int = 0) -> pl.DataFrame:
    """A tagged frame (``TAGGED_COLUMNS``) of the sample's VOCs of ``month``: subject and work tags
    cycle through the shipped taxonomy's active labels (``shift`` moves them, so a rerun can
    produce different tags), confidences are seeded uniform draws."""
    tax = default_taxonomy()
    d = sample_df.filter(pl.col("created_at").dt.strftime("%Y%m") == month)
    n = d.height
    sub, wk = tax.labels("subject"), tax.labels("work")
    rng = np.random.default_rng(seed)
    s = [split_label(sub[(i + shift) % len(sub)]) for i in range(n)]
    w = [split_label(wk[(3 * i + shift) % len(wk)]) for i in range(n)]
    return d.with_columns(
        pl.lit(month).alias("yyyymm"),
        pl.Series("subject_major", [a for a, _ in s]),
        pl.Series("subject_minor", [b for _, b in s]),
        pl.Series("subject_confidence", rng.random(n).round(4)),
        pl.lit("model").alias("subject_source"),
        pl.Series("work_major", [a for a, _ in w]),
        pl.Series("work_minor", [b for _, b in w]),
        pl.Series("work_confidence", rng.random(n).round(4)),
        pl.lit("model").alias("work_source"),
        pl.lit("batch").alias("classify_source"),
        pl.lit(f"hybrid_v{seed}").alias("model_version"),
        pl.lit("").alias("flags"),
        pl.lit(f"full_20261201_02000{seed}").alias("run_id"),
    ).pipe(with_alert_columns).select(TAGGED_COLUMNS)  # urgent, repeat_of (voc.urgency)


def reorg_taxonomy(sample_df: pl.DataFrame) -> Taxonomy:
    """The shipped taxonomy with its subject dimension derived from the sample's labels
    (``derive_taxonomy``): 73 active classes under 32 majors, eight majors retired by the
    reorganisations (국제도시국 → 국제도시건설국, 도시관리국 → 도시재생국, …)."""
    from voc.tagger import labels_of
    from voc.taxonomy import derive_taxonomy

    labels = labels_of(sample_df, "subject")
    idx = [i for i, lab in enumerate(labels) if lab]
    dates = sample_df["created_at"].to_list()
    rows = derive_taxonomy("subject", [labels[i] for i in idx], [[] for _ in idx], dates=[dates[i] for i in idx])
    return default_taxonomy().replace_dimension("subject", rows)


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    return default_taxonomy()


@pytest.fixture(scope="module")
def tagged(sample_df: pl.DataFrame) -> pl.DataFrame:
    return make_tagged(sample_df)


@pytest.fixture(scope="module")
def rows(tagged: pl.DataFrame) -> pl.DataFrame:
    return build_review_rows(tagged, threshold=0.5)


def set_cells(sheet: pl.DataFrame, edits: dict[str, dict[str, str]]) -> pl.DataFrame:
    """Reviewer edits: {voc_id: {column: value}}."""
    recs = sheet.to_dicts()
    for r in recs:
        for col, v in edits.get(r[COL_VOC_ID], {}).items():
            r[col] = v
    return pl.DataFrame(recs, schema=sheet.schema)


def row_of(sheet: pl.DataFrame, voc_id: str) -> dict[str, str]:
    hit = sheet.filter(pl.col(COL_VOC_ID) == voc_id)
    assert hit.height == 1, f"voc_id {voc_id} appears {hit.height} times"
    return hit.row(0, named=True)


# --------------------------------------------------------------------------------------------
# build_review_rows


def test_build_review_rows_columns_sort_and_flags(tagged, rows):
    assert tuple(rows.columns) == REVIEW_COLUMNS
    assert all(dt == pl.Utf8 for dt in rows.dtypes)
    assert rows.null_count().sum_horizontal().item() == 0
    assert rows.height == tagged.height == 45
    assert sorted(rows[COL_VOC_ID].to_list()) == sorted(tagged["voc_id"].to_list())
    conf = [float(c) for c in rows[COL_CONFIDENCE].to_list()]
    assert conf == sorted(conf), "likely errors (low confidence) first"
    by_id = {r["voc_id"]: r for r in tagged.iter_rows(named=True)}
    for r in rows.iter_rows(named=True):
        t = by_id[r[COL_VOC_ID]]
        low = min(t["subject_confidence"], t["work_confidence"])
        assert r[COL_CONFIDENCE] == f"{low:.2f}"
        assert r[COL_FLAG] == ("Y" if low < 0.5 else "")
        assert r["주제 신뢰도"] == f"{t['subject_confidence']:.2f}"
        assert (r["주제 대분류"], r["주제 중분류"]) == (t["subject_major"], t["subject_minor"])
        assert (r["작업유형 대분류"], r["작업유형 중분류"]) == (t["work_major"], t["work_minor"])
        assert r[COL_TITLE] == neutralize_cell(t["title"])
        assert r[COL_REQUEST] == neutralize_cell(t["request_contents"])
        assert r["등록일"] == t["created_at"].isoformat()
        assert r["건물명"] == t["building_name"]
        assert all(r[c] == "" for c in REVIEWER_COLUMNS if c != COL_DONE)
        assert r[COL_DONE] == "N"
        assert (r["model_version"], r["run_id"]) == ("hybrid_v0", "full_20261201_020000")
    assert {"Y", ""} == set(rows[COL_FLAG].to_list())
    assert set(build_review_rows(tagged, threshold=None)[COL_FLAG].to_list()) == {""}


def test_build_review_rows_ties_by_voc_id_and_missing_confidence(tagged):
    t = tagged.head(6).with_columns(
        pl.Series("voc_id", ["10", "9", "B-2", "100", "8", "7"]),
        pl.Series("subject_confidence", [0.3, 0.3, 0.3, 0.3, None, 0.9]),
        pl.Series("work_confidence", [0.9, 0.9, 0.9, 0.9, None, None]),
    )
    out = build_review_rows(t, threshold=0.1)
    assert out[COL_VOC_ID].to_list() == ["8", "9", "10", "100", "B-2", "7"]
    assert out[COL_CONFIDENCE].to_list() == ["", "0.30", "0.30", "0.30", "0.30", "0.90"]
    assert out[COL_FLAG].to_list() == ["Y", "", "", "", "", ""], "no confidence at all → review first"


def test_build_review_rows_errors(tagged):
    with pytest.raises(ReviewError, match="work_confidence"):
        build_review_rows(tagged.drop("work_confidence"), threshold=0.5)
    dup = pl.concat([tagged.head(2), tagged.head(1)])
    with pytest.raises(ReviewSheetError, match="duplicates row 1"):
        build_review_rows(dup, threshold=0.5)


def test_real_sample_texts_that_look_like_formulas_are_kept(sample_df):
    """The sample really has replies starting with '-' (bullet lists): they stay text."""
    t = make_tagged(sample_df, "201808")
    rows = build_review_rows(t, threshold=0.5)
    replies = [r for r in rows["답변"].to_list() if is_formula_like(r)]
    originals = {neutralize_cell(r) for r in t["reply"].to_list()}
    assert all(r in originals for r in replies)


# --------------------------------------------------------------------------------------------
# neutralize_cell / is_done


@pytest.mark.parametrize("text", HOSTILE)
def test_neutralize_keeps_hostile_text_exactly(text):
    assert neutralize_cell(text) == text
    assert is_formula_like(text)


def test_neutralize_normalises_what_no_sheet_can_store():
    assert neutralize_cell("a\r\nb\rc") == "a\nb\nc"
    assert neutralize_cell("\r=1") == "\n=1"
    assert neutralize_cell("x\x00y\x1fz\x0b") == "xyz"
    assert neutralize_cell(None) == ""
    assert neutralize_cell(3.0) == "3"
    assert neutralize_cell(0.25) == "0.25"
    assert neutralize_cell(True) == "TRUE"
    for v in ["plain", *HOSTILE, "a\r\nb", "\x01"]:
        assert neutralize_cell(neutralize_cell(v)) == neutralize_cell(v)
    assert not is_formula_like("승강기 고장") and not is_formula_like("")


@pytest.mark.parametrize(
    "value", ["Y", "y", "예", "O", "o", "TRUE", "true", "True", "1", "✓", " Y ", "Ｙ", True, 1, 1.0]
)
def test_is_done_yes(value):
    assert is_done(value)


@pytest.mark.parametrize("value", ["", "N", "n", "X", "아니오", "완료", "0", "2", "yes?", None, False, 0, "FALSE"])
def test_is_done_no(value):
    assert not is_done(value)


# --------------------------------------------------------------------------------------------
# merge_into_sheet


def test_merge_into_empty_sheet_and_idempotent(rows):
    first, st = merge_into_sheet(None, rows)
    assert first.equals(rows)
    assert st.appended == rows.height and st.updated == st.kept_reviewed == st.unchanged == 0
    again, st2 = merge_into_sheet(first, rows)
    assert again.equals(first)
    assert st2.unchanged == rows.height and st2.appended == st2.updated == 0


def test_rerun_with_new_model_tags_never_overwrites_reviewer_cells(sample_df, tagged, rows, tax):
    ids = rows[COL_VOC_ID].to_list()
    a, b, c, d, memo_only = ids[0], ids[1], ids[2], ids[3], ids[4]
    edits = {
        a: {S_MAJ: "시설", S_MIN: "승강기", COL_DONE: "Y", COL_MEMO: "엘리베이터 문 고장"},
        b: {W_MIN: "교체"},  # filled, not done: still the reviewer's row
        c: {COL_DONE: "예"},  # confirmed the model
        d: {S_MIN: "엉터리값", COL_DONE: "N"},  # invalid, but still a reviewer edit
        memo_only: {COL_MEMO: "나중에 볼 것"},
    }
    sheet = set_cells(rows, edits)
    # rerun: different model tags, confidences, version; one VOC gone, one new
    rerun_tagged = make_tagged(sample_df, seed=1, shift=5)
    gone = ids[-1]
    new_voc = tagged.head(1).with_columns(pl.lit("NEW-1").alias("voc_id"))
    rerun_tagged = pl.concat([rerun_tagged.filter(pl.col("voc_id") != gone), new_voc])
    new_rows = build_review_rows(rerun_tagged, threshold=0.5)
    merged, st = merge_into_sheet(sheet, new_rows)

    assert merged.height == rows.height + 1
    assert merged[COL_VOC_ID].n_unique() == merged.height, "no duplicates"
    assert merged[COL_VOC_ID].to_list()[: rows.height] == ids, "existing order kept"
    assert merged[COL_VOC_ID].to_list()[-1] == "NEW-1", "new VOCs appended"
    # every reviewer cell of every old row is exactly as the reviewer left it
    for r_old, r_new in zip(sheet.iter_rows(named=True), merged.head(rows.height).iter_rows(named=True)):
        for col in REVIEWER_COLUMNS:
            assert r_new[col] == r_old[col], (r_old[COL_VOC_ID], col)
    # touched rows keep every cell (what the reviewer judged)
    for vid in (a, b, c, d):
        assert row_of(merged, vid) == row_of(sheet, vid)
    # untouched rows (memo-only included) get the new model columns, keep their memo
    fresh = {r[COL_VOC_ID]: r for r in new_rows.iter_rows(named=True)}
    for vid in ids[4:-1]:
        got = row_of(merged, vid)
        for col in (*MODEL_COLUMNS, COL_CONFIDENCE, COL_FLAG, "model_version", "run_id"):
            assert got[col] == fresh[vid][col]
    assert row_of(merged, memo_only)[COL_MEMO] == "나중에 볼 것"
    assert row_of(merged, memo_only)["run_id"] == "full_20261201_020001"
    # the VOC no longer tagged stays, untouched
    assert row_of(merged, gone) == row_of(sheet, gone)
    assert st.kept_reviewed == 4 and st.appended == 1 and st.not_in_new == 1
    assert st.updated + st.unchanged == rows.height - 4
    assert st.appended + st.updated + st.kept_reviewed + st.unchanged == merged.height
    # rerunning the same merge changes nothing
    merged2, st2 = merge_into_sheet(merged, new_rows)
    assert merged2.equals(merged) and st2.updated == 0 and st2.appended == 0


def test_merge_keeps_extra_columns_rows_without_id_and_drops_blank_rows(rows):
    sheet = rows.with_columns(pl.lit("").alias("담당자"))
    recs = sheet.to_dicts()
    recs[0]["담당자"] = "김관리"
    blank = {c: "" for c in sheet.columns}
    orphan = {**blank, COL_MEMO: "voc_id 없이 적은 메모"}
    sheet = pl.DataFrame([recs[0], blank, orphan, *recs[1:]], schema=sheet.schema)
    merged, st = merge_into_sheet(sheet, rows)
    assert merged.columns == [*REVIEW_COLUMNS, "담당자"]
    assert merged.height == rows.height + 1
    assert st.dropped_blank == 1
    assert merged.row(0, named=True)["담당자"] == "김관리"
    assert merged.row(1, named=True)[COL_MEMO] == "voc_id 없이 적은 메모"


def test_merge_duplicate_id_in_sheet_keeps_both_rows(rows):
    first = rows.head(1).with_columns(pl.lit("Y").alias(COL_DONE))
    sheet = pl.concat([rows, first])
    merged, _ = merge_into_sheet(sheet, rows)
    assert merged.height == sheet.height, "a row is never deleted, not even a pasted duplicate"


def test_merge_into_sheet_errors(rows):
    with pytest.raises(ReviewSheetError, match="voc_id"):
        merge_into_sheet(rows.drop(COL_VOC_ID), rows)
    with pytest.raises(ReviewSheetError, match="missing"):
        merge_into_sheet(None, rows.drop(COL_MEMO))
    with pytest.raises(ReviewSheetError, match="duplicates"):
        merge_into_sheet(None, pl.concat([rows, rows.head(1)]))


# --------------------------------------------------------------------------------------------
# validate_reviews


def test_validate_reports_row_column_value(rows, tax):
    ids = rows[COL_VOC_ID].to_list()
    sheet = set_cells(
        rows,
        {
            ids[0]: {S_MIN: "엘리베이터", COL_DONE: "Y"},  # not a minor
            ids[1]: {S_MAJ: "환경", S_MIN: "승강기", COL_DONE: "Y"},  # minor under another major
            ids[2]: {S_MAJ: "없는대분류", COL_DONE: "Y"},
            ids[3]: {S_MIN: "승강기", COL_DONE: "Y"},  # minor alone → major inferred
            ids[4]: {W_MAJ: "작업", COL_DONE: "Y"},  # major only, several minors
            ids[5]: {S_MIN: "환경>주차", COL_DONE: "Y"},  # a full label in the minor cell
            ids[6]: {W_MAJ: "기타", COL_DONE: "Y"},  # major with one minor → that one
            ids[7]: {S_MIN: "승강기", COL_DONE: "완료"},  # unrecognised done value
            ids[8]: {S_MIN: "승강기"},  # filled, not done
        },
    )
    v, issues = validate_reviews(sheet, tax)
    assert v.height == rows.height
    assert v["sheet_row"].to_list()[:3] == [2, 3, 4]
    by = {(i.sheet_row, i.column): i for i in issues}
    assert by[(2, S_MIN)].value == "엘리베이터" and by[(2, S_MIN)].code == "not_in_taxonomy"
    assert by[(2, S_MIN)].voc_id == ids[0] and "엘리베이터" in by[(2, S_MIN)].message
    assert by[(3, S_MIN)].code == "minor_not_under_major" and by[(3, S_MIN)].value == "승강기"
    assert by[(4, S_MAJ)].code == "not_in_taxonomy" and by[(4, S_MAJ)].value == "없는대분류"
    assert by[(6, W_MIN)].code == "minor_missing"
    assert by[(9, COL_DONE)].code == "done_unrecognized" and by[(9, COL_DONE)].value == "완료"
    assert by[(10, COL_DONE)].code == "not_done"
    assert len(issues) == 6
    rec = v.to_dicts()
    assert (rec[3]["review_subject_major"], rec[3]["review_subject_minor"], rec[3]["subject_status"]) == (
        "시설", "승강기", "valid")
    assert (rec[5]["review_subject_major"], rec[5]["review_subject_minor"]) == ("환경", "주차")
    assert (rec[6]["review_work_major"], rec[6]["review_work_minor"]) == ("기타", "기타")
    assert rec[0]["subject_status"] == "invalid" and rec[0]["review_subject_minor"] is None
    assert rec[0]["work_status"] == "empty"
    assert [r["is_done"] for r in rec[:9]] == [True] * 7 + [False, False]
    assert str(by[(2, S_MIN)]).startswith("row 2 (voc_id=")


def test_validate_major_only_uses_model_minor_when_it_fits(rows, tax):
    r0 = rows.row(0, named=True)
    model_major, model_minor = r0["주제 대분류"], r0["주제 중분류"]
    sheet = set_cells(rows, {r0[COL_VOC_ID]: {S_MAJ: model_major, COL_DONE: "Y"}})
    v, issues = validate_reviews(sheet, tax)
    assert not issues
    assert v.row(0, named=True)["review_subject_minor"] == model_minor


def test_validate_rejects_inactive_labels_and_duplicate_ids(rows):
    tax = Taxonomy(
        (*default_taxonomy().rows, TaxonomyRow("subject", "구분류", "옛승강기", active=False))
    )
    ids = rows[COL_VOC_ID].to_list()
    sheet = set_cells(rows, {ids[0]: {S_MAJ: "구분류", S_MIN: "옛승강기", COL_DONE: "Y"}})
    dup = sheet.head(1).with_columns(pl.lit("").alias(S_MAJ), pl.lit("").alias(S_MIN))
    sheet = pl.concat([sheet, dup])
    v, issues = validate_reviews(sheet, tax)
    codes = {(i.sheet_row, i.column, i.code) for i in issues}
    assert (2, S_MAJ, "not_in_taxonomy") in codes and (2, S_MIN, "not_in_taxonomy") in codes
    assert (sheet.height + 1, COL_VOC_ID, "duplicate_voc_id") in codes
    assert v["ignored"].to_list()[-1] is True
    with pytest.raises(ReviewSheetError, match="검수완료"):
        validate_reviews(rows.drop(COL_DONE), tax)


# --------------------------------------------------------------------------------------------
# merge_reviews


def test_merge_reviews_applies_only_done_valid_rows(tagged, rows, tax):
    ids = rows[COL_VOC_ID].to_list()
    changed, confirmed, not_done, half_bad, untouched = ids[:5]
    sheet = set_cells(
        rows,
        {
            changed: {S_MAJ: "시설", S_MIN: "승강기", W_MIN: "교체", COL_DONE: "Y", COL_MEMO: "확인함"},
            confirmed: {COL_DONE: "Y"},
            not_done: {S_MIN: "주차"},
            half_bad: {S_MIN: "엉터리", W_MIN: "설치", COL_DONE: "o"},
        },
    )
    sheet = pl.concat([sheet, rows.head(1).with_columns(pl.lit("OTHER-BUILDING").alias(COL_VOC_ID))])
    out, st = merge_reviews(tagged, sheet, tax)

    assert out.height == tagged.height
    assert out["voc_id"].to_list() == tagged["voc_id"].to_list(), "tagged order, each voc_id once"
    assert out.columns == [*TAGGED_COLUMNS, *REVIEWED_EXTRA_COLUMNS]
    t = {r["voc_id"]: r for r in tagged.iter_rows(named=True)}
    o = {r["voc_id"]: r for r in out.iter_rows(named=True)}

    r = o[changed]
    assert (r["subject_major"], r["subject_minor"], r["subject_source"]) == ("시설", "승강기", "reviewer")
    assert (r["work_major"], r["work_minor"], r["work_source"]) == ("작업", "교체", "reviewer")
    assert (r["reviewed_subject_major"], r["reviewed_subject_minor"]) == ("시설", "승강기")
    assert (r["model_subject_major"], r["model_subject_minor"]) == (t[changed]["subject_major"], t[changed]["subject_minor"])
    assert r["is_reviewed"] and r["classify_source"] == "reviewed" and r["review_memo"] == "확인함"
    assert r[S_MIN] == "승강기"

    r = o[confirmed]  # done with empty cells: the model's tags confirmed → training data
    assert (r["subject_major"], r["subject_minor"]) == (t[confirmed]["subject_major"], t[confirmed]["subject_minor"])
    assert r["subject_source"] == r["work_source"] == "reviewer" and r["is_reviewed"]
    assert r["reviewed_subject_minor"] == t[confirmed]["subject_minor"]
    assert r["reviewed_work_minor"] == t[confirmed]["work_minor"]

    r = o[not_done]  # filled but not done: not applied
    assert r["subject_minor"] == t[not_done]["subject_minor"] and r["subject_source"] == "model"
    assert not r["is_reviewed"] and r["classify_source"] == "batch"
    assert r["reviewed_subject_minor"] == t[not_done]["reviewed_subject_minor"]

    r = o[half_bad]  # invalid subject falls back to the model and is not training data; work applied
    assert r["subject_minor"] == t[half_bad]["subject_minor"] and r["subject_source"] == "model"
    assert r["reviewed_subject_minor"] == t[half_bad]["reviewed_subject_minor"]
    assert (r["work_minor"], r["work_source"], r["reviewed_work_minor"]) == ("설치", "reviewer", "설치")
    assert r["is_reviewed"]

    r = o[untouched]
    assert {k: r[k] for k in TAGGED_COLUMNS} == t[untouched]
    assert not r["is_reviewed"] and r["review_memo"] == ""

    assert st.n_rows == tagged.height and st.n_reviewed == 3
    assert st.n_changed_subject == int(t[changed]["subject_minor"] != "승강기")
    assert st.n_changed_work == int(t[changed]["work_minor"] != "교체") + int(t[half_bad]["work_minor"] != "설치")
    assert st.n_not_applied == 1
    assert st.sheet_only_ids == ["OTHER-BUILDING"]
    assert {(i.voc_id, i.code) for i in st.issues} == {(not_done, "not_done"), (half_bad, "not_in_taxonomy")}


def test_empty_cells_confirm_a_trained_models_tag_never_a_keyword_guess(tagged, rows, tax):
    """The sample's work type is tagged by taxonomy keywords only: a done row with empty 검수_
    cells confirms the model's subject, but the keyword work type stays a machine value."""
    kw = tagged.with_columns(pl.lit("keyword").alias("work_source"))
    ids = rows[COL_VOC_ID].to_list()
    confirmed, typed = ids[0], ids[1]
    sheet = set_cells(rows, {confirmed: {COL_DONE: "Y"}, typed: {W_MAJ: "작업", W_MIN: "교체", COL_DONE: "Y"}})
    out, st = merge_reviews(kw, sheet, tax)
    t = {r["voc_id"]: r for r in kw.iter_rows(named=True)}
    o = {r["voc_id"]: r for r in out.iter_rows(named=True)}
    r = o[confirmed]
    assert r["subject_source"] == "reviewer" and r["reviewed_subject_minor"] == t[confirmed]["subject_minor"]
    assert r["work_source"] == "keyword", "a keyword guess must not become a human label"
    assert r["reviewed_work_minor"] == t[confirmed]["reviewed_work_minor"]  # the input's own label, if any
    r = o[typed]  # a value the reviewer picked is a label whatever the machine said
    assert (r["work_minor"], r["work_source"], r["reviewed_work_minor"]) == ("교체", "reviewer", "교체")
    assert st.n_reviewed == 2


def test_merge_reviews_without_sheet_changes_nothing(tagged, tax):
    out, st = merge_reviews(tagged, None, tax)
    assert out.select(TAGGED_COLUMNS).equals(tagged)
    assert st.n_reviewed == 0 and not out["is_reviewed"].any()
    assert "reviewed_at" not in out.columns


def test_merge_reviews_reviewed_at_is_the_callers_timestamp(tagged, rows, tax):
    vid = rows[COL_VOC_ID][0]
    out, _ = merge_reviews(tagged, set_cells(rows, {vid: {COL_DONE: "Y"}}), tax, reviewed_at="2026-12-02T09:00:00+09:00")
    assert out.columns[-1] == "reviewed_at"
    stamped = out.filter(pl.col("reviewed_at").is_not_null())
    assert stamped["voc_id"].to_list() == [vid] and stamped["reviewed_at"][0] == "2026-12-02T09:00:00+09:00"
    again, _ = merge_reviews(out.drop(list(REVIEWED_EXTRA_COLUMNS)), rows, tax)
    assert "reviewed_at" not in again.columns


# --------------------------------------------------------------------------------------------
# simulate_review


def _truth(rows: pl.DataFrame) -> pl.DataFrame:
    """True labels: even rows = the model's (right), odd rows = another label (wrong), every
    fifth row has no true work label."""
    recs = []
    for i, r in enumerate(rows.iter_rows(named=True)):
        s = (r["주제 대분류"], r["주제 중분류"]) if i % 2 == 0 else ("시설", "승강기" if r["주제 중분류"] != "승강기" else "주차")
        w = (r["작업유형 대분류"], r["작업유형 중분류"]) if i % 2 == 0 else ("작업", "교체" if r["작업유형 중분류"] != "교체" else "설치")
        if s == ("시설", "주차"):
            s = ("환경", "주차")
        recs.append({
            "voc_id": r[COL_VOC_ID],
            "reviewed_subject_major": s[0],
            "reviewed_subject_minor": s[1],
            "reviewed_work_major": None if i % 5 == 4 else w[0],
            "reviewed_work_minor": None if i % 5 == 4 else w[1],
        })
    return pl.DataFrame(recs, schema={k: pl.Utf8 for k in recs[0]})


def test_simulate_review_fixes_wrong_rows_only(rows, tagged, tax):
    truth = _truth(rows)
    done_before = rows[COL_VOC_ID][3]
    sheet = set_cells(rows, {done_before: {COL_DONE: "Y", COL_MEMO: "이미 검수"}})
    out = simulate_review(sheet, truth)
    assert out.columns == sheet.columns and out.height == sheet.height
    assert out[COL_VOC_ID].to_list() == sheet[COL_VOC_ID].to_list()
    assert row_of(out, done_before) == row_of(sheet, done_before), "done rows never touched"
    for i, (before, after) in enumerate(zip(sheet.iter_rows(named=True), out.iter_rows(named=True))):
        if before[COL_VOC_ID] == done_before:
            continue
        assert after[COL_DONE] == "Y"
        for c in (*MODEL_COLUMNS, COL_TITLE, COL_MEMO):
            assert after[c] == before[c]
        if i % 2 == 0:  # right rows: nothing filled
            assert all(after[c] == "" for c in (S_MAJ, S_MIN, W_MAJ, W_MIN))
        else:
            assert (after[S_MAJ], after[S_MIN]) == (truth["reviewed_subject_major"][i], truth["reviewed_subject_minor"][i])
            if i % 5 == 4:  # no true work label: left for the model (confirmed)
                assert after[W_MAJ] == after[W_MIN] == ""
            else:
                assert after[W_MIN] == truth["reviewed_work_minor"][i]
    # folding the simulated review back gives the true labels where a truth exists
    reviewed, st = merge_reviews(tagged, out, tax)
    want = {r["voc_id"]: r for r in truth.iter_rows(named=True)}
    for r in reviewed.iter_rows(named=True):
        if r["voc_id"] == done_before:
            continue
        assert r["is_reviewed"] and r["subject_minor"] == want[r["voc_id"]]["reviewed_subject_minor"]
        if want[r["voc_id"]]["reviewed_work_minor"] is not None:
            assert r["work_minor"] == want[r["voc_id"]]["reviewed_work_minor"]
    assert not st.issues


def test_simulate_review_fraction_seed_and_truth_coverage(rows):
    truth = _truth(rows).head(30)  # 15 rows have no truth: never reviewed
    half = simulate_review(rows, truth, fraction=0.5, seed=7)
    done = [is_done(v) for v in half[COL_DONE].to_list()]
    assert sum(done) == 15
    assert all(vid in set(truth["voc_id"].to_list()) for vid, d in zip(half[COL_VOC_ID], done) if d)
    assert half.equals(simulate_review(rows, truth, fraction=0.5, seed=7))
    assert not half.equals(simulate_review(rows, truth, fraction=0.5, seed=8))
    assert simulate_review(rows, truth, fraction=0.0).equals(rows)
    with pytest.raises(ValueError):
        simulate_review(rows, truth, fraction=1.5)


def test_simulate_review_enters_the_active_label_of_a_superseded_class(rows, tax):
    """After a reorganisation the history says 옛시설>승강기; the dropdown offers 시설>승강기."""
    vid = rows[COL_VOC_ID][0]
    truth = pl.DataFrame({"voc_id": [vid], "reviewed_subject_major": ["옛시설"], "reviewed_subject_minor": ["승강기"]})
    raw = simulate_review(rows, truth).row(0, named=True)
    assert (raw[S_MAJ], raw[S_MIN]) == ("옛시설", "승강기")
    out = simulate_review(rows, truth, taxonomy=tax).row(0, named=True)
    if rows.row(0, named=True)["주제 중분류"] == "승강기":
        assert out[S_MAJ] == out[S_MIN] == ""
    else:
        assert (out[S_MAJ], out[S_MIN]) == ("시설", "승강기")
    assert out[COL_DONE] == "Y"
    assert not validate_reviews(simulate_review(rows, truth, taxonomy=tax), tax)[1]


# --------------------------------------------------------------------------------------------
# per-dimension review flags and keyword guesses ("nothing wrong gets in, nothing right gets lost")


def test_per_dimension_flags_an_invalid_subject_is_no_label(tagged, rows, tax):
    """A done row whose subject is outside the taxonomy: the subject stays the model's machine
    value (subject_reviewed False); the work type is a label only when a trained model's tag was
    confirmed (work_source model), never a keyword guess."""
    kw = tagged.with_columns(
        pl.Series("work_source", ["keyword" if i % 2 else "model" for i in range(tagged.height)])
    )
    sheet_rows = build_review_rows(kw, threshold=0.5)
    src = {r["voc_id"]: r["work_source"] for r in kw.iter_rows(named=True)}
    ids = sheet_rows[COL_VOC_ID].to_list()
    model_work = next(v for v in ids if src[v] == "model")
    keyword_work = next(v for v in ids if src[v] == "keyword")
    both = next(v for v in ids if src[v] == "model" and v != model_work)
    sheet = set_cells(
        sheet_rows,
        {
            model_work: {S_MIN: "엉터리", COL_DONE: "Y"},
            keyword_work: {S_MIN: "엉터리", COL_DONE: "Y"},
            both: {COL_DONE: "Y"},
        },
    )
    out, st = merge_reviews(kw, sheet, tax)
    t = {r["voc_id"]: r for r in kw.iter_rows(named=True)}
    o = {r["voc_id"]: r for r in out.iter_rows(named=True)}
    assert out.schema["subject_reviewed"] == out.schema["work_reviewed"] == pl.Boolean

    r = o[model_work]
    assert (r["subject_reviewed"], r["work_reviewed"], r["is_reviewed"]) == (False, True, True)
    assert (r["subject_minor"], r["subject_source"]) == (t[model_work]["subject_minor"], "model")
    assert r["reviewed_subject_minor"] == t[model_work]["reviewed_subject_minor"], "the model's subject is no label"
    assert (r["work_source"], r["reviewed_work_minor"]) == ("reviewer", t[model_work]["work_minor"])

    r = o[keyword_work]
    assert (r["subject_reviewed"], r["work_reviewed"], r["is_reviewed"]) == (False, False, False)
    assert r["classify_source"] == "batch" and r["work_source"] == "keyword"

    r = o[both]
    assert (r["subject_reviewed"], r["work_reviewed"], r["is_reviewed"]) == (True, True, True)
    assert st.n_reviewed == 2
    # untouched rows: no flag
    assert out.filter(~pl.col("voc_id").is_in([model_work, keyword_work, both]))["subject_reviewed"].any() is False


def test_keyword_guesses_are_marked_in_the_sheet(tagged):
    kw = tagged.with_columns(pl.lit("keyword").alias("work_source"))
    sheet = build_review_rows(kw, threshold=0.5)
    t = {r["voc_id"]: r for r in kw.iter_rows(named=True)}
    for r in sheet.iter_rows(named=True):
        src = t[r[COL_VOC_ID]]
        assert r["주제 대분류"] == src["subject_major"] and r["주제 중분류"] == src["subject_minor"]
        assert r["작업유형 대분류"] == f"{src['work_major']}{GUESS_SUFFIX}"
        assert r["작업유형 중분류"] == f"{src['work_minor']}{GUESS_SUFFIX}"
        assert split_guess(r["작업유형 중분류"]) == (src["work_minor"], True)
    assert split_guess("승강기") == ("승강기", False)
    assert split_guess(" 승강기 （추정） ") == ("승강기", True)
    assert mark_guess("") == "" and mark_guess(mark_guess("a")) == "a (추정)"
    # no source column (older tagged CSVs): nothing marked
    plain = build_review_rows(tagged.drop("work_source"), threshold=0.5)
    assert not any(split_guess(v)[1] for v in plain["작업유형 중분류"].to_list())
    # merge_into_sheet carries the marker like any model cell, reruns stay idempotent
    merged, _ = merge_into_sheet(sheet, sheet)
    assert merged.equals(sheet)


def test_a_marked_guess_is_never_a_reviewer_value_nor_confirmed(tagged, tax):
    """Refresh reads the marked cell as the model's keyword guess: a done row with empty cells
    does not confirm it, the marker never reaches a tag or a label, a pasted marked value is
    rejected with a hint, and a major-only entry does not borrow the guessed minor."""
    kw = tagged.with_columns(pl.lit("keyword").alias("work_source"))
    sheet = build_review_rows(kw, threshold=0.5)
    ids = sheet[COL_VOC_ID].to_list()
    r0 = sheet.row(0, named=True)
    # a row whose guessed work major (작업) has several minors
    k = next(i for i, v in enumerate(sheet["작업유형 대분류"].to_list()) if i > 0 and split_guess(v)[0] == "작업")
    r1 = sheet.row(k, named=True)
    rest = [v for v in ids[1:] if v != ids[k]]
    pasted, major_only, picked, confirmed = ids[0], ids[k], rest[0], rest[1]
    r2 = sheet.row(ids.index(picked), named=True)
    edits = {
        pasted: {W_MAJ: r0["작업유형 대분류"], W_MIN: r0["작업유형 중분류"], COL_DONE: "Y"},
        major_only: {W_MAJ: split_guess(r1["작업유형 대분류"])[0], COL_DONE: "Y"},
        picked: {W_MIN: split_guess(r2["작업유형 중분류"])[0], COL_DONE: "Y"},
        confirmed: {COL_DONE: "Y"},
    }
    edited = set_cells(sheet, edits)
    v, issues = validate_reviews(edited, tax)
    by = {(i.voc_id, i.column): i for i in issues}
    hint = by[(pasted, W_MIN)]
    assert hint.code == "not_in_taxonomy" and "추정" in hint.message and split_guess(r0["작업유형 중분류"])[0] in hint.message
    assert by[(major_only, W_MIN)].code == "minor_missing" and "키워드 추정" in by[(major_only, W_MIN)].message
    vrow = v.filter(pl.col("voc_id") == major_only).row(0, named=True)
    assert vrow["work_status"] == "invalid" and vrow["review_work_minor"] is None

    out, _ = merge_reviews(kw, edited, tax)
    o = {r["voc_id"]: r for r in out.iter_rows(named=True)}
    t = {r["voc_id"]: r for r in kw.iter_rows(named=True)}
    assert not o[pasted]["work_reviewed"] and o[pasted]["work_minor"] == t[pasted]["work_minor"]
    assert not o[confirmed]["work_reviewed"] and o[confirmed]["subject_reviewed"]
    assert o[picked]["work_reviewed"] and o[picked]["reviewed_work_minor"] == t[picked]["work_minor"]
    for col in ("work_major", "work_minor", "reviewed_work_major", "reviewed_work_minor", "model_work_minor"):
        assert not any(GUESS_MARK in str(x) for x in out[col].to_list() if x is not None), col


def test_confirmation_needs_the_tag_the_reviewer_saw(tagged, tax):
    """The sheet showed a keyword guess (marked) or another tag than the newest tagged frame
    (a rerun retagged the row after the review): empty cells confirm nothing."""
    kw = tagged.with_columns(pl.lit("keyword").alias("work_source"))
    shown = build_review_rows(kw, threshold=0.5)  # what the reviewer saw: work marked as a guess
    ids = shown[COL_VOC_ID].to_list()
    sheet = set_cells(shown, {ids[0]: {COL_DONE: "Y"}, ids[1]: {COL_DONE: "Y"}})
    sheet = set_cells(sheet, {ids[1]: {"주제 중분류": "다른태그"}})  # the sheet showed another subject
    out, st = merge_reviews(tagged, sheet, tax)  # now both dimensions come from a trained model
    o = {r["voc_id"]: r for r in out.iter_rows(named=True)}
    assert o[ids[0]]["subject_reviewed"] and not o[ids[0]]["work_reviewed"], "the guess the reviewer saw is not confirmed"
    assert not o[ids[1]]["subject_reviewed"] and not o[ids[1]]["is_reviewed"]
    assert [(i.voc_id, i.code, i.value) for i in st.issues] == [(ids[1], "tag_changed", "다른태그")]


def test_simulated_reviewer_enters_a_guessed_label(tagged, tax):
    kw = tagged.with_columns(pl.lit("keyword").alias("work_source"))
    sheet = build_review_rows(kw, threshold=0.5)
    truth = pl.DataFrame(
        {
            "voc_id": sheet[COL_VOC_ID].to_list(),
            "reviewed_work_major": [split_guess(v)[0] for v in sheet["작업유형 대분류"].to_list()],
            "reviewed_work_minor": [split_guess(v)[0] for v in sheet["작업유형 중분류"].to_list()],
        }
    )
    out = simulate_review(sheet, truth)
    assert out[W_MIN].to_list() == truth["reviewed_work_minor"].to_list(), "a right guess is picked, not left"
    reviewed, _ = merge_reviews(kw, out, tax)
    assert reviewed["work_reviewed"].all(), "every guessed work type the reviewer picked is a label"
    assert reviewed["subject_reviewed"].all(), "trained-model subjects left empty are confirmed"


# --------------------------------------------------------------------------------------------
# issue 14: a review budget that targets errors, groups, evidence, retired names


def test_only_trained_model_dimensions_drive_the_priority(tagged):
    """Per-dimension thresholds; a keyword-guessed work type (confidence = keyword score) never
    flags a row and does not pull 신뢰도 down; the reason names dimension, confidence and
    threshold."""
    kw = tagged.with_columns(pl.lit("keyword").alias("work_source"))
    out = build_review_rows(kw, threshold=None, thresholds={"subject": 0.4, "work": 0.9})
    by = {r["voc_id"]: r for r in kw.iter_rows(named=True)}
    for r in out.iter_rows(named=True):
        t = by[r[COL_VOC_ID]]
        low = t["subject_confidence"] < 0.4
        assert r[COL_FLAG] == ("Y" if low else "")
        assert r[COL_CONFIDENCE] == f"{t['subject_confidence']:.2f}", "신뢰도 = the trained model's only"
        assert r[COL_REASON] == (f"주제 신뢰도 {shown(t['subject_confidence'], 0.4)}" if low else "")
    flags = out[COL_FLAG].to_list()
    assert flags == sorted(flags, key=lambda f: f != "Y"), "검토 우선 rows first"
    # both dimensions trained: each flags with its own threshold, reasons joined
    both = build_review_rows(tagged, threshold=None, thresholds={"subject": 0.2, "work": 0.3})
    for r in both.iter_rows(named=True):
        t = by[r[COL_VOC_ID]]
        why = [f"주제 신뢰도 {shown(t['subject_confidence'], 0.2)}"] if t["subject_confidence"] < 0.2 else []
        why += [f"작업유형 신뢰도 {shown(t['work_confidence'], 0.3)}"] if t["work_confidence"] < 0.3 else []
        assert (r[COL_FLAG], r[COL_REASON]) == ("Y" if why else "", "; ".join(why))
    # a dimension without a threshold never flags; the old single threshold still works
    assert set(build_review_rows(tagged, threshold=None, thresholds={})[COL_FLAG].to_list()) == {""}
    both = build_review_rows(tagged, threshold=None, thresholds={"subject": 0.5, "work": 0.5})
    assert build_review_rows(tagged, threshold=0.5).equals(both)


def shown(value: float, limit: float) -> str:
    """``"a < 기준 b"`` with two decimals, more (up to four) when two would print them equal."""
    for d in (2, 3, 4):
        if f"{value:.{d}f}" != f"{limit:.{d}f}":
            break
    return f"{value:.{d}f} < 기준 {limit:.{d}f}"


def test_reason_shows_enough_decimals_to_tell_value_and_threshold_apart(tagged):
    t = tagged.head(2).with_columns(pl.Series("subject_confidence", [0.6498, 0.31]), pl.lit(0.99).alias("work_confidence"))
    out = build_review_rows(t, threshold=None, thresholds={"subject": 0.6502})
    assert out[COL_REASON].to_list() == ["주제 신뢰도 0.31 < 기준 0.65", "주제 신뢰도 0.6498 < 기준 0.6502"]


class _OldTagger:
    """A model saved before issue 14: one subject threshold, no per-dimension ones."""

    low_confidence_threshold = 0.42

    def model_labels(self, dim: str) -> list[str]:
        return ["a>b", "c>d"] if dim == "subject" else []


def test_review_thresholds_of_new_old_and_overridden_models():
    from voc.review import review_thresholds_of

    old = _OldTagger()
    assert review_thresholds_of(old) == {"subject": 0.42}, "old model: its subject threshold, nothing for keywords"
    new = _OldTagger()
    new.review_thresholds = {"subject": 0.65, "work": 0.3}  # work is keyword-only here: ignored
    assert review_thresholds_of(new) == {"subject": 0.65}
    assert review_thresholds_of(new, override=0.5) == {"subject": 0.5}
    none = _OldTagger()
    none.low_confidence_threshold = None
    assert review_thresholds_of(none) == {}


def test_groups_sit_together_and_evidence_fills_its_column(tagged):
    from voc.evidence import Neighbour

    ids = tagged["voc_id"].to_list()
    members = [ids[3], ids[10], ids[20]]
    groups = ["1-G" if v in members else None for v in ids]
    nb = [
        Neighbour("777", 0.8123, {"subject": "시설>승강기", "work": None}),
        Neighbour("778", 0.5, {"subject": "기타>기타", "work": "작업>교체"}),
    ]
    evidence = [nb if v == ids[3] else ("12 시설>승강기 (0.50)" if v == ids[4] else None) for v in ids]
    out = build_review_rows(tagged, threshold=0.5, groups=groups, evidence=evidence)
    order = out[COL_VOC_ID].to_list()
    pos = sorted(order.index(m) for m in members)
    assert pos == list(range(pos[0], pos[0] + 3)), "a group's rows are together"
    first = out.row(pos[0], named=True)
    plain = build_review_rows(tagged, threshold=0.5)
    own = {r[COL_VOC_ID]: (r[COL_FLAG], r[COL_REASON]) for r in plain.iter_rows(named=True)}
    k = sum(own[m][0] == "Y" for m in members)
    assert k == 3 and out[COL_GROUP].to_list().count("1-G") == 3
    # one review item: the first row is flagged and says how to decide, the others point to it
    assert first[COL_FLAG] == "Y"
    assert first[COL_REASON] == f"{own[first[COL_VOC_ID]][1]}; 묶음 1-G: 3건 중 3건 검토 우선, 이 행에서 결정하고 묶음 적용=Y"
    for p in pos[1:]:
        r = out.row(p, named=True)
        assert (r[COL_FLAG], r[COL_REASON]) == ("", f"묶음 1-G의 첫 행에서 결정 ({own[r[COL_VOC_ID]][1]})")
    calm = build_review_rows(tagged, threshold=None, groups=groups)
    assert calm.filter(pl.col(COL_GROUP) == "1-G")[COL_REASON].to_list() == ["묶음 1-G: 3건", "", ""]
    rest = [v for v in order if v not in members]
    assert rest == [v for v in plain[COL_VOC_ID].to_list() if v not in members], "other rows keep their order"
    assert pos[0] == min(plain[COL_VOC_ID].to_list().index(m) for m in members), "at the place of its first row"
    cell = row_of(out, ids[3])[COL_EVIDENCE]
    assert cell == "777 시설>승강기 (0.81)\n778 기타>기타 | 작업>교체 (0.50)"
    assert row_of(out, ids[4])[COL_EVIDENCE] == "12 시설>승강기 (0.50)" and row_of(out, ids[5])[COL_EVIDENCE] == ""
    with pytest.raises(ReviewError, match="groups has 2 values"):
        build_review_rows(tagged, threshold=0.5, groups=["a", "b"])


def test_refresh_applies_a_group_decision(tagged, tax):
    """One decision (labels + 검수완료 + 묶음 적용 on one row) labels every member of that 묶음 the
    reviewer left alone, as reviewer_group; a member's own edit wins; another group, a decision
    without 검수완료 and rows outside any group get nothing."""
    from voc.review import SOURCE_GROUP

    ids = tagged["voc_id"].to_list()
    g1, g2 = ids[:6], ids[6:9]
    groups = ["1-A" if v in g1 else "1-B" if v in g2 else None for v in ids]
    sheet = build_review_rows(tagged, threshold=0.5, groups=groups)
    decision, own_edit, confirmed, memo_only = g1[2], g1[4], g1[5], g1[1]
    sheet = set_cells(
        sheet,
        {
            decision: {S_MAJ: "환경", S_MIN: "소음/진동", W_MIN: "상태점검", COL_GROUP_APPLY: "Y", COL_DONE: "Y"},
            own_edit: {S_MIN: "주차", COL_DONE: "Y"},
            confirmed: {COL_DONE: "Y"},
            memo_only: {COL_MEMO: "같은 공사 민원"},
            g2[0]: {S_MIN: "승강기", COL_GROUP_APPLY: "Y"},  # not done: no decision
            g2[1]: {COL_GROUP_APPLY: "Y"},
        },
    )
    out, st = merge_reviews(tagged, sheet, tax)
    o = {r["voc_id"]: r for r in out.iter_rows(named=True)}
    t = {r["voc_id"]: r for r in tagged.iter_rows(named=True)}
    for v in (decision, *[m for m in g1 if m not in (decision, own_edit, confirmed)]):
        r = o[v]
        src = "reviewer" if v == decision else SOURCE_GROUP
        assert (r["subject_major"], r["subject_minor"], r["subject_source"]) == ("환경", "소음/진동", src), v
        assert (r["work_major"], r["work_minor"], r["work_source"]) == ("작업", "상태점검", src), v
        assert r["subject_reviewed"] and r["work_reviewed"] and r["reviewed_subject_minor"] == "소음/진동"
    assert (o[own_edit]["subject_minor"], o[own_edit]["subject_source"]) == ("주차", "reviewer"), "own edit wins"
    assert o[own_edit]["work_source"] == "reviewer" and o[own_edit]["work_minor"] == t[own_edit]["work_minor"]
    assert o[confirmed]["subject_minor"] == t[confirmed]["subject_minor"], "a member's own confirmation wins"
    for v in [*g2, *ids[9:]]:
        assert not o[v]["is_reviewed"] and o[v]["subject_source"] == "model", v
    assert st.n_group_applied == 3 and st.n_reviewed == 6
    assert [(i.voc_id, i.code) for i in st.issues] == [(g2[0], "not_done"), (g2[1], "group_not_done")]
    # two decisions that disagree pass nothing on in that dimension
    clash = set_cells(sheet, {g1[0]: {S_MIN: "주차", W_MIN: "상태점검", COL_GROUP_APPLY: "Y", COL_DONE: "Y"}})
    out2, st2 = merge_reviews(tagged, clash, tax)
    o2 = {r["voc_id"]: r for r in out2.iter_rows(named=True)}
    assert o2[memo_only]["subject_source"] == "model" and o2[memo_only]["work_source"] == SOURCE_GROUP
    assert "group_conflict" in {i.code for i in st2.issues}
    # 묶음 적용 on a row without a 묶음 is reported, and a rerun keeps the decision row as the reviewer left it
    lone = next(v for v in ids if v not in g1 and v not in g2)
    _, issues = validate_reviews(set_cells(sheet, {lone: {COL_GROUP_APPLY: "Y", COL_DONE: "Y"}}), tax)
    assert any(i.code == "group_missing" and i.voc_id == lone for i in issues)
    merged, _ = merge_into_sheet(sheet, build_review_rows(tagged, threshold=0.5, groups=groups))
    assert row_of(merged, decision)[COL_GROUP_APPLY] == "Y" and row_of(merged, decision)[COL_GROUP] == "1-A"


def test_retired_names_typed_by_hand_map_to_their_successor(sample_df, tagged):
    """국제도시국 became 국제도시건설국 in 2019: the dropdown never offers it, but a reviewer who
    types it (or its class) is understood."""
    tax = reorg_taxonomy(sample_df)
    assert tax.retired_majors("subject")["국제도시국"] == "국제도시건설국"
    ids = tagged["voc_id"].to_list()
    t = tagged.with_columns(pl.lit("도시재생국").alias("subject_major"), pl.lit("건축과").alias("subject_minor"))
    sheet = set_cells(
        build_review_rows(t, threshold=0.5),
        {
            ids[0]: {S_MAJ: "국제도시국", S_MIN: "기반시설과", COL_DONE: "Y"},  # a class that moved
            ids[1]: {S_MAJ: "국제도시국", S_MIN: "교통과", COL_DONE: "Y"},  # a class of the successor
            ids[2]: {S_MIN: "국제도시국>도시공원과", COL_DONE: "Y"},  # full old label in the minor cell
            ids[3]: {S_MAJ: "도시관리국", COL_DONE: "Y"},  # retired major alone: successor + the model's minor
            ids[4]: {S_MAJ: "국제도시국", S_MIN: "건축과", COL_DONE: "Y"},  # not a class of it nor its successor
        },
    )
    out, st = merge_reviews(t, sheet, tax)
    o = {r["voc_id"]: r for r in out.iter_rows(named=True)}
    assert (o[ids[0]]["subject_major"], o[ids[0]]["subject_minor"]) == ("국제도시건설국", "기반시설과")
    assert (o[ids[1]]["subject_major"], o[ids[1]]["subject_minor"]) == ("국제도시건설국", "교통과")
    assert (o[ids[2]]["subject_major"], o[ids[2]]["subject_minor"]) == ("국제도시건설국", "도시공원과")
    assert (o[ids[3]]["reviewed_subject_major"], o[ids[3]]["reviewed_subject_minor"]) == ("도시재생국", "건축과")
    assert all(o[v]["subject_reviewed"] for v in ids[:4])
    assert not o[ids[4]]["subject_reviewed"] and st.n_retired_mapped == 4
    assert [(i.voc_id, i.code) for i in st.issues] == [(ids[4], "minor_not_under_major")]
    # an active class whose major was retired but nothing replaced it is still a label as typed
    v, issues = validate_reviews(set_cells(sheet, {ids[4]: {S_MAJ: "국제도시국", S_MIN: "교통지적과"}}), tax)
    assert not issues and v.row(sheet[COL_VOC_ID].to_list().index(ids[4]), named=True)["review_subject_major"] == "국제도시국"


def test_taxonomy_knows_what_a_reorganisation_retired(sample_df):
    tax = reorg_taxonomy(sample_df)
    retired = tax.retired_majors("subject")
    assert retired["지역개발국"] == retired["도시관리국"] == "도시재생국", "a chain of renames ends at the current major"
    assert retired["총무국"] == "행정복지국" and "도시재생국" not in retired and "보건소" not in retired
    offered = tax.offered_rows("subject")
    assert [(r.major, r.minor) for r in offered] == sorted((r.major, r.minor) for r in offered)
    assert all(r.active and r.major not in retired for r in offered)
    assert tax.successor("subject", "도시관리국", "건축과").label == "도시재생국>건축과"
    assert tax.successor("subject", "보건소", "건축과") is None
    plain = default_taxonomy()
    assert plain.retired_majors("subject") == {} and len(plain.offered_rows("subject")) == 21
    assert plain.offered_rows("subject")[-1].label == "기타>기타"


# --------------------------------------------------------------------------------------------
# issue 21: reviewer cells are literal values or issues; rows with unknown voc_ids are reported

NON_LITERAL = [
    ("=VLOOKUP(B2,분류체계!A:B,2,FALSE)", "formula"),
    ("=A1", "formula"),
    ("#N/A", "error_value"),
    ("#REF!", "error_value"),
    ("2019-11-03", "date_value"),
    ("2019-11-03 09:30:00", "date_value"),
    ("3", "number_value"),
    ("-1.5", "number_value"),
]


@pytest.mark.parametrize(("cell", "code"), NON_LITERAL)
def test_non_literal_reviewer_cell_is_an_issue_never_a_label_nor_a_confirmation(tagged, rows, tax, cell, code):
    """A done row whose 검수_ cell holds a formula, an error, a date or a number: reported with
    row, column and value, and the model's tag of that dimension is not confirmed; the other
    dimension (empty cells) still is."""
    ids = rows[COL_VOC_ID].to_list()
    vid = ids[4]
    sheet = set_cells(rows, {vid: {S_MIN: cell, COL_DONE: "Y"}})
    validated, issues = validate_reviews(sheet, tax)
    mine = [i for i in issues if i.voc_id == vid]
    assert [(i.sheet_row, i.column, i.value, i.code) for i in mine] == [(6, S_MIN, cell, code)]
    assert cell.strip() in mine[0].message
    assert validated.row(4, named=True)["subject_status"] == "invalid"
    out, st = merge_reviews(tagged, sheet, tax)
    r = out.filter(pl.col("voc_id") == vid).row(0, named=True)
    assert not r["subject_reviewed"] and r["subject_source"] == "model", "a non-literal cell confirmed the model's tag"
    assert r["work_reviewed"]  # empty work cells of a done row still confirm
    assert any(i.code == code and i.voc_id == vid for i in st.issues)


def test_a_number_that_is_a_class_name_is_a_value(tagged, rows):
    tax2 = default_taxonomy().with_labels("subject", ["시설>2019"])
    vid = rows[COL_VOC_ID].to_list()[0]
    validated, issues = validate_reviews(set_cells(rows, {vid: {S_MIN: "2019", COL_DONE: "Y"}}), tax2)
    assert not issues and validated.row(0, named=True)["review_subject_minor"] == "2019"


@pytest.mark.parametrize(("cell", "code"), [("=IF(A2<>\"\",\"Y\",\"N\")", "formula"), ("#VALUE!", "error_value")])
def test_formula_or_error_in_done_or_group_apply_is_reported_and_not_done(tagged, rows, tax, cell, code):
    ids = rows[COL_VOC_ID].to_list()
    sheet = set_cells(rows, {ids[0]: {COL_DONE: cell}, ids[1]: {COL_DONE: "Y", COL_GROUP: "g1", COL_GROUP_APPLY: cell}})
    validated, issues = validate_reviews(sheet, tax)
    assert [(i.sheet_row, i.column, i.code) for i in issues] == [(2, COL_DONE, code), (3, COL_GROUP_APPLY, code)]
    assert validated["is_done"].to_list()[:2] == [False, True] and not validated["group_apply"][1]
    out, _ = merge_reviews(tagged, sheet, tax)
    assert not out.filter(pl.col("voc_id") == ids[0])["is_reviewed"][0]


def test_formula_in_voc_id_ignores_the_row(rows, tax):
    sheet = set_cells(rows, {rows[COL_VOC_ID][0]: {COL_DONE: "Y"}}).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("=A1+1")).otherwise(pl.col(COL_VOC_ID)).alias(COL_VOC_ID)
    )
    validated, issues = validate_reviews(sheet, tax)
    assert validated["ignored"][0] and [(i.sheet_row, i.column, i.code) for i in issues] == [(2, COL_VOC_ID, "formula")]


def test_memo_formula_is_kept_as_text_not_reported(rows, tax):
    vid = rows[COL_VOC_ID][0]
    validated, issues = validate_reviews(set_cells(rows, {vid: {COL_MEMO: "=1+1", COL_DONE: "Y"}}), tax)
    assert not issues and validated["review_memo"][0] == "=1+1"


def test_unknown_and_changed_voc_ids_are_reported(rows):
    from voc.review import unknown_voc_id_issues

    known = rows[COL_VOC_ID].to_list()
    added = pl.DataFrame({c: [""] for c in rows.columns}).with_columns(
        pl.lit("99999").alias(COL_VOC_ID), pl.lit("Y").alias(COL_DONE), pl.lit("시설").alias(S_MAJ)
    )
    changed = rows.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("70000")).otherwise(pl.col(COL_VOC_ID)).alias(COL_VOC_ID)
    )
    sheet = pl.concat([changed, added])
    issues = unknown_voc_id_issues(sheet, known)
    assert [(i.sheet_row, i.column, i.value, i.code) for i in issues] == [
        (4, COL_VOC_ID, "70000", "unknown_voc_id"),
        (sheet.height + 1, COL_VOC_ID, "99999", "unknown_voc_id"),
    ]
    assert "99999" in issues[1].message
    assert unknown_voc_id_issues(rows, known) == []


def test_issues_name_the_spreadsheet_row_of_a_subset(rows, tax):
    """One building's rows of the month's sheet: issues name their rows in the whole sheet."""
    vid = rows[COL_VOC_ID][3]
    sheet = set_cells(rows, {vid: {S_MIN: "#N/A", COL_DONE: "Y"}})
    part = sheet.with_row_index("i", offset=2).filter(pl.col(COL_VOC_ID) == vid)
    _, issues = validate_reviews(part.drop("i"), tax, row_numbers=part["i"].to_list())
    assert [i.sheet_row for i in issues] == [5]
    with pytest.raises(ReviewSheetError, match="row_numbers"):
        validate_reviews(sheet, tax, row_numbers=[2])
