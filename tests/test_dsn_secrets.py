"""Nothing wrong gets in: a PostgreSQL password never reaches Prefect, the command line or the
outputs.

* ``--source`` / ``--dsn`` with a password are refused (exit 2) and the message points at
  ``VOC_DB__DSN`` / ``~/.pgpass`` without repeating the password; without a password they pass;
* ``voc_monthly(source=…)`` / ``voc_train(source=…)`` with a password raise before a flow run
  exists (no flow run in Prefect's API carries it); the deployment's parameter schema makes the
  server refuse such a run (409) before storing it;
* a real train + full run with ``VOC_SOURCE=postgres`` and ``VOC_DB__DSN`` holding a (dummy,
  trust-ignored) password: afterwards the password is in no flow run, task run, log, artifact
  of Prefect's API, and in no output file.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from pathlib import Path

import psycopg
import pytest
from infra import PG_ADMIN_DSN, free_port, pg_available, temp_database
from typer.testing import CliRunner

from flows.cli.main import app
from flows.secrets_guard import (
    NO_PASSWORD_PATTERN,
    DsnPasswordError,
    SourceParam,
    dsn_has_password,
    refuse_dsn_password,
)

PASSWORD = f"pw-{secrets.token_hex(6)}"
WITH_PW = f"postgresql://voc:{PASSWORD}@127.0.0.1:{free_port()}/vocdb"
WITHOUT_PW = "postgresql://voc@127.0.0.1:1/vocdb"

SECRET_FORMS = {
    "url-userinfo": WITH_PW,
    "url-userinfo-upper-scheme": f"POSTGRES://voc:{PASSWORD}@db/vocdb",
    "url-userinfo-with-?": f"postgresql://voc:{PASSWORD}?x@db/vocdb",
    "url-password": f"postgresql://voc@127.0.0.1:1/vocdb?connect_timeout=2&password={PASSWORD}",
    "url-sslpassword": f"postgresql://voc@db/vocdb?sslmode=verify-full&sslpassword={PASSWORD}",
    "url-passfile": f"postgresql://voc@db/vocdb?passfile=/srv/{PASSWORD}.pgpass",
    "url-encoded-key": f"postgresql://voc@db/vocdb?pass%77ord={PASSWORD}",
    "keywords-password": f"host=127.0.0.1 port=1 user=voc password={PASSWORD} dbname=vocdb",
    "keywords-quoted": f"host=db user=voc password = '{PASSWORD} with spaces' dbname=vocdb",
    "keywords-sslpassword": f"host=db dbname=vocdb sslpassword={PASSWORD}",
    "keywords-passfile": f"host=db dbname=vocdb passfile=/srv/{PASSWORD}",
    "service-password": f"service=voc password={PASSWORD}",
    "service-passfile": f"service=voc passfile=/home/u/{PASSWORD}",
}
"""Every form of a PostgreSQL connection string that carries a secret (config/dsn.py)."""


def _unwrapped(output: str) -> str:
    """CLI output without whitespace and rich's box characters: a secret wrapped across lines of
    the error box is still found."""
    return re.sub(r"[\s│╭╮╰╯─]", "", output)


def _prefect_dump() -> str:
    """Every flow run, task run, log and artifact the Prefect API holds, as JSON text."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    for name in ("prefect.flow_runs", "prefect.task_runs"):
        for h in logging.getLogger(name).handlers:
            if isinstance(h, APILogHandler):
                h.flush()  # logs are sent in the background: all of them before reading

    async def dump() -> str:
        async with get_client() as c:
            parts = [r.model_dump_json() for r in await c.read_flow_runs(limit=200)]
            parts += [r.model_dump_json() for r in await c.read_task_runs(limit=200)]
            parts += [r.model_dump_json() for r in await c.read_logs(limit=200)]
            offset = 200
            while batch := await c.read_logs(limit=200, offset=offset):
                parts += [r.model_dump_json() for r in batch]
                offset += 200
            parts += [r.model_dump_json() for r in await c.read_artifacts(limit=200)]
            return "\n".join(parts)

    return asyncio.run(dump())


# --------------------------------------------------------------------------------------------
# the check itself


@pytest.mark.parametrize(
    ("value", "has"),
    [
        ("postgresql://voc:secret@db:5432/voc", True),
        ("postgres://voc:p%40ss@db/voc", True),
        ("postgresql://voc@db/voc?password=secret", True),
        ("host=db user=voc password=secret dbname=voc", True),
        ("postgresql://voc@db:5432/voc", False),
        ("postgresql://voc:@db/voc", False),
        ("host=db user=voc dbname=voc", False),
        ("postgres", False),
        ("/srv/voc/voc.csv", False),
        (None, False),
        ("service=voc", False),
        ("postgresql:///vocdb?service=voc&sslmode=require", False),
        ("host=db user=voc password='' dbname=voc", False),
        ("postgresql://voc@db/voc?password=", False),
        ("host=db application_name='password=x'", False),  # a value, not a key
        ("host=db password= dbname=voc", True),  # libpq: the password is "dbname=voc"
        *((v, True) for v in SECRET_FORMS.values()),
    ],
)
def test_dsn_has_password(value, has) -> None:
    assert dsn_has_password(value) is has


def test_dsn_forms() -> None:
    from config.dsn import dsn_form, parse_keyword_dsn

    assert dsn_form("postgresql://voc@db/voc") == "uri" and dsn_form("host=db dbname=voc") == "keywords"
    assert dsn_form("service=voc") == "keywords" and dsn_form("/srv/a.csv") is None and dsn_form("postgres") is None
    assert dsn_form("host=db passwrd hunter2") is None  # a key without "=": not a DSN
    assert parse_keyword_dsn(r"host = db password='a \'b\' c' x=\ y") == [("host", "db"), ("password", "a 'b' c"), ("x", " y")]
    assert parse_keyword_dsn("host='open") is None


@pytest.mark.parametrize("form", list(SECRET_FORMS), ids=list(SECRET_FORMS))
def test_every_form_is_refused_without_its_secret(form: str) -> None:
    value = SECRET_FORMS[form]
    with pytest.raises(DsnPasswordError) as ei:
        refuse_dsn_password(value, where="--source")
    assert PASSWORD not in str(ei.value) and "VOC_DB__DSN" in str(ei.value)
    assert not re.match(NO_PASSWORD_PATTERN, value), "the deployment schema refuses it too"


def test_refusal_names_the_remedy_never_the_password() -> None:
    with pytest.raises(DsnPasswordError) as ei:
        refuse_dsn_password(WITH_PW, where="--source")
    msg = str(ei.value)
    assert PASSWORD not in msg and "VOC_DB__DSN" in msg and ".pgpass" in msg and "--source" in msg


# --------------------------------------------------------------------------------------------
# command line


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--mode", "full", "--month", "2019-11"],
        ["train", "--until", "2019-11"],
        ["demo"],
        ["review", "simulate", "--month", "2019-11", "--from-labels"],
        ["kobert", "build-tiny-base", "/nonexistent"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_cli_source_with_password_is_refused(argv: list[str], tmp_path: Path) -> None:
    res = CliRunner().invoke(app, [*argv, "--storage", str(tmp_path), "--source", WITH_PW] if argv[0] != "kobert"
                             else [*argv, "--source", WITH_PW])
    assert res.exit_code == 2, res.output
    assert "VOC_DB__DSN" in res.output and PASSWORD not in _unwrapped(res.output)
    assert not (tmp_path / "stat").exists(), "nothing ran"


@pytest.mark.parametrize("cmd", [["db", "init"], ["db", "load-csv"], ["db", "load-taxonomy", "/nonexistent.csv"]])
def test_cli_dsn_with_password_is_refused(cmd: list[str]) -> None:
    res = CliRunner().invoke(app, [*cmd, "--dsn", WITH_PW])
    assert res.exit_code == 2, res.output
    assert "VOC_DB__DSN" in res.output and ".pgpass" in res.output and PASSWORD not in _unwrapped(res.output)


@pytest.mark.parametrize("form", list(SECRET_FORMS), ids=list(SECRET_FORMS))
def test_cli_refuses_every_form(form: str, tmp_path: Path) -> None:
    for argv in (["run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path), "--source"], ["db", "init", "--dsn"]):
        res = CliRunner().invoke(app, [*argv, SECRET_FORMS[form]])
        assert res.exit_code == 2, res.output
        assert "VOC_DB__DSN" in res.output and PASSWORD not in _unwrapped(res.output)
    assert not (tmp_path / "stat").exists()


@pytest.mark.parametrize("form", ["url-userinfo", "url-sslpassword", "keywords-password", "service-passfile"])
def test_voc_source_setting_with_a_secret_is_refused(form: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``VOC_SOURCE`` (environment): settings refuse it without repeating it, and the CLI exits 2
    before any command runs."""
    from pydantic import ValidationError

    from config.settings import VocSettings

    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("VOC_SOURCE", SECRET_FORMS[form])
    with pytest.raises(ValidationError) as ei:
        VocSettings()
    assert PASSWORD not in str(ei.value) and "VOC_DB__DSN" in str(ei.value)
    res = CliRunner().invoke(app, ["run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path / "s")])
    assert res.exit_code == 2 and "VOC_SOURCE" in res.output and PASSWORD not in _unwrapped(res.output), res.output
    assert not (tmp_path / "s").exists()


def test_a_source_that_is_neither_a_file_nor_a_dsn_is_refused_unseen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A mistyped keyword DSN (``passwrd`` without ``=``) was read as a CSV path and printed in
    the error (and so in logs and run states): now refused, the value never shown."""
    from config.settings import VocSettings
    from flows.adapters.sources import SourceError
    from flows.monthly import voc_monthly
    from flows.resources import open_source
    from flows.secrets_guard import SOURCE_NOT_FOUND

    typo = f"host=db user=voc passwrd {PASSWORD}"
    assert not dsn_has_password(typo)
    res = CliRunner().invoke(app, ["run", "--mode", "full", "--month", "2019-11", "--storage", str(tmp_path), "--source", typo])
    flat = " ".join(res.output.replace("│", " ").split())  # rich wraps the message in a box
    assert res.exit_code == 2 and "neither an existing CSV file nor a PostgreSQL DSN" in flat and PASSWORD not in _unwrapped(res.output)
    with pytest.raises(SourceError) as ei:
        open_source(VocSettings(source=typo))
    assert str(ei.value) == SOURCE_NOT_FOUND and PASSWORD not in str(ei.value)
    with pytest.raises(ValueError, match="voc-monthly") as ei:  # a direct call: before the flow run exists
        voc_monthly.serialize_parameters({"mode": "full", "source": typo})
    assert PASSWORD not in str(ei.value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOC_SOURCE", f"/nowhere/{PASSWORD}.csv")
    with pytest.raises(SourceError) as ei:
        open_source(VocSettings())
    assert PASSWORD not in str(ei.value)


def test_a_keyword_dsn_without_password_is_a_postgres_source() -> None:
    from config.settings import VocSettings
    from flows.adapters.db import PostgresSource
    from flows.resources import open_source

    s = VocSettings(source="host=127.0.0.1 port=1 user=voc dbname=vocdb")
    assert s.source_is_postgres and s.source_dsn == s.source
    src = open_source(s)
    assert isinstance(src, PostgresSource) and src.describe().startswith("postgresql://voc@127.0.0.1:1/vocdb")
    assert not VocSettings(source="postgres").source_dsn


def test_cli_dsn_without_password_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["db", "init", "--dsn", WITHOUT_PW])
    assert res.exit_code == 1 and "cannot connect to PostgreSQL at postgresql://voc@127.0.0.1:1/vocdb" in res.output


# --------------------------------------------------------------------------------------------
# flow parameters


def test_flow_bodies_refuse_first() -> None:
    """A run that exists anyway (a deployment without schema enforcement) fails at once."""
    from flows.monthly import voc_monthly
    from flows.train import voc_train

    for form, value in SECRET_FORMS.items():
        with pytest.raises(DsnPasswordError, match="voc-monthly") as ei:
            voc_monthly.fn(mode="full", month="2019-11", source=value)
        assert PASSWORD not in str(ei.value), form
        with pytest.raises(DsnPasswordError, match="voc-train") as ei:
            voc_train.fn(until="2019-11", source=value)
        assert PASSWORD not in str(ei.value), form
        for flow in (voc_monthly, voc_train):  # a direct call: refused before the flow run exists
            with pytest.raises(ValueError) as ei:
                flow.serialize_parameters({"source": value})
            assert PASSWORD not in str(ei.value), form


@pytest.mark.slow  # a Prefect flow run end to end
def test_flow_parameter_with_password_never_reaches_prefect(prefect_server, tmp_path: Path) -> None:
    from flows.monthly import voc_monthly
    from flows.train import voc_train

    with pytest.raises(DsnPasswordError) as ei:
        voc_monthly(mode="full", month="2019-11", storage=str(tmp_path), source=WITH_PW)
    assert PASSWORD not in str(ei.value) and "VOC_DB__DSN" in str(ei.value)
    with pytest.raises(DsnPasswordError):
        voc_train(until="2019-11", storage=str(tmp_path), source=WITH_PW)
    for value in SECRET_FORMS.values():  # every form (config/dsn.py)
        with pytest.raises(DsnPasswordError):
            voc_monthly(mode="full", month="2019-11", storage=str(tmp_path), source=value)
    assert PASSWORD not in _prefect_dump()
    assert not (tmp_path / "stat").exists()


@pytest.mark.slow  # a real Prefect server (about 17 s to start on 2 cores)
def test_deployment_schema_refuses_a_password_before_the_run_exists(prefect_server) -> None:
    """The schema Prefect derives from the flow (what ``prefect deploy`` stores) carries the
    pattern; the server enforces it when a run is created from the deployment (HTTP 409)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.utilities.callables import parameter_schema

    from flows.monthly import voc_monthly

    schema = parameter_schema(voc_monthly).model_dump_for_openapi()
    assert "pattern" in str(schema["properties"]["source"])

    async def scenario() -> tuple[int, str]:
        async with get_client() as c:
            flow_id = await c.create_flow_from_name("voc-monthly")
            dep = await c.create_deployment(
                flow_id=flow_id,
                name=f"schema-check-{secrets.token_hex(3)}",
                parameter_openapi_schema=schema,
                enforce_parameter_schema=True,
            )
            try:
                await c.create_flow_run_from_deployment(dep, parameters={"mode": "full", "source": WITH_PW})
                status = 201
            except PrefectHTTPStatusError as e:
                status = e.response.status_code
            ok = await c.create_flow_run_from_deployment(dep, parameters={"mode": "full", "source": WITHOUT_PW})
            await c.delete_flow_run(ok.id)
            await c.delete_deployment(dep)
            return status, ok.parameters["source"]

    status, accepted = asyncio.run(scenario())
    assert status == 409
    assert accepted == WITHOUT_PW
    assert PASSWORD not in _prefect_dump()


def test_both_flows_declare_source_with_the_no_password_schema() -> None:
    """What the server enforces above comes from the flows' own annotation: ``source`` of both
    flows is :data:`SourceParam`, whose schema is :data:`NO_PASSWORD_PATTERN` (or null)."""
    import typing

    from prefect.utilities.callables import parameter_schema

    from flows.monthly import voc_monthly
    from flows.train import voc_train

    for flow in (voc_monthly, voc_train):
        assert typing.get_type_hints(flow.fn, include_extras=True)["source"] == SourceParam, flow.name
        source = parameter_schema(flow).model_dump_for_openapi()["properties"]["source"]
        assert source["anyOf"] == [{"type": "string", "pattern": NO_PASSWORD_PATTERN}, {"type": "null"}], flow.name


# --------------------------------------------------------------------------------------------
# a real run with the password in VOC_DB__DSN


@pytest.fixture()
def prefect_info_logs(monkeypatch: pytest.MonkeyPatch):
    """Every log of flow and task runs (DEBUG and up) goes to the API during the test: conftest
    keeps WARNING, and Prefect re-applies its logging config (``setup_logging``) when a client
    starts an app, so the level is pinned for the test's duration."""
    logger = logging.getLogger("prefect")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    monkeypatch.setattr(logger, "setLevel", lambda level: None)
    yield
    monkeypatch.undo()
    logger.setLevel(old)


@pytest.mark.slow
def test_postgres_run_leaves_no_password_in_prefect_or_outputs(
    prefect_server, prefect_info_logs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pg_available() is not None:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {pg_available()}")
    from config.settings import sample_csv_path
    from flows.adapters.db import apply_migrations, load_csv
    from flows.monthly import voc_monthly
    from flows.train import voc_train

    password = f"dsn-secret-{secrets.token_hex(8)}"
    with temp_database(PG_ADMIN_DSN, prefix="voc_secret") as url:
        apply_migrations(url)
        load_csv(url, sample_csv_path())
        # trust authentication: the server never asks, so the dummy password is never checked
        with_password = psycopg.conninfo.make_conninfo(url, password=password)
        assert password in with_password
        store = tmp_path / "store"
        monkeypatch.chdir(tmp_path)  # no stray .env
        monkeypatch.setenv("VOC_SOURCE", "postgres")
        monkeypatch.setenv("VOC_DB__DSN", with_password)
        monkeypatch.setenv("VOC_STORAGE", str(store))
        monkeypatch.setenv("VOC_MODEL__CACHE_DIR", str(tmp_path / "model-cache"))
        t = voc_train(until="2019-11")
        full = voc_monthly(mode="full", month="2019-11")
        assert t["status"] == "champion" and full["failed"] == [] and full["rows"] == 45

    dump = _prefect_dump()
    assert "voc-monthly" in dump, dump[-3000:]
    assert "training " in dump and "run_id=" in dump, "the runs' INFO logs are in the dump:\n" + dump[-3000:]
    assert password not in dump
    assert password not in repr(t) + repr(full)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("tagged_") for p in files) and any(p.name == "meta.json" for p in files)
    leaked = [str(p) for p in files if password.encode() in p.read_bytes()]
    assert leaked == []
