"""PostgreSQL against a real server: migrations, loading the sample, the VOC source, the upsert
priority rule, errors, the ``voc db`` CLI. Each test module run gets throwaway databases
(``voc_test_<random>``) that are dropped afterwards (see ``tests/infra.py``)."""

from __future__ import annotations

import itertools
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest
import typer
from infra import PG_ADMIN_DSN, free_port, pg_available, temp_database
from typer.testing import CliRunner

from config.settings import DbSettings, VocSettings, sample_csv_path
from flows.adapters.db import (
    CLASSIFY_SOURCES,
    PostgresSource,
    applied_versions,
    apply_migrations,
    describe_dsn,
    load_csv,
    load_taxonomy,
    may_overwrite,
)
from flows.adapters.sources import CsvSource, SourceError
from flows.resources import open_source
from voc.schema import REVIEWED_LABEL_COLUMNS
from voc.taxonomy import Taxonomy, TaxonomyRow, default_taxonomy

_reason = pg_available()
# A real PostgreSQL server: the slow tier (README, "Run the tests").
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

N_SAMPLE = 996  # VOCs in the sample after merging the 31 duplicated voc_ids
N_LABELLED = 977  # of which carry a subject label (the rest lost theirs to the scraper)


@pytest.fixture(scope="module")
def db() -> Iterator[str]:
    """A migrated database holding the sample (shared by the read-only tests)."""
    with temp_database() as dsn:
        apply_migrations(dsn)
        load_csv(dsn, sample_csv_path())
        yield dsn


@pytest.fixture
def fresh_db() -> Iterator[str]:
    """An empty, migrated database for one test."""
    with temp_database() as dsn:
        apply_migrations(dsn)
        yield dsn


@pytest.fixture
def src(db: str) -> Iterator[PostgresSource]:
    with PostgresSource(db) as s:
        yield s


def _scalar(dsn: str, query: str, params: tuple = ()) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


# --------------------------------------------------------------------------------------------
# migrations


def test_migrations_are_versioned_and_idempotent() -> None:
    with temp_database() as dsn:
        assert applied_versions(dsn) == []
        assert apply_migrations(dsn) == [1, 2, 3]
        first = _rows(dsn, "SELECT version, name, applied_at FROM voc_schema_version ORDER BY version")
        assert apply_migrations(dsn) == []
        assert _rows(dsn, "SELECT version, name, applied_at FROM voc_schema_version ORDER BY version") == first
        assert [r[0] for r in first] == [1, 2, 3]
        tables = {r[0] for r in _rows(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"voc", "voc_taxonomy", "voc_classification", "voc_schema_version"} <= tables
        idx = {r[0] for r in _rows(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'voc'")}
        assert "voc_created_at_building_idx" in idx


def test_concurrent_migrations_apply_each_version_once() -> None:
    """Two workers starting at once: the advisory lock serialises them."""
    with temp_database() as dsn:
        results: list[list[int]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.append(apply_migrations(dsn))
            except BaseException as e:  # noqa: BLE001 - the thread's failure is asserted on below
                errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(v for r in results for v in r) == [1, 2, 3]
        assert _scalar(dsn, "SELECT count(*) FROM voc_schema_version") == 3


def test_failing_migration_rolls_back_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE t_ok (x int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE t_bad (x nosuchtype);")
    (tmp_path / "README.txt").write_text("ignored")
    with temp_database() as dsn:
        with pytest.raises(SourceError, match=r"0002_broken\.sql"):
            apply_migrations(dsn, directory=tmp_path)
        assert applied_versions(dsn) == []
        assert _scalar(dsn, "SELECT to_regclass('t_ok') IS NULL") is True


def _rows(dsn: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


# --------------------------------------------------------------------------------------------
# loading and reading the sample


def test_load_sample_counts_and_is_idempotent(db: str) -> None:
    assert _scalar(db, "SELECT count(*) FROM voc") == N_SAMPLE
    assert _scalar(db, "SELECT count(*) FROM voc_classification") == N_LABELLED
    # the sample's labels are subjects only: subject human, work open (no label, nothing blocked)
    assert _rows(
        db, "SELECT DISTINCT classify_source, subject_reviewed, work_reviewed, is_reviewed FROM voc_classification"
    ) == [("reviewed", True, False, False)]
    stamp = _scalar(db, "SELECT max(updated_at) FROM voc")
    assert load_csv(db, sample_csv_path()) == (N_SAMPLE, N_LABELLED)  # rerun
    assert _scalar(db, "SELECT count(*) FROM voc") == N_SAMPLE
    assert _scalar(db, "SELECT count(*) FROM voc_classification") == N_LABELLED
    assert _scalar(db, "SELECT max(updated_at) FROM voc") == stamp  # unchanged rows not rewritten
    # a duplicated voc_id of the CSV: one row, the replies of both departments
    dup = _scalar(db, "SELECT count(*) FROM voc WHERE reply LIKE %s", ("%\n\n%",))
    assert isinstance(dup, int) and dup >= 1


def test_read_month_2019_11(src: PostgresSource) -> None:
    df = src.read_month("2019-11")
    assert df.height == 45
    assert dict(df.group_by("building_id").len().iter_rows()) == {"1": 41, "2": 4}
    assert src.read_month("201911", ["2"]).height == 4
    assert src.read_month(201911, ["1", "2"]).height == 45
    assert src.read_month("2019-11", ["no-such-building"]).height == 0
    # same content as the CSV source (the DB holds merged rows, so input_flags are empty)
    csv = CsvSource(sample_csv_path()).read_month("2019-11")
    a = df.drop("input_flags").sort("voc_id")
    b = csv.select(df.columns).drop("input_flags").sort("voc_id")
    assert a.equals(b)
    assert df.schema["created_at"] == pl.Date


def test_read_history_and_training_rows(src: PostgresSource) -> None:
    hist = src.read_history(before="2019-11")
    assert hist.height == 939
    assert hist.filter(pl.col("created_at") >= pl.date(2019, 11, 1)).height == 0
    assert src.read_history().height == N_SAMPLE
    assert hist["reviewed_subject_minor"].null_count() < hist.height  # labels joined in
    train = src.read_training_rows()
    assert train.height == N_LABELLED
    assert train.filter(pl.col("reviewed_subject_major").is_null()).height == 0
    csv = CsvSource(sample_csv_path()).frame().filter(pl.col("reviewed_subject_major").is_not_null())
    a = train.select("voc_id", "reviewed_subject_major", "reviewed_subject_minor").sort("voc_id")
    b = csv.select("voc_id", "reviewed_subject_major", "reviewed_subject_minor").sort("voc_id")
    assert a.equals(b)


def test_concurrent_reads_share_the_pool(src: PostgresSource) -> None:
    out: list[int] = []

    def read(b: str) -> None:
        out.append(src.read_month("2019-11", [b]).height)

    threads = [threading.Thread(target=read, args=(b,)) for b in ("1", "2", "1", "2", "1", "2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [4, 4, 4, 41, 41, 41]


def test_taxonomy_roundtrip(fresh_db: str) -> None:
    with PostgresSource(fresh_db) as s:
        assert s.read_taxonomy() is None
        tax = default_taxonomy()
        assert load_taxonomy(fresh_db, tax) == len(tax.rows)
        assert load_taxonomy(fresh_db, tax) == 0  # unchanged
        assert s.read_taxonomy() == tax
        # a reorganisation: one class inactive, one new; rows missing from the file stay
        old = tax.rows[0]
        changed = Taxonomy(
            (
                TaxonomyRow(old.dimension, old.major, old.minor, old.keywords, old.priority, active=False),
                TaxonomyRow("subject", "신규", "신규과", ("신규",), 50.0),
            )
        )
        assert load_taxonomy(fresh_db, changed) == 2
        got = s.read_taxonomy()
        assert got is not None and len(got.rows) == len(tax.rows) + 1
        assert got.get(old.dimension, old.label).active is False  # type: ignore[union-attr]  # the row exists
        assert got.get("subject", "신규>신규과").keywords == ("신규",)  # type: ignore[union-attr]  # as above


# --------------------------------------------------------------------------------------------
# write_tags and the priority rule


def _tags(ids: list[str], value: str, **extra: object) -> pl.DataFrame:
    n = len(ids)
    data: dict[str, object] = {
        "voc_id": ids,
        "subject_major": [f"S-{value}"] * n,
        "subject_minor": [f"s-{value}"] * n,
        "subject_confidence": [0.5] * n,
        "work_major": [f"W-{value}"] * n,
        "work_minor": [f"w-{value}"] * n,
        "work_confidence": [0.25] * n,
        "model_version": ["hybrid_v1"] * n,
        "run_id": [f"run-{value}"] * n,
    }
    data.update({k: v if isinstance(v, list) else [v] * n for k, v in extra.items()})
    return pl.DataFrame(data)


def _state(s: PostgresSource, voc_id: str) -> tuple[str, str, bool]:
    row = s.read_tags([voc_id]).row(0, named=True)
    return row["subject_major"], row["classify_source"], row["is_reviewed"]


def test_priority_rule_matrix_sql_matches_python(fresh_db: str) -> None:
    """Every (stored, incoming) pair of (classify_source, is_reviewed): the SQL CASE does what
    may_overwrite says, and is_reviewed is the OR of both."""
    combos = list(itertools.product(CLASSIFY_SOURCES, (False, True)))
    cases = [(old, new) for old in combos for new in combos]
    with PostgresSource(fresh_db) as s:
        with psycopg.connect(fresh_db) as conn:
            for i, ((old_src, old_rev), _) in enumerate(cases):
                conn.execute(
                    "INSERT INTO voc_classification (voc_id, subject_major, classify_source, is_reviewed)"
                    " VALUES (%s, 'OLD', %s, %s)",
                    (f"m{i}", old_src, old_rev),
                )
        for new in combos:
            ids = [f"m{i}" for i, (_, n) in enumerate(cases) if n == new]
            written = s.write_tags(_tags(ids, "NEW"), classify_source=new[0], reviewed=new[1])
            assert written == sum(may_overwrite(n[0], n[1], o[0], o[1]) for o, n in cases if n == new)
        got = {r["voc_id"]: r for r in s.read_tags().iter_rows(named=True)}
        for i, ((old_src, old_rev), (new_src, new_rev)) in enumerate(cases):
            r = got[f"m{i}"]
            allowed = may_overwrite(new_src, new_rev, old_src, old_rev)
            assert (r["subject_major"] == "S-NEW") == allowed, (old_src, old_rev, new_src, new_rev)
            assert r["is_reviewed"] == (old_rev or (new_rev and allowed))
            if allowed:
                assert r["classify_source"] == ("reviewed" if new_rev else new_src)


def test_priority_scenarios(fresh_db: str) -> None:
    with PostgresSource(fresh_db) as s:
        # batch first, then a reviewed refresh: reviewed over batch works
        assert s.write_tags(_tags(["a"], "batch"), classify_source="batch") == 1
        assert s.write_tags(_tags(["a"], "rev"), classify_source="reviewed", reviewed=True) == 1
        assert _state(s, "a") == ("S-rev", "reviewed", True)
        # the next month's batch never overwrites the human review
        assert s.write_tags(_tags(["a"], "batch2"), classify_source="batch") == 0
        assert _state(s, "a") == ("S-rev", "reviewed", True)
        # an unreviewed refresh row does not either, and is_reviewed never goes back to false
        assert s.write_tags(_tags(["a"], "unrev", is_reviewed=False), classify_source="reviewed") == 0
        assert _state(s, "a") == ("S-rev", "reviewed", True)
        # a second review does replace the first
        assert s.write_tags(_tags(["a"], "rev2", is_reviewed=True), classify_source="reviewed") == 1
        assert _state(s, "a") == ("S-rev2", "reviewed", True)

        # realtime cannot overwrite batch; batch overwrites realtime
        s.write_tags(_tags(["b"], "batch"), classify_source="batch")
        assert s.write_tags(_tags(["b"], "rt"), classify_source="realtime") == 0
        assert s.write_tags(_tags(["b"], "rtr"), classify_source="realtime_reply") == 0
        assert _state(s, "b") == ("S-batch", "batch", False)
        s.write_tags(_tags(["c"], "rt"), classify_source="realtime")
        assert s.write_tags(_tags(["c"], "rt2"), classify_source="realtime") == 1
        assert s.write_tags(_tags(["c"], "rtr"), classify_source="realtime_reply") == 1
        assert s.write_tags(_tags(["c"], "rt3"), classify_source="realtime") == 0  # reply label beats it
        assert _state(s, "c") == ("S-rtr", "realtime_reply", False)
        assert s.write_tags(_tags(["c"], "batch"), classify_source="batch") == 1
        assert _state(s, "c") == ("S-batch", "batch", False)


def test_write_tags_batch_semantics(fresh_db: str) -> None:
    with PostgresSource(fresh_db) as s:
        batch = _tags(["x1", "x2", "x3"], "v1", subject_confidence=[0.9, float("nan"), None])
        assert s.write_tags(batch) == 3
        before = s.read_tags()
        assert s.write_tags(batch) == 3  # rerun: same rows rewritten, no duplicates
        after = s.read_tags()
        assert after.height == 3
        assert after.drop("updated_at").equals(before.drop("updated_at"))
        assert after["subject_confidence"].to_list() == [0.9, None, None]
        assert after["classify_source"].to_list() == ["batch"] * 3
        assert after["created_at"].equals(before["created_at"])
        # a voc_id twice in one batch: the last row wins (one upsert cannot touch a row twice)
        dup = pl.concat([_tags(["x1"], "first"), _tags(["x1"], "last")])
        assert s.write_tags(dup) == 1
        assert _state(s, "x1")[0] == "S-last"
        # per-row is_reviewed column (a reviewed CSV read as text)
        mixed = _tags(["x2", "x3"], "r", is_reviewed=["true", "false"])
        assert s.write_tags(mixed, classify_source="reviewed") == 2
        assert _state(s, "x2") == ("S-r", "reviewed", True)
        assert _state(s, "x3") == ("S-r", "reviewed", False)
        assert s.write_tags(batch.head(0)) == 0
        with pytest.raises(ValueError, match="classify_source"):
            s.write_tags(batch, classify_source="manual")
        with pytest.raises(ValueError, match="work_minor"):
            s.write_tags(batch.drop("work_minor"))


def test_write_tags_of_a_tagged_frame(db: str, fresh_db: str) -> None:
    """The tagger's output (TAGGED_COLUMNS) goes in as it is."""
    from voc.schema import TAGGED_COLUMNS
    from voc.urgency import with_alert_columns

    with PostgresSource(db) as s:
        month = s.read_month("2019-11")
    tagged = month.with_columns(
        pl.lit("2019-11").alias("yyyymm"),
        pl.lit("시설").alias("subject_major"),
        pl.lit("기타").alias("subject_minor"),
        pl.lit(0.7).alias("subject_confidence"),
        pl.lit("model").alias("subject_source"),
        pl.lit(None, dtype=pl.Utf8).alias("work_major"),
        pl.lit(None, dtype=pl.Utf8).alias("work_minor"),
        pl.lit(None, dtype=pl.Float64).alias("work_confidence"),
        pl.lit(None, dtype=pl.Utf8).alias("work_source"),
        pl.lit("batch").alias("classify_source"),
        pl.lit("hybrid_x").alias("model_version"),
        pl.lit("").alias("flags"),
        pl.lit("full_20191201_020000").alias("run_id"),
    ).pipe(with_alert_columns).select(TAGGED_COLUMNS)  # urgent, repeat_of (voc.urgency)
    with PostgresSource(fresh_db) as s:
        assert s.write_tags(tagged) == 45
        out = s.read_tags()
        assert out.height == 45 and set(out["run_id"]) == {"full_20191201_020000"}


# --------------------------------------------------------------------------------------------
# configuration, customer tables, errors


def test_customer_table_mapping(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "CREATE SCHEMA crm; CREATE TABLE crm.minwon (no integer PRIMARY KEY, site text, site_name text,"
            " reg_ts timestamp, voc_title text, body text, answer text)"
        )
        conn.execute(
            "INSERT INTO crm.minwon VALUES (7, 'B-95', '본관', '2019-11-30 23:59:00', '제목', '내용', ''),"
            " (8, 'B-95', '본관', '2019-12-01 00:00:00', '다음달', '내용', 'r')"
        )
    mapping = {
        "voc_id": "no",
        "building_id": "site",
        "building_name": "site_name",
        "created_at": "reg_ts",
        "title": "voc_title",
        "request_contents": "body",
        "reply": "answer",
    }
    with PostgresSource(fresh_db, DbSettings(voc_table="crm.minwon", voc_columns=mapping)) as s:
        df = s.read_month("2019-11", ["B-95"])
        assert df["voc_id"].to_list() == ["7"]
        assert df["created_at"].to_list()[0].isoformat() == "2019-11-30"
    bad = dict(mapping, title="subject_line")
    with (
        PostgresSource(fresh_db, DbSettings(voc_table="crm.minwon", voc_columns=bad)) as s,
        pytest.raises(SourceError, match=r"'subject_line' \(mapped from 'title'\)"),
    ):
        s.read_month("2019-11")
    with (
        PostgresSource(fresh_db, DbSettings(voc_table="crm.minwon")) as s,
        pytest.raises(SourceError, match=r"no column .*'voc_id'.*'building_id'"),
    ):
        s.read_month("2019-11")
    with pytest.raises(SourceError, match="unknown column"):
        PostgresSource(fresh_db, DbSettings(voc_columns={"titel": "x"}))


def test_missing_tables_are_named(fresh_db: str) -> None:
    with (
        PostgresSource(fresh_db, DbSettings(voc_table="no_such_voc")) as s,
        pytest.raises(SourceError, match="no_such_voc"),
    ):
        s.read_month("2019-11")
    with (
        PostgresSource(fresh_db, DbSettings(taxonomy_table="no_such_taxonomy")) as s,
        pytest.raises(SourceError, match="no_such_taxonomy"),
    ):
        s.read_taxonomy()
    with (
        PostgresSource(fresh_db, DbSettings(classification_table="no_such_tags")) as s,
        pytest.raises(SourceError, match="no_such_tags"),
    ):
        s.write_tags(_tags(["a"], "v"))
    with temp_database() as empty:  # never migrated
        with pytest.raises(SourceError, match=r"'voc' does not exist.*voc db init"):
            PostgresSource(empty).read_history()
        with pytest.raises(SourceError, match="'voc' does not exist"):
            load_csv(empty, sample_csv_path())


def test_unreachable_database_error_names_host_not_password(tmp_path: Path) -> None:
    port = free_port()
    dsn = f"postgresql://voc:pa55-s3cret@127.0.0.1:{port}/vocdb"
    for call in (
        lambda: PostgresSource(dsn).read_month("2019-11"),
        lambda: apply_migrations(dsn, connect_timeout_s=2),
        lambda: load_csv(dsn, sample_csv_path()),
    ):
        with pytest.raises(SourceError) as ei:
            call()
        msg = str(ei.value)
        assert f"127.0.0.1:{port}" in msg and "vocdb" in msg
        assert "pa55-s3cret" not in msg and "pa55-s3cret" not in repr(ei.value)
        assert ei.value.__cause__ is None or "pa55-s3cret" not in str(ei.value.__cause__)
    # a database that does not exist on a live server
    missing = psycopg.conninfo.make_conninfo(PG_ADMIN_DSN, dbname="voc_no_such_db", password="pa55-s3cret")
    with pytest.raises(SourceError, match="voc_no_such_db") as ei:
        PostgresSource(missing).read_month("2019-11")
    assert "pa55-s3cret" not in str(ei.value)
    # a malformed DSN is not echoed
    with pytest.raises(SourceError, match="invalid PostgreSQL DSN") as ei:
        PostgresSource("host=h password=pa55-s3cret junk")
    assert "pa55-s3cret" not in str(ei.value)


def test_describe_from_settings_and_pickle(db: str) -> None:
    secret_dsn = psycopg.conninfo.make_conninfo(db, password="pa55-s3cret")
    s = PostgresSource(secret_dsn)
    assert "pa55-s3cret" not in s.describe() and "pa55-s3cret" not in repr(s)
    assert s.describe().startswith("postgresql://postgres@127.0.0.1:5432/voc_test_")
    assert describe_dsn("postgresql://u:p@h/d") == "postgresql://u@h:5432/d"
    url = f"postgresql://postgres@127.0.0.1:5432/{s.describe().split('/')[3].split()[0]}"
    with pytest.raises(ValueError, match="VOC_SOURCE: refusing") as ei:  # a password in VOC_SOURCE (config/dsn.py)
        VocSettings(source=url.replace("postgres@", "postgres:pa55-s3cret@"))
    assert "pa55-s3cret" not in str(ei.value)
    from_source = PostgresSource.from_settings(VocSettings(source=url))
    assert isinstance(open_source(VocSettings(source=url)), PostgresSource)
    from_db = PostgresSource.from_settings(VocSettings(db=DbSettings(dsn=secret_dsn)))
    for p in (from_source, from_db):
        assert p.read_month("2019-11").height == 45
        clone = pickle.loads(pickle.dumps(p))  # the pool stays behind; the copy opens its own
        assert clone.read_month("2019-11", ["2"]).height == 4
        clone.close()
        p.close()
    with pytest.raises(SourceError, match="VOC_DB__DSN"):
        PostgresSource.from_settings(VocSettings())


# --------------------------------------------------------------------------------------------
# CLI


def _app() -> typer.Typer:
    from flows.cli.db import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """voc"""

    register(app)
    return app


def test_cli_init_load_and_taxonomy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    app = _app()
    monkeypatch.chdir(tmp_path)  # no stray .env
    with temp_database() as dsn:
        secret_dsn = psycopg.conninfo.make_conninfo(dsn, password="pa55-s3cret")
        r = runner.invoke(app, ["db", "init", "--dsn", secret_dsn])  # a password on the command line: refused
        assert r.exit_code == 2 and "VOC_DB__DSN" in r.output and "pa55-s3cret" not in r.output, r.output
        r = runner.invoke(app, ["db", "init", "--dsn", dsn])  # without password (trust, or ~/.pgpass)
        assert r.exit_code == 0, r.output
        assert "applied migration(s) 1, 2, 3" in r.output and "pa55-s3cret" not in r.output
        monkeypatch.setenv("VOC_DB__DSN", secret_dsn)
        r = runner.invoke(app, ["db", "init"])
        assert r.exit_code == 0 and "up to date (version 3)" in r.output
        r = runner.invoke(app, ["db", "load-csv"])
        assert r.exit_code == 0, r.output
        assert f"loaded {N_SAMPLE} VOCs and {N_LABELLED} reviewed labels" in r.output
        assert "pa55-s3cret" not in r.output
        tax = tmp_path / "taxonomy.csv"
        tax.write_text(default_taxonomy().to_csv_text(), encoding="utf-8")
        r = runner.invoke(app, ["db", "load-taxonomy", str(tax)])
        assert r.exit_code == 0, r.output
        assert "32 rows, 32 inserted or changed" in r.output
        tax.write_text("dimension,major,minor\nsubject,a>b,c\n", encoding="utf-8")
        r = runner.invoke(app, ["db", "load-taxonomy", str(tax)])
        assert r.exit_code == 1 and "taxonomy row 1" in r.output
        monkeypatch.setenv("VOC_DB__DSN", f"postgresql://u:pa55-s3cret@127.0.0.1:{free_port()}/x")
        r = runner.invoke(app, ["db", "init"])
        assert r.exit_code == 1 and "cannot connect" in r.output and "pa55-s3cret" not in r.output
        monkeypatch.delenv("VOC_DB__DSN")
        r = runner.invoke(app, ["db", "init"])
        assert r.exit_code == 2 and "VOC_DB__DSN" in r.output


def test_building_tasks_of_one_process_share_one_source_and_pool(db: str) -> None:
    """The building tasks get their source from flows.resources.resources(settings): one source,
    one pool per settings and process; close() closes it and the next use reopens it."""
    from flows.resources import close_all, resources

    settings = VocSettings(source=db, db=DbSettings(pool_max=2))
    sources = [resources(settings).source for _ in range(5)]
    assert all(s is sources[0] for s in sources)
    assert resources(VocSettings(source=db, db=DbSettings(pool_max=3))).source is not sources[0]
    assert sources[0].read_month("2019-11", ["2"]).height == 4
    pool = sources[0]._pool  # type: ignore[attr-defined]  # a PostgresSource: its private pool
    assert pool is not None and not pool.closed
    own = open_source(settings)  # a source opened directly has its own pool
    assert own.read_month("2019-11", ["1"]).height == 41 and own._pool is not pool  # type: ignore[attr-defined]  # as above
    own.close()
    assert not pool.closed
    close_all()
    assert pool.closed
    assert resources(settings).source.read_month("2019-11").height == 45  # reopens
    close_all()


# --------------------------------------------------------------------------------------------
# per-dimension human review ("nothing wrong gets in, nothing right gets lost")


def test_migration_0003_fills_the_flags_from_is_reviewed(tmp_path: Path) -> None:
    """A database at version 2 with reviewed and unreviewed rows: 0003 adds the flags, a row
    reviewed before counts as reviewed in both dimensions, and the file is idempotent."""
    import shutil

    from flows.adapters.db import list_migrations

    old = tmp_path / "v2"
    old.mkdir()
    for m in list_migrations()[:2]:
        (old / m.name).write_text(m.sql_text, encoding="utf-8")
    with temp_database() as dsn:
        assert apply_migrations(dsn, directory=old) == [1, 2]
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO voc_classification (voc_id, subject_major, classify_source, is_reviewed) VALUES"
                " ('r', 'S', 'reviewed', true), ('b', 'S', 'batch', false)"
            )
        assert apply_migrations(dsn) == [3]
        q = "SELECT voc_id, is_reviewed, subject_reviewed, work_reviewed FROM voc_classification ORDER BY voc_id"
        assert _rows(dsn, q) == [("b", False, False, False), ("r", True, True, True)]
        (mig3,) = [m for m in list_migrations() if m.version == 3]
        with psycopg.connect(dsn) as conn:  # the file itself runs twice without harm
            conn.execute(mig3.sql_text.encode("utf-8"))
        assert _rows(dsn, q) == [("b", False, False, False), ("r", True, True, True)]
        shutil.rmtree(old)


def test_priority_per_dimension_matrix_sql_matches_python(fresh_db: str) -> None:
    """Every (stored, incoming) pair of (classify_source, subject_reviewed, work_reviewed): each
    dimension is written exactly when may_overwrite says so for that dimension's flags, the flags
    are the OR of both, is_reviewed means both."""
    combos = list(itertools.product(CLASSIFY_SOURCES, (False, True), (False, True)))
    cases = [(old, new) for old in combos for new in combos]
    with psycopg.connect(fresh_db) as conn:
        for i, ((src, s_rev, w_rev), _) in enumerate(cases):
            conn.execute(
                "INSERT INTO voc_classification (voc_id, subject_major, work_major, classify_source,"
                " is_reviewed, subject_reviewed, work_reviewed) VALUES (%s, 'OLD', 'OLD', %s, %s, %s, %s)",
                (f"p{i}", src, s_rev and w_rev, s_rev, w_rev),
            )
    with PostgresSource(fresh_db) as s:
        for new in combos:
            ids = [f"p{i}" for i, (_, n) in enumerate(cases) if n == new]
            frame = _tags(ids, "NEW", subject_reviewed=new[1], work_reviewed=new[2])
            s.write_tags(frame, classify_source=new[0])
        got = {r["voc_id"]: r for r in s.read_tags().iter_rows(named=True)}
    for i, ((o_src, o_s, o_w), (n_src, n_s, n_w)) in enumerate(cases):
        r = got[f"p{i}"]
        eff = "reviewed" if (n_s or n_w) else n_src  # a row with a human dimension is a reviewed row
        ws, ww = may_overwrite(eff, n_s, o_src, o_s), may_overwrite(eff, n_w, o_src, o_w)
        case = (o_src, o_s, o_w, n_src, n_s, n_w)
        assert (r["subject_major"] == "S-NEW") == ws, case
        assert (r["work_major"] == "W-NEW") == ww, case
        assert (r["subject_reviewed"], r["work_reviewed"]) == (o_s or n_s, o_w or n_w), case
        assert r["is_reviewed"] == ((o_s or n_s) and (o_w or n_w)), case
        # an untouched row keeps its source; a row with a human dimension is stored as a reviewed row
        want_src = o_src if not (ws or ww) else ("reviewed" if (o_s or n_s or o_w or n_w) else eff)
        assert r["classify_source"] == want_src, case


def _month_vocs(dsn: str, sample_df: pl.DataFrame) -> pl.DataFrame:
    """The sample's 2019-11 VOCs in the VOC table, without labels (no classification rows)."""
    month = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == "2019-11").with_columns(
        [pl.lit(None, dtype=pl.Utf8).alias(c) for c in REVIEWED_LABEL_COLUMNS]
    )
    with PostgresSource(dsn) as s:
        assert s.load_frame(month) == (45, 0)
    return month


def test_refresh_writes_only_human_dimensions(fresh_db: str, sample_df: pl.DataFrame, tmp_path: Path) -> None:
    """The reported defect: a done row whose subject is outside the taxonomy used to put the
    model's subject into voc_classification as a human label (is_reviewed=true), then into
    training, for good. Now, through the refresh's own write (flows.monthly.write_reviewed_tags):
    subject_reviewed stays false and the model's subject is no label; the work type is a label
    only where a trained model's tag was confirmed; flags never go back; a second refresh
    changes nothing; a later batch replaces machine dimensions only."""
    from test_review import make_tagged

    from flows.adapters.storage import LocalStorage
    from flows.monthly import write_reviewed_tags
    from flows.storage_layout import reviewed_key
    from flows.train import training_frame
    from voc.review import COL_DONE, COL_VOC_ID, REVIEWER_LABEL_COLUMNS, build_review_rows, merge_reviews

    s_maj, s_min = REVIEWER_LABEL_COLUMNS["subject"]
    tax = default_taxonomy()
    _month_vocs(fresh_db, sample_df)
    tagged = make_tagged(sample_df, month="201911")
    ids = tagged["voc_id"].to_list()
    a, b, c, d = ids[:4]  # a: invalid subject, work from a trained model; b: invalid subject,
    # keyword work; c: valid subject typed, keyword work; d: both confirmed (trained model)
    tagged = tagged.with_columns(
        pl.when(pl.col("voc_id").is_in([b, c])).then(pl.lit("keyword")).otherwise(pl.lit("model")).alias("work_source")
    )
    t = {r["voc_id"]: r for r in tagged.iter_rows(named=True)}
    sheet = build_review_rows(tagged, threshold=0.5)

    def edit(edits: dict[str, dict[str, str]]) -> pl.DataFrame:
        recs = sheet.to_dicts()
        for r in recs:
            r.update(edits.get(r[COL_VOC_ID], {}))
        return pl.DataFrame(recs, schema=sheet.schema)

    reviewed_sheet = edit(
        {
            a: {s_min: "엉터리", COL_DONE: "Y"},
            b: {s_min: "엉터리", COL_DONE: "Y"},
            c: {s_maj: "시설", s_min: "승강기", COL_DONE: "Y"},
            d: {COL_DONE: "Y"},
        }
    )
    q = (
        "SELECT voc_id, subject_major, subject_minor, work_minor, classify_source, subject_reviewed, work_reviewed,"
        " is_reviewed FROM voc_classification WHERE voc_id = ANY(%s) ORDER BY voc_id"
    )

    def state() -> dict[str, tuple]:
        return {r[0]: r[1:] for r in _rows(fresh_db, q, ([a, b, c, d],))}

    with PostgresSource(fresh_db) as src:
        assert src.write_tags(tagged, classify_source="batch") == 45  # the monthly full run
        reviewed, _ = merge_reviews(tagged, reviewed_sheet, tax)
        assert write_reviewed_tags(src, reviewed) == 3  # a, c, d: b has no human dimension
        st = state()
        assert st[a] == (t[a]["subject_major"], t[a]["subject_minor"], t[a]["work_minor"], "reviewed", False, True, False)
        assert st[b] == (t[b]["subject_major"], t[b]["subject_minor"], t[b]["work_minor"], "batch", False, False, False)
        assert st[c] == ("시설", "승강기", t[c]["work_minor"], "reviewed", True, False, False)
        assert st[d] == (t[d]["subject_major"], t[d]["subject_minor"], t[d]["work_minor"], "reviewed", True, True, True)

        # training reads a dimension only where it is human-reviewed
        train = {r["voc_id"]: r for r in src.read_training_rows().iter_rows(named=True)}
        assert set(train) == {a, c, d}
        assert train[a]["reviewed_subject_minor"] is None, "the model's subject is not a label"
        assert train[a]["reviewed_work_minor"] == t[a]["work_minor"]
        assert (train[c]["reviewed_subject_minor"], train[c]["reviewed_work_minor"]) == ("승강기", None)
        assert (train[d]["reviewed_subject_minor"], train[d]["reviewed_work_minor"]) == (t[d]["subject_minor"], t[d]["work_minor"])
        # … and so does voc train, with the reviewed CSV of the refresh in storage as well
        storage = LocalStorage(tmp_path / "store")
        storage.write_bytes(reviewed_key("stat/voc-dev", "2019-11", "1", "refresh_1"), reviewed.write_csv().encode())
        frame = {r["voc_id"]: r for r in training_frame(src, storage, "stat/voc-dev", until=None).iter_rows(named=True)}
        assert frame[a]["reviewed_subject_minor"] is None and frame[a]["reviewed_work_minor"] == t[a]["work_minor"]
        assert frame[b]["reviewed_subject_minor"] is None and frame[b]["reviewed_work_minor"] is None
        assert (frame[c]["reviewed_subject_minor"], frame[c]["reviewed_work_minor"]) == ("승강기", None)

        # a second refresh of the same sheet: nothing flips
        before = src.read_tags().drop("updated_at")
        write_reviewed_tags(src, merge_reviews(tagged, reviewed_sheet, tax)[0])
        assert src.read_tags().drop("updated_at").equals(before)

        # the reviewer takes d back (not done) and spoils c's subject: nothing goes back
        worse = edit({a: {s_min: "엉터리", COL_DONE: "Y"}, c: {s_min: "엉터리", COL_DONE: "Y"}, d: {COL_DONE: "N"}})
        write_reviewed_tags(src, merge_reviews(tagged, worse, tax)[0])
        st2 = state()
        assert st2[c][:2] == ("시설", "승강기") and st2[c][4:] == (True, False, False)
        assert st2[d] == st[d]

        # next month's batch retags everything: machine dimensions change, human ones never
        retag = tagged.with_columns(
            pl.lit("새대분류").alias("subject_major"), pl.lit("새중분류").alias("subject_minor"),
            pl.lit("새작업").alias("work_major"), pl.lit("새작업중").alias("work_minor"),
        )
        src.write_tags(retag, classify_source="batch")
        st3 = state()
        assert st3[a] == ("새대분류", "새중분류", t[a]["work_minor"], "reviewed", False, True, False)
        assert st3[b] == ("새대분류", "새중분류", "새작업중", "batch", False, False, False)
        assert st3[c] == ("시설", "승강기", "새작업중", "reviewed", True, False, False)
        assert st3[d] == st[d], "a row reviewed in both dimensions is never touched by a machine"


def test_load_csv_flags_only_labelled_dimensions(fresh_db: str, sample_df: pl.DataFrame) -> None:
    """Labels loaded with the data are human per dimension: a subject-only label leaves the work
    type to the model, and reloading never blanks the batch's work tag."""
    month = sample_df.filter(pl.col("created_at").dt.strftime("%Y-%m") == "2019-11").head(3)
    ids = month["voc_id"].to_list()
    month = month.with_columns(pl.lit("시설").alias("reviewed_subject_major"), pl.lit("승강기").alias("reviewed_subject_minor"))
    with PostgresSource(fresh_db) as s:
        assert s.load_frame(month) == (3, 3)
        s.write_tags(_tags(ids, "batch"), classify_source="batch")
        s.load_frame(month)  # rerun
        got = s.read_tags(ids)
    assert got["subject_minor"].to_list() == ["승강기"] * 3, "the human subject is kept"
    assert got["work_minor"].to_list() == ["w-batch"] * 3, "the batch's work tag is neither blocked nor blanked"
    assert got["subject_reviewed"].all() and not got["work_reviewed"].any() and not got["is_reviewed"].any()
    assert set(got["classify_source"]) == {"reviewed"}
