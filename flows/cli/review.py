"""``voc review pull`` / ``voc review push``: the review workbook where reviewers are.

``register(review_app)`` adds the commands to the ``voc review`` sub-app (``flows/cli/main.py``)::

    voc review pull --month YYYY-MM [--building-id B] [-o FILE] [--force] [--storage …]
    voc review push FILE [--month YYYY-MM] [--storage …] [--json]

The logic (pull record, per-row acceptance, compare-and-swap) is in
:mod:`flows.review_exchange`. Exit status: ``pull`` 0, or 2 when there is nothing to pull or the
target file exists; ``push`` 0 when every changed row was accepted, 1 when a row was rejected
(on the data sheet or on 이전 라벨 점검; the accepted rows are stored all the same) or the workbook kept changing under it, 2 for a file
it cannot use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, overload

import typer

__all__ = ["register", "review_pull", "review_push"]

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Storage root holding the workbook: a directory, s3://bucket or s3://bucket/root (default VOC_STORAGE or ./voc-data)",
    ),
]


@overload
def _month(value: str | None, *, required: Literal[True]) -> str: ...
@overload
def _month(value: str | None, *, required: Literal[False]) -> str | None: ...
def _month(value: str | None, *, required: bool) -> str | None:
    """``--month`` as ``YYYY-MM``; None when absent and not ``required`` (else BadParameter)."""
    from voc.months import parse_month

    if value in (None, ""):
        if required:
            raise typer.BadParameter("--month is required (YYYY-MM)")
        return None
    try:
        return parse_month(value)
    except ValueError as e:
        raise typer.BadParameter(f"--month {value!r}: {e}") from None


def review_pull(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    building_id: Annotated[str | None, typer.Option("--building-id", help="Only this building's rows")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (default ./review_YYYYMM[_B].xlsx)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists")] = False,
    storage: StorageOpt = None,
) -> None:
    """Download the month's review workbook (검수 시트) to edit in Excel; `voc review push` sends it back."""
    from config.settings import get_settings
    from flows.review_exchange import ReviewExchangeError, pull_review
    from voc.schema import id_problem

    m = _month(month, required=True)
    if building_id is not None and (problem := id_problem(building_id)) is not None:
        raise typer.BadParameter(f"--building-id {building_id!r}: {problem}")
    try:
        got = pull_review(get_settings(storage=storage), m, building_id=building_id, out=output, force=force)
    except ReviewExchangeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    which = f"building {got.building_id}, " if got.building_id else ""
    typer.echo(f"pulled {got.month} ({which}{got.rows} rows) from {got.location} → {got.path}")
    typer.echo("edit the yellow 검수 columns (검수완료 = Y when done), then: voc review push " + str(got.path))


def review_push(
    file: Annotated[Path, typer.Argument(help="The edited .xlsx (from `voc review pull`, or the workbook downloaded from its link)")],
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM (default: the file's)")] = None,
    storage: StorageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Upload an edited review workbook: only the reviewer columns of its rows are merged into the
    stored one (compare-and-swap); prints the rows accepted and the rows rejected with the reason."""
    from config.settings import get_settings
    from flows.adapters.review_backends import ReviewConflictError
    from flows.review_exchange import ReviewExchangeError, push_review

    m = _month(month, required=False)
    try:
        res = push_review(get_settings(storage=storage), file, month=m)
    except ReviewExchangeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except ReviewConflictError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(res.to_dict(), ensure_ascii=False))
    else:
        where = f"→ {res.location}" if res.written else f"(nothing written to {res.location})"
        typer.echo(f"pushed {file} for {res.month} {where}")
        shown = ", ".join(f"row {r} ({v})" for r, v in res.accepted[:20]) + (" …" if len(res.accepted) > 20 else "")
        typer.echo(f"  accepted {len(res.accepted)} row(s)" + (f": {shown}" if shown else ""))
        typer.echo(f"  unchanged {res.unchanged} row(s)")
        typer.echo(f"  rejected {len(res.rejected)} row(s)" + (":" if res.rejected else ""))
        for r in res.rejected:
            typer.echo(f"    {r}")
        for n in res.notes:
            typer.echo(f"  note: {n}")
        if not res.checked_against_pull:
            typer.echo("  note: the file has no pull record (not from `voc review pull`): changes others made since were not checked")
        _echo_label_audit(res.label_audit)
    if res.rejected or (res.label_audit and res.label_audit["rejected"]):
        raise typer.Exit(1)


def _echo_label_audit(audit: dict | None) -> None:
    """The push's lines about the 이전 라벨 점검 sheet (``flows.adapters.label_review.push_audit_sheet``)."""
    if not audit:
        return
    counts = f"accepted {len(audit['accepted'])}, unchanged {audit['unchanged']}, rejected {len(audit['rejected'])}"
    typer.echo(f"  이전 라벨 점검: {counts} row(s)")
    for r in audit["rejected"]:
        typer.echo(f"    row {r['sheet_row']} (voc_id={r['voc_id']}): " + "; ".join(r["reasons"]))
    fixes = audit.get("fixes")
    if fixes:
        typer.echo(f"  label fixes: {fixes['fixes']} fixed, {fixes['confirmed']} confirmed → {fixes['key']}")
        for issue in fixes["issues"]:
            typer.echo(f"    issue: {issue}")


def register(review_app: typer.Typer) -> None:
    """Add ``pull`` and ``push`` to the ``voc review`` sub-app."""
    review_app.command("pull")(review_pull)
    review_app.command("push")(review_push)
