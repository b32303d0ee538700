"""Retries only where they help, and bounded time (flows/adapters/retries.py, flows/adapters/s3.py).

* :func:`flows.adapters.retries.retry_on_io_errors` retries transient I/O errors (connection, timeout,
  throttling, 5xx, PostgreSQL connection loss, the project's wrappers of them) and nothing
  deterministic — checked directly and through real Prefect task runs that count attempts;
* every I/O task of the flows uses that one policy;
* an S3 endpoint that accepts connections and never answers (a real socket server below) fails a
  write within the computed budget, with an error naming the key and the endpoint;
* a ``voc-monthly`` run against such an endpoint ends with ``MonthlyRunError`` naming the
  buildings, well within 5 minutes (small timeouts via ``VOC_S3__*``), and the budget with the
  default settings is under 5 minutes.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections import Counter
from typing import Any

import botocore.exceptions as bce
import polars as pl
import pytest
import requests
from boto3.exceptions import RetriesExceededError
from filelock import Timeout
from prefect import flow, task

from config.settings import S3Settings
from flows.adapters.retries import (
    IO_TASK,
    MODEL_IO_TASK,
    NESTED_IO_TASK,
    default_s3_task_budget_s,
    io_task_budget_s,
    is_transient,
    retry_on_io_errors,
    s3_operation_budget_s,
)
from flows.adapters.sources import SourceError
from flows.adapters.storage import StorageError

BUCKET = "bucket"


# --------------------------------------------------------------------------------------------
# a hung endpoint: accepts TCP, reads the request, never answers


class HungEndpoint:
    """A TCP server on 127.0.0.1 that accepts connections and reads requests but answers none.

    With ``answer_reads`` it answers ``GET``/``HEAD`` with S3's 404 ``NoSuchKey`` (an empty
    bucket that can still be read) and hangs only on writes. It stops on exit of the ``with``
    block, or by itself after ``lifetime_s`` seconds, whichever comes first; every socket is
    closed then.
    """

    def __init__(self, *, answer_reads: bool = False, lifetime_s: float = 150.0) -> None:
        self.answer_reads = answer_reads
        self.lifetime_s = lifetime_s
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._threads: list[threading.Thread] = []
        self.endpoint_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def count(self, method: str, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and path_contains in p)

    def __enter__(self) -> HungEndpoint:
        self._deadline = time.monotonic() + self.lifetime_s
        t = threading.Thread(target=self._accept, name="hung-s3", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in list(self._threads):
            t.join(timeout=5)
        self._sock.close()

    def _alive(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _accept(self) -> None:
        while self._alive():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf = b""
        hanging = False
        try:
            while self._alive():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return  # the client gave up and closed
                if hanging:
                    continue  # the body of a write: read and drop it
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    method, path = [*lines[0].split(" "), "", ""][:2]
                    length = 0
                    for line in lines[1:]:
                        if line.lower().startswith("content-length:"):
                            length = int(line.split(":", 1)[1])
                    with self._lock:
                        self.requests.append((method, path))
                    if not (self.answer_reads and method in ("GET", "HEAD")):
                        hanging = True  # keep reading (the body), answer nothing, ever
                        break
                    buf = rest[length:]
                    body = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
                        b"<Message>The specified key does not exist.</Message></Error>"
                    )
                    conn.sendall(
                        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {0 if method == 'HEAD' else len(body)}\r\n\r\n".encode()
                        + (b"" if method == "HEAD" else body)
                    )
        except OSError:
            return
        finally:
            conn.close()




# --------------------------------------------------------------------------------------------
# the retry condition


def _client_error(status: int, code: str) -> bce.ClientError:
    return bce.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


def _raised(exc: BaseException, *, wrapper: BaseException | None = None, hide: bool = False) -> BaseException:
    """``exc`` as really raised; with ``wrapper``, the wrapper raised ``from exc`` (or ``from None``
    while handling it, the way flows/adapters/db.py keeps a DSN out of messages)."""
    try:
        try:
            raise exc
        except BaseException as inner:
            if wrapper is None:
                raise
            if hide:
                raise wrapper from None
            raise wrapper from inner
    except BaseException as outer:  # noqa: BLE001 - the caller inspects whatever was raised
        return outer


def _gspread_error(status: int) -> BaseException:
    from gspread.exceptions import APIError

    r = requests.Response()
    r.status_code = status
    r._content = b'{"error": {"code": %d, "message": "m", "status": "S"}}' % status
    return APIError(r)


def _httpx_status_error(status: int) -> BaseException:
    import httpx

    request = httpx.Request("GET", "http://127.0.0.1:9/x")
    return httpx.HTTPStatusError("m", request=request, response=httpx.Response(status, request=request))


def _column_not_found() -> BaseException:
    try:
        pl.DataFrame({"a": [1]}).select("b")
    except pl.exceptions.ColumnNotFoundError as e:
        return e
    raise AssertionError("polars did not raise")


def test_transient_errors_are_retried() -> None:
    import httpx
    import psycopg
    from psycopg_pool import PoolTimeout

    url = "http://127.0.0.1:9/bucket/k"
    transient = [
        ConnectionError("reset"),
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        TimeoutError("timed out"),
        OSError(errno.EHOSTUNREACH, "no route to host"),
        bce.EndpointConnectionError(endpoint_url=url),
        bce.ConnectTimeoutError(endpoint_url=url),
        bce.ReadTimeoutError(endpoint_url=url),
        bce.ConnectionClosedError(endpoint_url=url),
        _client_error(503, "SlowDown"),
        _client_error(500, "InternalError"),
        _client_error(429, "TooManyRequests"),
        _client_error(400, "ThrottlingException"),
        psycopg.OperationalError("connection to server at 127.0.0.1, port 1 failed: Connection refused"),
        PoolTimeout("couldn't get a connection after 30.00 sec"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        requests.ConnectionError("refused"),
        requests.ReadTimeout("read timed out"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("read timed out"),
        _gspread_error(429),
        _gspread_error(503),
        _httpx_status_error(503),
        socket.gaierror(socket.EAI_AGAIN, "temporary failure in name resolution"),
        RetriesExceededError(bce.ReadTimeoutError(endpoint_url=url)),  # boto3's download_file gave up
        # the project's wrappers: the cause decides
        _raised(bce.ReadTimeoutError(endpoint_url=url), wrapper=StorageError(f"upload {url} failed after 1 attempt")),
        _raised(
            psycopg.OperationalError("server closed the connection unexpectedly"),
            wrapper=SourceError("cannot connect to PostgreSQL at postgresql://voc@db:5432/voc"),
            hide=True,  # `raise … from None` still keeps __context__
        ),
        _raised(Timeout("/data/.locks/x.lock"), wrapper=StorageError("a.csv: its directory is still locked")),
    ]
    for exc in transient:
        assert is_transient(exc), repr(exc)


def test_deterministic_errors_are_not_retried() -> None:
    import psycopg

    from flows.adapters.review_backends import ReviewBackendError
    from voc.review import ReviewError, ReviewSheetError
    from voc.schema import VOCInputError
    from voc.taxonomy import TaxonomyError

    deterministic = [
        ValueError("bad month"),
        VOCInputError("row 3 (voc_id=7): created_at='2019-13-01' is not a date"),
        _column_not_found(),
        KeyError("building_id"),
        FileNotFoundError("building 95: no tagged CSV for 2019-11; run mode=full first"),
        PermissionError(errno.EACCES, "denied"),
        OSError(errno.ENOSPC, "no space left on device"),
        ReviewError("bad sheet"),
        ReviewSheetError("row 4 검수_subject_major='x' is not in the taxonomy"),
        TaxonomyError("duplicate minor"),
        _client_error(403, "AccessDenied"),
        _client_error(404, "NoSuchKey"),
        bce.NoCredentialsError(),
        psycopg.errors.InvalidPassword("password authentication failed for user voc"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.UndefinedTable('relation "voc" does not exist'),
        requests.HTTPError("404", response=_response(404)),
        _gspread_error(400),
        _httpx_status_error(404),
        socket.gaierror(socket.EAI_NONAME, "name or service not known"),
        StorageError("no such key in /data: stat/voc-dev/x.csv"),
        SourceError("VOC source file not found: /nope.csv"),
        ReviewBackendError("review workbook stat/voc-dev/201911/review_201911.xlsx has no data sheet"),
        _raised(_client_error(404, "NoSuchKey"), wrapper=StorageError("no such key: s3://bucket/k")),
        # a deterministic error raised while handling a transient one: the outermost decides
        _raised(ConnectionError("reset"), wrapper=ValueError("bad data after reconnect")),
        RuntimeError("unknown"),
    ]
    for exc in deterministic:
        assert not is_transient(exc), repr(exc)


def _response(status: int) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    return r


class _State:
    """What Prefect passes: a failed state whose result is the exception."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self, raise_on_failure: bool = True) -> Any:
        assert raise_on_failure is False
        return self.exc


def test_retry_condition_fn_reads_the_state() -> None:
    from prefect.states import Failed

    assert retry_on_io_errors(None, None, Failed(data=ConnectionError("x"))) is True
    assert retry_on_io_errors(None, None, Failed(data=ValueError("x"))) is False
    assert retry_on_io_errors(None, None, Failed(data=_column_not_found())) is False
    assert retry_on_io_errors(None, None, _State(bce.ReadTimeoutError(endpoint_url="http://x"))) is True


def test_every_io_task_of_the_flows_uses_the_shared_policy() -> None:
    from flows import monthly, train

    tasks = {
        monthly.store_object: NESTED_IO_TASK,
        monthly.read_month: IO_TASK,
        monthly.load_model: MODEL_IO_TASK,
        monthly.sync_review_sheet: IO_TASK,
        monthly.read_review_sheet: IO_TASK,
        train.load_training_data: MODEL_IO_TASK,
        train.publish_model: MODEL_IO_TASK,
    }
    for t, options in tasks.items():
        assert t.retry_condition_fn is retry_on_io_errors, t.name
        assert t.retries == 3 and t.retry_delay_seconds == [2.0, 5.0, 15.0], t.name
        assert t.timeout_seconds == options["timeout_seconds"], t.name
    assert not hasattr(monthly, "IO_RETRIES") and not hasattr(train, "IO_RETRIES")
    # building tasks are not retried themselves (their I/O tasks are)
    assert monthly.tag_building.retries == 0 and monthly.refresh_building.retries == 0


ATTEMPTS: Counter[str] = Counter()


@task(name="io-probe", **IO_TASK)
def io_probe(kind: str) -> str:
    ATTEMPTS[kind] += 1
    if kind == "value":
        raise ValueError("a bad value: the same on every attempt")
    if kind == "input":
        from voc.schema import VOCInputError

        raise VOCInputError("row 1: created_at='x' is not a date")
    if kind == "columns":
        pl.DataFrame({"a": [1]}).select("b")
    if kind == "connection":
        raise ConnectionError("connection reset by peer")
    if kind == "s3-timeout":
        raise StorageError("upload s3://bucket/k failed after 1 attempt") from bce.ReadTimeoutError(
            endpoint_url="http://127.0.0.1:9/bucket/k"
        )
    if kind == "flaky" and ATTEMPTS[kind] < 3:
        raise TimeoutError("timed out")
    return kind


@flow(name="io-probe-flow")
def io_probe_flow(kinds: list[str]) -> dict[str, Any]:
    probe = io_probe.with_options(retry_delay_seconds=0)
    return {k: probe(k, return_state=True) for k in kinds}


@pytest.mark.slow  # a real Prefect API (about 17 s to start on 2 cores)
def test_prefect_retries_transient_errors_only(prefect_server: None) -> None:
    ATTEMPTS.clear()
    kinds = ["value", "input", "columns", "connection", "s3-timeout", "flaky"]
    states = io_probe_flow(kinds)
    retries = IO_TASK["retries"]
    assert dict(ATTEMPTS) == {
        "value": 1,
        "input": 1,
        "columns": 1,
        "connection": retries + 1,
        "s3-timeout": retries + 1,
        "flaky": 3,
    }
    for k in ("value", "input", "columns", "connection", "s3-timeout"):
        assert states[k].is_failed(), k
    assert states["flaky"].is_completed() and states["flaky"].result() == "flaky"


# --------------------------------------------------------------------------------------------
# bounded time


def test_default_budget_is_well_under_five_minutes() -> None:
    s3 = S3Settings()
    assert (s3.connect_timeout_s, s3.read_timeout_s, s3.botocore_attempts) == (5.0, 20.0, 2)
    op = s3_operation_budget_s(s3)
    assert op == 2 * (5.0 + 20.0 + 1.0) + 1.0 == 53.0  # two HTTP attempts (+1 s slack) + botocore's backoff
    task_budget = default_s3_task_budget_s()
    # 4 attempts of one operation + 2 + 5 + 15 s of delays + 1 s Prefect overhead per attempt
    assert task_budget == io_task_budget_s(op, NESTED_IO_TASK) == 4 * (op + 1.0) + 22.0 == 238.0
    assert task_budget < 300.0
    # a third botocore attempt breaks the 5 minutes (the module docstring says so)
    assert io_task_budget_s(s3_operation_budget_s(S3Settings(botocore_attempts=3))) == 350.0


def test_hung_endpoint_fails_a_write_within_the_budget(aws_test_env: None) -> None:
    from flows.adapters.s3 import S3Storage

    s3 = S3Settings(connect_timeout_s=1.0, read_timeout_s=1.0, botocore_attempts=2)
    budget = s3_operation_budget_s(s3)  # 2 × 3 + 1 = 7 s
    with HungEndpoint() as hung:
        st = S3Storage.from_uri(f"s3://{BUCKET}/runs", S3Settings(**{**s3.model_dump(), "endpoint_url": hung.endpoint_url}))
        t0 = time.monotonic()
        with pytest.raises(StorageError) as e:
            st.write_bytes("stat/voc-dev/201911/1/tagged.csv", b"a,b\n1,2\n")
        elapsed = time.monotonic() - t0
        puts = hung.count("PUT", "/tagged.csv")
    msg = str(e.value)
    assert f"s3://{BUCKET}/runs/stat/voc-dev/201911/1/tagged.csv" in msg and hung.endpoint_url in msg, msg
    assert isinstance(e.value.__cause__, bce.ReadTimeoutError)
    assert is_transient(e.value)  # Prefect's task retries own it from here
    assert puts == 2  # botocore's two attempts, nothing more
    assert 2 * s3.read_timeout_s * 0.9 <= elapsed < budget, (elapsed, budget)
    print(f"hung write failed after {elapsed:.2f} s (budget {budget:.1f} s)")


@pytest.mark.slow  # end-to-end: a whole command or flow run
def test_monthly_run_against_a_hung_endpoint_fails_its_buildings_in_bounded_time(
    prefect_server: None, aws_test_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from flows.monthly import MonthlyRunError, voc_monthly

    small = {"CONNECT_TIMEOUT_S": "1", "READ_TIMEOUT_S": "1", "BOTOCORE_ATTEMPTS": "1"}
    with HungEndpoint(answer_reads=True) as hung:  # reads: an empty bucket; writes: never answered
        monkeypatch.setenv("VOC_S3__ENDPOINT_URL", hung.endpoint_url)
        for k, v in small.items():
            monkeypatch.setenv(f"VOC_S3__{k}", v)
        monkeypatch.setenv("VOC_MODEL__ALLOW_KEYWORD_ONLY", "true")  # no champion in the empty bucket
        monkeypatch.setenv("VOC_MODEL__CACHE_DIR", str(tmp_path / "models"))
        t0 = time.monotonic()
        with pytest.raises(MonthlyRunError) as e:
            voc_monthly(mode="tagging-only", month="2019-11", storage=f"s3://{BUCKET}")
        elapsed = time.monotonic() - t0
        puts = hung.count("PUT", "/stat/voc-dev/runs/tagging-only_")
        tagged_puts = hung.count("PUT", "/tagged_")
    summary = e.value.summary
    assert summary["failed"] == ["1", "2"], summary
    assert "buildings failed: 1, 2; none completed" in str(e.value), str(e.value)
    for b in summary["buildings"]:
        assert b["status"] == "failed" and b["rows"] > 0
        # the run's first write (its run-id marker) hangs: nothing is tagged into a storage that
        # cannot be written, and every building says why, naming the key and the endpoint
        assert "run id not reserved, storage not writable" in b["error"], b["error"]
        assert f"s3://{BUCKET}/stat/voc-dev/runs/tagging-only_" in b["error"] and hung.endpoint_url in b["error"]
    # the reservation (an I/O task) ran 1 + 3 times (timeouts are retried by Prefect), one PUT each
    assert puts == IO_TASK["retries"] + 1 and tagged_puts == 0, (puts, tagged_puts)
    budget = io_task_budget_s(s3_operation_budget_s(S3Settings(**{k.lower(): v for k, v in small.items()})), IO_TASK)
    assert elapsed < budget + 30.0 < 300.0, (elapsed, budget)  # + the run's own work (model load, artifacts)
    print(f"monthly run failed after {elapsed:.1f} s (I/O budget {budget:.1f} s)")


def test_google_sheets_requests_time_out(aws_test_env: None) -> None:
    from config.settings import ReviewSettings
    from flows.adapters.review_backends import GSheetsReviewBackend, make_gspread_client

    with HungEndpoint() as hung:
        settings = ReviewSettings(backend="gsheets", sheets_api_url=hung.endpoint_url, spreadsheet_key="abc", timeout_s=1.0)
        client = make_gspread_client(settings)
        assert client.http_client.timeout == 1.0
        t0 = time.monotonic()
        with pytest.raises(Exception) as e:
            GSheetsReviewBackend(settings, client=client, max_attempts=2, backoff_s=0.01).read_month("2019-11")
        elapsed = time.monotonic() - t0
    assert any(isinstance(x, requests.Timeout) for x in _chain(e.value)), repr(e.value)
    assert is_transient(e.value)
    assert elapsed < 5.0, elapsed


def _chain(exc: BaseException) -> list[BaseException]:
    from flows.adapters.retries import exception_chain

    return list(exception_chain(exc))


@pytest.mark.slow  # a real PostgreSQL server
def test_postgres_statement_timeout_applies_to_every_pooled_connection() -> None:
    from infra import pg_available, temp_database

    reason = pg_available()
    if reason:
        pytest.skip(reason)
    from config.settings import DbSettings
    from flows.adapters.db import PostgresSource

    with temp_database() as dsn, PostgresSource(dsn, DbSettings(statement_timeout_s=0.5, pool_max=2)) as src:
        with src.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "500ms"
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=r"cancelled \(VOC_DB__STATEMENT_TIMEOUT_S=0.5 s\)") as e, src.connection() as conn:
            conn.execute("SELECT pg_sleep(5)")
        elapsed = time.monotonic() - t0
        assert not is_transient(e.value)  # a statement too slow stays too slow: not retried
        assert elapsed < 3.0, elapsed
        with src.connection() as conn:  # the pool is still usable, the limit still set
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "500ms"
    with temp_database() as dsn, PostgresSource(dsn, DbSettings(statement_timeout_s=0)) as src, src.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"
