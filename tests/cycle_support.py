"""The simulated month of a reviewer shared by the cycle tests (tests/test_cycle.py through the
CLI, tests/test_cycle_deployments.py through deployments): 60 % of the month's sheet reviewed
with the true labels (corrected or confirmed), the rest left open, and one open row committed
with a subject outside the taxonomy."""

from __future__ import annotations

from typing import Any

import polars as pl

from voc.review import COL_DONE, COL_VOC_ID, REVIEWER_LABEL_COLUMNS, is_done, simulate_review

__all__ = ["INVALID", "next_month", "committed_subject_labels", "review_month_partially"]

INVALID = "없는과(검수오류)"
S_MAJ, S_MIN = REVIEWER_LABEL_COLUMNS["subject"]


def next_month(month: str) -> str:
    """``"2019-12"`` → ``"2020-01"``."""
    y, m = map(int, month.split("-"))
    return f"{y + (m == 12):04d}-{m % 12 + 1:02d}"


def committed_subject_labels(sheet: pl.DataFrame, taxonomy: Any) -> int:
    """Done rows whose subject becomes a label: empty 검수_ cells (confirming the trained model's
    tag) or a pair the active taxonomy offers; an invalid pair is no label."""
    active = {(r.major, r.minor) for r in taxonomy.rows_of("subject")}
    n = 0
    for r in sheet.iter_rows(named=True):
        if not is_done(r[COL_DONE]):
            continue
        a, b = (r[S_MAJ] or "").strip(), (r[S_MIN] or "").strip()
        n += (not a and not b) or (a, b) in active
    return n


def review_month_partially(
    backend: Any, month: str, month_ids: list[str], truth: pl.DataFrame, taxonomy: Any, *, seed: int
) -> tuple[str, int]:
    """Review ``month``'s sheet in ``backend`` and save it.

    Returns ``(voc_id of the row committed with INVALID, subject labels the sheet commits)``.
    """
    sheet = backend.read_month(month)
    assert sheet is not None and sheet.height == len(month_ids)
    sheet = simulate_review(sheet, truth, fraction=0.6, seed=seed, taxonomy=taxonomy)
    open_rows = [j for j, d in enumerate(sheet[COL_DONE].to_list()) if not is_done(d)]
    assert open_rows, "some rows stay open"
    bad = sheet[COL_VOC_ID][open_rows[0]]
    sheet = sheet.with_columns(
        pl.when(pl.col(COL_VOC_ID) == bad).then(pl.lit(INVALID)).otherwise(pl.col(S_MIN)).alias(S_MIN),
        pl.when(pl.col(COL_VOC_ID) == bad).then(pl.lit("Y")).otherwise(pl.col(COL_DONE)).alias(COL_DONE),
    )
    expected_new = committed_subject_labels(sheet, taxonomy)
    backend.write_month(month, sheet, taxonomy)
    return bad, expected_new
