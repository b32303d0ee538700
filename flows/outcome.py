"""How a flow run ends for the operator: a failed run's **state message is the one-line reason**.

Prefect puts a raised exception into the Failed state as ``"Flow run encountered an exception:
MonthlyRunError: …"`` and ``prefect deployment run … --watch`` prints only the state's name, so
the reason (``run mode=full for 2019-11 first``, ``buildings failed: 2; completed: 1``) had to be
dug out of the worker log. :func:`fail_with_reason` goes between ``@flow`` and the flow function:
an exception becomes ``Failed(message=<reason>, data=<exception>)`` returned by the function
(Prefect's "return a state" contract: the run takes that state as is). The message is what the UI
shows next to *Failed*, what ``prefect flow-run inspect <id>`` prints under ``state.message`` and
what the engine's last log line ``Finished in state Failed('<reason>')`` (in ``--watch``) quotes;
a direct call of the flow still raises the original exception (Prefect raises a Failed state's
data), so ``voc monthly`` / tests keep catching :class:`flows.monthly.MonthlyRunError`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["fail_with_reason", "failure_reason", "MAX_REASON_CHARS"]

MAX_REASON_CHARS = 1000
"""Longest state message kept (the UI shows it on one line; the full text is in the log)."""

F = TypeVar("F", bound=Callable[..., Any])


def failure_reason(exc: BaseException, *, plain: tuple[type[BaseException], ...] = ()) -> str:
    """``exc`` as one line for a state message: its text alone for the ``plain`` exception types
    (messages written for operators, e.g. ``MonthlyRunError``), else ``"TypeName: text"``;
    whitespace runs (line breaks included) collapsed to one space, cut to
    :data:`MAX_REASON_CHARS` characters with ``…``."""
    text = str(exc).strip()
    if not isinstance(exc, plain) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"


def fail_with_reason(*, plain: tuple[type[BaseException], ...] = ()) -> Callable[[F], F]:
    """Decorator for a flow function (under ``@flow``): an ``Exception`` raised by the function is
    logged (traceback included, at ERROR) and returned as ``prefect.states.Failed`` whose message
    is :func:`failure_reason` and whose data is the exception itself.

    Prefect's own signals (pause, abort, cancellation: ``BaseException`` subclasses) pass through,
    and so does every exception of a call outside a flow run (``voc_monthly.fn(...)``).
    The wrapper keeps the function's name, docstring, annotations and signature
    (``functools.wraps``), so the flow's parameter schema and validation are unchanged.

    Parameters
    ----------
    plain
        Exception types whose text is already the operator's one-line reason (no type prefix).
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                from prefect import get_run_logger
                from prefect.context import FlowRunContext
                from prefect.states import Failed

                if FlowRunContext.get() is None:  # ``flow.fn(...)``: a plain call raises
                    raise
                reason = failure_reason(e, plain=plain)
                get_run_logger().error("%s", reason, exc_info=not isinstance(e, plain))
                return Failed(message=reason, data=e)

        # Prefect validates parameters against the annotations in the *wrapper's* module
        # (``__globals__``): hand it the flow function's annotations already resolved
        wrapper.__annotations__ = typing.get_type_hints(fn, include_extras=True)
        wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]  # typeshed lacks __signature__
        return wrapper  # type: ignore[return-value]  # wraps(fn) keeps fn's signature; mypy sees Callable[..., Any]

    return decorate
