"""The ``voc`` command line: runs the Prefect flows (ephemeral Prefect API unless
``PREFECT_API_URL`` points at a server).

Commands (names are a contract)::

    voc train --until YYYY-MM [--model hybrid|linear|anchor|kobert] [--storage PATH] [--source PATH_OR_DSN]
    voc run --mode full|refresh|tagging-only --month YYYY-MM [--building-id N ...] [--storage PATH] [--source ...]
    voc demo [--month 2019-11] [--storage ./voc-data] [--source ...]
    voc review simulate --month YYYY-MM --from-labels [--fraction F] --storage PATH
    voc review pull --month YYYY-MM [--building-id B] [-o FILE] | push FILE   (flows/cli/review.py)
    voc kobert build-tiny-base DIR | export-onnx MODEL_DIR
    voc serve [--host H] [--port P] [--storage PATH] [--workers N] [--reload-interval S]
    voc db init|load-csv|load-taxonomy ...      (flows/cli/db.py)
    voc backtest --train A.csv --test B.csv ... (flows/cli/backtest.py)
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, overload

import typer

from voc.model_kinds import kind_names  # the registered model kinds (a light import)

if TYPE_CHECKING:
    from typer._click.exceptions import UsageError  # Typer vendors Click

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The ephemeral Prefect API (no PREFECT_API_URL) must answer within this many seconds. Prefect's
# 20 s default fails on a loaded 2-core machine (the server imports for 30-60 s there); a user's
# own value wins. With PREFECT_API_URL set, the CLI talks to that server and starts none.
EPHEMERAL_STARTUP_TIMEOUT_S = "600"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S)
if not os.environ.get("PREFECT_API_URL"):
    # The CLI's own throwaway API: when it stops at the end of a command on a loaded machine, its
    # event recorder may still be flushing the finished run's events into its SQLite file and logs
    # that as an ERROR with a traceback — after every output was written. Only that server's
    # loggers (prefect.server.*) are quieted; the flows' and the CLI's own messages are not, and a
    # dedicated server (PREFECT_API_URL) logs as configured.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")

app = typer.Typer(
    name="voc",
    help="VOC tagging, monthly dashboards, human review and retraining.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_cli_state: dict[str, bool] = {"debug": False}


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (Prefect's and ours) on errors")] = False,
) -> None:
    """VOC tagging, monthly dashboards, human review (검수) and retraining."""
    _cli_state["debug"] = debug
    _refuse_bad_source_setting()


def _refuse_bad_source_setting() -> None:
    """Exit 2 before any command runs when ``VOC_SOURCE`` (environment or ``.env``) holds a DSN
    with a secret: settings refuse it (:mod:`config.dsn`) and the message never shows it. Other
    settings errors are left to the command that reads them."""
    from pydantic import ValidationError

    from config.settings import get_settings

    try:
        get_settings()
    except ValidationError as e:
        for err in e.errors():
            if err["loc"][:1] == ("source",):
                typer.echo(f"error: {err['msg']}", err=True)
                raise typer.Exit(2) from None


def _console_logging(debug: bool) -> None:
    """Prefect's console handler without tracebacks unless ``--debug``: a failed task or flow
    then prints one line, and this CLI prints the one clear error at the end. Logs sent to the
    Prefect API (UI) keep their tracebacks."""
    import logging

    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # Prefect configures its handlers lazily; later set-ups are incremental
    if debug:
        return
    names = ["", *logging.root.manager.loggerDict]
    for h in {h for n in names for h in logging.getLogger(n).handlers}:  # getLogger: always a Logger
        if isinstance(h, PrefectConsoleHandler) and not isinstance(h.formatter, _NoTraceback):
            h.setFormatter(_NoTraceback(h.formatter))


class _NoTraceback(logging.Formatter):
    """Wraps a formatter; drops ``exc_info`` from the console line (the record itself is untouched)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        saved = (record.exc_info, record.exc_text, record.stack_info)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            line = self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        return line.split("\nTraceback (most recent call last)", 1)[0]
review_app = typer.Typer(help="Review sheets (검수).", no_args_is_help=True)
app.add_typer(review_app, name="review")
kobert_app = typer.Typer(help="KoBERT helpers (needs the kobert extra).", no_args_is_help=True)
app.add_typer(kobert_app, name="kobert")

StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", help="Output root: a directory, s3://bucket or s3://bucket/root (default VOC_STORAGE or ./voc-data)"),
]


def _source_without_password(value: str | None) -> str | None:
    """``--source`` callback: a DSN with a secret (any form, :mod:`config.dsn`) is refused (exit 2)
    before anything runs; it would be visible in ``ps`` and stored in Prefect's flow-run
    parameters (flows/secrets_guard.py). So is a value that is neither an existing file nor a DSN nor
    ``postgres``, without repeating it (a mistyped DSN may hold a secret)."""
    from flows.secrets_guard import SOURCE_NOT_FOUND, DsnPasswordError, refuse_dsn_password, unknown_source

    try:
        refuse_dsn_password(value, where="--source")
    except DsnPasswordError as e:
        raise typer.BadParameter(str(e)) from None
    if unknown_source(value):
        raise typer.BadParameter(SOURCE_NOT_FOUND)
    return value


SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="VOC source: CSV path or postgresql:// DSN without password (default VOC_SOURCE or the shipped sample; "
        "the password goes in VOC_DB__DSN with VOC_SOURCE=postgres, or in ~/.pgpass)",
        callback=_source_without_password,
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", help="Encoding of a CSV source: utf-8 (default, BOM or not), cp949 or euc-kr (Korean Excel exports)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON (last line)")]


@overload
def _month(value: str | None, flag: str = ..., *, required: Literal[True]) -> str: ...
@overload
def _month(value: str | None, flag: str = ..., *, required: Literal[False] = ...) -> str | None: ...
def _month(value: str | None, flag: str = "--month", *, required: bool = False) -> str | None:
    """``flag``'s value as ``YYYY-MM``; None when absent and not ``required`` (else BadParameter)."""
    from voc.months import parse_month

    if value in (None, ""):
        if required:
            raise typer.BadParameter(f"{flag} is required (YYYY-MM)")
        return None
    try:
        return parse_month(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=f"'{flag}'") from e


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
        return
    if "buildings" in summary:
        runner = f"  runner={summary['task_runner']}" if summary.get("task_runner") else ""
        typer.echo(f"voc-monthly {summary['mode']} {summary['month']}  run_id={summary['run_id']}  model={summary.get('model')}{runner}")
        if summary.get("note"):
            typer.echo(f"  {summary['note']}")
        if summary.get("model_note"):
            typer.echo(f"  note: {summary['model_note']}")
        for b in summary["buildings"]:
            line = f"  building {b['building_id']:>4} {b['building_name']:<8} {b['status']:<6} rows={b['rows']}"
            if b["status"] == "ok":
                line += f" flagged={b['flagged']} low_conf={b['low_confidence']}"
                if summary["mode"] == "refresh" or b.get("reviewed"):  # a rerun keeps the month's reviews
                    line += f" reviewed={b['reviewed']} issues={b['review_issues']}"
            else:
                line += f"  error: {b['error']}"
            typer.echo(line)
            for k, v in b.get("outputs", {}).items():
                typer.echo(f"      {k:<16} {v}")
            for note in b.get("drift", []):
                typer.echo(f"      drift            {note}")
        if summary.get("review_sheet"):
            rs = summary["review_sheet"]
            typer.echo(f"  review sheet: {rs.get('location', rs.get('error'))}")
        if summary.get("review_link"):
            typer.echo(f"  review link: {summary['review_link']}  (voc review pull/push)")
        for line in summary.get("review_sheet_issues", []):
            typer.echo(f"  review sheet row not applied: {line}")
        if summary.get("index"):
            typer.echo(f"  month index: {summary['index']}")
        if summary.get("portfolio"):
            typer.echo(f"  portfolio: {summary['portfolio']}")
    else:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2, default=str))


PREFLIGHT_ROWS = 1000
"""Rows of a CSV source :func:`preflight` checks against the VOC schema (the flow checks all)."""


class InputError(ValueError):
    """An input :func:`preflight` refuses before any flow (and Prefect API) starts: exit 2."""


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def preflight(*, source: str | None, encoding: str | None, storage: str | None) -> None:
    """Cheap checks of a command's inputs, made *before* the command starts a flow (and with it
    Prefect's API: 10-20 s on a busy machine), so that a wrong input costs a second and one
    ``error:`` line (exit 2) instead of a started run.

    Checked: ``--encoding`` is one of :data:`flows.adapters.sources.SOURCE_ENCODINGS`; the settings the
    flags and ``VOC_*`` variables make are valid; a local storage root is, or can be created as,
    a writable directory; a CSV source (``--source``, ``VOC_SOURCE`` or the shipped sample) exists,
    decodes strictly in its encoding (the whole file: :func:`flows.adapters.sources.decode_csv_bytes`),
    parses as CSV and its first :data:`PREFLIGHT_ROWS` rows pass
    :func:`voc.schema.validate_voc_frame`. A PostgreSQL source and an ``s3://`` storage are left
    to the flow (they need the network).

    Raises
    ------
    InputError
        Any of the above, as one line naming the flag or setting, and the path, line or row.
    voc.schema.VOCInputError
        A row among the first ones breaks the schema (row, field and value named).
    """
    import io

    from pydantic import ValidationError

    from config.settings import get_settings
    from flows.adapters.sources import SourceEncodingError, decode_csv_bytes
    from flows.secrets_guard import SOURCE_NOT_FOUND, unknown_source

    if encoding is not None:
        try:
            decode_csv_bytes(b"", encoding)
        except SourceEncodingError as e:
            raise InputError(f"--encoding: {e}") from None
        encoding = "utf-8" if encoding.lower().replace("_", "-") in ("utf8", "utf-8-sig") else encoding.lower().replace("_", "-")
    try:
        settings = get_settings(source=source, storage=storage, source_encoding=encoding)
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(f"setting {'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None

    if not settings.storage.startswith("s3://"):
        root = Path(settings.storage).expanduser()
        existing = root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise InputError(f"storage {settings.storage}: {existing} is not a directory (--storage / VOC_STORAGE)")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError(f"storage {settings.storage}: {existing} is not writable (--storage / VOC_STORAGE)")

    if settings.source_is_postgres:
        return
    if unknown_source(settings.source):
        raise InputError(SOURCE_NOT_FOUND)
    import polars as pl

    from voc.schema import validate_voc_frame

    path = Path(settings.source)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the VOC source {path}: {e.strerror or e}") from None
    try:
        text = decode_csv_bytes(data, settings.source_encoding, name=str(path))
    except SourceEncodingError as e:
        raise InputError(str(e)) from None
    try:
        head = pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema=False, n_rows=PREFLIGHT_ROWS)
    except pl.exceptions.PolarsError as e:
        raise InputError(f"cannot read {path} as CSV: {_one_line(str(e))}") from None
    validate_voc_frame(head)


def _run_monthly(**kw: Any) -> dict[str, Any]:
    from flows.monthly import MonthlyRunError, voc_monthly

    _console_logging(_cli_state["debug"])
    try:
        return voc_monthly(**kw)
    except MonthlyRunError as e:
        _print_summary(e.summary, False)
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e


@app.command()
def train(
    until: Annotated[str | None, typer.Option("--until", help="Train on labelled rows dated before this month (YYYY-MM)")] = None,
    model: Annotated[str | None, typer.Option("--model", help=f"{' | '.join(kind_names())} (default: linear); voc.model_kinds")] = None,
    kobert_base: Annotated[str | None, typer.Option("--kobert-base", help="KoBERT base: hub id or local directory")] = None,
    storage: StorageOpt = None,
    source: SourceOpt = None,
    encoding: EncodingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a challenger model; it becomes the champion unless it is worse on the same held-out rows."""
    m = _month(until, "--until")
    preflight(source=source, encoding=encoding, storage=storage)  # before Prefect is imported
    from flows.train import voc_train

    _console_logging(_cli_state["debug"])
    summary = voc_train(
        until=m, model=model, storage=storage, source=source, kobert_base=kobert_base, source_encoding=encoding
    )
    _print_summary(summary, as_json)


@app.command()
def run(
    mode: Annotated[str, typer.Option("--mode", help="full | refresh | tagging-only")] = "full",
    month: Annotated[str | None, typer.Option("--month", help="YYYY-MM (default: previous month, KST)")] = None,
    building_id: Annotated[list[str] | None, typer.Option("--building-id", help="Only these buildings (repeatable)")] = None,
    storage: StorageOpt = None,
    source: SourceOpt = None,
    encoding: EncodingOpt = None,
    task_runner: Annotated[
        str | None,
        typer.Option(
            "--task-runner",
            help="Where buildings run: thread | dask (local worker processes) | tcp://host:8786 (a Dask cluster); "
            "default VOC_TASK_RUNNER or thread",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the monthly flow for one month."""
    if mode not in ("full", "refresh", "tagging-only"):
        raise typer.BadParameter(f"--mode must be full, refresh or tagging-only, got {mode!r}")
    from voc.schema import id_problem

    for b in building_id or []:
        if (problem := id_problem(b)) is not None:
            raise typer.BadParameter(f"--building-id {b!r}: {problem}")
    m = _month(month)
    if m is not None:
        from datetime import datetime

        from voc.months import KST, check_not_future

        check_not_future(m, datetime.now(KST))  # refused before any Prefect work (exit 2)
    if task_runner is not None:
        from config.settings import VocSettings

        try:
            VocSettings(task_runner=task_runner)
        except ValueError as e:
            raise typer.BadParameter(f"--task-runner {task_runner!r}: must be thread, dask or tcp://host:port") from e
        os.environ["VOC_TASK_RUNNER"] = task_runner  # the flow reads its settings from the environment
    preflight(source=source, encoding=encoding, storage=storage)
    summary = _run_monthly(
        mode=mode, month=m, building_ids=building_id or None, storage=storage, source=source, source_encoding=encoding
    )
    _print_summary(summary, as_json)


@review_app.command("simulate")
def review_simulate(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    from_labels: Annotated[bool, typer.Option("--from-labels", help="Use the source's real labels as the reviewer's answers")] = False,
    fraction: Annotated[float, typer.Option("--fraction", min=0.0, max=1.0, help="Share of rows the reviewer looks at")] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    storage: StorageOpt = None,
    source: SourceOpt = None,
) -> None:
    """Act as a reviewer on the month's review sheet using the real labels (demos and tests)."""
    if not from_labels:
        raise typer.BadParameter("only --from-labels is supported: the simulated reviewer answers with the source's labels")
    m = _month(month, required=True)
    preflight(source=source, encoding=None, storage=storage)
    from flows.review_flow import simulate_month_review

    out = simulate_month_review(month=m, fraction=fraction, seed=seed, storage=storage, source=source)
    typer.echo(
        f"simulated review of {out['month']}: {out['reviewed']} rows marked 검수완료=Y, {out['changed']} corrected → {out['location']}"
    )


@kobert_app.command("build-tiny-base")
def kobert_build_tiny_base(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the tiny base into")],
    source: SourceOpt = None,
    vocab_size: Annotated[int, typer.Option("--vocab-size")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Build a tiny KoBERT-format base (SentencePiece tokenizer trained on the source's texts +
    a small random BERT) for offline demos and tests: `voc train --model kobert --kobert-base DIR`."""
    from config.settings import get_settings
    from flows.resources import open_source
    from voc.classify.kobert import build_tiny_base
    from voc.tagger import frame_texts

    df = open_source(get_settings(source=source)).read_history(before=None)
    texts, _ = frame_texts(df, use_reply=True)
    path = build_tiny_base(texts, out_dir, vocab_size=vocab_size, seed=seed)
    typer.echo(f"tiny KoBERT base written to {path} (random weights: for plumbing, not accuracy)")


@kobert_app.command("export-onnx")
def kobert_export_onnx(
    model_dir: Annotated[Path, typer.Argument(help="A saved KoBERT model version directory (kobert_<version>)")],
    source: SourceOpt = None,
    n: Annotated[int, typer.Option("--n", help="Held-out texts of the source to check the copy on")] = 300,
    min_agreement: Annotated[
        float | None, typer.Option("--min-agreement", help="Default VOC_MODEL__KOBERT_INT8_MIN_AGREEMENT (0.98)")
    ] = None,
) -> None:
    """Add the int8 ONNX Runtime copy for CPU workers to a model trained without it (the train
    flow writes it itself). Checked against the fp32 model on the source's held-out VOCs (the
    fixed 20 % hash split); kept only when every head agrees on ≥ --min-agreement of them."""
    import polars as pl

    from config.settings import get_settings
    from flows.resources import open_source
    from voc.classify.kobert import KoBERTTagger
    from voc.classify.kobert_onnx import add_int8_runtime
    from voc.modelstore import update_meta
    from voc.tagger import frame_texts, holdout_mask

    settings = get_settings(source=source)
    tagger = KoBERTTagger.load(model_dir, runtime="torch")
    df = open_source(settings).read_history(before=None)
    rows = df.filter(pl.Series(holdout_mask(df["voc_id"].to_list()))).head(n)
    texts, _ = frame_texts(rows, use_reply=tagger.use_reply)
    check = add_int8_runtime(
        tagger, model_dir, texts, min_agreement=settings.model.kobert_int8_min_agreement if min_agreement is None else min_agreement
    )
    update_meta(model_dir, {"cpu_runtime": check})
    typer.echo(check["reason"])
    if not check["kept"]:
        raise typer.Exit(1)


@app.command()
def demo(
    month: Annotated[str, typer.Option("--month", help="Month to tag (YYYY-MM)")] = "2019-11",
    storage: Annotated[str, typer.Option("--storage", help="Output directory or s3:// root")] = "./voc-data",
    source: SourceOpt = None,
    encoding: EncodingOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="Classifier kind for training")] = None,
    kobert_base: Annotated[str | None, typer.Option("--kobert-base", help="Local KoBERT base for --model kobert")] = None,
) -> None:
    """Train on the history before MONTH, run `full`, review with the real labels, run `refresh`."""
    m = _month(month, required=True)
    preflight(source=source, encoding=encoding, storage=storage)  # before Prefect is imported
    from flows.review_flow import simulate_month_review
    from flows.train import voc_train

    _console_logging(_cli_state["debug"])
    typer.echo(f"[1/4] train on labelled VOCs before {m}")
    t = voc_train(until=m, model=model, storage=storage, source=source, kobert_base=kobert_base, source_encoding=encoding)
    metrics = t["metrics"].get("subject", {})
    typer.echo(
        f"      model {t['model']} ({t['status']}): held-out subject accuracy "
        f"{metrics.get('accuracy', float('nan')):.3f}, macro-F1 {metrics.get('macro_f1', float('nan')):.3f}"
        + (f"; keyword fallback for {', '.join(t['fallback_dimensions'])}" if t["fallback_dimensions"] else "")
    )
    typer.echo(f"[2/4] full run for {m}")
    full = _run_monthly(mode="full", month=m, storage=storage, source=source, source_encoding=encoding)
    _print_summary(full, False)
    typer.echo("[3/4] simulated reviewer fixes the review sheet with the real labels")
    sim = simulate_month_review(month=m, fraction=1.0, seed=0, storage=storage, source=source, source_encoding=encoding)
    typer.echo(f"      {sim['reviewed']} rows reviewed, {sim['changed']} corrected")
    typer.echo(f"[4/4] refresh {m} from the review sheet")
    ref = _run_monthly(mode="refresh", month=m, storage=storage, source=source, source_encoding=encoding)
    _print_summary(ref, False)
    typer.echo("")
    typer.echo(f"Review workbook : {full['review_sheet']['location'] if full.get('review_sheet') else '-'}")
    for b in ref["buildings"]:
        typer.echo(f"Reviewed CSV    : {b['outputs'].get('reviewed')}")
    for b in ref["buildings"]:
        typer.echo(f"Dashboard       : {b['outputs'].get('dashboard_latest')}")
    if ref.get("index"):
        typer.echo(f"Month index     : {ref['index']}  (every building's dashboard, with review progress)")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Interface to listen on (default VOC_SERVE__HOST or 127.0.0.1; 0.0.0.0 = all)")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="TCP port (default VOC_SERVE__PORT or 8000)")] = None,
    storage: StorageOpt = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Worker processes, each with the model loaded (default VOC_SERVE__WORKERS or 1)"),
    ] = None,
    reload_interval: Annotated[
        float | None,
        typer.Option(
            "--reload-interval",
            min=0.1,
            help="Seconds between reads of models/champion.json (default VOC_SERVE__RELOAD_INTERVAL_S or 30)",
        ),
    ] = None,
) -> None:
    """Real-time tagging API (FastAPI under uvicorn): POST /v1/tag and /v1/tag:batch with
    Authorization: Bearer KEY (keys: VOC_SERVE__API_KEYS, a JSON list); GET /healthz, /readyz,
    /metrics. Swaps in each new champion model without dropping requests."""
    from flows.service.app import ServeConfigError, serve_forever

    try:
        serve_forever(host=host, port=port, storage=storage, workers=workers, reload_interval_s=reload_interval)
    except ServeConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


# commands contributed by the infrastructure and model-quality modules
for _mod in ("flows.cli.db", "flows.cli.backtest", "flows.cli.labels"):
    importlib.import_module(_mod).register(app)
importlib.import_module("flows.cli.review").register(review_app)  # voc review pull | push


def _input_errors() -> tuple[type[BaseException], ...]:
    """Errors that rerunning cannot fix: the input or the request is wrong (exit 2)."""
    from flows.adapters.sources import SourceEncodingError
    from voc.months import FutureMonthError
    from voc.schema import VOCInputError

    return (FutureMonthError, VOCInputError, SourceEncodingError, InputError, typer.BadParameter)


def _usage_line(e: UsageError) -> str:
    """One line for a Click usage error: the message, then where the help is (``e.ctx``: the
    command's context, None when Click raised it outside one)."""
    where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
    return f"error: {_one_line(e.format_message())}{where}"


def main() -> None:
    """Console-script entry point: one clear ``error:`` line per failure on stderr, exit 2 for a
    usage error (an unknown option, a bad value: Click's message, not a Rich box) and for bad
    input (a future month, a missing or undecodable source, a VOC that breaks the schema: found by
    :func:`preflight` before any Prefect API starts, or by the flow), 1 for a failed run (then a
    second line points at ``voc --debug``); tracebacks only with ``voc --debug …``. ``--help``
    prints the help, exit 0."""
    from typer._click.exceptions import ClickException, UsageError  # Typer vendors Click

    try:
        rv = app(standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):  # pragma: no cover - Ctrl-C
        sys.exit(130)
    except UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `voc` alone: the help is already printed
            sys.exit(e.exit_code)
        if _cli_state["debug"]:
            raise
        typer.echo(_usage_line(e), err=True)
        sys.exit(2)
    except ClickException as e:
        typer.echo(f"error: {_one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:
        if _cli_state["debug"]:
            raise
        code = 2 if isinstance(e, _input_errors()) else 1
        if code == 2:
            typer.echo(f"error: {_one_line(str(e))}", err=True)
        else:
            typer.echo(f"error: {e}", err=True)
            typer.echo("(run `voc --debug …` for the traceback)", err=True)
        sys.exit(code)
    sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)  # typer.Exit(n) → n; commands return None


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["app", "main", "preflight", "InputError", "PREFLIGHT_ROWS", "Path"]
