"""Next-fire and catch-up of cron triggers: DST both ways, leap years, month ends, seconds."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmesh_scheduler.cron import CronSpec, missed

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def fires(spec: CronSpec, after: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        after = spec.next_fire(after)
        found.append(after)
    return found


def local(instants: list[datetime], zone: str) -> list[str]:
    return [spec_zone(zone, instant) for instant in instants]


def spec_zone(zone: str, instant: datetime) -> str:
    return instant.astimezone(CronSpec("0 0 * * *", zone).zone).strftime("%m-%d %H:%M %Z")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_a_daily_0230_fires_once_on_the_spring_forward_day() -> None:
    spec = CronSpec("30 2 * * *", BERLIN)  # 2026-03-29: 02:00 CET -> 03:00 CEST
    got = fires(spec, utc(2026, 3, 27, 12), 4)
    assert local(got, BERLIN) == [
        "03-28 02:30 CET",
        "03-29 03:30 CEST",  # 02:30 does not exist: as far past the jump as it was into it
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]
    assert got[1] - got[0] == timedelta(hours=24)  # the wall clock skipped an hour


def test_a_daily_0230_fires_once_on_the_fall_back_day() -> None:
    spec = CronSpec("30 2 * * *", BERLIN)  # 2026-10-25: 03:00 CEST -> 02:00 CET
    got = fires(spec, utc(2026, 10, 23, 12), 3)
    assert local(got, BERLIN) == ["10-24 02:30 CEST", "10-25 02:30 CEST", "10-26 02:30 CET"]
    assert got[2] - got[1] == timedelta(hours=25)  # the second 02:30 of the 25th: no fire


def test_an_every_half_hour_job_keeps_real_time_through_both_changes() -> None:
    spec = CronSpec("*/30 * * * *", BERLIN)
    autumn = fires(spec, utc(2026, 10, 24, 23, 0), 8)
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(autumn))
    assert local(autumn, BERLIN)[1:5] == [
        "10-25 02:00 CEST",
        "10-25 02:30 CEST",
        "10-25 02:00 CET",  # the hour that happens twice fires twice
        "10-25 02:30 CET",
    ]
    spring = fires(spec, utc(2026, 3, 29, 0, 0), 4)
    assert all(b - a == timedelta(minutes=30) for a, b in itertools.pairwise(spring))
    assert local(spring, BERLIN)[:3] == ["03-29 01:30 CET", "03-29 03:00 CEST", "03-29 03:30 CEST"]


def test_new_york_changes_at_two_as_well() -> None:
    spec = CronSpec("0 2 * * *", NEW_YORK)  # 2026-03-08 and 2026-11-01
    spring = fires(spec, utc(2026, 3, 7, 12), 2)
    assert local(spring, NEW_YORK) == ["03-08 03:00 EDT", "03-09 02:00 EDT"]
    autumn = fires(spec, utc(2026, 10, 31, 12), 2)
    assert local(autumn, NEW_YORK) == ["11-01 02:00 EST", "11-02 02:00 EST"]


def test_utc_is_the_default_zone() -> None:
    assert CronSpec("0 9 * * 1").next_fire(utc(2026, 11, 23, 9, 0)) == utc(2026, 11, 30, 9, 0)


def test_leap_years() -> None:
    spec = CronSpec("0 0 29 2 *")
    assert fires(spec, utc(2026, 1, 1), 2) == [utc(2028, 2, 29), utc(2032, 2, 29)]
    assert CronSpec("0 12 L 2 *").next_fire(utc(2027, 12, 31)) == utc(2028, 2, 29, 12)


def test_month_ends() -> None:
    assert fires(CronSpec("0 0 31 * *"), utc(2026, 4, 1), 3) == [
        utc(2026, 5, 31),
        utc(2026, 7, 31),
        utc(2026, 8, 31),
    ]
    assert fires(CronSpec("0 0 L * *"), utc(2026, 1, 31, 1), 3) == [
        utc(2026, 2, 28),
        utc(2026, 3, 31),
        utc(2026, 4, 30),
    ]


def test_six_fields_have_seconds_first() -> None:
    spec = CronSpec("*/15 * * * * *")
    assert fires(spec, utc(2026, 1, 1, 0, 0, 1), 3) == [
        utc(2026, 1, 1, 0, 0, 15),
        utc(2026, 1, 1, 0, 0, 30),
        utc(2026, 1, 1, 0, 0, 45),
    ]
    assert CronSpec("30 0 12 * * *").next_fire(utc(2026, 1, 1)) == utc(2026, 1, 1, 12, 0, 30)


def test_next_is_strictly_after() -> None:
    spec = CronSpec("0 * * * *")
    assert spec.next_fire(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 6)
    assert spec.previous_fire(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 4)


@pytest.mark.parametrize(
    "expression", ["", "* * * *", "61 * * * *", "* * * * * * *", "0 0 30 2 * x"]
)
def test_bad_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="cron expression"):
        CronSpec(expression)


ZONES = st.sampled_from(["UTC", BERLIN, NEW_YORK, "Australia/Lord_Howe", "Asia/Kolkata"])
EXPRESSIONS = st.sampled_from(
    ["*/30 * * * *", "30 2 * * *", "0 */2 * * *", "15 1,2,3 * * *", "0 0 * * 0", "*/20 * * * * *"]
)
MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(EXPRESSIONS, ZONES, MOMENTS)
def test_fires_are_increasing_and_previous_undoes_next(
    expression: str, zone: str, moment: datetime
) -> None:
    spec = CronSpec(expression, zone)
    got = fires(spec, moment, 6)
    assert got[0] > moment
    assert all(a < b for a, b in itertools.pairwise(got))
    for earlier, later in itertools.pairwise(got):
        assert spec.previous_fire(later) == earlier
    assert spec.previous_fire(got[0]) <= moment


# --- catch-up ------------------------------------------------------------------------------

HOURLY = CronSpec("0 * * * *")
LAST = utc(2026, 1, 1, 0, 0)
NOW = utc(2026, 1, 1, 5, 30)


def test_skip_fires_nothing_missed() -> None:
    assert missed(HOURLY, "skip", LAST, NOW, 100) == []


def test_once_fires_the_latest_missed() -> None:
    assert missed(HOURLY, "once", LAST, NOW, 100) == [utc(2026, 1, 1, 5)]


def test_all_fires_every_missed_one_in_order() -> None:
    assert missed(HOURLY, "all", LAST, NOW, 100) == [utc(2026, 1, 1, h) for h in range(1, 6)]


def test_all_is_capped_to_the_most_recent() -> None:
    assert missed(HOURLY, "all", LAST, NOW, 2) == [utc(2026, 1, 1, 4), utc(2026, 1, 1, 5)]


def test_nothing_is_missed_without_a_last_fire_or_a_missed_tick() -> None:
    assert missed(HOURLY, "all", None, NOW, 100) == []
    assert missed(HOURLY, "once", utc(2026, 1, 1, 5), NOW, 100) == []
    assert missed(HOURLY, "all", LAST, LAST + timedelta(minutes=59), 100) == []


def test_a_fire_exactly_now_counts_as_missed() -> None:
    assert missed(HOURLY, "once", LAST, utc(2026, 1, 1, 1), 100) == [utc(2026, 1, 1, 1)]
