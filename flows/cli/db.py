"""``voc db …``: create the schema and load data into PostgreSQL.

``register(app)`` adds the sub-app to the main ``voc`` Typer app (``flows/cli/main.py``)::

    voc db init [--dsn DSN]                       apply pending migrations
    voc db load-csv [PATH] [--dsn DSN]            load a VOC CSV (default: the shipped sample)
    voc db load-taxonomy PATH [--dsn DSN]         upsert a taxonomy CSV

The DSN comes from ``--dsn``, else ``VOC_DB__DSN`` (environment or ``.env``), else
``VOC_SOURCE`` when it is a ``postgresql://`` URL. ``--dsn`` with a password is refused (command
lines are visible to other users in ``ps``): use ``VOC_DB__DSN`` or ``~/.pgpass``. Output names the database as
``postgresql://user@host:port/db``; the password is never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

__all__ = ["register", "db_app"]

db_app = typer.Typer(help="PostgreSQL: schema migrations and data loading.", no_args_is_help=True)



def _dsn_without_password(value: str | None) -> str | None:
    """``--dsn`` callback: a DSN with a password is refused (exit 2): command lines are visible in
    ``ps``. The password goes in ``VOC_DB__DSN`` or ``~/.pgpass`` (flows/secrets_guard.py)."""
    from flows.secrets_guard import DsnPasswordError, refuse_dsn_password

    try:
        refuse_dsn_password(value, where="--dsn")
    except DsnPasswordError as e:
        raise typer.BadParameter(str(e)) from None
    return value


DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="postgresql://user@host:5432/db WITHOUT password (refused: visible in ps); the password goes in "
        "~/.pgpass (PGPASSFILE), or leave --dsn out and set VOC_DB__DSN (env or .env). Never printed.",
        show_default=False,
        callback=_dsn_without_password,
    ),
]


def _dsn(dsn: str | None) -> SecretStr:
    if dsn:
        return SecretStr(dsn)
    from config.settings import get_settings

    settings = get_settings()
    if settings.db.dsn is not None and settings.db.dsn.get_secret_value().strip():
        return settings.db.dsn
    if settings.source_dsn is not None:
        return SecretStr(settings.source_dsn)
    typer.echo("no database: pass --dsn or set VOC_DB__DSN", err=True)
    raise typer.Exit(2)


def _fail(e: Exception) -> typer.Exit:
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(1)


@db_app.command("init")
def init_cmd(dsn: DsnOption = None) -> None:
    """Apply pending schema migrations (idempotent; safe to run on every deploy)."""
    from flows.adapters.db import applied_versions, apply_migrations, describe_dsn
    from flows.adapters.sources import SourceError

    secret = _dsn(dsn)
    try:
        where = describe_dsn(secret)
        applied = apply_migrations(secret)
        current = applied_versions(secret)
    except SourceError as e:
        raise _fail(e) from None
    head = max(current) if current else 0
    if applied:
        typer.echo(f"{where}: applied migration(s) {', '.join(map(str, applied))}; schema version {head}")
    else:
        typer.echo(f"{where}: schema up to date (version {head})")


@db_app.command("load-csv")
def load_csv_cmd(
    path: Annotated[
        Path | None,
        typer.Argument(help="CSV in the VOC schema; default: the shipped sample", show_default=False),
    ] = None,
    dsn: DsnOption = None,
) -> None:
    """Load VOCs (upsert on voc_id) and their labels (as reviewed tags) from a CSV."""
    from config.settings import get_settings, sample_csv_path
    from flows.adapters.db import describe_dsn, load_csv
    from flows.adapters.sources import SourceError
    from voc.schema import VOCInputError

    secret = _dsn(dsn)
    src = path or sample_csv_path()
    try:
        n_voc, n_labels = load_csv(secret, src, db_settings=get_settings().db)
        where = describe_dsn(secret)
    except (SourceError, VOCInputError) as e:
        raise _fail(e) from None
    typer.echo(f"{where}: loaded {n_voc} VOCs and {n_labels} reviewed labels from {src}")


@db_app.command("load-taxonomy")
def load_taxonomy_cmd(
    path: Annotated[Path, typer.Argument(help="Taxonomy CSV: dimension,major,minor,keywords,priority,active")],
    dsn: DsnOption = None,
) -> None:
    """Upsert a taxonomy CSV into the taxonomy table (rows missing from the file stay)."""
    from config.settings import get_settings
    from flows.adapters.db import describe_dsn, load_taxonomy
    from flows.adapters.sources import SourceError
    from voc.taxonomy import Taxonomy, TaxonomyError

    secret = _dsn(dsn)
    try:
        taxonomy = Taxonomy.from_csv_text(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise _fail(RuntimeError(f"cannot read {path}: {e.strerror}")) from None
    except TaxonomyError as e:
        raise _fail(e) from None
    try:
        n = load_taxonomy(secret, taxonomy, db_settings=get_settings().db)
        where = describe_dsn(secret)
    except SourceError as e:
        raise _fail(e) from None
    typer.echo(f"{where}: taxonomy {path}: {len(taxonomy.rows)} rows, {n} inserted or changed")


def register(app: typer.Typer) -> None:
    """Add the ``db`` sub-app to ``app``."""
    app.add_typer(db_app, name="db")
