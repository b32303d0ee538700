"""Month handling: every month in the system is the string ``"YYYY-MM"``.

Prefect CLI parameters (``-p month=202512``) and cron-triggered runs arrive as ints, as
``"202512"`` or as ``"2025-12"``; :func:`parse_month` turns each into the canonical form and
rejects anything else with a :class:`ValueError` that names the bad value.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

__all__ = [
    "Month", "parse_month", "yyyymm", "previous_month", "month_range", "months_before", "check_not_future",
    "FutureMonthError", "KST",
]

KST = timezone(timedelta(hours=9), name="Asia/Seoul")
"""Korea Standard Time (UTC+9, no daylight saving since 1988)."""

_MONTH_RE = re.compile(r"^\s*(\d{4})-?(\d{2})\s*$")


def parse_month(value: str | int | date) -> str:
    """Return ``value`` as ``"YYYY-MM"``.

    Accepts ``"2025-12"``, ``"202512"``, ``202512`` (int, as Prefect's ``-p month=202512``
    delivers it) and :class:`datetime.date`.

    Raises
    ------
    ValueError
        When the value is not a month between 1900-01 and 2999-12; the message ends with the
        value's ``repr``.
    """
    if isinstance(value, Month):
        return value
    if isinstance(value, (date, datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"month must be 'YYYY-MM', got {value!r}")
    m = _MONTH_RE.match(str(value))
    if not m:
        raise ValueError(f"month must be 'YYYY-MM' (e.g. '2025-12'), got {value!r}")
    year, month = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12 or not 1900 <= year <= 2999:
        raise ValueError(f"month out of range: {value!r}")
    return f"{year:04d}-{month:02d}"


class FutureMonthError(ValueError):
    """A month that has not started yet (nothing can have been registered in it)."""


def check_not_future(month: str | int, now: datetime) -> Month:
    """``month`` as ``"YYYY-MM"`` when it has started by ``now`` (KST), the current month included.

    Pure: the caller passes the clock (flows pass ``datetime.now(KST)``).

    Raises
    ------
    FutureMonthError
        When ``month`` begins after ``now``; the message names the month and today's month.
    ValueError
        When ``month`` is not a month (see :func:`parse_month`).
    """
    m = parse_month(month)
    current = parse_month(now.astimezone(KST) if now.tzinfo is not None else now)
    if m > current:
        raise FutureMonthError(f"month {m} is in the future (current month in KST: {current}); nothing to tag yet")
    return Month(m)


def yyyymm(month: str | int) -> str:
    """``"2025-12"`` → ``"202512"`` (the form used in storage keys)."""
    return parse_month(month).replace("-", "")


def previous_month(now: datetime | None = None) -> str:
    """The month before ``now`` in KST (``now`` defaults to the current time).

    The monthly ``full`` run on the 1st at 02:00 KST tags the month that just ended.
    """
    now = now or datetime.now(KST)
    if now.tzinfo is not None:
        now = now.astimezone(KST)
    first = now.date().replace(day=1)
    return parse_month(first - timedelta(days=1))


def month_range(month: str) -> tuple[date, date]:
    """``[first day, first day of next month)`` of ``month``."""
    y, m = map(int, parse_month(month).split("-"))
    start = date(y, m, 1)
    end = date(y + (m == 12), m % 12 + 1, 1)
    return start, end


def months_before(month: str, n: int) -> list[str]:
    """The ``n`` months before ``month``, oldest first (``months_before("2019-02", 2)`` →
    ``["2018-12", "2019-01"]``)."""
    y, m = map(int, parse_month(month).split("-"))
    out = []
    for _ in range(n):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y:04d}-{m:02d}")
    return out[::-1]


class Month(str):
    """A month parsed once: the canonical ``"YYYY-MM"`` string with its derived forms.

    It *is* that string (keys, CSV cells, JSON and Prefect parameters see ``"2025-12"``), so it
    crosses task and process boundaries as plain data; :func:`parse_month` and the helpers
    here return it unchanged instead of parsing it again.

    >>> m = Month.parse(202512)
    >>> m, m.yyyymm, m.start.isoformat()
    ('2025-12', '202512', '2025-12-01')

    Raises
    ------
    ValueError
        (from :meth:`parse`) see :func:`parse_month`.
    """

    __slots__ = ()

    @classmethod
    def parse(cls, value: str | int | date) -> Month:
        return value if isinstance(value, Month) else cls(parse_month(value))

    def __reduce__(self) -> tuple[type[Month], tuple[str]]:
        return (Month, (str(self),))

    @property
    def yyyymm(self) -> str:
        """``"202512"``: the form of storage keys."""
        return self.replace("-", "")

    @property
    def start(self) -> date:
        """The month's first day."""
        return date(int(self[:4]), int(self[5:7]), 1)

    @property
    def end(self) -> date:
        """The next month's first day (exclusive end)."""
        y, m = int(self[:4]), int(self[5:7])
        return date(y + (m == 12), m % 12 + 1, 1)

    def before(self, n: int) -> list[Month]:
        """The ``n`` months before this one, oldest first."""
        return [Month(m) for m in months_before(self, n)]
