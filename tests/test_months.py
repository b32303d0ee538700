from datetime import UTC, datetime

import pytest

from voc.months import month_range, months_before, parse_month, previous_month, yyyymm


@pytest.mark.parametrize("value", ["2025-12", "202512", 202512, " 2025-12 "])
def test_parse_month_accepts_cli_and_prefect_forms(value):
    assert parse_month(value) == "2025-12"


@pytest.mark.parametrize("bad", ["2025-13", "25-12", "2025/12", "", "december", 2025, True, None, 20251201])
def test_parse_month_rejects_with_value_in_message(bad):
    with pytest.raises(ValueError) as e:
        parse_month(bad)
    # the message ends with the rejected value as Python writes it (not merely somewhere in the
    # text: for 2025 the example '2025-12' would match)
    assert str(e.value).endswith(f" {bad!r}"), str(e.value)


def test_previous_month_uses_korean_time():
    # 2026-01-31 16:30 UTC is already 2026-02-01 01:30 in Seoul → previous month is January
    now = datetime(2026, 1, 31, 16, 30, tzinfo=UTC)
    assert previous_month(now) == "2026-01"
    assert previous_month(datetime(2026, 1, 1, 2, 0, tzinfo=UTC)) == "2025-12"


def test_ranges_and_history():
    assert yyyymm("2019-11") == "201911"
    start, end = month_range("2019-12")
    assert (start.isoformat(), end.isoformat()) == ("2019-12-01", "2020-01-01")
    assert months_before("2019-02", 3) == ["2018-11", "2018-12", "2019-01"]
