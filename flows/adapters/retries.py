"""One retry policy for every I/O task of the flows, and the time budget it implies.

Two layers, both libraries' own retries — no retry loop of ours:

1. botocore (S3): ``standard`` retry mode (boto3 guide, "Retries":
   https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html) with
   ``VOC_S3__BOTOCORE_ATTEMPTS`` HTTP attempts per request (default 2, the first included),
   each at most ``connect_timeout_s`` (5 s) + ``read_timeout_s`` (20 s); it retries connection
   errors, timeouts, 500/502/503/504 and throttling codes (``SlowDown`` …) after a jittered
   backoff of at most 1, 2, 4 … s (capped at 20 s);
2. Prefect: :data:`IO_TASK` = 3 task retries after 2, 5 and 15 s, only when
   :func:`retry_on_io_errors` says the failure was a *transient I/O error*; each attempt also
   capped by the task's ``timeout_seconds`` (120 s) where Prefect can enforce it.

Transient: a connection refused, reset or timed out, an S3 5xx / 429 / ``SlowDown`` / throttling
answer, a PostgreSQL connection failure, a Google Sheets 429 / 5xx, and the project's own
wrappers of those (:class:`flows.adapters.storage.StorageError`,
:class:`flows.adapters.sources.SourceError`, :class:`flows.adapters.review_backends.ReviewBackendError`
whose cause or context is one of them). Everything else — bad input (``ValueError``,
:class:`voc.schema.VOCInputError`, taxonomy and review-sheet errors), a polars error, a
``KeyError``, a missing key or file, a 4xx, a permission or authentication error, a bug — fails
on the first attempt: running it again gives the same answer.

The decision looks at the exception and then at its ``__cause__`` / ``__context__`` chain; the
first exception in the chain that a rule of :data:`_RULES` recognises decides. A rule only looks
at exception classes whose module is already imported (an exception of a class implies its
module is loaded), so deciding imports nothing.

Time against a hung S3 endpoint (accepts TCP, never answers; :func:`s3_operation_budget_s`,
:func:`io_task_budget_s`): one S3 operation fails within 2 × (5 + 20 + 1) + 1 = 53 s and one
I/O task within 4 × (53 + 1) + 2 + 5 + 15 = 238 s (:func:`default_s3_task_budget_s`), under the
5 minutes a monthly run is promised. A third botocore attempt would make it 350 s: raise
``VOC_S3__BOTOCORE_ATTEMPTS`` only with shorter timeouts. A building task is not retried itself,
so a building whose upload hangs fails within that time after its tagging; the building tasks
run concurrently (Prefect's thread pool is unbounded unless
``PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS`` caps it: then the bound holds per wave of
buildings), so the whole run fails within it as well. A hung endpoint met first by
``load-model`` fails the run there, within the same bound.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from config.settings import S3Settings

__all__ = [
    "IO_TASK",
    "NESTED_IO_TASK",
    "MODEL_IO_TASK",
    "IO_TASK_RETRIES",
    "IO_RETRY_DELAYS_S",
    "IO_TASK_TIMEOUT_S",
    "MODEL_TRANSFER_TIMEOUT_S",
    "io_task_options",
    "is_transient",
    "retry_on_io_errors",
    "exception_chain",
    "s3_operation_budget_s",
    "io_task_budget_s",
    "default_s3_task_budget_s",
]

IO_TASK_RETRIES = 3
"""Prefect retries of an I/O task (4 attempts in all)."""

IO_RETRY_DELAYS_S: tuple[float, ...] = (2.0, 5.0, 15.0)
"""Seconds Prefect waits before retry 1, 2, 3."""

IO_TASK_TIMEOUT_S = 120.0
"""Seconds one attempt of an I/O task may run (small objects, a month's rows, the review sheet).
A backstop: the I/O calls inside have their own, shorter timeouts."""

MODEL_TRANSFER_TIMEOUT_S = 1800.0
"""Seconds one attempt of a task moving a model directory (hundreds of MB for KoBERT) may run."""

_HTTP_SLACK_S = 1.0
"""Per HTTP attempt on top of connect + read timeouts: botocore waits up to 1 s for
``100 Continue`` before sending a PUT body, plus scheduling noise."""

_BOTOCORE_MAX_BACKOFF_S = 20.0
"""Cap of botocore's standard-mode backoff (``botocore.retries.standard.ExponentialBackoff``:
``rand(0, 1) × min(2 ** (attempt - 1), 20)`` seconds)."""

_PREFECT_OVERHEAD_S = 1.0
"""Per Prefect task attempt: state transitions and the retry bookkeeping."""

_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT", "EHOSTUNREACH", "EHOSTDOWN",
        "ENETUNREACH", "ENETDOWN", "ENETRESET", "EPIPE", "ENOTCONN", "EAGAIN",
    )
    if hasattr(errno, name)
)
"""``OSError`` errnos of a network failure (not of a local disk: ENOSPC, EIO are not here)."""

_S3_TRANSIENT_CODES = frozenset(
    {
        "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeoutException",
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestLimitExceeded",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "BandwidthLimitExceeded",
        "EC2ThrottledException", "PriorRequestNotComplete",
    }
)
"""Error codes of a ``ClientError`` worth another attempt whatever its HTTP status (botocore's
``TransientRetryableChecker`` and ``ThrottledRetryableChecker`` lists, plus S3's own)."""

_PG_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up / recovery)
    }
)
"""PostgreSQL SQLSTATEs (Appendix A of the PostgreSQL manual) a later attempt may not meet."""

_GSHEETS_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
"""Google API error reasons of a 403 that is a rate limit, not a permission error."""

_DETERMINISTIC = (
    "ValueError",  # VOCInputError, TaxonomyError, ReviewError, ReviewSheetError, JSON, Unicode
    "LookupError",  # KeyError, IndexError
    "TypeError", "AttributeError", "ArithmeticError", "AssertionError", "NotImplementedError",
    "FileNotFoundError", "FileExistsError", "PermissionError", "IsADirectoryError", "NotADirectoryError",
)
"""Built-in errors of bad input, bad data or a bug: the same on every attempt."""


def io_task_options(
    *,
    retries: int = IO_TASK_RETRIES,
    retry_delay_seconds: Sequence[float] = IO_RETRY_DELAYS_S,
    timeout_seconds: float | None = IO_TASK_TIMEOUT_S,
) -> dict[str, Any]:
    """Keyword arguments for ``@task(...)`` of an I/O task: retries only on transient I/O errors.

    Parameters
    ----------
    retries
        Prefect retries after the first attempt.
    retry_delay_seconds
        Seconds before each retry (the last one repeats when shorter than ``retries``).
    timeout_seconds
        Seconds one attempt may run; Prefect fails it with ``TimeoutError`` (itself retried).
        None for a task that runs inside another task (a worker thread): Prefect 3.8 cannot
        interrupt a blocking call there and warns on every run; its I/O calls bound it instead.

    Returns
    -------
    dict
        ``retries``, ``retry_delay_seconds``, ``retry_condition_fn`` (:func:`retry_on_io_errors`)
        and ``timeout_seconds``.
    """
    return {
        "retries": int(retries),
        "retry_delay_seconds": [float(d) for d in retry_delay_seconds],
        "retry_condition_fn": retry_on_io_errors,
        "timeout_seconds": float(timeout_seconds) if timeout_seconds is not None else None,
    }


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its ``__cause__`` (else ``__context__``), and so on; each exception once.

    ``raise X from None`` hides the context from tracebacks but keeps it on the object, so a
    wrapper that drops its cause to keep a secret out of the message is still unwrapped.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ if cur.__cause__ is not None else cur.__context__


# --------------------------------------------------------------------------------------------
# the rules: each returns True (transient), False (deterministic) or None (not its kind)

Rule = Callable[[BaseException], "bool | None"]


def _classes(module: str, *names: str) -> tuple[type, ...]:
    """Classes ``names`` of ``module`` when it is imported; none otherwise (then no exception can
    be one of them)."""
    mod = sys.modules.get(module)
    return tuple(getattr(mod, n) for n in names if hasattr(mod, n)) if mod is not None else ()


def _by_type(module: str, names: tuple[str, ...], verdict: bool) -> Rule:
    """A rule: ``verdict`` for an instance of one of the classes ``module.names``."""

    def rule(e: BaseException) -> bool | None:
        return verdict if isinstance(e, _classes(module, *names)) else None

    rule.__name__ = f"{module}:{'/'.join(names)}->{verdict}"
    return rule


def _http_status_transient(status: Any) -> bool:
    """408, 429 and 5xx: the server may answer otherwise next time."""
    try:
        code = int(status)
    except (TypeError, ValueError):
        return False
    return code in (408, 429) or 500 <= code <= 599


def _s3_client_error(e: BaseException) -> bool | None:
    """An S3 answer (``botocore.exceptions.ClientError``): by HTTP status and error code."""
    if not isinstance(e, _classes("botocore.exceptions", "ClientError")):
        return None
    resp = getattr(e, "response", None) or {}
    status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    code = str((resp.get("Error") or {}).get("Code") or "")
    return _http_status_transient(status) or code in _S3_TRANSIENT_CODES


def _gspread_api_error(e: BaseException) -> bool | None:
    """A Google Sheets answer: 408 / 429 / 5xx, and a 403 that is a rate limit (``usageLimits``)."""
    if not isinstance(e, _classes("gspread.exceptions", "APIError")):
        return None
    status = getattr(getattr(e, "response", None), "status_code", None) or getattr(e, "code", None)
    if _http_status_transient(status):
        return True
    err = getattr(e, "error", None)
    errors = (err.get("errors") or []) if isinstance(err, dict) else []
    return status == 403 and any(
        isinstance(x, dict) and (x.get("domain") == "usageLimits" or x.get("reason") in _GSHEETS_RATE_REASONS)
        for x in errors
    )


def _postgres_error(e: BaseException) -> bool | None:
    """psycopg: transient SQLSTATEs and connection failures (no SQLSTATE, or class 08); a
    statement timeout, authentication (28…), an unknown database (3D000) or bad SQL is not."""
    if not isinstance(e, _classes("psycopg", "Error")):
        return None
    sqlstate = getattr(e, "sqlstate", None)
    if sqlstate in _PG_TRANSIENT_SQLSTATES:
        return True
    if isinstance(e, _classes("psycopg.errors", "QueryCanceled")):  # statement_timeout: too slow
        return False
    if isinstance(e, _classes("psycopg", "OperationalError")):  # PoolTimeout is one
        return sqlstate is None or str(sqlstate).startswith("08")
    return False


def _http_status_error(e: BaseException) -> bool | None:
    """``requests.HTTPError`` / ``httpx.HTTPStatusError``: by the response's status."""
    if not isinstance(e, _classes("requests.exceptions", "HTTPError") + _classes("httpx", "HTTPStatusError")):
        return None
    return _http_status_transient(getattr(getattr(e, "response", None), "status_code", None))


def _name_resolution(e: BaseException) -> bool | None:
    """``socket.gaierror``: only "temporary failure in name resolution" (``EAI_AGAIN``)."""
    if not isinstance(e, socket.gaierror):
        return None
    return e.errno == getattr(socket, "EAI_AGAIN", object())


def _network_errno(e: BaseException) -> bool | None:
    """Another ``OSError``: a network errno; ENOSPC or EIO on a local disk is not decided here."""
    return True if isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS else None


_RULES: tuple[Rule, ...] = (
    # S3 (botocore, boto3's managed transfers)
    _s3_client_error,
    _by_type(
        "botocore.exceptions",
        ("ConnectionError", "HTTPClientError", "IncompleteReadError", "ResponseStreamingError"),
        True,  # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError
    ),
    _by_type("botocore.exceptions", ("BotoCoreError",), False),  # NoCredentialsError, ParamValidationError …
    _by_type("boto3.exceptions", ("RetriesExceededError",), True),  # a download's retryable errors ran out
    _by_type("s3transfer.exceptions", ("RetriesExceededError",), True),
    # Google Sheets, PostgreSQL
    _gspread_api_error,
    _postgres_error,
    # HTTP clients: requests (gspread's transport), httpx, urllib3 (when one escapes unwrapped)
    _http_status_error,
    _by_type("requests.exceptions", ("ConnectionError", "Timeout", "ChunkedEncodingError"), True),
    _by_type("requests.exceptions", ("RequestException",), False),  # InvalidURL, TooManyRedirects …
    _by_type("httpx", ("TimeoutException", "NetworkError", "RemoteProtocolError"), True),
    _by_type("httpx", ("HTTPError",), False),
    _by_type("urllib3.exceptions", ("TimeoutError", "ProtocolError", "NewConnectionError", "MaxRetryError"), True),
    _by_type("urllib3.exceptions", ("HTTPError",), False),
    # deterministic: bad input, bad data, programming errors
    _by_type("polars.exceptions", ("PolarsError",), False),
    _by_type("builtins", _DETERMINISTIC, False),
    # the standard library's network errors (socket.timeout is TimeoutError)
    _by_type("builtins", ("ConnectionError", "TimeoutError"), True),
    _name_resolution,
    _network_errno,
)
"""The rules in order; the first that recognises an exception decides."""


def _verdict(e: BaseException) -> bool | None:
    """True (transient), False (deterministic) or None (unknown: look at the cause)."""
    for rule in _RULES:
        verdict = rule(e)
        if verdict is not None:
            return verdict
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a transient I/O error that a later attempt may not meet.

    The exception and then its cause/context chain (:func:`exception_chain`) are looked at;
    the first recognised one decides (:data:`_RULES`); nothing recognised means not transient.

    Parameters
    ----------
    exc
        The exception a task raised.

    Returns
    -------
    bool
        True for connection/timeouts/throttling/5xx errors (and wrappers of them), False otherwise.
    """
    for e in exception_chain(exc):
        verdict = _verdict(e)
        if verdict is not None:
            return verdict
    return False


def retry_on_io_errors(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry the task run only on a transient I/O error.

    Parameters
    ----------
    task, task_run
        The Prefect task and its run (unused: the decision depends on the error alone).
    state
        The failed state of the attempt; its result is the raised exception (Prefect 3 keeps it
        in memory, ``state.result(raise_on_failure=False)`` returns it without raising).

    Returns
    -------
    bool
        :func:`is_transient` of the exception; False when the state carries none.
    """
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # noqa: BLE001 - a result that cannot be read: decide on that error
        exc = e
    return isinstance(exc, BaseException) and is_transient(exc)


IO_TASK: dict[str, Any] = io_task_options()
"""``@task(**IO_TASK)``: the shared policy of every I/O task (3 retries after 2, 5, 15 s on
transient I/O errors only, 120 s per attempt)."""

NESTED_IO_TASK: dict[str, Any] = io_task_options(timeout_seconds=None)
"""The same policy for an I/O task called inside a building task (``store-object``): no Prefect
timeout (see :func:`io_task_options`); the storage's own timeouts bound each attempt."""

MODEL_IO_TASK: dict[str, Any] = io_task_options(timeout_seconds=MODEL_TRANSFER_TIMEOUT_S)
"""The same policy for tasks that move a model directory (``load-model``, ``publish-model``) or
read the whole training history (``load-training-data``): 30 minutes per attempt."""


# --------------------------------------------------------------------------------------------
# time budget


def s3_operation_budget_s(s3: S3Settings) -> float:
    """Worst-case seconds one HTTP request of :class:`flows.adapters.s3.S3Storage` (an upload,
    download, list page, head) takes before it raises :class:`flows.adapters.storage.StorageError`
    when the endpoint accepts connections and never answers, or answers errors as slowly as it can.

    ``botocore_attempts`` × (``connect_timeout_s`` + ``read_timeout_s`` + 1 s slack) + botocore's
    backoff between its attempts (standard mode: at most 1, 2, 4 … s, capped at 20 s).

    Parameters
    ----------
    s3
        The S3 settings in effect.

    Returns
    -------
    float
        Seconds.
    """
    attempts = max(1, int(s3.botocore_attempts))
    per_http = float(s3.connect_timeout_s) + float(s3.read_timeout_s) + _HTTP_SLACK_S
    backoff = sum(min(2.0 ** (k - 1), _BOTOCORE_MAX_BACKOFF_S) for k in range(1, attempts))
    return attempts * per_http + backoff


def io_task_budget_s(attempt_s: float, options: dict[str, Any] | None = None) -> float:
    """Worst-case seconds until an I/O task whose every attempt fails after ``attempt_s`` ends
    Failed: all attempts plus the retry delays. The task's ``timeout_seconds`` can only end an
    attempt sooner, so it is not counted.

    Parameters
    ----------
    attempt_s
        Seconds one attempt takes to fail (e.g. :func:`s3_operation_budget_s`).
    options
        The task's options (default :data:`IO_TASK`).

    Returns
    -------
    float
        Seconds.
    """
    opts = IO_TASK if options is None else options
    retries = int(opts.get("retries") or 0)
    delays = list(opts.get("retry_delay_seconds") or [0.0])
    waits = sum(float(delays[min(i, len(delays) - 1)]) for i in range(retries))
    return (retries + 1) * (float(attempt_s) + _PREFECT_OVERHEAD_S) + waits


def default_s3_task_budget_s() -> float:
    """:func:`io_task_budget_s` of one S3 operation with the default :class:`S3Settings`
    (what the 5-minute promise of the monthly run rests on: 238 s)."""
    return io_task_budget_s(s3_operation_budget_s(S3Settings()))
