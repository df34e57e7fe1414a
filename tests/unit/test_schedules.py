"""When a CronWorkflow's runs are due (`dagwright.schedules`): tables, then properties with hypothesis.

The tables pin the decisions users see: daylight-saving gaps and repeats in Europe/Berlin and America/New_York
(2026: Berlin springs forward on 29 March at 02:00 and falls back on 25 October at 03:00; New York on 8 March
and 1 November at 02:00), leap days, catch-up after hours of downtime under each policy, startingDeadlineSeconds,
the next time, and the validation messages. The properties drive `due` like an operator that is down for random
stretches and feeds each call's result back as `last`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagwright.errors import SpecError
from dagwright.schedules import (
    DUE_WITHIN,
    MAX_CATCH_UP,
    CatchUp,
    Due,
    Schedule,
    Skip,
    SkipReason,
    due,
    from_unix_seconds,
    parse,
    problems,
    unix_seconds,
)

DEADLINE = SkipReason.STARTING_DEADLINE
POLICY = SkipReason.CATCH_UP


def z(text: str) -> datetime:
    """`2026-03-29T01:00` -> that instant in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def times(schedule: Schedule, after: str, count: int) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M") for t in islice(schedule.times_after(z(after)), count)]


# --- daylight saving and leap days -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # 02:30 does not exist on 29 March in Berlin: it runs once, at 03:00 CEST (01:00 UTC).
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-27T12:00",
            ["2026-03-28T01:30", "2026-03-29T01:00", "2026-03-30T00:30"],
        ),
        # 02:30 happens twice on 25 October in Berlin: it runs once, at the first (CEST, 00:30 UTC).
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-23T12:00",
            ["2026-10-24T00:30", "2026-10-25T00:30", "2026-10-26T01:30"],
        ),
        # New York: 02:30 does not exist on 8 March (runs at 03:00 EDT); 01:30 happens twice on 1 November.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-06T12:00",
            ["2026-03-07T07:30", "2026-03-08T07:00", "2026-03-09T06:30"],
        ),
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-30T12:00",
            ["2026-10-31T05:30", "2026-11-01T05:30", "2026-11-02T06:30"],
        ),
        # 02:30 on 1 November in New York is not ambiguous (the repeated hour is 01:00-02:00): just EDT -> EST.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-10-30T12:00",
            ["2026-10-31T06:30", "2026-11-01T07:30", "2026-11-02T07:30"],
        ),
        # Several times in the gap are one run at 03:00: 01:00, 01:30 CET, then 03:00 (for 02:00, 02:30 and 03:00).
        (
            "*/30 1-3 * * *",
            "Europe/Berlin",
            "2026-03-28T23:00",
            ["2026-03-29T00:00", "2026-03-29T00:30", "2026-03-29T01:00", "2026-03-29T01:30"],
        ),
        # A rhythm of elapsed time (`*` in the hour field) runs every real hour: 02:00 local twice in the fall ...
        (
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-24T21:30",
            ["2026-10-24T22:00", "2026-10-24T23:00", "2026-10-25T00:00", "2026-10-25T01:00", "2026-10-25T02:00"],
        ),
        # ... and no 02:00 local in the spring (01:00 CET, then 03:00 CEST: one real hour apart).
        (
            "0 * * * *",
            "Europe/Berlin",
            "2026-03-28T23:30",
            ["2026-03-29T00:00", "2026-03-29T01:00", "2026-03-29T02:00"],
        ),
        # Leap days: only in leap years; midnight in Berlin is 23:00 UTC the day before.
        ("0 0 29 2 *", "UTC", "2025-01-01T00:00", ["2028-02-29T00:00", "2032-02-29T00:00", "2036-02-29T00:00"]),
        ("0 0 29 2 *", "Europe/Berlin", "2025-01-01T00:00", ["2028-02-28T23:00", "2032-02-28T23:00"]),
        # A macro is the Kubernetes CronJob shorthand.
        ("@daily", "America/New_York", "2026-03-07T12:00", ["2026-03-08T05:00", "2026-03-09T04:00"]),
    ],
)
def test_scheduled_times(cron: str, zone: str, after: str, expected: list[str]) -> None:
    assert times(parse(cron, zone), after, len(expected)) == expected


@pytest.mark.parametrize("after", ["2026-10-25T00:59", "2026-10-25T01:00", "2026-10-25T01:10", "2026-10-25T01:30"])
def test_the_second_pass_of_a_repeated_hour_does_not_run_it_again(after: str) -> None:
    """Started between the two 02:30s (or at the second), the next 02:30 is the next day's."""
    assert times(parse("30 2 * * *", "Europe/Berlin"), after, 1) == ["2026-10-26T01:30"]


def test_an_operator_woken_through_a_spring_forward_night_starts_the_run_once() -> None:
    schedule = parse("30 2 * * *", "Europe/Berlin")
    first = due(schedule, last=z("2026-03-28T01:30"), created=z("2026-01-01T00:00"), now=z("2026-03-29T01:00:03"))
    assert first == Due(
        start=(z("2026-03-29T01:00"),), skipped=(), earlier_skipped=None, next_time=z("2026-03-30T00:30")
    )
    again = due(schedule, last=first.start[-1], created=z("2026-01-01T00:00"), now=z("2026-03-29T01:30:00"))
    assert again.start == () and again.next_time == z("2026-03-30T00:30")


def test_an_operator_woken_through_a_fall_back_night_starts_the_run_once() -> None:
    schedule = parse("30 2 * * *", "Europe/Berlin")
    first = due(schedule, last=z("2026-10-24T00:30"), created=z("2026-01-01T00:00"), now=z("2026-10-25T00:30:02"))
    assert first.start == (z("2026-10-25T00:30"),)
    assert first.next_time == z("2026-10-26T01:30")  # not 01:30 UTC on the 25th, the second 02:30
    again = due(schedule, last=first.start[-1], created=z("2026-01-01T00:00"), now=z("2026-10-25T01:30:02"))
    assert again.start == () and again.skipped == ()


def test_a_leap_day_schedule_waits_for_the_leap_year() -> None:
    schedule = parse("0 0 29 2 *")
    result = due(schedule, last=None, created=z("2025-03-01T00:00"), now=z("2026-11-29T12:00"))
    assert result.start == () and result.next_time == z("2028-02-29T00:00")
    result = due(schedule, last=None, created=z("2025-03-01T00:00"), now=z("2028-02-29T00:00:20"))
    assert result.start == (z("2028-02-29T00:00"),)


# --- catch-up after downtime, startingDeadlineSeconds ------------------------------------------------------

HOURLY_MISSED = [z(f"2026-11-29T{h}:00") for h in range(11, 16)]  # down from 10:00 to 15:20


def skips(reason: SkipReason, *hours: int) -> tuple[Skip, ...]:
    return tuple(Skip(z(f"2026-11-29T{h}:00"), reason) for h in hours)


@pytest.mark.parametrize(
    ("catch_up", "deadline", "now", "start", "skipped"),
    [
        (CatchUp.LATEST, None, "15:20", [15], skips(POLICY, 11, 12, 13, 14)),
        (CatchUp.ALL, None, "15:20", [11, 12, 13, 14, 15], ()),
        (CatchUp.NONE, None, "15:20", [], skips(POLICY, 11, 12, 13, 14, 15)),  # 15:00 is 20 minutes late
        (CatchUp.NONE, None, "15:01", [15], skips(POLICY, 11, 12, 13, 14)),  # within DUE_WITHIN: due now
        (CatchUp.LATEST, 3600, "15:20", [15], skips(DEADLINE, 11, 12, 13, 14)),
        (CatchUp.LATEST, 600, "15:20", [], skips(DEADLINE, 11, 12, 13, 14, 15)),
        (CatchUp.ALL, 7200, "15:20", [14, 15], skips(DEADLINE, 11, 12, 13)),
        (CatchUp.ALL, 0, "15:00", [15], skips(DEADLINE, 11, 12, 13, 14)),  # exactly on time still runs
        (CatchUp.ALL, 3600, "15:00", [14, 15], skips(DEADLINE, 11, 12, 13)),  # 14:00 is exactly 3600 s late
        (CatchUp.ALL, 3600, "15:00:01", [15], skips(DEADLINE, 11, 12, 13, 14)),  # 14:00 is 3601 s late
        (CatchUp.NONE, 30, "15:00:45", [], skips(DEADLINE, 11, 12, 13, 14, 15)),  # the deadline is the tighter
        (CatchUp.NONE, 3600, "15:20", [], skips(DEADLINE, 11, 12, 13, 14) + skips(POLICY, 15)),  # DUE_WITHIN
        (CatchUp.LATEST, 7200, "15:20", [15], skips(DEADLINE, 11, 12, 13) + skips(POLICY, 14)),
    ],
)
def test_catch_up_after_hours_of_downtime(
    catch_up: CatchUp, deadline: int | None, now: str, start: list[int], skipped: tuple[Skip, ...]
) -> None:
    result = due(
        parse("0 * * * *"),
        last=z("2026-11-29T10:00"),
        created=z("2026-11-01T00:00"),
        now=z(f"2026-11-29T{now}"),
        catch_up=catch_up,
        starting_deadline_seconds=deadline,
    )
    assert result.start == tuple(z(f"2026-11-29T{h}:00") for h in start)
    assert result.skipped == skipped
    decided = sorted([*result.start, *(s.time for s in result.skipped)])
    assert decided == [t for t in HOURLY_MISSED if t <= z(f"2026-11-29T{now}")]  # each missed time, once
    assert result.earlier_skipped is None
    assert result.next_time == z("2026-11-29T16:00")


def test_never_started_counts_from_the_creation_time_exclusive() -> None:
    schedule = parse("0 * * * *")
    result = due(schedule, last=None, created=z("2026-11-29T10:30"), now=z("2026-11-29T12:10"))
    assert result.start == (z("2026-11-29T12:00"),) and result.skipped == (Skip(z("2026-11-29T11:00"), POLICY),)
    result = due(schedule, last=None, created=z("2026-11-29T11:00"), now=z("2026-11-29T11:00:30"))
    assert result.start == () and result.next_time == z("2026-11-29T12:00")  # created at 11:00: not its run


def test_all_starts_at_most_max_catch_up_after_a_long_downtime() -> None:
    schedule = parse("* * * * *")
    now = z("2026-11-29T12:00:30")
    result = due(schedule, last=z("2026-11-22T12:00"), created=z("2026-11-01T00:00"), now=now, catch_up=CatchUp.ALL)
    assert len(result.start) == MAX_CATCH_UP and result.skipped == ()
    assert result.start[-1] == z("2026-11-29T12:00") and result.start[0] == z("2026-11-29T10:21")
    assert result.earlier_skipped is POLICY  # the week before those 100 minutes
    assert result.next_time == z("2026-11-29T12:01")
    result = due(
        schedule,
        last=z("2026-11-22T12:00"),
        created=z("2026-11-01T00:00"),
        now=now,
        catch_up=CatchUp.ALL,
        starting_deadline_seconds=3600,
    )
    assert len(result.start) == 60 and result.start[0] == z("2026-11-29T11:01")
    assert len(result.skipped) == MAX_CATCH_UP - 60 and {s.reason for s in result.skipped} == {DEADLINE}
    assert result.earlier_skipped is DEADLINE


def test_a_year_of_downtime_costs_a_few_windows_not_a_step_per_minute() -> None:
    schedule = parse("* * * * *", "Europe/Berlin")
    result = due(schedule, last=z("2025-11-29T12:00"), created=z("2025-01-01T00:00"), now=z("2026-11-29T12:00:10"))
    assert result.start == (z("2026-11-29T12:00"),) and len(result.skipped) == MAX_CATCH_UP - 1
    assert result.earlier_skipped is POLICY


def test_next_time_is_after_now_and_after_last() -> None:
    schedule = parse("0 * * * *")
    result = due(schedule, last=z("2026-11-29T10:00"), created=z("2026-11-01T00:00"), now=z("2026-11-29T10:00"))
    assert result.start == () and result.next_time == z("2026-11-29T11:00")
    # `last` ahead of `now` (a clock that went back): nothing is due, and the next run is one not yet started.
    result = due(schedule, last=z("2026-11-29T12:00"), created=z("2026-11-01T00:00"), now=z("2026-11-29T10:30"))
    assert result.start == () and result.skipped == () and result.next_time == z("2026-11-29T13:00")


def test_times_are_identified_by_unix_seconds() -> None:
    time = z("2026-03-29T01:00")
    assert unix_seconds(time) == 1774746000
    assert from_unix_seconds(1774746000) == time
    berlin = datetime(2026, 3, 29, 3, 0, tzinfo=parse("* * * * *", "Europe/Berlin").zone)
    assert unix_seconds(berlin) == unix_seconds(time)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        due(parse("* * * * *"), last=None, created=datetime(2026, 1, 1), now=z("2026-01-02T00:00"))


# --- validation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "zone", "field", "message"),
    [
        ("61 * * * *", "UTC", "spec.schedule", "'61 * * * *': bad minute field"),
        ("* 24 * * *", "UTC", "spec.schedule", "bad hour field"),
        ("0 0 30 2 *", "UTC", "spec.schedule", "bad day-of-month field"),
        ("0 0 * 13 *", "UTC", "spec.schedule", "bad month field"),
        ("0 0 * * 8", "UTC", "spec.schedule", "bad day-of-week field"),
        ("0 0 * *", "UTC", "spec.schedule", "has 4 fields; a schedule has 5: minute hour"),
        ("0 0 0 * * *", "UTC", "spec.schedule", "has 6 fields"),
        ("  ", "UTC", "spec.schedule", "required: a cron expression of 5 fields"),
        ("@often", "UTC", "spec.schedule", "unknown shorthand; use one of @yearly"),
        ("TZ=Europe/Berlin 0 2 * * *", "UTC", "spec.schedule", "set the time zone in spec.timezone"),
        ("CRON_TZ=UTC 0 2 * * *", "UTC", "spec.schedule", "set the time zone in spec.timezone"),
        ("0 2 * * *", "Mars/Olympus", "spec.timezone", "unknown time zone 'Mars/Olympus'; use an IANA"),
        ("0 2 * * *", "europe/berlin", "spec.timezone", "unknown time zone"),
        ("0 2 * * *", "America", "spec.timezone", "unknown time zone 'America'"),
        ("0 2 * * *", "../etc/passwd", "spec.timezone", "unknown time zone"),
        ("0 2 * * *", "", "spec.timezone", "unknown time zone ''"),
        ("0 2 * * *", "localtime", "spec.timezone", "depends on the machine"),
    ],
)
def test_a_bad_schedule_or_zone_names_its_field(schedule: str, zone: str, field: str, message: str) -> None:
    [problem] = problems(schedule, zone)
    assert problem.field == field and message in problem.message, problem
    with pytest.raises(SpecError) as raised:
        parse(schedule, zone)
    assert str(raised.value) == str(problem)


def test_every_problem_is_reported_under_the_given_path() -> None:
    with pytest.raises(SpecError) as raised:
        parse("* * *", "Nowhere", path="spec.cron")
    assert [p.field for p in raised.value.problems] == ["spec.cron.schedule", "spec.cron.timezone"]


@pytest.mark.parametrize(
    "schedule",
    ["30 2 * * *", "*/15 9-17 * * MON-FRI", "0 0 1,15 * *", "0 0 L * *", "@hourly", "@YEARLY", " 5 4 * * sun "],
)
def test_good_schedules_parse(schedule: str) -> None:
    assert problems(schedule, None) == []
    parsed = parse(schedule)
    assert parsed.timezone == "UTC" and parsed.expression == schedule and len(parsed.cron.split()) == 5


# --- properties ----------------------------------------------------------------------------------------------

CRONS = [
    "30 2 * * *",  # in the DST gap and repeat of Berlin
    "30 1 * * *",  # in New York's repeat
    "0,30 2,3 * * *",
    "*/30 1-3 * * *",
    "0 * * * *",
    "*/7 * * * *",
    "* * * * *",
    "15 3 * * 0",
    "0 0 29 2 *",
    "0 0 1 * *",
    "45 23 * * 1-5",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]  # Lord Howe: 30-min DST
# Around the 2026 transitions, where the interesting things happen, and anywhere in two years.
ANCHORS = [
    z("2026-03-28T22:00"),
    z("2026-10-24T22:00"),
    z("2026-03-07T20:00"),
    z("2026-10-31T20:00"),
    z("2026-04-04T13:00"),
]

schedules = st.builds(parse, st.sampled_from(CRONS), st.sampled_from(ZONES))
instants = st.one_of(
    st.builds(lambda a, s: a + timedelta(seconds=s), st.sampled_from(ANCHORS), st.integers(-86400, 2 * 86400)),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)),
)
gaps = st.one_of(st.integers(0, 120), st.integers(0, 4 * 3600), st.integers(0, 3 * 86400))  # between two calls


@given(schedules, instants, st.one_of(st.integers(0, 7200), st.integers(0, 3 * 86400)), st.integers(1, 5))
def test_times_do_not_depend_on_where_the_walk_starts(schedule: Schedule, a: datetime, gap: int, n: int) -> None:
    """The times after b are the same whether the walk starts at b or earlier: so a time has one identity."""
    b = a + timedelta(seconds=gap)
    from_a = []
    for t in islice(schedule.times_after(a), 600):
        if t > b:
            from_a.append(t)
            if len(from_a) == n:
                break
    from_b = list(islice(schedule.times_after(b), n))
    if len(from_a) == n:  # the walk from a reached that far
        assert from_a == from_b
    assert all(t.tzinfo is UTC and t.microsecond == 0 and t > b for t in from_b)
    assert from_b == sorted(set(from_b))


@settings(max_examples=150)
@given(
    schedules,
    instants,
    st.sampled_from(list(CatchUp)),
    st.one_of(st.none(), st.integers(0, 2 * 86400)),
    st.lists(gaps, min_size=1, max_size=12),
    st.booleans(),
)
def test_an_operator_that_is_down_at_random_never_starts_a_time_twice(
    schedule: Schedule,
    created: datetime,
    catch_up: CatchUp,
    deadline: int | None,
    steps: list[int],
    advance_past_skips: bool,
) -> None:
    last: datetime | None = None
    started: set[datetime] = set()
    skipped: set[datetime] = set()
    now = created
    for step in steps:
        now += timedelta(seconds=step)
        result = due(
            schedule, last=last, created=created, now=now, catch_up=catch_up, starting_deadline_seconds=deadline
        )
        assert list(result.start) == sorted(set(result.start)), "due times strictly increase"
        assert all(created < t <= now for t in result.start)
        assert all(last is None or t > last for t in result.start)
        assert not started & set(result.start), "started twice"
        assert not skipped & set(result.start), "a skipped time started later"
        assert len(result.start) <= (MAX_CATCH_UP if catch_up is CatchUp.ALL else 1)
        if catch_up is CatchUp.NONE:
            assert all(now - t <= DUE_WITHIN for t in result.start)
        if deadline is not None:
            assert all((now - t).total_seconds() <= deadline for t in result.start)
        assert result.next_time is None or result.next_time > now
        decided = sorted([*result.start, *(s.time for s in result.skipped)])
        assert decided == sorted(set(decided)), "a time both started and skipped"
        for time in decided:  # every one is a scheduled time
            assert schedule.next_after(time - timedelta(seconds=1)) == time
        started |= set(result.start)
        skipped |= {s.time for s in result.skipped}
        if result.start:
            last = result.start[-1]
        if advance_past_skips and decided:
            last = max(decided[-1], last or decided[-1])


@settings(max_examples=60)
@given(schedules, instants, st.sampled_from(list(CatchUp)), st.integers(0, 59), st.integers(1, 40))
def test_an_operator_woken_on_time_starts_every_scheduled_time_once(
    schedule: Schedule, created: datetime, catch_up: CatchUp, lag: int, wakes: int
) -> None:
    """Never down, woken at `next_time` plus a lag within DUE_WITHIN: no run is missed, under any policy."""
    last: datetime | None = None
    started: list[datetime] = []
    now = wake = created
    for _ in range(wakes):
        now = wake
        result = due(schedule, last=last, created=created, now=now, catch_up=catch_up)
        assert result.skipped == () and result.earlier_skipped is None
        started += result.start
        last = started[-1] if started else None
        if result.next_time is None:
            break
        wake = result.next_time + timedelta(seconds=lag)
    expected = [t for t in islice(schedule.times_after(created), len(started) + 1) if t <= now]
    assert started == expected
