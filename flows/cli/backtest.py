"""``voc backtest``: train on one VOC CSV, tag another, print the metrics.

``register(app)`` adds the command to the main ``voc`` Typer app (``flows/cli/main.py``)::

    voc backtest --train A.csv --test B.csv [--label subject_minor|subject|work]
                 [--reply/--no-reply] [--model linear|hybrid|kobert|anchor] [--seed N] [--json]
                 [--select/--no-select] [--recipe NAME] [--candidates A,B,...]
                 [--kobert-base NAME_OR_DIR] [--kobert-epochs N]

Both CSVs are in the VOC schema and are read like ``flows.adapters.sources.CsvSource`` (every column as
text, :func:`voc.schema.validate_voc_frame`). The last line of the output is always one JSON
object (:func:`voc.backtest.backtest`); without ``--json`` a readable summary comes first.
``--model linear`` trains as ``voc train`` does: the recipe is chosen on the training CSV's own
history (:func:`voc.recipes.select_recipe`, rolling-origin folds, never worse than ``anchor``
there) and the summary lists the choice and every candidate's fold scores; ``--no-select`` trains
the default recipe, ``--recipe NAME`` one named recipe of :data:`voc.recipes.RECIPES`.
``--model kobert`` fine-tunes with ``voc.kobert_training.train_kobert_tagger`` (its own 20 %
held-out split for early stopping comes out of the training CSV).
Exit status 2 on unreadable input or an impossible backtest (the message says why).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register", "backtest_command", "format_summary", "recipe_lines"]


def format_summary(res: dict[str, Any], *, train: str, test: str, max_classes: int = 5) -> list[str]:
    """Readable lines for one :func:`voc.backtest.backtest` result."""
    cap, bound = res["review_capture"], res.get("review_capture_bound", {})
    lines = [
        f"backtest  label={res['label']}  model={res['model']}  reply={'yes' if res['use_reply'] else 'no'}  seed={res['seed']}",
        f"  train: {train}  {res['n_train']} labelled rows, {res['n_classes_train']} classes"
        f" ({res['n_train_unlabelled']} rows without the label left out)",
        f"  test : {test}  {res['n_test']} labelled rows ({res['n_test_unlabelled']} left out);"
        f" {res['unseen_label_share']:.1%} carry a label the training CSV never had",
        f"  accuracy {res['accuracy']:.3f}   macro-F1 {res['macro_f1']:.3f}   weighted-F1 {res['weighted_f1']:.3f}",
        f"  confidence: ECE (15 bins) {res['ece']:.3f}"
        + (f", error-detection AUROC {res['error_auroc']:.3f}" if res.get("error_auroc") is not None else ""),
        "  review the lowest-confidence 10/20/30 % → "
        + "/".join(f"{cap[k]:.0%}" for k in ("0.1", "0.2", "0.3"))
        + " of the errors"
        + (f" (best possible {'/'.join(f'{bound[k]:.0%}' for k in ('0.1', '0.2', '0.3'))})" if bound else ""),
        f"  review threshold (80 % of errors) {res['review_threshold']:.3f}",
    ]
    per = [(lab, v) for lab, v in res["per_class"].items() if v["support"] > 0]
    worst = sorted(per, key=lambda kv: (kv[1]["f1"], -kv[1]["support"]))[:max_classes]
    best = sorted(per, key=lambda kv: (-kv[1]["f1"], -kv[1]["support"]))[:max_classes]
    for title, rows in (("best classes", best), ("weakest classes", worst)):
        lines.append(f"  {title}: " + ", ".join(f"{lab} F1 {v['f1']:.2f} (n={v['support']})" for lab, v in rows))
    return lines + recipe_lines(res)


def recipe_lines(res: dict[str, Any]) -> list[str]:
    """The recipe trained and, after a selection, every candidate's pooled fold scores (chosen
    one marked ``←``); no lines for models without a recipe (hybrid, kobert)."""
    sel = res.get("selection")
    if not res.get("recipe"):
        return []
    if not sel:
        return [f"  recipe: {res['recipe']}"]
    lines = [f"  recipe: {sel['chosen']}, chosen on the training CSV's history: {sel['reason']}"]
    for c in sel["candidates"]:
        mark = "  ←" if c["recipe"] == sel["chosen"] else ""
        lines.append(f"    {c['recipe']:<22} macro-F1 {c['macro_f1']:.3f}  accuracy {c['accuracy']:.3f}{mark}")
    return lines


def backtest_command(
    train: Annotated[Path, typer.Option("--train", help="Training CSV in the VOC schema (rows with the label are used)")],
    test: Annotated[Path, typer.Option("--test", help="Test CSV in the VOC schema (rows with the label are scored)")],
    label: Annotated[
        str, typer.Option("--label", help="subject_minor (minor alone), subject (major>minor) or work (work_major>work_minor)")
    ] = "subject_minor",
    reply: Annotated[
        bool, typer.Option("--reply/--no-reply", help="Read the reply too (--no-reply: registration-time text)")
    ] = True,
    model: Annotated[
        str, typer.Option("--model", help="linear (default CPU model), hybrid, anchor (production recipe) or kobert")
    ] = "linear",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the classifier")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result")] = False,
    kobert_base: Annotated[
        str | None, typer.Option("--kobert-base", help="kobert only: base model name or local directory")
    ] = None,
    kobert_epochs: Annotated[int | None, typer.Option("--kobert-epochs", help="kobert only: training epochs")] = None,
    select: Annotated[
        bool,
        typer.Option("--select/--no-select", help="linear only: choose the recipe on the training CSV's history, as voc train does"),
    ] = True,
    recipe: Annotated[
        str | None, typer.Option("--recipe", help="linear only: train this named recipe (voc.recipes.RECIPES), no selection")
    ] = None,
    candidates: Annotated[
        str | None, typer.Option("--candidates", help="linear only: comma-separated recipes the selection compares (with anchor)")
    ] = None,
) -> None:
    """Train on --train, tag --test, print accuracy, macro-F1, ECE and review capture (JSON last)."""
    from flows.adapters.sources import CsvSource, SourceError
    from voc.backtest import LABELS, MODELS, BacktestError, backtest
    from voc.recipes import RECIPES
    from voc.schema import VOCInputError

    if label not in LABELS:
        raise typer.BadParameter(f"{label!r} is not one of {', '.join(LABELS)}", param_hint="--label")
    if model not in MODELS:
        raise typer.BadParameter(f"{model!r} is not one of {', '.join(MODELS)}", param_hint="--model")
    cands = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
    for name, hint in [(recipe, "--recipe"), *((c, "--candidates") for c in cands or ())]:
        if name is not None and name not in RECIPES:
            raise typer.BadParameter(f"{name!r} is not one of {', '.join(RECIPES)}", param_hint=hint)
    if (recipe or cands) and model != "linear":
        raise typer.BadParameter(f"recipes apply to --model linear, got {model!r}", param_hint="--recipe")
    try:
        train_df = CsvSource(train).frame()
        test_df = CsvSource(test).frame()
    except (SourceError, VOCInputError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        opts: dict[str, Any] = {}
        if kobert_base:
            opts["base"] = kobert_base
        if kobert_epochs is not None:
            opts["epochs"] = kobert_epochs
        res = backtest(
            train_df, test_df, label=label, model=model, use_reply=reply, seed=seed, kobert_options=opts or None,
            select=select and model == "linear" and recipe is None, recipe=recipe, candidates=cands,
        )
    except BacktestError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    if not as_json:
        for line in format_summary(res, train=str(train), test=str(test)):
            typer.echo(line)
    typer.echo(json.dumps(res, ensure_ascii=False, default=str))


def register(app: typer.Typer) -> None:
    """Add ``voc backtest`` to ``app``."""
    app.command("backtest")(backtest_command)
