"""The simulated reviewer (demos and tests): answers the month's review sheet with the source's
real labels, as a building manager would in the spreadsheet."""

from __future__ import annotations

from typing import Any

import polars as pl

from config.settings import get_settings
from flows.adapters.model_store import load_champion
from flows.resources import open_source, open_storage

__all__ = ["simulate_month_review"]


def simulate_month_review(
    *,
    month: str,
    fraction: float = 1.0,
    seed: int = 0,
    storage: str | None = None,
    source: str | None = None,
    source_encoding: str | None = None,
) -> dict[str, Any]:
    """Review ``fraction`` of the month's sheet rows with the real labels and save the sheet.

    Raises
    ------
    FileNotFoundError
        When the month has no review sheet yet (run ``full`` or ``tagging-only`` first).
    """
    from flows.resources import open_review_backend
    from voc.review import simulate_review

    settings = get_settings(storage=storage, source=source, source_encoding=source_encoding)
    store = open_storage(settings)
    backend = open_review_backend(settings, store)
    missing = f"no review sheet for {month} at {backend.location(month)}; run `voc run --mode full` first"
    if backend.read_month(month) is None:
        raise FileNotFoundError(missing)
    truth = open_source(settings).read_month(month)
    tagger, _ = load_champion(settings, store)

    def review(sheet: pl.DataFrame | None) -> tuple[pl.DataFrame, tuple[pl.DataFrame, pl.DataFrame]]:
        if sheet is None:
            raise FileNotFoundError(missing)
        reviewed = simulate_review(sheet, truth, fraction=fraction, seed=seed, taxonomy=tagger.taxonomy)
        return reviewed, (sheet, reviewed)

    # read-change-write with a version check, like a run's sync (flows.adapters.review_backends.update_month)
    where, (sheet, reviewed) = backend.update_month(month, review, tagger.taxonomy)
    done_before = _done(sheet)
    done_after = _done(reviewed)
    changed = _changed(sheet, reviewed)
    return {"month": month, "reviewed": done_after - done_before, "changed": changed, "location": where}


def _done(sheet: pl.DataFrame) -> int:
    from voc.review import is_done

    return sum(is_done(v) for v in sheet["검수완료"].to_list())


def _changed(before: pl.DataFrame, after: pl.DataFrame) -> int:
    cols = [c for c in after.columns if c.startswith("검수_")]
    b = before.select(["voc_id", *cols]).rename({c: f"{c}__b" for c in cols})
    j = after.select(["voc_id", *cols]).join(b, on="voc_id", how="left")
    n = 0
    for row in j.iter_rows(named=True):
        if any((row[c] or "") != (row[f"{c}__b"] or "") for c in cols):
            n += 1
    return n
