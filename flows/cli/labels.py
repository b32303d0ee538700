"""``voc labels audit``: rank the labelled history's likely label errors (confident learning,
:mod:`voc.label_audit`).

``register(app)`` adds the ``labels`` group to the main ``voc`` Typer app (``flows/cli/main.py``)::

    voc labels audit [--source CSV|DSN] [--until YYYY-MM] --out FILE.csv
                     [--recipe NAME] [--folds N] [--all] [--reply/--no-reply] [--seed N] [--json]

The source is opened like every command's (``--source``, ``VOC_SOURCE`` or the shipped sample;
:func:`flows.resources.open_source`); its labelled rows (``major>minor`` per dimension, labels
canonicalised by the taxonomy as ``voc train`` does) registered before ``--until`` are audited
per dimension with at least two classes. ``--out`` gets one row per likely label error (all rows
with ``--all``): ``dimension, rank, voc_id, given_label, suggested_label, score, issue, judged``;
``FILE.overlaps.csv`` beside it the merge candidates (``dimension, class_a, class_b,
n_overlapping, joint_probability``). The last printed line is a JSON summary (label-health
score per dimension). Exit status 2 on unreadable input or too few labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register", "labels_app", "audit_command"]

labels_app = typer.Typer(help="Label quality (라벨 점검).", no_args_is_help=True)


def audit_command(
    out: Annotated[Path, typer.Option("--out", help="CSV of likely label errors (overlaps go to FILE.overlaps.csv)")],
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="VOC source: CSV path or postgresql:// DSN without password (default VOC_SOURCE or the shipped sample)",
        ),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Audit labelled rows registered before this month (YYYY-MM)")] = None,
    recipe: Annotated[
        str, typer.Option("--recipe", help="Recipe of voc.recipes.RECIPES whose out-of-fold probabilities judge the labels")
    ] = "default",
    folds: Annotated[int, typer.Option("--folds", min=2, help="Grouped folds (by building-month)")] = 5,
    all_rows: Annotated[bool, typer.Option("--all", help="Write every labelled row, ranked, not only the flagged ones")] = False,
    reply: Annotated[bool, typer.Option("--reply/--no-reply", help="Read the reply as the monthly tagger does")] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Storage root with the reviewed CSVs and label fixes (default VOC_STORAGE or ./voc-data)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON summary")] = False,
) -> None:
    """Rank likely label errors, overlapping classes and a label-health score per dimension
    (confident learning over out-of-fold probabilities of the current recipe), on the labels
    voc-train learns from (source, reviewed CSVs and reviewers' label fixes); labels a reviewer
    already kept or fixed on the 이전 라벨 점검 sheet are not listed again."""
    import polars as pl

    from config.settings import get_settings
    from flows.adapters.label_review import read_label_fixes
    from flows.adapters.sources import SourceError
    from flows.adapters.storage import StorageError
    from flows.resources import open_source, open_storage
    from flows.secrets_guard import DsnPasswordError, refuse_dsn_password
    from flows.train import training_frame
    from voc.label_audit import audit_frame
    from voc.label_fixes import decided_labels, drop_decided
    from voc.months import parse_month
    from voc.recipes import recipe as named_recipe
    from voc.schema import VOCInputError
    from voc.tagger import resolve_taxonomy
    from voc.taxonomy import default_taxonomy

    try:
        refuse_dsn_password(source, where="--source")
        named_recipe(recipe)
        month = parse_month(until) if until else None
        settings = get_settings(source=source, storage=storage)
        src, store = open_source(settings), open_storage(settings)
        df = training_frame(src, store, settings.prefix, until=month)  # what voc-train learns from
        settled = decided_labels(read_label_fixes(store, settings.prefix))
        base = src.read_taxonomy() or default_taxonomy()
        taxonomy, _ = resolve_taxonomy(base, df, use_reply=reply)
        audits = [drop_decided(a, settled)
                  for a in audit_frame(df, taxonomy, use_reply=reply, recipe=recipe, n_splits=folds, seed=seed)]
    except (DsnPasswordError, SourceError, StorageError, VOCInputError, ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not audits:
        typer.echo("error: no dimension holds labelled rows of at least two classes", err=True)
        raise typer.Exit(2)
    issues = pl.concat([a.issues.filter(pl.col("issue") | pl.lit(all_rows)).select(pl.lit(a.dimension).alias("dimension"), pl.all())
                        for a in audits], how="vertical")
    overlaps = pl.concat([a.overlaps.select(pl.lit(a.dimension).alias("dimension"), pl.all()) for a in audits], how="vertical")
    out.parent.mkdir(parents=True, exist_ok=True)
    issues.write_csv(out)
    over_path = out.with_suffix(".overlaps.csv")
    overlaps.write_csv(over_path)
    summary: dict[str, Any] = {"out": str(out), "overlaps": str(over_path), "until": month,
                               "dimensions": [a.summary() for a in audits]}
    if not as_json:
        for a in audits:
            typer.echo(f"{a.dimension}: {a.n_rows} labelled VOCs, {a.n_classes} classes; label health {a.health:.3f}; "
                       f"{a.n_issues} likely label errors")
            for r in a.overlaps.head(3).iter_rows(named=True):
                typer.echo(f"  overlapping: {r['class_a']} ↔ {r['class_b']} ({r['n_overlapping']} VOCs)")
        typer.echo(f"wrote {issues.height} rows to {out}, {overlaps.height} class pairs to {over_path}")
    typer.echo(json.dumps(summary, ensure_ascii=False, default=str))


def register(app: typer.Typer) -> None:
    """Add ``voc labels audit`` to ``app``."""
    labels_app.command("audit")(audit_command)
    app.add_typer(labels_app, name="labels")
