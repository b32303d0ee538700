"""Real infrastructure for the tests: a throwaway PostgreSQL database, a moto S3 server over HTTP
with fault injection, and a local Prefect server.

Import these in ``conftest.py`` or in a test module; every helper is a context manager that
cleans up after itself. Nothing here touches a database, bucket or Prefect home it did not create.

Environment:

* ``VOC_TEST_PG_ADMIN_DSN``: DSN of an existing database on the server where the throwaway
  databases are created (default ``postgresql://postgres@127.0.0.1:5432/postgres``); the role
  needs CREATEDB.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PG_ADMIN_DSN",
    "pg_available",
    "temp_database",
    "FaultRule",
    "FaultInjector",
    "MotoS3",
    "moto_s3_server",
    "free_port",
    "prefect_env",
    "prefect_server",
    "prefect_cli",
    "prefect_worker",
    "run_deployment",
    "wait_for_flow_run",
    "filter_flow_runs",
    "api_deployments",
    "error_lines",
    "flow_run_logs",
]

PG_ADMIN_DSN = os.environ.get("VOC_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


# --------------------------------------------------------------------------------------------
# PostgreSQL


def pg_available(dsn: str = PG_ADMIN_DSN, timeout_s: int = 3) -> str | None:
    """None when the server answers, else the reason (for ``pytest.skip``)."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as e:
        return f"PostgreSQL not reachable ({type(e).__name__}); start it or set VOC_TEST_PG_ADMIN_DSN"


def _with_dbname(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at ``dbname`` (a URL stays a URL, so it also works as ``VOC_SOURCE``)."""
    from urllib.parse import urlsplit, urlunsplit

    from psycopg.conninfo import make_conninfo

    if dsn.startswith(("postgresql://", "postgres://")):
        u = urlsplit(dsn)
        return urlunsplit((u.scheme, u.netloc, f"/{dbname}", u.query, u.fragment))
    return make_conninfo(dsn, dbname=dbname)


@contextmanager
def temp_database(admin_dsn: str = PG_ADMIN_DSN, prefix: str = "voc_test") -> Iterator[str]:
    """Create ``{prefix}_<random>``, yield its DSN, drop it (``WITH (FORCE)``) afterwards."""
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{secrets.token_hex(4)}"
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ValueError(f"bad database name {name!r}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_dbname(admin_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------------------------
# S3 (moto over real HTTP, with fault injection)


@dataclass
class FaultRule:
    """Answer ``status`` to requests of ``method`` whose path contains ``path_contains``;
    ``times`` requests (None: every one)."""

    method: str
    path_contains: str
    times: int | None = 1
    status: int = 500
    code: str = "InternalError"


@dataclass
class FaultInjector:
    """WSGI middleware in front of moto: injects S3 error responses, records requests."""

    app: Any
    rules: list[FaultRule] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self, method: str, path_contains: str, times: int | None = 1, status: int = 500, code: str = "InternalError"
    ) -> FaultRule:
        rule = FaultRule(method.upper(), path_contains, times, status, code)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def count(self, method: str, path_contains: str) -> int:
        """Requests seen (injected failures included)."""
        with self._lock:
            return sum(1 for m, p, _ in self.requests if m == method.upper() and path_contains in p)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        rule = None
        with self._lock:
            for r in self.rules:
                if r.method == method and r.path_contains in path and (r.times is None or r.times > 0):
                    rule = r
                    if r.times is not None:
                        r.times -= 1
                    break
            self.requests.append((method, path, rule.status if rule else 0))
        if rule is None:
            return self.app(environ, start_response)
        # drain the request body, as a real server would before answering
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{rule.code}</Code>'
            f"<Message>injected by tests</Message><RequestId>test</RequestId></Error>"
        ).encode()
        start_response(
            f"{rule.status} Injected", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        )
        return [body]


@dataclass
class MotoS3:
    """A running moto server: ``endpoint_url`` and its :class:`FaultInjector`."""

    endpoint_url: str
    faults: FaultInjector


@contextmanager
def moto_s3_server(host: str = "127.0.0.1") -> Iterator[MotoS3]:
    """moto's S3 (all services) on a random port in a thread, behind a :class:`FaultInjector`.

    Set ``AWS_ACCESS_KEY_ID=testing``, ``AWS_SECRET_ACCESS_KEY=testing``,
    ``AWS_DEFAULT_REGION=us-east-1`` for clients.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    faults = FaultInjector(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, 0, faults, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="moto-s3")
    thread.start()
    try:
        yield MotoS3(f"http://{host}:{server.server_port}", faults)
    finally:
        server.shutdown()
        thread.join(timeout=10)


# --------------------------------------------------------------------------------------------
# Prefect


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefect_env(home: Path, api_url: str | None = None, *, scheduler: bool = False, **extra: str) -> dict[str, str]:
    """Environment for Prefect subprocesses: isolated PREFECT_HOME and database, no analytics.

    ``scheduler``: whether a server started with this environment runs its scheduler service
    (off by default: deployments' cron schedules must not create runs in tests that do not look
    at schedules; ``tests/test_schedules.py`` turns it on). ``VOC_*`` variables of the test
    process are not passed on: flow runs see only what the worker and the deployment set.
    ``extra`` is added last (e.g. ``PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5"``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VOC_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_PROFILES_PATH=str(home / "profiles.toml"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="true" if scheduler else "false",
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_CLI_PROMPT="false",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


@contextmanager
def prefect_server(
    home: Path, *, startup_timeout_s: float = 120.0, scheduler: bool = False, port: int | None = None, **server_env: str
) -> Iterator[dict[str, str]]:
    """``prefect server start`` (this interpreter's Prefect, i.e. the project's environment) on a
    random port with ``home`` as PREFECT_HOME; its output goes to ``home / "server.log"``.

    ``scheduler`` turns the scheduler service on (see :func:`prefect_env`); ``server_env`` adds
    settings to the server's environment (and to the yielded client env, where they are inert).
    ``port``: listen there (e.g. one that ``PREFECT_UI_API_URL`` in ``server_env`` names) instead
    of a random free one. Yields the env for clients (``PREFECT_API_URL`` set). The server is
    stopped (its process group) at exit."""
    import httpx

    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = prefect_env(home, api, scheduler=scheduler, **server_env)
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited ({proc.returncode}); see {home / 'server.log'}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start in {startup_timeout_s}s; see {home / 'server.log'}")
            time.sleep(0.5)
        yield env
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    """Terminate ``proc`` and its process group (started with ``start_new_session``)."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)


def prefect_cli(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout_s: float = 300.0, check: bool = True
) -> str:
    """Run ``prefect *args`` (this interpreter's Prefect) and return stdout+stderr.

    Raises
    ------
    AssertionError
        ``check`` and a non-zero exit status (the output is in the message).
    """
    r = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    out = (r.stdout or "") + (r.stderr or "")
    if check and r.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} exited {r.returncode}:\n{out[-4000:]}")
    return out


@contextmanager
def prefect_worker(
    env: dict[str, str], pool: str, log_path: Path, *, work_queues: tuple[str, ...] = (), **extra_env: str
) -> Iterator[subprocess.Popen[Any]]:
    """``prefect worker start --pool POOL [--work-queue Q …]`` in the background (polling every
    second); ``extra_env`` is the worker's own environment on top of ``env`` (``VOC_HOME``,
    ``VOC_ENV``, …), which its flow-run processes inherit. Stopped at exit."""
    wenv = dict(env, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5", **extra_env)
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    queues = [a for q in work_queues for a in ("--work-queue", q)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, *queues, "--name", f"test-{secrets.token_hex(3)}"],
        env=wenv,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        _stop(proc)
        log.close()


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def run_deployment(
    env: dict[str, str], name: str, params: dict[str, str], *, timeout_s: float = 600.0, cwd: Path | None = None
) -> dict[str, Any]:
    """``prefect deployment run NAME -p k=v …``, then wait for a terminal state.

    Returns
    -------
    dict
        The flow run as the API returns it (``state.type`` is ``COMPLETED`` on success).
    """
    args = ["deployment", "run", name]
    for k, v in params.items():
        args += ["-p", f"{k}={v}"]
    out = prefect_cli(env, *args, cwd=cwd)
    m = re.search(r"UUID:\s*(" + _UUID_RE.pattern + ")", out) or _UUID_RE.search(out)
    if not m:
        raise AssertionError(f"no flow run id in:\n{out}")
    run_id = m.group(1) if m.lastindex else m.group(0)
    return wait_for_flow_run(env, run_id, timeout_s=timeout_s, what=name)


TERMINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def wait_for_flow_run(env: dict[str, str], run_id: str, *, timeout_s: float = 600.0, what: str = "") -> dict[str, Any]:
    """Poll ``/flow_runs/{id}`` until the run is in a terminal state; returns the flow run.

    Raises
    ------
    AssertionError
        Still not terminal after ``timeout_s``.
    """
    import httpx

    api = env["PREFECT_API_URL"]
    deadline = time.monotonic() + timeout_s
    while True:
        fr = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        state = (fr.get("state") or {}).get("type")
        if state in TERMINAL_STATES:
            return fr
        if time.monotonic() > deadline:
            raise AssertionError(f"flow run {run_id} {what} still {state} after {timeout_s}s")
        time.sleep(1.0)


def filter_flow_runs(
    env: dict[str, str], flow_runs: dict[str, Any], *, limit: int = 200, sort: str = "EXPECTED_START_TIME_ASC"
) -> list[dict[str, Any]]:
    """``POST /flow_runs/filter`` with ``{"flow_runs": flow_runs}`` (e.g.
    ``{"deployment_id": {"any_": [...]}, "state": {"type": {"any_": ["SCHEDULED"]}}}``)."""
    import httpx

    r = httpx.post(
        f"{env['PREFECT_API_URL']}/flow_runs/filter",
        json={"flow_runs": flow_runs, "sort": sort, "limit": limit},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()


def api_deployments(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every deployment on the server by name (``POST /deployments/filter``)."""
    import httpx

    r = httpx.post(f"{env['PREFECT_API_URL']}/deployments/filter", json={}, timeout=10)
    r.raise_for_status()
    return {d["name"]: d for d in r.json()}


def error_lines(log_path: Path) -> list[str]:
    """Lines of a server log matching ``Traceback|Error`` (the operators' check
    ``grep -cE "Traceback|Error" server.log`` must print 0)."""
    text = log_path.read_text(encoding="utf-8", errors="replace")
    return [ln for ln in text.splitlines() if re.search(r"Traceback|Error", ln)]


def flow_run_logs(env: dict[str, str], flow_run_id: str, limit: int = 200) -> str:
    """The last ``limit`` log lines of a flow run (for assertion messages)."""
    import httpx

    r = httpx.post(
        f"{env['PREFECT_API_URL']}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_DESC", "limit": limit},
        timeout=10,
    )
    return "\n".join(f"{x['level']} {x['message']}" for x in reversed(r.json()))
