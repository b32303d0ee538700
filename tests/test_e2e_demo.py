"""End to end on the shipped real complaints: `voc demo` (train → full → simulated review →
refresh) through the real CLI and a real Prefect API, then a `full` rerun that must not touch a
reviewer's cell."""

from __future__ import annotations

import io
import re

import polars as pl
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

MONTH = "2019-11"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, prefect_server):
    from flows.cli import app

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
    storage, out = demo_run
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


def test_reviewed_csvs_carry_the_real_labels(demo_run, sample_df):
    storage, _ = demo_run
    truth = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == MONTH)
    reviewed = pl.concat([pl.read_csv(p, infer_schema=False) for p in _csvs(storage, "reviewed").values()], how="diagonal")
    assert sorted(reviewed["voc_id"].to_list()) == sorted(truth["voc_id"].to_list())
    j = reviewed.join(truth.select("voc_id", "reviewed_subject_minor"), on="voc_id", suffix="_truth")
    done = j.filter(pl.col("is_reviewed").str.to_lowercase() == "true")
    assert done.height >= 40
    labelled = done.filter(pl.col("reviewed_subject_minor_truth").is_not_null())
    assert (labelled["subject_minor"] == labelled["reviewed_subject_minor_truth"]).all()
    changed = labelled.filter(pl.col("subject_source") == "reviewer")
    assert changed.height >= 1


def test_dashboards_exist_and_reflect_reviewed_labels(demo_run, sample_df):
    storage, _ = demo_run
    reviewed = _csvs(storage, "reviewed")
    for b in ("1", "2"):
        html = (_month_dir(storage) / b / f"dashboard_{b}_201911.html").read_text("utf-8")
        assert "<html" in html and "201911" in html.replace("-", "") and "data:image/png;base64," in html
        assert not re.search(r"<script[^>]+src=\"https?://", html)
        labels = set(pl.read_csv(reviewed[b], infer_schema=False)["subject_minor"].to_list())
        assert all(lab in html for lab in labels)


def test_full_rerun_keeps_every_reviewer_cell(demo_run, prefect_server):
    from openpyxl import load_workbook

    from flows.cli import app

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
    res = CliRunner().invoke(app, ["run", "--mode", "full", "--month", MONTH, "--storage", str(storage)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    after, n_after = cells()
    assert n_after == n_before == 45
    assert after == before  # cell by cell: no reviewer value changed, no row added
