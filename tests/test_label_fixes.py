"""Issue 25: the label audit's top suspects reach reviewers as the review workbook's sheet
이전 라벨 점검, and a reviewer's 수정 becomes a label with provenance (voc/label_fixes.py,
flows/adapters/label_review.py).

Fast tier: the pure rules, and a real round trip in local storage through the functions the
flows call — a model version's ``label_audit.csv`` → the ``full`` run's sheet step → a
reviewer's edits in openpyxl (one 수정, one 유지, one invalid label) → ``refresh``'s and
``voc review push``'s steps → ``label_fixes/{yyyymm}.csv`` → the training frame of ``voc-train``.
The slow test runs the same through the Prefect flows.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import polars as pl
import pytest
from test_review import make_tagged

from flows import storage_layout as layout
from flows.adapters import label_review
from flows.adapters.review_backends import PerBuildingXlsxReviewBackend, XlsxReviewBackend
from flows.adapters.sources import CsvSource
from flows.adapters.storage import LocalStorage
from flows.train import training_frame
from voc.label_audit import SUSPECT_COLUMNS, DimensionAudit
from voc.label_fixes import (
    AUDIT_COLUMNS,
    AUDIT_SHEET,
    COL_AUDIT_MEMO,
    COL_FIX_LABEL,
    COL_VERDICT,
    FIX_COLUMNS,
    LabelDecision,
    apply_label_fixes,
    audit_sheet_rows,
    decided_labels,
    drop_decided,
    merge_decisions,
    read_decisions,
)
from voc.review import build_review_rows, merge_into_sheet
from voc.taxonomy import default_taxonomy, split_label

MONTH = "2019-11"
PREFIX = "stat/voc-dev"
MODEL = "linear_20261201_000000"
TAX = default_taxonomy()
GOOD = TAX.labels("subject")[3]  # a valid 수정 라벨
OTHER = TAX.labels("subject")[5]


def suspects_of(sample_df: pl.DataFrame, n: int = 6) -> pl.DataFrame:
    """A ``label_audit.csv`` frame: ``n`` labelled sample VOCs as subject suspects (scores 0.01,
    0.02, …), written as voc-train writes it (columns :data:`SUSPECT_COLUMNS`)."""
    hist = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null()).sort("voc_id").head(n)
    return pl.DataFrame({
        "dimension": ["subject"] * n, "rank": list(range(1, n + 1)), "voc_id": hist["voc_id"],
        "given_label": [f"{a}>{b}" for a, b in zip(hist["reviewed_subject_major"], hist["reviewed_subject_minor"])],
        "suggested_label": [OTHER] * n, "score": [0.01 * (i + 1) for i in range(n)], "issue": [True] * n,
        "judged": [True] * n, "text": hist["title"], "building_id": hist["building_id"],
        "created_at": hist["created_at"].cast(pl.Utf8), "title": hist["title"],
    }).select(SUSPECT_COLUMNS)


def sheet_row(**cells: str) -> dict[str, str]:
    return {c: cells.get(c, "") for c in AUDIT_COLUMNS}


# --------------------------------------------------------------------------------------------
# pure rules


def test_sheet_rows_are_the_top_undecided_suspects_and_keep_reviewer_cells(sample_df: pl.DataFrame) -> None:
    sus = suspects_of(sample_df)
    ids = sus["voc_id"].to_list()
    rows = audit_sheet_rows(sus, decided={(ids[0], "subject")}, top=3, model=MODEL)
    assert rows.columns == list(AUDIT_COLUMNS) and rows.height == 3
    assert rows["voc_id"].to_list() == ids[1:4]  # the decided one is never offered again; lowest score first
    assert rows["구분"].to_list() == ["주제"] * 3 and rows["audit_model"].to_list() == [MODEL] * 3
    assert rows["점수"].to_list() == ["0.020", "0.030", "0.040"] and rows["등록일"][0].count("-") == 2
    # a reviewer's cells stay with their row; a row with input that is no longer picked stays too
    typed = rows.with_columns(pl.when(pl.col("voc_id") == ids[2]).then(pl.lit("유지")).otherwise(pl.col(COL_VERDICT)).alias(COL_VERDICT))
    again = audit_sheet_rows(sus, decided={(ids[0], "subject"), (ids[1], "subject")}, existing=typed, top=1, model=MODEL)
    assert again["voc_id"].to_list() == [ids[2]] and again[COL_VERDICT].to_list() == ["유지"]
    kept = audit_sheet_rows(sus, decided={(i, "subject") for i in ids[:3]}, existing=typed, top=1, model=MODEL)
    assert kept["voc_id"].to_list() == [ids[3], ids[2]] and kept[COL_VERDICT].to_list() == ["", "유지"]
    # one workbook per building: the top rows of each listed building only
    per = audit_sheet_rows(sus, top=1, buildings={"1", "2"})
    assert sorted(per["building_id"].to_list()) == sorted(set(sus["building_id"].to_list()) & {"1", "2"})


def test_read_decisions_turns_only_a_reviewers_valid_choice_into_a_label() -> None:
    sheet = pl.DataFrame([
        sheet_row(voc_id="1", 구분="주제", **{"현재 라벨": "가>나", "제안 라벨": OTHER, COL_VERDICT: "수정", COL_FIX_LABEL: GOOD}),
        sheet_row(voc_id="2", 구분="주제", **{"현재 라벨": "가>나", COL_VERDICT: "유지", COL_AUDIT_MEMO: "맞음"}),
        sheet_row(voc_id="3", 구분="주제", **{"현재 라벨": "가>나", COL_VERDICT: "수정", COL_FIX_LABEL: "없는>라벨"}),
        sheet_row(voc_id="4", 구분="주제", **{"현재 라벨": "가>나", COL_VERDICT: "수정"}),
        sheet_row(voc_id="5", 구분="주제", **{"현재 라벨": "가>나", COL_VERDICT: "맞아요"}),
        sheet_row(voc_id="6", 구분="주제", **{"현재 라벨": "가>나", COL_FIX_LABEL: GOOD}),  # the suggestion alone: nothing
        sheet_row(voc_id="7", 구분="주제", **{"현재 라벨": "가>나", COL_VERDICT: "=B2", COL_FIX_LABEL: GOOD}),
        sheet_row(voc_id="8", 구분="주제", **{"현재 라벨": "가>나", "제안 라벨": OTHER}),  # undecided: no decision, no issue
        sheet_row(voc_id="9", 구분="주제", **{"현재 라벨": GOOD, COL_VERDICT: "수정", COL_FIX_LABEL: GOOD}),
        sheet_row(voc_id="1", 구분="주제", **{"현재 라벨": "가>나", COL_VERDICT: "유지"}),
    ])
    decisions, issues = read_decisions(sheet, TAX)
    got = {(d.voc_id, d.decision, d.new_label) for d in decisions}
    assert got == {("1", "fix", GOOD), ("2", "confirm", "가>나"), ("9", "confirm", GOOD)}
    assert decisions[0].sheet_row == 2 and decisions[0].suggested_label == OTHER and decisions[1].memo == "맞음"
    codes = {(i.voc_id, i.code, i.sheet_row) for i in issues}
    assert codes == {("3", "not_in_taxonomy", 4), ("4", "fix_label_missing", 5), ("5", "verdict_unrecognized", 6),
                     ("6", "verdict_missing", 7), ("7", "formula", 8), ("1", "duplicate_voc_id", 11)}
    bad = next(i for i in issues if i.code == "not_in_taxonomy")
    assert "없는>라벨" in str(bad) and "row 4" in str(bad) and AUDIT_SHEET in bad.message


def test_merge_decisions_is_idempotent_and_keeps_first_provenance() -> None:
    d = [LabelDecision("1", "b", "subject", "가>나", GOOD, "fix", 2), LabelDecision("2", "b", "subject", "가>나", "가>나", "confirm", 3)]
    one = merge_decisions(None, d, month="201911", decided_at="2026-12-01T10:00:00+09:00", recorded_by="refresh a", review_sheet="wb")
    assert one.columns == list(FIX_COLUMNS) and one["source"].to_list() == ["label_audit"] * 2
    two = merge_decisions(one, d, month="201911", decided_at="2026-12-02T10:00:00+09:00", recorded_by="push f.xlsx", review_sheet="wb")
    assert two.equals(one)  # same decisions: same table, first decided_at and provenance kept
    changed = [LabelDecision("1", "b", "subject", "가>나", OTHER, "fix", 2)]
    three = merge_decisions(two, changed, month="201911", decided_at="2026-12-03T10:00:00+09:00", recorded_by="refresh c",
                            review_sheet="wb")
    assert three["voc_id"].to_list() == ["1"]  # withdrawn decision dropped
    assert three.row(0, named=True)["new_label"] == OTHER and three.row(0, named=True)["recorded_by"] == "refresh c"


def test_newest_fix_wins_and_a_confirmation_changes_nothing(sample_df: pl.DataFrame) -> None:
    a, b, c = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null())["voc_id"].head(3).to_list()
    row = {c_: "" for c_ in FIX_COLUMNS}
    fixes = pl.DataFrame([
        {**row, "voc_id": a, "dimension": "subject", "new_label": OTHER, "decision": "fix", "decided_at": "2026-12-02T00:00:00+09:00"},
        {**row, "voc_id": a, "dimension": "subject", "new_label": GOOD, "decision": "fix", "decided_at": "2026-12-01T00:00:00+09:00"},
        {**row, "voc_id": b, "dimension": "subject", "new_label": GOOD, "decision": "fix", "decided_at": "2026-12-01T00:00:00+09:00"},
        {**row, "voc_id": b, "dimension": "subject", "new_label": "x>y", "decision": "confirm", "decided_at": "2026-12-03T00:00:00+09:00"},
    ])
    out, n = apply_label_fixes(sample_df, fixes)
    assert n == 1 and out.schema == sample_df.schema and out["voc_id"].to_list() == sample_df["voc_id"].to_list()
    got = out.filter(pl.col("voc_id").is_in([a, b, c])).sort("voc_id")
    before = sample_df.filter(pl.col("voc_id").is_in([a, b, c])).sort("voc_id")
    assert split_label(OTHER) == tuple(got.filter(pl.col("voc_id") == a).select("reviewed_subject_major", "reviewed_subject_minor").row(0))
    assert got.filter(pl.col("voc_id") != a).equals(before.filter(pl.col("voc_id") != a))
    assert decided_labels(fixes) == {(a, "subject", OTHER), (b, "subject", "x>y")}


def test_drop_decided_leaves_settled_rows_out_of_the_audit() -> None:
    issues = pl.DataFrame({"rank": [1, 2, 3], "voc_id": ["1", "2", "3"], "given_label": ["가>나", "가>나", "다>라"],
                           "suggested_label": ["다>라"] * 3, "score": [0.1, 0.2, 0.3], "issue": [True] * 3, "judged": [True] * 3})
    audit = DimensionAudit("subject", issues, pl.DataFrame(), 0.9, 3, 2, "default", 3)
    # "1" confirmed as 가>나, "3" fixed earlier but to another label than it has now (kept), work decisions ignored
    out = drop_decided(audit, {("1", "subject", "가>나"), ("3", "subject", "가>나"), ("2", "work", "가>나")})
    assert out.issues["voc_id"].to_list() == ["2", "3"] and out.issues["rank"].to_list() == [1, 2]
    assert out.health == audit.health and drop_decided(audit, set()) is audit


# --------------------------------------------------------------------------------------------
# round trip in local storage


@pytest.fixture()
def month_store(tmp_path: Path, sample_df: pl.DataFrame) -> tuple[LocalStorage, XlsxReviewBackend, pl.DataFrame]:
    """A storage holding the month's review workbook (45 VOCs) and a model version whose label
    audit lists six labelled VOCs."""
    storage = LocalStorage(tmp_path / "store")
    backend = XlsxReviewBackend(storage, PREFIX)
    backend.write_month(MONTH, build_review_rows(make_tagged(sample_df), threshold=0.5), TAX)
    sus = suspects_of(sample_df)
    storage.write_bytes(f"{layout.models_dir(PREFIX)}/{MODEL}/label_audit.csv", sus.write_csv().encode("utf-8"))
    return storage, backend, sus


def reviewer_edits(path: Path, edits: dict[str, dict[str, str]]) -> None:
    """What a reviewer does in Excel on the 이전 라벨 점검 sheet (openpyxl ignores the dropdowns,
    as a paste would)."""
    wb = openpyxl.load_workbook(path)
    ws = wb[AUDIT_SHEET]
    col = {c.value: c.column for c in ws[1]}
    for r in range(2, ws.max_row + 1):
        for name, value in edits.get(str(ws.cell(r, col["voc_id"]).value), {}).items():
            ws.cell(r, col[name]).value = value
    wb.save(path)


def test_round_trip_sheet_edit_refresh_fixes_and_training(month_store, sample_df: pl.DataFrame, sample_csv: Path, tmp_path: Path) -> None:
    storage, backend, sus = month_store
    ids = sus["voc_id"].to_list()
    res = label_review.sync_audit_sheet(storage, backend, PREFIX, MONTH, MODEL, TAX, top=4)
    assert res["rows"] == 4 and res["model"] == MODEL
    path = tmp_path / "store" / PREFIX / "201911" / "review_201911.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[:2] == ["201911", AUDIT_SHEET]
    ws = wb[AUDIT_SHEET]
    col = {c.value: c.column_letter for c in ws[1]}
    assert [c.value for c in ws[1]] == list(AUDIT_COLUMNS) and ws.max_row == 5
    assert ws.freeze_panes == f"{col[COL_VERDICT]}2" and ws.protection.sheet
    assert ws[f"{col['voc_id']}2"].protection.locked and not ws[f"{col[COL_VERDICT]}2"].protection.locked
    assert ws.column_dimensions[col["audit_model"]].hidden
    dvs = {dv.formula1: str(dv.sqref) for dv in ws.data_validations.dataValidation}
    assert dvs['"유지,수정"'] == f"{col[COL_VERDICT]}2:{col[COL_VERDICT]}5"
    assert set(dvs["VOC_S_LABELS"].split()) == {f"{col[COL_FIX_LABEL]}{r}" for r in range(2, 6)}
    sheet, cells = wb.defined_names["VOC_S_LABELS"].attr_text.split("!")
    listed = [row[0].value for row in wb[sheet.strip("'")][cells.replace("$", "")]]
    assert listed == [r.label for r in TAX.offered_rows("subject")]
    # the run's next merge of the data sheet (sync-review-sheet) keeps the audit sheet as it is
    before = backend.read_audit(MONTH)
    rerun = build_review_rows(make_tagged(sample_df, shift=1), threshold=0.5)
    backend.update_month(MONTH, lambda old: merge_into_sheet(old, rerun), TAX)
    assert backend.read_audit(MONTH).equals(before)

    reviewer_edits(path, {ids[0]: {COL_VERDICT: "수정", COL_FIX_LABEL: GOOD, COL_AUDIT_MEMO: "승강기 민원"},
                          ids[1]: {COL_VERDICT: "유지"}, ids[2]: {COL_VERDICT: "수정", COL_FIX_LABEL: "승강기"}})
    got = label_review.apply_audit_sheet(storage, backend, PREFIX, MONTH, TAX, recorded_by="refresh r1")
    assert (got["fixes"], got["confirmed"], got["written"]) == (1, 1, True)
    assert len(got["issues"]) == 1 and "row 4" in got["issues"][0] and "'승강기'" in got["issues"][0]
    key = layout.label_fixes_key(PREFIX, MONTH)
    table = pl.read_csv(storage.read_bytes(key), infer_schema=False).fill_null("")
    assert table.columns == list(FIX_COLUMNS)
    by = {r["voc_id"]: r for r in table.iter_rows(named=True)}
    assert set(by) == {ids[0], ids[1]}
    assert by[ids[0]]["decision"] == "fix" and by[ids[0]]["new_label"] == GOOD and by[ids[0]]["old_label"] == sus["given_label"][0]
    assert by[ids[0]]["memo"] == "승강기 민원" and by[ids[0]]["recorded_by"] == "refresh r1" and by[ids[0]]["sheet_row"] == "2"
    assert by[ids[0]]["suggested_label"] == OTHER and by[ids[0]]["audit_model"] == MODEL and by[ids[0]]["source"] == "label_audit"
    assert by[ids[1]]["decision"] == "confirm" and by[ids[1]]["new_label"] == by[ids[1]]["old_label"]
    first = storage.read_bytes(key)
    again = label_review.apply_audit_sheet(storage, backend, PREFIX, MONTH, TAX, recorded_by="refresh r2")
    assert not again["written"] and storage.read_bytes(key) == first  # same sheet, same file

    df = training_frame(CsvSource(sample_csv), storage, PREFIX, until=None)
    fixed = df.filter(pl.col("voc_id") == ids[0]).select("reviewed_subject_major", "reviewed_subject_minor").row(0)
    assert fixed == split_label(GOOD)
    kept = df.filter(pl.col("voc_id").is_in([ids[1], ids[2]])).sort("voc_id")["reviewed_subject_minor"].to_list()
    assert kept == sus.filter(pl.col("voc_id").is_in([ids[1], ids[2]])).sort("voc_id")["given_label"].map_elements(
        lambda v: split_label(v)[1], return_dtype=pl.Utf8).to_list()  # 유지 and the invalid label change nothing

    # the next month's workbook offers neither decided VOC again
    backend.write_month("2019-12", build_review_rows(make_tagged(sample_df, "201912"), threshold=0.5), TAX)
    label_review.sync_audit_sheet(storage, backend, PREFIX, "2019-12", MODEL, TAX, top=4)
    assert backend.read_audit("2019-12")["voc_id"].to_list() == ids[2:6]


def test_push_merges_the_audit_sheet_and_rejects_an_invalid_label(month_store, tmp_path: Path, monkeypatch) -> None:
    from config.settings import VocSettings
    from flows.review_exchange import pull_review, push_review

    storage, backend, sus = month_store
    ids = sus["voc_id"].to_list()
    label_review.sync_audit_sheet(storage, backend, PREFIX, MONTH, MODEL, TAX, top=4)
    settings = VocSettings(storage=str(tmp_path / "store"))
    monkeypatch.setattr("flows.review_exchange.review_taxonomy", lambda *_: TAX)
    bid = sus["building_id"][0]
    one = pull_review(settings, MONTH, building_id=bid, out=tmp_path / "one.xlsx")  # a building's rows: its suspects only
    from flows.adapters.review_backends import audit_frame

    assert set(audit_frame("one", one.path.read_bytes())["building_id"].to_list()) == {bid}
    pulled = pull_review(settings, MONTH, out=tmp_path / "mine.xlsx")
    reviewer_edits(pulled.path, {ids[0]: {COL_VERDICT: "수정", COL_FIX_LABEL: GOOD}, ids[1]: {COL_VERDICT: "유지"},
                                 ids[2]: {COL_VERDICT: "수정", COL_FIX_LABEL: "없는>라벨"}})
    res = push_review(settings, pulled.path, month=MONTH)
    audit = res.label_audit
    assert audit is not None and audit["written"]
    assert sorted(a["voc_id"] for a in audit["accepted"]) == sorted(ids[:2])
    assert [(r["sheet_row"], r["voc_id"], r["codes"]) for r in audit["rejected"]] == [(4, ids[2], ["not_in_taxonomy"])]
    assert "없는>라벨" in audit["rejected"][0]["reasons"][0]
    stored = backend.read_audit(MONTH)
    assert stored.filter(pl.col("voc_id") == ids[2])[COL_FIX_LABEL].to_list() == [""]  # never stored, never applied
    table = pl.read_csv(storage.read_bytes(layout.label_fixes_key(PREFIX, MONTH)), infer_schema=False)
    assert sorted(zip(table["voc_id"].to_list(), table["decision"].to_list())) == sorted([(ids[0], "fix"), (ids[1], "confirm")])
    assert set(table["recorded_by"].to_list()) == {"push mine.xlsx"}
    assert res.to_dict()["label_audit"]["fixes"]["fixes"] == 1


def test_per_building_workbooks_get_their_own_suspects(tmp_path: Path, sample_df: pl.DataFrame) -> None:
    storage = LocalStorage(tmp_path / "store")
    backend = PerBuildingXlsxReviewBackend(storage, PREFIX)
    backend.write_month(MONTH, build_review_rows(make_tagged(sample_df), threshold=0.5), TAX)
    hist = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null())
    sus = pl.concat([suspects_of(hist.filter(pl.col("building_id") == b), 3) for b in ("1", "2")])
    storage.write_bytes(f"{layout.models_dir(PREFIX)}/{MODEL}/label_audit.csv", sus.write_csv().encode("utf-8"))
    res = label_review.sync_audit_sheet(storage, backend, PREFIX, MONTH, MODEL, TAX, top=2)
    assert res["rows"] == 4
    for b in backend.building_ids(MONTH):
        data = storage.read_bytes(backend.building_key(MONTH, b))
        from flows.adapters.review_backends import audit_frame

        assert set(audit_frame(b, data)["building_id"].to_list()) == {b}


class CountingStorage(LocalStorage):
    """Local storage that counts writes per key (the ``full`` run should build each workbook once)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: dict[str, int] = {}

    def write_if(self, key: str, data: bytes, **kw):  # type: ignore[no-untyped-def]  # passes through LocalStorage's own signature
        self.writes[key] = self.writes.get(key, 0) + 1
        return super().write_if(key, data, **kw)


@pytest.mark.parametrize("per_building", [False, True])
def test_full_run_writes_review_and_audit_sheets_in_one_write(tmp_path: Path, sample_df: pl.DataFrame, per_building: bool) -> None:
    """Issue 21 (serial time): ``sync-review-sheet`` with the audit change builds each workbook
    once, with both sheets; a rerun keeps a reviewer's 판정 and writes nothing new to the audit."""
    from flows.monthly import guard_audit_change

    storage = CountingStorage(tmp_path / "store")
    backend = (PerBuildingXlsxReviewBackend if per_building else XlsxReviewBackend)(storage, PREFIX)
    hist = sample_df.filter(pl.col("reviewed_subject_minor").is_not_null())
    sus = pl.concat([suspects_of(hist.filter(pl.col("building_id") == b), 3) for b in ("1", "2")])
    storage.write_bytes(f"{layout.models_dir(PREFIX)}/{MODEL}/label_audit.csv", sus.write_csv().encode("utf-8"))
    change, outcome = label_review.audit_sheet_change(storage, backend, PREFIX, MODEL, top=2)
    assert change is not None and outcome == {"model": MODEL}
    rows = build_review_rows(make_tagged(sample_df), threshold=0.5)
    backend.update_month(MONTH, lambda old: merge_into_sheet(old, rows), TAX, audit=change)
    keys = [backend.building_key(MONTH, b) for b in backend.building_ids(MONTH)] if per_building else [backend.key(MONTH)]
    assert keys and all(storage.writes.get(k) == 1 for k in keys), storage.writes
    audit = backend.read_audit(MONTH)
    assert audit is not None and audit.height == (4 if per_building else 2)
    assert backend.read_month(MONTH).height == rows.height
    # a reviewer decides one suspect; the next full run's single write keeps the decision
    first = audit["voc_id"][0]
    if per_building:
        bid = audit["building_id"][0]
        path = tmp_path / "store" / backend.building_key(MONTH, bid)
    else:
        path = tmp_path / "store" / backend.key(MONTH)
    reviewer_edits(path, {first: {COL_VERDICT: "유지"}})
    backend.update_month(MONTH, lambda old: merge_into_sheet(old, rows), TAX, audit=change)
    kept = backend.read_audit(MONTH).filter(pl.col("voc_id") == first)[COL_VERDICT].to_list()
    assert kept == ["유지"]
    # an error in the audit change keeps the sheet as it was and fails nothing (the sheet is advice)
    def broken(existing, buildings):  # type: ignore[no-untyped-def]  # an AuditChange that fails
        raise ValueError("bad suspects")

    before = backend.read_audit(MONTH)
    outcome = {"model": MODEL}
    backend.update_month(MONTH, lambda old: merge_into_sheet(old, rows), TAX, audit=guard_audit_change(broken, outcome))
    assert outcome["error"] == "ValueError: bad suspects" and "rows" not in outcome
    assert backend.read_audit(MONTH).equals(before) and backend.read_month(MONTH).height == rows.height


@pytest.mark.slow  # a Prefect test server, one training (label audit off) and three monthly runs
def test_full_and_refresh_runs_carry_the_sheet_and_the_fixes(prefect_server, tmp_path: Path, monkeypatch, sample_csv: Path) -> None:
    import json

    from config.settings import VocSettings
    from flows.monthly import voc_monthly
    from flows.review_exchange import review_taxonomy
    from flows.train import voc_train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOC_MODEL__CACHE_DIR", str(tmp_path / "model-cache"))
    root = tmp_path / "store"
    storage = LocalStorage(root)
    t = voc_train(until=MONTH, storage=str(root))
    assert t["status"] == "champion"
    hist = training_frame(CsvSource(sample_csv), storage, PREFIX, until=MONTH)
    sus = suspects_of(hist.filter(pl.col("building_id") == "2"), 3)  # as voc-train's audit would list them
    storage.write_bytes(f"{layout.models_dir(PREFIX)}/{t['model']}/label_audit.csv", sus.write_csv().encode("utf-8"))

    full = voc_monthly(mode="full", month=MONTH, building_ids=["2"], storage=str(root))
    assert full["label_audit"]["rows"] == 3 and full["label_audit"]["model"] == t["model"]
    path = root / PREFIX / "201911" / "review_201911.xlsx"
    assert openpyxl.load_workbook(path).sheetnames[:2] == ["201911", AUDIT_SHEET]
    tax = review_taxonomy(VocSettings(storage=str(root)), storage)
    ids, given = sus["voc_id"].to_list(), sus["given_label"].to_list()
    new = next(r.label for r in tax.offered_rows("subject") if r.label != given[0])
    reviewer_edits(path, {ids[0]: {COL_VERDICT: "수정", COL_FIX_LABEL: new}, ids[1]: {COL_VERDICT: "유지"},
                          ids[2]: {COL_VERDICT: "수정", COL_FIX_LABEL: "없는>라벨"}})

    ref = voc_monthly(mode="refresh", month=MONTH, storage=str(root))
    got = ref["label_audit"]
    assert (got["fixes"], got["confirmed"], len(got["issues"])) == (1, 1, 1) and "없는>라벨" in got["issues"][0]
    json.dumps(ref)
    table = pl.read_csv(storage.read_bytes(layout.label_fixes_key(PREFIX, MONTH)), infer_schema=False)
    assert table.filter(pl.col("decision") == "fix")["new_label"].to_list() == [new]
    assert table["recorded_by"].str.starts_with("refresh refresh_").all()
    df = training_frame(CsvSource(sample_csv), storage, PREFIX, until=MONTH)  # what voc-train's load step reads
    assert df.filter(pl.col("voc_id") == ids[0]).select("reviewed_subject_major", "reviewed_subject_minor").row(0) == split_label(new)
    # a full rerun keeps the reviewers' cells and offers no decided row as new
    again = voc_monthly(mode="full", month=MONTH, building_ids=["2"], storage=str(root))
    assert again["label_audit"]["rows"] == 3
    sheet = XlsxReviewBackend(storage, PREFIX).read_audit(MONTH)
    assert dict(zip(sheet["voc_id"].to_list(), sheet[COL_VERDICT].to_list())) == {ids[0]: "수정", ids[1]: "유지", ids[2]: "수정"}
