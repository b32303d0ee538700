"""End to end on the shipped real complaints: `voc demo` (train → full → simulated review →
refresh) through the real CLI and a real Prefect API, then a `full` rerun that must not touch a
reviewer's cell."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from voc.review import COL_DONE, COL_VOC_ID, REVIEWER_LABEL_COLUMNS, is_done
from voc.taxonomy import DIMENSIONS

pytestmark = pytest.mark.slow

MONTH = "2019-11"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, prefect_server):
    from flows.cli.main import app

    storage = tmp_path_factory.mktemp("voc-data")
    res = CliRunner().invoke(app, ["demo", "--month", MONTH, "--storage", str(storage)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return storage, res.output


def _month_dir(storage):
    return storage / "stat" / "voc-dev" / "201911"


def _csvs(storage, kind):
    out = {}
    for p in sorted(_month_dir(storage).glob(f"*/{kind}_*.csv")):
        out.setdefault(p.parent.name, []).append(p)
    return {b: max(ps, key=lambda p: p.name) for b, ps in out.items()}


def test_demo_prints_where_outputs_are(demo_run):
    _, out = demo_run
    assert "Review workbook" in out and "review_201911.xlsx" in out
    assert out.count("Dashboard       :") == 2 and out.count("Reviewed CSV    :") == 2


def test_every_voc_of_the_month_tagged_exactly_once(demo_run, sample_df):
    storage, _ = demo_run
    truth = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == MONTH)
    assert truth.height == 45
    tagged = _csvs(storage, "tagged")
    assert set(tagged) == {"1", "2"}
    frames = [pl.read_csv(p, infer_schema=False) for p in tagged.values()]
    ids = [v for f in frames for v in f["voc_id"].to_list()]
    assert sorted(ids) == sorted(truth["voc_id"].to_list())  # each once, none lost
    for f in frames:
        assert f["subject_minor"].null_count() == 0 and f["work_minor"].null_count() == 0
        conf = f["subject_confidence"].cast(pl.Float64)
        assert conf.is_between(0, 1).all()
    # the garbled/unlabelled row of the month is tagged too
    unlabelled = truth.filter(pl.col("reviewed_subject_minor").is_null())["voc_id"].to_list()
    assert unlabelled and set(unlabelled) <= set(ids)


def _workbook_path(storage):
    return _month_dir(storage) / "review_201911.xlsx"


def _sheet_rows(storage) -> dict[str, dict[str, str]]:
    """The review workbook's data sheet as the reviewer left it: voc_id → {header: cell text}."""
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(_workbook_path(storage).read_bytes()), read_only=True).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    header = ["" if h is None else str(h) for h in rows[0]]
    out = {}
    for r in rows[1:]:
        cells = {h: "" if v is None else str(v).strip() for h, v in zip(header, r)}
        out[cells[COL_VOC_ID]] = cells
    return out


def _latest(storage, kind) -> pl.DataFrame:
    return pl.concat([pl.read_csv(p, infer_schema=False) for p in _csvs(storage, kind).values()], how="diagonal")


def _expected_after_refresh(sheet: dict[str, dict[str, str]], tagged: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """What the refresh must make of each tagged row, from the workbook alone (voc.review's merge
    rules): a row marked done takes the reviewer's label (source ``reviewer``) where its 검수_
    cells hold one, and confirms the model's tag where they are empty and the tag is a trained
    model's; every other row and dimension keeps the machine's tag and source, unreviewed."""
    out: dict[str, dict[str, Any]] = {}
    for row in tagged.iter_rows(named=True):
        cells = sheet[row["voc_id"]]
        done = is_done(cells[COL_DONE])
        exp: dict[str, Any] = {}
        for dim in DIMENSIONS:
            a, b = (cells[c] for c in REVIEWER_LABEL_COLUMNS[dim])
            machine = (row[f"{dim}_major"], row[f"{dim}_minor"], row[f"{dim}_source"])
            if done and b:
                exp[dim] = (a or b, b, "reviewer")
            elif done and not a and row[f"{dim}_source"] == "model":
                exp[dim] = (machine[0], machine[1], "reviewer")
            else:
                exp[dim] = machine
            exp[f"{dim}_reviewed"] = exp[dim][2] == "reviewer"
        exp["is_reviewed"] = any(exp[f"{d}_reviewed"] for d in DIMENSIONS)
        out[row["voc_id"]] = exp
    return out


def _actual(reviewed: pl.DataFrame) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in reviewed.iter_rows(named=True):
        got: dict[str, Any] = {d: (row[f"{d}_major"], row[f"{d}_minor"], row[f"{d}_source"]) for d in DIMENSIONS}
        for d in DIMENSIONS:
            got[f"{d}_reviewed"] = row[f"{d}_reviewed"].lower() == "true"
        got["is_reviewed"] = row["is_reviewed"].lower() == "true"
        out[row["voc_id"]] = got
    return out


def test_reviewed_csvs_follow_the_review_workbook(demo_run, sample_df):
    """The refresh against the workbook the simulated reviewer wrote, row by row: its labels
    where the reviewer typed one, the machine's tag confirmed where the cells stayed empty, and
    nothing reviewed that the reviewer did not mark done."""
    storage, _ = demo_run
    truth = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == MONTH)
    sheet, tagged, reviewed = _sheet_rows(storage), _latest(storage, "tagged"), _latest(storage, "reviewed")
    assert sorted(reviewed["voc_id"].to_list()) == sorted(truth["voc_id"].to_list()) == sorted(sheet)
    expected, actual = _expected_after_refresh(sheet, tagged), _actual(reviewed)
    for vid, exp in expected.items():
        assert actual[vid] == exp, vid
    marked = sum(is_done(c[COL_DONE]) for c in sheet.values())
    assert marked >= 40 and sum(a["is_reviewed"] for a in actual.values()) == marked
    # the month exercises both rules: corrections (reviewer's label differs from the model's) and
    # confirmations (empty cells: the model's tag becomes the label)
    model_tag = {r["voc_id"]: (r["subject_major"], r["subject_minor"]) for r in tagged.iter_rows(named=True)}
    corrected = [v for v, a in actual.items() if a["subject"][2] == "reviewer" and a["subject"][:2] != model_tag[v]]
    confirmed = [v for v, a in actual.items() if a["subject"][2] == "reviewer" and a["subject"][:2] == model_tag[v]]
    assert corrected and confirmed


def test_dashboards_exist_and_reflect_reviewed_labels(demo_run, sample_df):
    from voc.dashboard import COMPACT_BELOW

    storage, _ = demo_run
    reviewed = _csvs(storage, "reviewed")
    for b in ("1", "2"):
        html = (_month_dir(storage) / b / f"dashboard_{b}_201911.html").read_text("utf-8")
        assert "<html" in html and "201911" in html.replace("-", "")
        assert not re.search(r"<script[^>]+src=\"https?://", html)
        rows = pl.read_csv(reviewed[b], infer_schema=False)
        # the word cloud is on full pages only; a building with a handful of VOCs gets the compact one
        assert ("data:image/png;base64," in html) == (rows.height >= COMPACT_BELOW), (b, rows.height)
        assert all(lab in html for lab in set(rows["subject_minor"].to_list()))


def test_full_rerun_keeps_every_reviewer_cell(demo_run, prefect_server):
    from openpyxl import load_workbook

    from flows.cli.main import app

    storage, _ = demo_run
    wb_path = _month_dir(storage) / "review_201911.xlsx"

    def cells():
        ws = load_workbook(io.BytesIO(wb_path.read_bytes())).worksheets[0]
        rows = list(ws.iter_rows(values_only=True))
        header = rows[0]
        rev = [i for i, h in enumerate(header) if h and (str(h).startswith("검수") )]
        idx = header.index("voc_id")
        return {r[idx]: tuple(r[i] for i in rev) for r in rows[1:]}, len(rows) - 1

    before, n_before = cells()
    index_before = json.loads((_month_dir(storage) / "index.json").read_text("utf-8"))
    refreshed = {b: _actual(pl.read_csv(p, infer_schema=False)) for b, p in _csvs(storage, "reviewed").items()}
    assert all(index_before[b]["n_reviewed"] > 0 for b in ("1", "2"))  # the refresh of the demo
    res = CliRunner().invoke(app, ["run", "--mode", "full", "--month", MONTH, "--storage", str(storage)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    after, n_after = cells()
    assert n_after == n_before == 45
    assert after == before  # cell by cell: no reviewer value changed, no row added
    _check_rerun_keeps_the_reviewed_month(storage, res.output, index_before, refreshed)


def _check_rerun_keeps_the_reviewed_month(storage, output: str, index_before: dict, refreshed: dict) -> None:
    """A ``full`` rerun of a reviewed month (issue 20): the index keeps the review counts, the
    month dashboard shows the reviewed labels, the run's reviewed CSV holds what the refresh
    made of the same sheet, and its tagged CSV stays model output."""
    from voc.schema import TAGGED_COLUMNS

    run_id = re.search(r"run_id=(full_\d{8}_\d{6})", output).group(1)
    index = json.loads((_month_dir(storage) / "index.json").read_text("utf-8"))
    for b in ("1", "2"):
        n = index_before[b]["n_reviewed"]
        assert re.search(rf"building\s+{b} .* ok .*reviewed={n} ", output), output
        for k in ("n_vocs", "n_reviewed", "n_low_confidence_unreviewed"):
            assert index[b][k] == index_before[b][k], (b, k)
        tagged = pl.read_csv(_month_dir(storage) / b / f"tagged_{b}_201911_{run_id}.csv", infer_schema=False)
        assert tagged.columns == list(TAGGED_COLUMNS)  # machine tags only
        assert set(tagged["subject_source"]) | set(tagged["work_source"]) <= {"model", "keyword"}
        reviewed = pl.read_csv(_month_dir(storage) / b / f"reviewed_{b}_201911_{run_id}.csv", infer_schema=False)
        assert _actual(reviewed) == refreshed[b]  # same model, same sheet: the refresh's labels
        assert index[b]["n_estimated"] == {d: int((reviewed[f"{d}_source"] == "keyword").sum()) for d in DIMENSIONS}
        html = (_month_dir(storage) / b / f"dashboard_{b}_201911.html").read_text("utf-8")
        assert run_id in html and "검수 반영" in html
        assert re.search(rf"검수 진행\D*{n} / {index[b]['n_vocs']}건", re.sub(r"<[^>]+>", " ", html))
        assert all(lab in html for lab in set(reviewed.filter(pl.col("subject_source") == "reviewer")["subject_minor"]))
    page = (_month_dir(storage) / "index.html").read_text("utf-8")
    total = sum(e["n_reviewed"] for e in index.values() if isinstance(e, dict))  # buildings; "new_topics" is a list
    assert f"{total} / 45건" in re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)) and "검수 전" not in page


def test_refresh_follows_a_reviewers_later_edits(demo_run, prefect_server):
    """The reviewer reopens a corrected row and corrects a confirmed one in the workbook; the next
    refresh must give the reopened row back the machine's tag (unreviewed) and take the new label."""
    from openpyxl import load_workbook

    from flows.cli.main import app

    storage, _ = demo_run
    sheet = _sheet_rows(storage)
    assert not any(is_done(c.get("묶음 적용", "")) for c in sheet.values())  # no group decisions in the demo
    tagged = {r["voc_id"]: r for r in _latest(storage, "tagged").iter_rows(named=True)}
    s_maj, s_min = REVIEWER_LABEL_COLUMNS["subject"]
    alone = {v: c for v, c in sheet.items() if is_done(c[COL_DONE]) and not c.get("묶음", "")}
    corrected = [v for v, c in alone.items() if c[s_min] and c[s_min] != tagged[v]["subject_minor"]]
    confirmed = [v for v, c in alone.items() if not c[s_min] and tagged[v]["subject_source"] == "model"]
    reopen, recorrect = corrected[0], confirmed[0]
    new_label = next(
        (c[s_maj], c[s_min]) for c in sheet.values() if c[s_min] and c[s_min] != tagged[recorrect]["subject_minor"]
    )

    wb = load_workbook(_workbook_path(storage))
    ws = wb.worksheets[0]
    header = [c.value for c in ws[1]]
    col = {h: header.index(h) + 1 for h in (COL_VOC_ID, COL_DONE, s_maj, s_min)}
    for r in range(2, ws.max_row + 1):
        vid = str(ws.cell(r, col[COL_VOC_ID]).value)
        if vid == reopen:
            ws.cell(r, col[COL_DONE]).value = "N"
        elif vid == recorrect:
            ws.cell(r, col[s_maj]).value, ws.cell(r, col[s_min]).value = new_label
    wb.save(_workbook_path(storage))
    edited = _sheet_rows(storage)
    assert edited[reopen][COL_DONE] == "N" and (edited[recorrect][s_maj], edited[recorrect][s_min]) == new_label

    res = CliRunner().invoke(app, ["run", "--mode", "refresh", "--month", MONTH, "--storage", str(storage)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    actual = _actual(_latest(storage, "reviewed"))
    expected = _expected_after_refresh(edited, _latest(storage, "tagged"))
    assert actual == expected
    t = tagged[reopen]
    assert actual[reopen]["subject"] == (t["subject_major"], t["subject_minor"], t["subject_source"])
    assert actual[reopen]["is_reviewed"] is False
    assert actual[recorrect]["subject"] == (*new_label, "reviewer")
    assert sum(a["is_reviewed"] for a in actual.values()) == sum(is_done(c[COL_DONE]) for c in sheet.values()) - 1
