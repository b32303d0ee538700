"""PostgreSQL: schema migrations, the VOC source, tag upserts and data loading (psycopg 3).

Three tables (``flows/adapters/migrations/*.sql``):

* ``voc``: the VOC source rows (one per ``voc_id``); a customer's existing table or view can be
  read instead through :class:`config.settings.DbSettings` (``voc_table`` and ``voc_columns``,
  a map from our column names to theirs).
* ``voc_taxonomy``: the classification taxonomy (:class:`voc.taxonomy.Taxonomy`).
* ``voc_classification``: one tag row per ``voc_id``, written by :meth:`PostgresSource.write_tags`
  under the production priority rule (:data:`UPSERT_PRIORITY_SQL`).

Every statement is built with :mod:`psycopg.sql` (identifiers quoted by
:class:`~psycopg.sql.Identifier`) and every value is a bound parameter or goes through ``COPY``;
no value is ever formatted into SQL text.

Secrets: the DSN is held as a :class:`~pydantic.SecretStr`; messages, logs and
:meth:`PostgresSource.describe` show ``postgresql://user@host:port/dbname`` only, and error
messages coming from libpq are scrubbed of the password before they are re-raised.

Upsert priority (``voc_classification``), per dimension
-------------------------------------------------------
Each row holds two dimensions (subject, work type), each with its own ``subject_reviewed`` /
``work_reviewed`` flag: the dimension's values are a human label (a reviewer entered a valid
value or confirmed a trained model's tag, or the label came with the data through
:func:`load_csv`). ``is_reviewed`` means *both* dimensions are. An incoming row ``new`` for a
``voc_id`` that already has a row ``old`` writes dimension ``d`` (its major, minor and
confidence) when::

    new.d_reviewed                                -- a human label always writes
    OR (NOT old.d_reviewed AND CASE                -- a machine value never replaces one
      WHEN new.classify_source IN ('reviewed', 'batch')
                                                  THEN true   -- refresh / monthly batch
      WHEN new.classify_source = 'realtime_reply' THEN old.classify_source IN ('realtime_reply', 'realtime')
      WHEN new.classify_source = 'realtime'       THEN old.classify_source = 'realtime'
      ELSE false
    END)

(:data:`DIMENSION_WRITE_SQL`; the row is updated when either dimension writes,
:data:`UPSERT_PRIORITY_SQL`). The flags are written as ``old.d_reviewed OR new.d_reviewed`` and
``is_reviewed`` as ``old.is_reviewed OR (both flags)``: none of them ever goes back to false.
A stored row with ``is_reviewed`` true counts as reviewed in both dimensions. A row with a
human dimension is stored with ``classify_source = 'reviewed'``; ``model_version`` and
``run_id`` follow the latest write. So: reviewed and batch always write a machine dimension,
except that nothing overwrites a dimension a human labelled (a batch in particular, or the
model's subject on a reviewed row whose subject the reviewer got wrong); a real-time label
tagged with the reply may replace only real-time labels; a real-time label (registration time,
no reply) only real-time ones. :func:`may_overwrite` is the same rule in Python (the tests
check they agree).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, SupportsFloat

import polars as pl
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import SecretStr

from config.settings import DbSettings, VocSettings
from flows.adapters.sources import CsvSource, SourceError
from voc.months import month_range, parse_month
from voc.schema import REQUIRED_COLUMNS, REVIEWED_LABEL_COLUMNS, validate_voc_frame
from voc.taxonomy import Taxonomy

__all__ = [
    "CLASSIFY_SOURCES",
    "DIMENSION_WRITE_SQL",
    "MACHINE_WRITE_SQL",
    "UPSERT_PRIORITY_SQL",
    "Migration",
    "PostgresSource",
    "apply_migrations",
    "applied_versions",
    "describe_dsn",
    "list_migrations",
    "load_csv",
    "load_taxonomy",
    "may_overwrite",
]

log = logging.getLogger(__name__)

CLASSIFY_SOURCES: tuple[str, ...] = ("reviewed", "batch", "realtime_reply", "realtime")
"""Values of ``voc_classification.classify_source`` (a CHECK constraint enforces them)."""

OPTIONAL_VOC_COLUMNS: tuple[str, ...] = ("department",)
"""VOC columns read (and loaded) when the table has them."""

SCHEMA_VERSION_TABLE = "voc_schema_version"
MIGRATION_LOCK_KEY = 0x766F635F6D6967  # "voc_mig": pg_advisory_xact_lock key of apply_migrations
_MIGRATION_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")

MACHINE_WRITE_SQL = """CASE
    WHEN EXCLUDED.classify_source IN ('reviewed', 'batch') THEN true
    WHEN EXCLUDED.classify_source = 'realtime_reply' THEN t.classify_source IN ('realtime_reply', 'realtime')
    WHEN EXCLUDED.classify_source = 'realtime' THEN t.classify_source = 'realtime'
    ELSE false
END"""
"""Whether a machine value (``t`` = the stored row, ``EXCLUDED`` = the incoming one) may replace
the stored values of a dimension that is not human-reviewed."""

DIMENSIONS: tuple[str, ...] = ("subject", "work")

DIMENSION_WRITE_SQL: dict[str, str] = {
    d: f"(EXCLUDED.{d}_reviewed OR (NOT (t.{d}_reviewed OR t.is_reviewed) AND {MACHINE_WRITE_SQL}))"
    for d in DIMENSIONS
}
"""Per dimension: whether :meth:`PostgresSource.write_tags` writes the incoming values of that
dimension. Constants: no value is ever formatted in."""

UPSERT_PRIORITY_SQL = " OR ".join(DIMENSION_WRITE_SQL[d] for d in DIMENSIONS)
"""The ``ON CONFLICT … DO UPDATE … WHERE`` condition of :meth:`PostgresSource.write_tags`: at
least one dimension writes (see the module docstring)."""

_TAG_VALUE_COLUMNS: tuple[str, ...] = (
    "subject_major",
    "subject_minor",
    "subject_confidence",
    "work_major",
    "work_minor",
    "work_confidence",
)
_TAG_COLUMNS: tuple[str, ...] = (
    "voc_id",
    *_TAG_VALUE_COLUMNS,
    "classify_source",
    "is_reviewed",
    "subject_reviewed",
    "work_reviewed",
    "model_version",
    "run_id",
)
_FLAG_COLUMNS: tuple[str, ...] = ("is_reviewed", "subject_reviewed", "work_reviewed")
_DIM_VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    d: (f"{d}_major", f"{d}_minor", f"{d}_confidence") for d in DIMENSIONS
}
_TAG_TYPES: dict[str, str] = {
    "voc_id": "text",
    "subject_major": "text",
    "subject_minor": "text",
    "subject_confidence": "double precision",
    "work_major": "text",
    "work_minor": "text",
    "work_confidence": "double precision",
    "classify_source": "text",
    "is_reviewed": "boolean",
    "subject_reviewed": "boolean",
    "work_reviewed": "boolean",
    "model_version": "text",
    "run_id": "text",
}


def may_overwrite(new_source: str, new_reviewed: bool, old_source: str, old_reviewed: bool) -> bool:
    """Whether an incoming dimension replaces the stored one (:data:`DIMENSION_WRITE_SQL`).

    Parameters
    ----------
    new_source, old_source
        ``classify_source`` of the incoming and the stored row (:data:`CLASSIFY_SOURCES`).
    new_reviewed, old_reviewed
        The dimension's flag (``subject_reviewed`` / ``work_reviewed``) of the incoming and the
        stored row (a stored ``is_reviewed`` row counts as reviewed in both).

    Returns
    -------
    bool
        True when the stored dimension's values are replaced.
    """
    if new_reviewed:
        return True
    if old_reviewed:
        return False
    if new_source in ("reviewed", "batch"):
        return True
    if new_source == "realtime_reply":
        return old_source in ("realtime_reply", "realtime")
    if new_source == "realtime":
        return old_source == "realtime"
    return False


# --------------------------------------------------------------------------------------------
# DSN handling (secrets never leave this section in clear)


def _secret(dsn: str | SecretStr) -> SecretStr:
    return dsn if isinstance(dsn, SecretStr) else SecretStr(str(dsn))


def _dsn_parts(dsn: SecretStr) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn.get_secret_value()).items()}
    except psycopg.Error:
        # libpq's message may quote part of the string (and so the password): not shown
        raise SourceError(
            "invalid PostgreSQL DSN (value not shown); expected postgresql://user@host:port/dbname"
        ) from None


def describe_dsn(dsn: str | SecretStr) -> str:
    """``postgresql://user@host:port/dbname`` for a DSN (URL or ``key=value`` form), no password.

    Raises
    ------
    SourceError
        When the DSN cannot be parsed (the message does not repeat it).
    """
    p = _dsn_parts(_secret(dsn))
    user = f"{p['user']}@" if p.get("user") else ""
    host = p.get("host") or p.get("hostaddr") or "localhost"
    port = p.get("port") or "5432"
    return f"postgresql://{user}{host}:{port}/{p.get('dbname', '')}"


def _scrub(message: str, dsn: SecretStr) -> str:
    """``message`` without the DSN's password (raw and percent-decoded forms)."""
    raw = dsn.get_secret_value()
    out = message.replace(raw, describe_dsn(dsn)) if raw else message
    try:
        pw = conninfo_to_dict(raw).get("password")
    except psycopg.Error:
        pw = None
    if pw:
        out = out.replace(str(pw), "***")
        m = re.search(r"://[^:/@]*:([^@]*)@", raw)
        if m and m.group(1):
            out = out.replace(m.group(1), "***")
    return out


def _connection_error(dsn: SecretStr, err: BaseException) -> SourceError:
    reason = _scrub(str(err).strip() or type(err).__name__, dsn)
    return SourceError(f"cannot connect to PostgreSQL at {describe_dsn(dsn)}: {reason}")


def _connect(dsn: SecretStr, *, connect_timeout_s: int = 10, autocommit: bool = False) -> psycopg.Connection:
    """A single connection; :class:`SourceError` naming host:port (never the password) on failure."""
    _dsn_parts(dsn)  # parse first: a malformed DSN gets a message that does not quote it
    try:
        return psycopg.connect(
            dsn.get_secret_value(),
            connect_timeout=connect_timeout_s,
            autocommit=autocommit,
            application_name="voc",
        )
    except psycopg.Error as e:
        raise _connection_error(dsn, e) from None


def _ident(name: str) -> sql.Identifier:
    """``"schema.table"`` → ``"schema"."table"``; ``"table"`` → ``"table"``."""
    parts = [p for p in name.split(".") if p]
    if not parts or len(parts) > 2:
        raise SourceError(f"invalid table name {name!r}; expected 'table' or 'schema.table'")
    return sql.Identifier(*parts)


# --------------------------------------------------------------------------------------------
# migrations


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file of ``flows/adapters/migrations``."""

    version: int
    name: str
    sql_text: str


def list_migrations(directory: Path | None = None) -> list[Migration]:
    """Migrations in ``directory`` (default: the packaged ``flows/adapters/migrations``), by version.

    Files are named ``NNNN_description.sql``; other files are ignored.

    Raises
    ------
    ValueError
        Two files with the same version number.
    """
    if directory is None:
        root: Any = resources.files("flows.adapters").joinpath("migrations")
    else:
        root = Path(directory)
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise ValueError(f"two migrations with version {version}: {found[version].name}, {entry.name}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def applied_versions(dsn: str | SecretStr, *, connect_timeout_s: int = 10) -> list[int]:
    """Versions recorded in ``voc_schema_version`` (``[]`` when the table does not exist)."""
    secret = _secret(dsn)
    with _connect(secret, connect_timeout_s=connect_timeout_s, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (SCHEMA_VERSION_TABLE,)).fetchone()
        if not exists or not exists[0]:
            return []
        q = sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(SCHEMA_VERSION_TABLE))
        return [int(r[0]) for r in conn.execute(q).fetchall()]


def apply_migrations(dsn: str | SecretStr, *, directory: Path | None = None, connect_timeout_s: int = 10) -> list[int]:
    """Apply the migrations not yet recorded in ``voc_schema_version``, in version order.

    Everything runs in ONE transaction holding a transaction-level advisory lock
    (:data:`MIGRATION_LOCK_KEY`), so concurrent callers (two workers starting at once) apply
    each migration once, and a failing file leaves the database as it was.

    Parameters
    ----------
    dsn
        PostgreSQL DSN (``postgresql://…`` or ``key=value``); never logged.
    directory
        Folder of ``NNNN_*.sql`` files; default the packaged ``flows/adapters/migrations``.
    connect_timeout_s
        Seconds before the connection attempt fails.

    Returns
    -------
    list[int]
        Versions applied by this call (``[]`` when the schema was already up to date).

    Raises
    ------
    SourceError
        The database is unreachable, or a migration fails (the message names the file).
    """
    secret = _secret(dsn)
    migrations = list_migrations(directory)
    applied_now: list[int] = []
    version_table = sql.Identifier(SCHEMA_VERSION_TABLE)
    with _connect(secret, connect_timeout_s=connect_timeout_s) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(version_table)
        )
        done = {int(r[0]) for r in conn.execute(sql.SQL("SELECT version FROM {}").format(version_table))}
        for mig in migrations:
            if mig.version in done:
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute(mig.sql_text.encode("utf-8"))  # no parameters: multi-statement file
            except psycopg.Error as e:
                raise SourceError(
                    f"migration {mig.name} failed on {describe_dsn(secret)}: {_scrub(str(e), secret)}"
                ) from None
            conn.execute(
                sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(version_table),
                (mig.version, mig.name),
            )
            applied_now.append(mig.version)
        unknown = sorted(done - {m.version for m in migrations})
        if unknown:
            log.warning(
                "database %s has schema versions this code does not know: %s", describe_dsn(secret), unknown
            )
    if applied_now:
        log.info("applied migrations %s to %s", applied_now, describe_dsn(secret))
    return applied_now


# --------------------------------------------------------------------------------------------
# the connection pool of one source


def _statement_timeout_configurer(timeout_s: float) -> Callable[[psycopg.Connection], None] | None:
    """The pool's ``configure`` callback: ``statement_timeout`` (``timeout_s`` seconds) on every
    new connection of the session, so the server cancels a statement that runs longer
    (``QueryCanceled``, not retried); None when ``timeout_s`` is 0 (no limit)."""
    if not timeout_s or timeout_s <= 0:
        return None
    millis = str(max(1, round(float(timeout_s) * 1000)))

    def configure(conn: psycopg.Connection) -> None:
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (millis,))
        if not conn.autocommit:
            conn.commit()  # the pool expects an idle connection back

    return configure


def open_pool(dsn: SecretStr, s: DbSettings) -> ConnectionPool:
    """An open :class:`psycopg_pool.ConnectionPool` for ``dsn`` (``pool_min``..``pool_max``
    connections, checked before use, ``statement_timeout`` and TCP keepalives set).

    Raises
    ------
    SourceError
        The database cannot be reached (libpq's reason, password scrubbed).
    """
    # one direct attempt first: libpq's reason (refused, unknown host, authentication,
    # missing database) is lost behind the pool's generic timeout otherwise
    _connect(dsn, connect_timeout_s=s.connect_timeout_s).close()
    pool = ConnectionPool(
        dsn.get_secret_value(),
        min_size=max(1, s.pool_min),
        max_size=max(s.pool_min, s.pool_max, 1),
        # keepalives: a peer that vanished mid-query is noticed after ~60 s of silence
        # (statement_timeout is enforced by the server, which then cannot)
        kwargs={
            "connect_timeout": s.connect_timeout_s,
            "application_name": "voc",
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
        check=ConnectionPool.check_connection,
        configure=_statement_timeout_configurer(s.statement_timeout_s),
        timeout=max(5.0, 3.0 * s.connect_timeout_s),
        name="voc",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=max(5.0, float(s.connect_timeout_s)))
    except PoolTimeout as e:
        pool.close()
        raise _connection_error(dsn, e) from None
    return pool


# --------------------------------------------------------------------------------------------
# the source


class PostgresSource:
    """VOCs, taxonomy and tags in PostgreSQL (implements :class:`flows.adapters.sources.VocSource`).

    Connections come from the source's own :class:`psycopg_pool.ConnectionPool`, opened on first
    use (``pool_min``..``pool_max`` connections, checked before each use) and closed by
    :meth:`close` (or ``with``). The flows open one source per settings and process
    (:func:`flows.resources.resources`), so the building tasks of a run share its few
    connections. The object pickles without its pool (a copy opens its own).

    Parameters
    ----------
    dsn
        ``postgresql://user:pass@host:5432/db``; kept secret (never logged or shown).
    db_settings
        Table names and the column map of the VOC table (``voc_columns``: our name → theirs);
        default :class:`config.settings.DbSettings` ().

    Raises
    ------
    SourceError
        (from the methods) unreachable database (the message names host:port and database, never
        the password), missing table, missing column (named, with the setting that maps it).
    """

    def __init__(self, dsn: str | SecretStr, db_settings: DbSettings | None = None) -> None:
        self._dsn = _secret(dsn)
        self.settings = db_settings or DbSettings()
        unknown = sorted(set(self.settings.voc_columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_VOC_COLUMNS))
        if unknown:
            raise SourceError(
                f"DbSettings.voc_columns maps unknown column(s) {unknown}; known: "
                f"{list(REQUIRED_COLUMNS) + list(OPTIONAL_VOC_COLUMNS)}"
            )
        self._where = describe_dsn(self._dsn)  # validates the DSN early, without showing it
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._columns: dict[str, list[str]] = {}

    @classmethod
    def from_settings(cls, settings: VocSettings) -> PostgresSource:
        """The DSN of ``settings.source`` when it is one (a ``postgresql://`` URL or libpq keywords,
        without password: :attr:`config.settings.VocSettings.source_dsn`), else ``settings.db.dsn``
        (``VOC_SOURCE=postgres`` + ``VOC_DB__DSN``).

        Raises
        ------
        SourceError
            Neither is set.
        """
        if settings.source_dsn is not None:
            dsn: SecretStr | None = SecretStr(settings.source_dsn)
        else:
            dsn = settings.db.dsn
        if dsn is None or not dsn.get_secret_value().strip():
            raise SourceError("no PostgreSQL DSN: set VOC_DB__DSN (or VOC_SOURCE=postgresql://…)")
        return cls(dsn, settings.db)

    # -- connections ------------------------------------------------------------------------
    def describe(self) -> str:
        """``postgresql://user@host:port/dbname (table voc)``: no password."""
        return f"{self._where} (table {self.settings.voc_table})"

    def __repr__(self) -> str:
        return f"PostgresSource({self.describe()!r})"

    def _get_pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None or self._pool.closed:
                self._pool = open_pool(self._dsn, self.settings)
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside a transaction (committed on success, rolled back on error).

        psycopg errors become :class:`SourceError` with the password scrubbed.
        """
        pool = self._get_pool()
        try:
            with pool.connection() as conn:
                yield conn
        except PoolTimeout as e:
            raise _connection_error(self._dsn, e) from None
        except psycopg.errors.UndefinedTable as e:
            raise SourceError(
                f"{_scrub(str(e).splitlines()[0], self._dsn)} in {self._where}; run `voc db init`"
                " or set VOC_DB__VOC_TABLE / VOC_DB__TAXONOMY_TABLE / VOC_DB__CLASSIFICATION_TABLE"
            ) from None
        except psycopg.errors.UndefinedColumn as e:
            raise SourceError(f"{_scrub(str(e).splitlines()[0], self._dsn)} in {self._where}") from None
        except psycopg.errors.QueryCanceled as e:
            raise SourceError(
                f"statement on {self._where} cancelled (VOC_DB__STATEMENT_TIMEOUT_S="
                f"{self.settings.statement_timeout_s:g} s): {_scrub(str(e).splitlines()[0], self._dsn)}"
            ) from None
        except psycopg.OperationalError as e:
            raise _connection_error(self._dsn, e) from None
        except psycopg.Error as e:
            raise SourceError(f"PostgreSQL error on {self._where}: {_scrub(str(e), self._dsn)}") from None

    def close(self) -> None:
        """Close the pool (a later call on this object opens a new one)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> PostgresSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- schema checks --------------------------------------------------------------------------
    def _table_columns(self, conn: psycopg.Connection, table: str, setting: str) -> list[str]:
        if table not in self._columns:
            try:
                with conn.transaction():
                    cur = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(_ident(table)))
            except psycopg.errors.UndefinedTable:
                raise SourceError(
                    f"table {table!r} does not exist in {self._where}; run `voc db init` or set {setting}"
                ) from None
            self._columns[table] = [d.name for d in cur.description or ()]
        return self._columns[table]

    def _classification_columns(self, conn: psycopg.Connection) -> list[str]:
        """The classification table's columns; it must have the per-dimension review flags."""
        table = self.settings.classification_table
        have = self._table_columns(conn, table, "VOC_DB__CLASSIFICATION_TABLE")
        missing = [c for c in _TAG_COLUMNS if c not in have]
        if missing:
            raise SourceError(
                f"table {table!r} in {self._where} has no column {missing}; run `voc db init` "
                "(migration 0003 adds subject_reviewed / work_reviewed)"
            )
        return have

    def _voc_select(self, conn: psycopg.Connection) -> list[sql.Composable]:
        """``v."their" :: type AS "ours"`` for the VOC columns, checking that they exist."""
        table = self.settings.voc_table
        have = set(self._table_columns(conn, table, "VOC_DB__VOC_TABLE"))
        cmap = self.settings.voc_columns
        missing = [
            f"{cmap.get(c, c)!r}" + (f" (mapped from {c!r})" if c in cmap else "")
            for c in REQUIRED_COLUMNS
            if cmap.get(c, c) not in have
        ]
        if missing:
            raise SourceError(
                f"table {table!r} in {self._where} has no column {', '.join(missing)}; map our names to "
                'yours with VOC_DB__VOC_COLUMNS, e.g. \'{"title": "voc_title"}\''
            )
        cols = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_VOC_COLUMNS if cmap.get(c, c) in have)]
        return [
            sql.SQL("v.{} :: {} AS {}").format(
                sql.Identifier(cmap.get(c, c)), sql.SQL("date" if c == "created_at" else "text"), sql.Identifier(c)
            )
            for c in cols
        ]

    def _voc_col(self, name: str) -> sql.Composable:
        return sql.SQL("v.{}").format(sql.Identifier(self.settings.voc_columns.get(name, name)))

    def _read_voc(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        building_ids: Sequence[str] | None = None,
        reviewed_only: bool = False,
    ) -> pl.DataFrame:
        """VOC rows (optionally in ``[start, end)``, of some buildings) with reviewed labels:
        ``reviewed_{d}_*`` holds dimension ``d`` of the classification row only where that
        dimension is human-reviewed (``{d}_reviewed``, or ``is_reviewed``), else null."""
        with self.connection() as conn:
            select = self._voc_select(conn)
            self._classification_columns(conn)
            labels = []
            for rc in REVIEWED_LABEL_COLUMNS:
                col = rc.removeprefix("reviewed_")
                flag = f"{col.split('_', 1)[0]}_reviewed"
                labels.append(
                    sql.SQL("CASE WHEN c.{flag} OR c.is_reviewed THEN c.{col} END AS {rc}").format(
                        flag=sql.Identifier(flag), col=sql.Identifier(col), rc=sql.Identifier(rc)
                    )
                )
            conds: list[sql.Composable] = []
            params: list[Any] = []
            if start is not None:
                conds.append(sql.SQL("{} >= %s").format(self._voc_col("created_at")))
                params.append(start)
            if end is not None:
                conds.append(sql.SQL("{} < %s").format(self._voc_col("created_at")))
                params.append(end)
            if building_ids:
                conds.append(sql.SQL("{} :: text = ANY(%s)").format(self._voc_col("building_id")))
                params.append([str(b) for b in building_ids])
            if reviewed_only:
                conds.append(sql.SQL("c.voc_id IS NOT NULL"))
            query = sql.SQL(
                "SELECT {cols} FROM {voc} AS v LEFT JOIN {cls} AS c ON c.voc_id = {vid} :: text"
                " AND (c.subject_reviewed OR c.work_reviewed OR c.is_reviewed)"
                " {where} ORDER BY {created}, {vid}"
            ).format(
                cols=sql.SQL(", ").join([*select, *labels]),
                voc=_ident(self.settings.voc_table),
                cls=_ident(self.settings.classification_table),
                vid=self._voc_col("voc_id"),
                created=self._voc_col("created_at"),
                where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL(""),
            )
            cur = conn.execute(query, params)
            names = [d.name for d in cur.description or ()]
            rows = cur.fetchall()
        schema = {n: (pl.Date if n == "created_at" else pl.Utf8) for n in names}
        df = pl.DataFrame(rows, schema=schema, orient="row")
        return validate_voc_frame(df)

    # -- VocSource ----------------------------------------------------------------------------
    def read_month(self, month: str, building_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """VOCs with ``created_at`` in ``month`` ("YYYY-MM"), optionally only ``building_ids``.

        Returns
        -------
        pl.DataFrame
            Validated VOC frame (:func:`voc.schema.validate_voc_frame`), ordered by date and id,
            with the reviewed labels of ``voc_classification`` as ``reviewed_*`` (null where none).
        """
        start, end = month_range(parse_month(month))
        return self._read_voc(start=start, end=end, building_ids=building_ids)

    def read_history(self, *, before: str | None = None) -> pl.DataFrame:
        """All VOCs registered before the month ``before`` (all when None), with reviewed labels
        (``reviewed_{d}_*`` from ``voc_classification`` where dimension ``d`` is human-reviewed,
        null elsewhere)."""
        end = month_range(parse_month(before))[0] if before else None
        return self._read_voc(end=end)

    def read_training_rows(self) -> pl.DataFrame:
        """Every VOC with a human label in at least one dimension (no date filter), with its
        labels per dimension: ``reviewed_{d}_*`` only where ``{d}_reviewed`` is true (null
        elsewhere, so the model's tag of an unreviewed dimension is never a label).

        Classification rows whose ``voc_id`` is not in the VOC table are skipped.
        """
        return self._read_voc(reviewed_only=True)

    def read_taxonomy(self) -> Taxonomy | None:
        """The taxonomy table (active and inactive rows, table order); None when it is empty.

        Raises
        ------
        SourceError
            The table is missing. :class:`voc.taxonomy.TaxonomyError` when its rows are invalid.
        """
        table = self.settings.taxonomy_table
        with self.connection() as conn:
            have = self._table_columns(conn, table, "VOC_DB__TAXONOMY_TABLE")
            need = ["dimension", "major", "minor", "keywords", "priority", "active"]
            missing = [c for c in need if c not in have]
            if missing:
                raise SourceError(f"table {table!r} in {self._where} has no column {missing}")
            order = sql.SQL(" ORDER BY id") if "id" in have else sql.SQL("")
            cur = conn.execute(
                sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(map(sql.Identifier, need)), _ident(table))
                + order
            )
            rows = [dict(zip(need, r, strict=True)) for r in cur.fetchall()]
        return Taxonomy.from_records(rows) if rows else None

    # -- writes -----------------------------------------------------------------------------
    def write_tags(self, tagged: pl.DataFrame, *, classify_source: str = "batch", reviewed: bool = False) -> int:
        """Upsert tags into the classification table under the per-dimension priority rule
        (module docstring).

        One ``COPY`` into a temporary table and ONE ``INSERT … ON CONFLICT (voc_id) DO UPDATE …
        WHERE`` :data:`UPSERT_PRIORITY_SQL` per call, in one transaction.

        Which dimensions of a row are human labels, per dimension ``d``:

        1. the frame has a ``{d}_reviewed`` column (what :func:`voc.review.merge_reviews`
           writes): its value, whatever ``reviewed`` and ``is_reviewed`` say;
        2. otherwise, when the row is reviewed (``reviewed=True`` or its ``is_reviewed`` is
           true) and the frame has ``{d}_source``: only ``{d}_source == "reviewer"`` (a reviewed
           CSV of an older version, where ``is_reviewed`` meant *some* dimension);
        3. otherwise the row's reviewed state (``reviewed`` or ``is_reviewed``), both dimensions.

        A row with a human dimension is written with ``classify_source = 'reviewed'``; its other
        dimension is a machine value under that source (never replacing a human one).

        Parameters
        ----------
        tagged
            Tagged frame (``voc_id``, ``subject_major/minor/confidence``,
            ``work_major/minor/confidence``; ``model_version``, ``run_id``, ``is_reviewed``,
            ``subject_reviewed``, ``work_reviewed``, ``subject_source``, ``work_source`` used
            when present). The frame's own ``classify_source`` column is ignored. When a
            ``voc_id`` occurs several times the last row wins.
        classify_source
            Provenance of the rows: ``batch`` (monthly full run), ``reviewed`` (refresh),
            ``realtime_reply``, ``realtime``.
        reviewed
            True: every row is a reviewed row (rules 2 and 3 above); per-dimension columns
            still decide where present.

        Returns
        -------
        int
            Rows inserted or updated (rows the rule refused are not counted).

        Raises
        ------
        ValueError
            Unknown ``classify_source``; ``tagged`` lacks a tag column (named).
        SourceError
            Database unreachable; the classification table is missing.
        """
        if classify_source not in CLASSIFY_SOURCES:
            raise ValueError(f"classify_source must be one of {CLASSIFY_SOURCES}, got {classify_source!r}")
        missing = [c for c in ("voc_id", *_TAG_VALUE_COLUMNS) if c not in tagged.columns]
        if missing:
            raise ValueError(f"tagged frame lacks column(s) {missing}")
        if tagged.height == 0:
            return 0
        rows = _tag_rows(tagged, classify_source=classify_source, reviewed=reviewed)
        with self.connection() as conn:
            self._classification_columns(conn)
            n = _upsert_tags(conn, self.settings.classification_table, rows)
        log.info("wrote %d of %d tag rows (%s) to %s", n, len(rows), classify_source, self.describe())
        return n

    def read_tags(self, voc_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """Rows of the classification table (all, or of ``voc_ids``), ordered by ``voc_id``:
        the tag columns, ``classify_source``, ``is_reviewed``, ``subject_reviewed``,
        ``work_reviewed``, ``model_version``, ``run_id``, ``created_at``, ``updated_at``."""
        cols = [*_TAG_COLUMNS, "created_at", "updated_at"]
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), _ident(self.settings.classification_table)
        )
        params: list[Any] = []
        if voc_ids is not None:
            query += sql.SQL(" WHERE voc_id = ANY(%s)")
            params.append([str(v) for v in voc_ids])
        query += sql.SQL(" ORDER BY voc_id")
        with self.connection() as conn:
            cur = conn.execute(query, params)
            data = cur.fetchall()
        schema: dict[str, Any] = {
            c: pl.Float64 if c.endswith("_confidence") else pl.Boolean if c in _FLAG_COLUMNS else pl.Utf8
            for c in _TAG_COLUMNS
        }
        schema.update({"created_at": pl.Datetime("us", "UTC"), "updated_at": pl.Datetime("us", "UTC")})
        return pl.DataFrame(data, schema=schema, orient="row")

    def load_frame(self, df: pl.DataFrame) -> tuple[int, int]:
        """Upsert a validated VOC frame into the VOC table and its ``reviewed_*`` labels as
        reviewed classification rows (see :func:`load_csv`)."""
        table = self.settings.voc_table
        cmap = self.settings.voc_columns
        with self.connection() as conn:
            self._voc_select(conn)  # checks table and columns
            have = set(self._table_columns(conn, table, "VOC_DB__VOC_TABLE"))
            ours = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_VOC_COLUMNS if cmap.get(c, c) in have and c in df.columns)]
            theirs = [cmap.get(c, c) for c in ours]
            conn.execute(
                sql.SQL("CREATE TEMP TABLE voc_load_in ({}) ON COMMIT DROP").format(
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL("date" if c == "created_at" else "text"))
                        for c in ours
                    )
                )
            )
            with conn.cursor() as cur, cur.copy(
                sql.SQL("COPY voc_load_in ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, ours)))
            ) as copy:
                for rec in df.select(ours).iter_rows():
                    copy.write_row(rec)
            updates = [c for c in theirs if c != cmap.get("voc_id", "voc_id")]
            set_updates: list[sql.Composable] = [
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates
            ]
            if "updated_at" in have:
                set_updates.append(sql.SQL("updated_at = now()"))
            conn.execute(
                sql.SQL(
                    "INSERT INTO {table} AS t ({theirs}) SELECT {ours} FROM voc_load_in"
                    " ON CONFLICT ({vid}) DO UPDATE SET {sets}"
                    " WHERE ({old}) IS DISTINCT FROM ({new})"
                ).format(
                    table=_ident(table),
                    theirs=sql.SQL(", ").join(map(sql.Identifier, theirs)),
                    ours=sql.SQL(", ").join(map(sql.Identifier, ours)),
                    vid=sql.Identifier(cmap.get("voc_id", "voc_id")),
                    sets=sql.SQL(", ").join(set_updates),
                    old=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in updates),
                    new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in updates),
                )
            )
            labelled = df.filter(pl.any_horizontal(pl.col(c).is_not_null() for c in REVIEWED_LABEL_COLUMNS))
            rows = []
            for r in labelled.iter_rows(named=True):
                has = {
                    d: _str_or_none(r[f"reviewed_{d}_minor"]) is not None
                    or _str_or_none(r[f"reviewed_{d}_major"]) is not None
                    for d in DIMENSIONS
                }
                rows.append(
                    {
                        "voc_id": r["voc_id"],
                        "subject_major": r["reviewed_subject_major"],
                        "subject_minor": r["reviewed_subject_minor"],
                        "subject_confidence": None,
                        "work_major": r["reviewed_work_major"],
                        "work_minor": r["reviewed_work_minor"],
                        "work_confidence": None,
                        "classify_source": "reviewed",
                        "is_reviewed": all(has.values()),
                        "subject_reviewed": has["subject"],
                        "work_reviewed": has["work"],
                        "model_version": None,
                        "run_id": "load_csv",
                    }
                )
            if rows:
                self._classification_columns(conn)
                _upsert_tags(
                    conn,
                    self.settings.classification_table,
                    [tuple(r[c] for c in _TAG_COLUMNS) for r in rows],
                    machine_values=False,
                )
        return df.height, len(rows)

    def load_taxonomy(self, taxonomy: Taxonomy) -> int:
        """Upsert taxonomy rows on (dimension, major, minor); rows not in ``taxonomy`` stay.

        Returns
        -------
        int
            Rows inserted or changed.
        """
        table = self.settings.taxonomy_table
        records = [
            (r.dimension, r.major, r.minor, list(r.keywords), float(r.priority), bool(r.active)) for r in taxonomy.rows
        ]
        if not records:
            return 0
        with self.connection() as conn:
            have = self._table_columns(conn, table, "VOC_DB__TAXONOMY_TABLE")
            touch = sql.SQL(", updated_at = now()") if "updated_at" in have else sql.SQL("")
            # keywords travel as one '|'-joined string per row (unnest flattens 2-d arrays)
            query = sql.SQL(
                "INSERT INTO {} AS t (dimension, major, minor, keywords, priority, active)"
                " SELECT d, ma, mi, CASE WHEN k = '' THEN '{{}}'::text[] ELSE string_to_array(k, '|') END, p, a"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::bool[])"
                " AS x(d, ma, mi, k, p, a)"
                " ON CONFLICT (dimension, major, minor) DO UPDATE SET"
                " keywords = EXCLUDED.keywords, priority = EXCLUDED.priority, active = EXCLUDED.active{}"
                " WHERE (t.keywords, t.priority, t.active) IS DISTINCT FROM"
                " (EXCLUDED.keywords, EXCLUDED.priority, EXCLUDED.active)"
            ).format(_ident(table), touch)
            cols = list(zip(*records, strict=True))
            params = [
                list(cols[0]),
                list(cols[1]),
                list(cols[2]),
                ["|".join(k) for k in cols[3]],
                list(cols[4]),
                list(cols[5]),
            ]
            cur = conn.execute(query, params)
            return max(cur.rowcount, 0)


# --------------------------------------------------------------------------------------------
# helpers of write_tags / load


def _truthy(v: object) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "t", "1", "y", "yes")
    return bool(v) if v is not None else False


def _float_or_none(v: SupportsFloat | str | None) -> float | None:
    if v is None or v == "":
        return None
    f = float(v)
    return None if f != f else f  # NaN → NULL


def _str_or_none(v: object) -> str | None:
    if v is None:
        return None
    s = str(v)
    return s if s.strip() else None


def _dimension_flags(r: dict[str, Any], *, reviewed: bool, columns: set[str]) -> dict[str, bool]:
    """Per dimension: whether the row's values are a human label (rules of ``write_tags``)."""
    row_reviewed = reviewed or _truthy(r.get("is_reviewed"))
    out: dict[str, bool] = {}
    for d in DIMENSIONS:
        if f"{d}_reviewed" in columns:
            out[d] = _truthy(r.get(f"{d}_reviewed"))
        elif not row_reviewed:
            out[d] = False
        elif f"{d}_source" in columns:
            out[d] = str(r.get(f"{d}_source") or "").strip() == "reviewer"
        else:
            out[d] = True
    return out


def _tag_rows(tagged: pl.DataFrame, *, classify_source: str, reviewed: bool) -> list[tuple[Any, ...]]:
    extra = ("is_reviewed", *(f"{d}_reviewed" for d in DIMENSIONS), *(f"{d}_source" for d in DIMENSIONS))
    cols = [c for c in (*_TAG_COLUMNS, *extra) if c in tagged.columns]
    present = set(cols)
    out = []
    for r in tagged.select(list(dict.fromkeys(cols))).iter_rows(named=True):
        flags = _dimension_flags(r, reviewed=reviewed, columns=present)
        any_human = any(flags.values())
        out.append(
            (
                str(r["voc_id"]),
                _str_or_none(r["subject_major"]),
                _str_or_none(r["subject_minor"]),
                _float_or_none(r["subject_confidence"]),
                _str_or_none(r["work_major"]),
                _str_or_none(r["work_minor"]),
                _float_or_none(r["work_confidence"]),
                "reviewed" if any_human else classify_source,
                all(flags.values()),
                flags["subject"],
                flags["work"],
                _str_or_none(r.get("model_version")),
                _str_or_none(r.get("run_id")),
            )
        )
    return out


def _upsert_tags(
    conn: psycopg.Connection, table: str, rows: Sequence[tuple[Any, ...]], *, machine_values: bool = True
) -> int:
    """COPY ``rows`` (tuples in :data:`_TAG_COLUMNS` order) into a temp table, then ONE upsert.

    ``machine_values=False`` (labels loaded with the data): a dimension is written only where
    the incoming row flags it human, so a row's missing label never blanks a stored tag."""
    conn.execute(
        sql.SQL("CREATE TEMP TABLE voc_tags_in (ord bigint, {}) ON COMMIT DROP").format(
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_TAG_TYPES[c])) for c in _TAG_COLUMNS)
        )
    )
    with conn.cursor() as cur, cur.copy(
        sql.SQL("COPY voc_tags_in (ord, {}) FROM STDIN").format(
            sql.SQL(", ").join(map(sql.Identifier, _TAG_COLUMNS))
        )
    ) as copy:
        for i, row in enumerate(rows):
            copy.write_row((i, *row))
    writes = (
        DIMENSION_WRITE_SQL if machine_values else {d: f"EXCLUDED.{d}_reviewed" for d in DIMENSIONS}
    )
    # constants only (column names of DIMENSIONS and the rule texts): no value is formatted in
    sets: list[sql.Composable] = []
    for d in DIMENSIONS:
        for c in _DIM_VALUE_COLUMNS[d]:
            sets.append(
                sql.SQL("{c} = CASE WHEN {w} THEN EXCLUDED.{c} ELSE t.{c} END").format(
                    c=sql.Identifier(c), w=sql.SQL(writes[d])
                )
            )
    human = {d: f"(t.{d}_reviewed OR t.is_reviewed OR EXCLUDED.{d}_reviewed)" for d in DIMENSIONS}
    sets += [
        sql.SQL(
            "classify_source = CASE WHEN {any} THEN 'reviewed' ELSE EXCLUDED.classify_source END"
        ).format(any=sql.SQL(" OR ".join(human[d] for d in DIMENSIONS))),
        *(sql.SQL("{} = {}").format(sql.Identifier(f"{d}_reviewed"), sql.SQL(human[d])) for d in DIMENSIONS),
        sql.SQL("is_reviewed = t.is_reviewed OR ({})").format(sql.SQL(" AND ".join(human[d] for d in DIMENSIONS))),
        sql.SQL("model_version = EXCLUDED.model_version, run_id = EXCLUDED.run_id, updated_at = now()"),
    ]
    cols = sql.SQL(", ").join(map(sql.Identifier, _TAG_COLUMNS))
    cur = conn.execute(
        sql.SQL(
            "INSERT INTO {table} AS t ({cols})"
            " SELECT DISTINCT ON (voc_id) {cols} FROM voc_tags_in ORDER BY voc_id, ord DESC"
            " ON CONFLICT (voc_id) DO UPDATE SET {sets}"
            " WHERE {rule}"
        ).format(
            table=_ident(table),
            cols=cols,
            sets=sql.SQL(", ").join(sets),
            rule=sql.SQL(" OR ".join(f"({writes[d]})" for d in DIMENSIONS)),
        )
    )
    n = max(cur.rowcount, 0)
    conn.execute("DROP TABLE voc_tags_in")
    return n


# --------------------------------------------------------------------------------------------
# module-level entry points (CLI)


def load_csv(dsn: str | SecretStr, path: str | Path, *, db_settings: DbSettings | None = None) -> tuple[int, int]:
    """Load a CSV in the VOC schema into the VOC table, and its labels as reviewed tags.

    The file is read and validated by :class:`flows.adapters.sources.CsvSource` (duplicate ``voc_id``
    rows merged). VOC rows are upserted on ``voc_id``; each row with an input label becomes a
    classification row with ``classify_source = 'reviewed'`` and, per dimension that has a
    label, the ``reviewed_*`` values with ``{d}_reviewed = true`` (confidences null;
    ``is_reviewed`` true when both dimensions have one). Only labelled dimensions are written:
    a missing label never blanks a stored tag. Rerunning gives the same counts and no
    duplicates.

    Parameters
    ----------
    dsn
        PostgreSQL DSN (secret).
    path
        CSV file (e.g. :func:`config.settings.sample_csv_path`).
    db_settings
        Table names / column map (default :class:`~config.settings.DbSettings`).

    Returns
    -------
    tuple[int, int]
        ``(VOCs in the file after merging duplicates, VOCs with at least one label)``.

    Raises
    ------
    SourceError
        Missing file, unreachable database, missing table/column.
    voc.schema.VOCInputError
        A row breaks the VOC schema.
    """
    df = CsvSource(path).frame()
    with PostgresSource(dsn, db_settings) as src:
        return src.load_frame(df)


def load_taxonomy(dsn: str | SecretStr, taxonomy: Taxonomy, *, db_settings: DbSettings | None = None) -> int:
    """Upsert ``taxonomy`` into the taxonomy table (see :meth:`PostgresSource.load_taxonomy`).

    Returns
    -------
    int
        Rows inserted or changed (0 when the table already matched).
    """
    with PostgresSource(dsn, db_settings) as src:
        return src.load_taxonomy(taxonomy)
