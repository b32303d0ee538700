"""The production loop, month after month, through the command line: for 2019-09 … 2019-12 of
the shipped real complaints, ``full`` → a partial review (corrections, confirmations, rows left
open, one invalid value) → ``refresh`` → ``train`` → next month.

The source is the sample with the labels of those four months removed (a customer's new months
arrive unlabelled), so every label the loop gains comes from the review sheet: the training set
must grow by exactly the labels the reviewer committed, and nothing an invalid cell said may
become a label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from cycle_support import INVALID, next_month, review_month_partially
from typer.testing import CliRunner

from config.settings import get_settings
from flows.adapters.model_store import load_champion
from flows.cli.main import app
from flows.resources import open_review_backend, open_storage

MONTHS = ["2019-09", "2019-10", "2019-11", "2019-12"]

pytestmark = pytest.mark.slow


def _cli(*args: str) -> dict[str, Any]:
    """``voc ARGS --json`` in-process; the run summary (the JSON last line of stdout)."""
    res = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, f"voc {' '.join(args)} exited {res.exit_code}:\n{res.output[-3000:]}"
    line = [x for x in res.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line)


def _newest(files: list[Path]) -> Path:
    return max(files, key=lambda p: p.name.rsplit("_", 2)[-2:])


def _outputs(month_dir: Path, kind: str) -> pl.DataFrame:
    """The newest ``{kind}_*.csv`` of every building of the month, concatenated."""
    frames = []
    for b in sorted(p for p in month_dir.iterdir() if p.is_dir()):
        files = list(b.glob(f"{kind}_*.csv"))
        assert files, f"building {b.name}: no {kind} CSV"
        frames.append(pl.read_csv(_newest(files), infer_schema=False))
    return pl.concat(frames, how="diagonal")


def test_four_months_full_review_refresh_train(
    tmp_path: Path, prefect_server, sample_raw, sample_df, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "voc.csv"
    new = pl.col("created_at").str.slice(0, 7) >= MONTHS[0]
    sample_raw.with_columns(
        [pl.when(new).then(None).otherwise(pl.col(c)).alias(c) for c in ("subject_major", "subject_minor")]
    ).write_csv(src)
    store = tmp_path / "store"
    common = ["--storage", str(store), "--source", str(src)]
    settings = get_settings(storage=str(store), source=str(src))
    storage = open_storage(settings)
    root = store / settings.prefix

    monkeypatch.setenv("VOC_MODEL__LABEL_AUDIT", "true")  # the first training audits its labels (issue 25)
    t = _cli("train", "--until", MONTHS[0], *common)
    monkeypatch.setenv("VOC_MODEL__LABEL_AUDIT", "false")  # 30-60 s a training: once is enough here
    labels = t["labels"]["subject"]
    assert labels > 500 and t["labels"]["work"] == 0 and t["status"] == "champion"
    audit_dir = root / "models" / t["model"]
    suspects = pl.read_csv(audit_dir / "label_audit.csv", infer_schema=False)
    assert suspects.height > 0 and (audit_dir / "label_audit.html").is_file()
    figures = []
    for i, month in enumerate(MONTHS):
        month_ids = sorted(sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == month)["voc_id"].to_list())
        month_dir = root / month.replace("-", "")

        full = _cli("run", "--mode", "full", "--month", month, *common)
        assert not full["failed"] and full["rows"] == len(month_ids)
        tagged = _outputs(month_dir, "tagged")
        assert sorted(tagged["voc_id"].to_list()) == month_ids, "every VOC exactly once in the tagged CSVs"
        for b in full["buildings"]:
            assert (month_dir / b["building_id"] / f"dashboard_{b['building_id']}_{month.replace('-', '')}.html").is_file()
        if i == 0:  # the champion's label audit reaches reviewers as the 이전 라벨 점검 sheet
            _check_audit_sheet(month_dir / f"review_{month.replace('-', '')}.xlsx", suspects, full)

        # the reviewer: 60 % reviewed with the true labels, the rest open, one invalid subject
        taxonomy = load_champion(settings, storage)[0].taxonomy
        truth = sample_df.filter(pl.col("voc_id").is_in(month_ids))
        bad, expected_new = review_month_partially(
            open_review_backend(settings, storage), month, month_ids, truth, taxonomy, seed=i
        )

        ref = _cli("run", "--mode", "refresh", "--month", month, *common)
        assert not ref["failed"]
        assert sum(b["review_issues"] for b in ref["buildings"]) >= 1, "the invalid cell is reported"
        reviewed = _outputs(month_dir, "reviewed")
        assert sorted(reviewed["voc_id"].to_list()) == month_ids, "every VOC exactly once in the reviewed CSVs"
        row = reviewed.filter(pl.col("voc_id") == bad).row(0, named=True)
        assert row["subject_source"] == "model" and row["is_reviewed"] == "false"
        assert INVALID not in reviewed["subject_minor"].to_list() + reviewed["reviewed_subject_minor"].to_list()
        assert sum(b["reviewed"] for b in ref["buildings"]) == expected_new

        t = _cli("train", "--until", next_month(month), *common)
        assert t["labels"]["subject"] == labels + expected_new, "the training set grows by exactly the reviewed labels"
        assert t["labels"]["work"] == 0, "keyword guesses of the work type never become labels"
        assert t["status"] in ("champion", "candidate") and t["decision"]
        meta = json.loads((root / "models" / t["model"] / "meta.json").read_text("utf-8"))
        assert meta["status"] == t["status"] and meta["decision"] == t["decision"]
        champion = json.loads((root / "models" / "champion.json").read_text("utf-8"))
        assert (champion["name"] == t["model"]) == (t["status"] == "champion")
        figures.append(
            {"month": month, "vocs": len(month_ids), "labels_added": expected_new, "labels_total": t["labels"]["subject"],
             "model": t["model"], "status": t["status"], "decision": t["decision"]}
        )
        labels = t["labels"]["subject"]
    print("\ncycle figures:\n" + "\n".join(json.dumps(f, ensure_ascii=False) for f in figures))
    _check_portfolio(root, sample_df)


def _check_audit_sheet(workbook: Path, suspects: pl.DataFrame, full: dict[str, Any]) -> None:
    """Issue 25: the first ``full`` after an audited training carries the audit's top suspects in
    the workbook's 이전 라벨 점검 sheet, each one a VOC the audit ranked, with 판정 left to the reviewer."""
    import openpyxl

    from voc.label_fixes import AUDIT_SHEET

    assert full["label_audit"]["rows"] > 0, full.get("label_audit")
    wb = openpyxl.load_workbook(workbook)
    assert AUDIT_SHEET in wb.sheetnames
    rows = list(wb[AUDIT_SHEET].iter_rows(values_only=True))
    header = [str(c) for c in rows[0]]
    ids = {str(r[header.index("voc_id")]) for r in rows[1:] if r[header.index("voc_id")] is not None}
    assert len(ids) == full["label_audit"]["rows"] and ids <= set(suspects["voc_id"].to_list())
    assert all(r[header.index("판정")] in (None, "") for r in rows[1:])


def _check_portfolio(root: Path, sample_df: pl.DataFrame) -> None:
    """Issue 24: after the cycle the portfolio page (``{prefix}/index.html`` and its JSON) counts
    every building × month as the stored CSVs do, lists 2019-11's mass complaint, its links open
    stored files, and it renders offline in headless Chromium with every building and month."""
    import re
    import shutil
    import subprocess
    from urllib.parse import unquote

    data = json.loads((root / "index.json").read_text("utf-8"))
    months = [m.replace("-", "") for m in MONTHS]
    assert [m for m in data["heatmap_months"] if m in months] == months
    for b in data["buildings"]:
        for yyyymm, count in zip(data["heatmap_months"], b["counts"]):
            month_dir = root / yyyymm / b["building_id"]
            if yyyymm not in months or not month_dir.is_dir():
                continue
            assert count == _outputs(root / yyyymm, "tagged").filter(pl.col("building_id") == b["building_id"]).height
    in_cycle = sample_df.filter(pl.col("created_at").dt.strftime("%Y%m").is_in(months))
    assert {b["building_id"] for b in data["buildings"]} == set(in_cycle["building_id"].unique().to_list())
    assert any(i["size"] >= 20 and "신선초" in i["title"] for i in data["mass_issues"]), data["mass_issues"]
    page = root / "index.html"
    html = page.read_text("utf-8")
    hrefs = re.findall(r'<a href="([^"#]+)"', html)
    assert hrefs and all((root / unquote(h)).is_file() for h in hrefs if "://" not in h), hrefs
    assert "https://cdn" not in html and "<script src=\"http" not in html
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        ).stdout
        assert "신선초" in dom and all(b["name"] in dom for b in data["buildings"])
