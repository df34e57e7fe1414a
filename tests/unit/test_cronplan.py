"""A CronWorkflow's model and one pass's decision (`dagwright.cronspec`, `dagwright.cronplan`).

Tables for what users see (which times start, which are skipped and why, what is stopped and deleted, what the
status says), then a property: an operator passing at random moments, crashing between creating runs and
writing status, never creates a time twice, and under catchUp All with Allow creates every time exactly once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagwright import schedules
from dagwright.cronplan import Plan, Run, manual_run_name, plan, run_name
from dagwright.cronspec import CronWorkflowSpec, CronWorkflowStatus, parse_spec, problems
from dagwright.errors import SpecError

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
NODES = [{"name": "a", "image": "busybox"}]


def spec(**fields: Any) -> CronWorkflowSpec:
    return CronWorkflowSpec.model_validate({"schedule": "* * * * *", "workflow": {"nodes": NODES}, **fields})


def at(minutes: float) -> datetime:
    return T0 + minutes * MINUTE


def run(minute: int, phase: str | None = "Running", **fields: Any) -> Run:
    return Run(name=run_name("c", at(minute)), scheduled_time=at(minute), phase=phase, **fields)


def decide(
    cron: CronWorkflowSpec, now: datetime, runs: list[Run] | None = None, status: CronWorkflowStatus | None = None
) -> Plan:
    return plan(
        cron="c",
        spec=cron,
        schedule=schedules.parse(cron.schedule, cron.timezone),
        status=status or CronWorkflowStatus(),
        runs=runs or [],
        created=T0 - timedelta(seconds=30),
        now=now,
    )


# --- the model ----------------------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    cron = spec()
    assert (cron.timezone, cron.concurrency_policy, cron.catch_up, cron.suspend) == ("UTC", "Allow", "Latest", False)
    assert (cron.successful_runs_history_limit, cron.failed_runs_history_limit) == (3, 1)
    assert cron.starting_deadline_seconds is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"schedule": "61 * * * *"}, "spec.schedule: '61 * * * *': bad minute field"),
        ({"timezone": "Mars/Olympus"}, "spec.timezone: unknown time zone 'Mars/Olympus'"),
        ({"concurrencyPolicy": "Queue"}, "spec.concurrencyPolicy: Input should be 'Allow', 'Forbid' or 'Replace'"),
        ({"catchup": "All"}, "spec.catchup: unknown field"),
        ({"workflow": {"nodes": []}}, "spec.workflow.nodes: List should have at least 1 item"),
    ],
)
def test_each_problem_names_its_field(fields: dict[str, Any], expected: str) -> None:
    body = {"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "workflow": {"nodes": NODES}, **fields}}
    found = [str(problem) for problem in problems(body)]
    assert any(text.startswith(expected) for text in found), found


def test_a_name_too_long_for_its_runs_names_is_refused() -> None:
    body = {"metadata": {"name": "c" * 240}, "spec": {"schedule": "* * * * *", "workflow": {"nodes": NODES}}}
    assert [problem.field for problem in problems(body)] == ["metadata.name"]


def test_parse_spec_raises_with_every_problem() -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({"schedule": "* * *", "timezone": "Nowhere", "workflow": {"nodes": NODES}})
    assert [problem.field for problem in error.value.problems] == ["spec.schedule", "spec.timezone"]


# --- one pass -----------------------------------------------------------------------------------------------


def test_nothing_before_the_first_time_then_the_time_starts_once() -> None:
    early = decide(spec(), at(-0.1))  # created at 01:59:30
    assert early.create == () and early.wake == at(0)

    first = decide(spec(), at(0) + timedelta(seconds=2))
    assert first.create == (at(0),) and first.wake == at(1)
    assert first.status.last_schedule_time == at(0)
    assert first.status.active == [run_name("c", at(0))] and first.status.active_count == 1
    assert first.status.conditions[0].type == "Scheduling" and first.status.conditions[0].status == "True"


def test_a_run_whose_status_write_was_lost_is_not_started_again() -> None:
    """The run exists (its label says 02:01) but status is empty: the labels are the truth."""
    again = decide(spec(), at(1) + timedelta(seconds=5), runs=[run(1)])
    assert again.create == ()
    assert again.status.last_schedule_time == at(1)


def test_manual_runs_are_no_scheduled_time() -> None:
    manual = Run(name=manual_run_name("c", at(0.9)), scheduled_time=at(0.9), manual=True, phase="Running")
    assert decide(spec(), at(1) + timedelta(seconds=1), runs=[manual]).create == (at(1),)


def test_forbid_skips_while_a_run_is_active_and_says_which() -> None:
    cron = spec(concurrencyPolicy="Forbid")
    skipped = decide(cron, at(2) + timedelta(seconds=1), runs=[run(1)], status=CronWorkflowStatus())
    assert skipped.create == ()
    (skip,) = skipped.skipped
    assert (skip.time, skip.reason) == (at(2), "ConcurrencyPolicy")
    assert skip.message == f"Forbid: {run_name('c', at(1))} still active"
    assert skipped.status.last_skipped is not None and skipped.status.last_skipped.scheduled_time == at(2)
    # Fed back, the skip is remembered: once the run finished, 02:02 does not start late.
    later = decide(cron, at(2) + timedelta(seconds=30), runs=[run(1, "Succeeded")], status=skipped.status)
    assert later.create == () and later.skipped == ()


def test_forbid_after_downtime_starts_the_oldest_due_time_only() -> None:
    cron = spec(concurrencyPolicy="Forbid", catchUp="All")
    after = decide(cron, at(4) + timedelta(seconds=1), runs=[run(1, "Succeeded")])
    assert after.create == (at(2),)
    assert [(s.time, s.reason) for s in after.skipped] == [(at(3), "ConcurrencyPolicy"), (at(4), "ConcurrencyPolicy")]


def test_replace_stops_every_active_run_and_starts_the_newest_time() -> None:
    cron = spec(concurrencyPolicy="Replace", catchUp="All")
    active = [run(1), run(0, stopped=True)]
    replaced = decide(cron, at(3) + timedelta(seconds=1), runs=active)
    assert replaced.create == (at(3),)
    assert replaced.stop == (run_name("c", at(1)),)  # the one already stopped is not patched again
    assert [(s.time, s.message) for s in replaced.skipped] == [(at(2), f"Replace: replaced by {run_name('c', at(3))}")]


def test_allow_starts_alongside_an_active_run() -> None:
    assert decide(spec(), at(2) + timedelta(seconds=1), runs=[run(1)]).create == (at(2),)


def test_suspended_times_are_skipped_and_never_start_after_the_resume() -> None:
    suspended = decide(spec(suspend=True), at(3) + timedelta(seconds=1), runs=[run(2, "Succeeded")])
    assert suspended.create == () and [(s.time, s.reason) for s in suspended.skipped] == [(at(3), "Suspended")]
    assert suspended.wake == at(4)  # still woken, to pass over each time
    condition = suspended.status.conditions[0]
    assert (condition.status, condition.reason) == ("False", "Suspended")
    resumed = decide(spec(), at(3) + timedelta(seconds=40), runs=[run(2, "Succeeded")], status=suspended.status)
    assert resumed.create == () and resumed.wake == at(4)


def test_catch_up_latest_after_downtime_starts_the_newest_and_reports_the_rest() -> None:
    after = decide(spec(), at(5) + timedelta(seconds=10), runs=[run(1, "Succeeded")])
    assert after.create == (at(5),)
    assert [(s.time, s.reason) for s in after.skipped] == [(at(m), "CatchUpPolicy") for m in (2, 3, 4)]


def test_history_keeps_the_newest_finished_runs_of_each_kind() -> None:
    finished = [replace(run(m, "Succeeded"), finished_at=at(m) + timedelta(seconds=5)) for m in range(5)]
    finished += [replace(run(m, "Failed"), finished_at=at(m) + timedelta(seconds=5)) for m in range(5, 8)]
    finished += [replace(run(8, "Stopped"), finished_at=at(8) + timedelta(seconds=5))]
    kept = decide(spec(successfulRunsHistoryLimit=2, failedRunsHistoryLimit=1), at(9) - timedelta(seconds=30), finished)
    assert kept.delete == tuple(run_name("c", at(m)) for m in (0, 1, 2, 5, 6, 7))
    assert kept.status.last_succeeded is not None and kept.status.last_succeeded.name == run_name("c", at(4))
    assert kept.status.last_failed is not None and kept.status.last_failed.name == run_name("c", at(8))


# --- a property ---------------------------------------------------------------------------------------------


@given(
    steps=st.lists(st.tuples(st.integers(1, 400), st.booleans()), min_size=1, max_size=30),
    policy=st.sampled_from(["Allow", "Forbid", "Replace"]),
    catch_up=st.sampled_from(["All", "Latest", "None"]),
)
def test_no_time_ever_starts_twice_and_all_with_allow_misses_none(
    steps: list[tuple[int, bool]], policy: str, catch_up: str
) -> None:
    """Passes at random moments (seconds apart), some losing their status write (a crash after creating)."""
    cron = spec(concurrencyPolicy=policy, catchUp=catch_up, successfulRunsHistoryLimit=1000)
    created: list[datetime] = []
    status = CronWorkflowStatus()
    now = T0
    for seconds, lose_status in steps:
        now += timedelta(seconds=seconds)
        runs = [Run(name=run_name("c", time), scheduled_time=time, phase="Succeeded") for time in created]
        decided = decide(cron, now, runs=runs, status=status)
        assert not set(decided.create) & set(created), "a time started twice"
        created += decided.create
        if not lose_status:
            status = decided.status
    assert created == sorted(created)
    if policy == "Allow" and catch_up == "All":
        first = schedules.parse("* * * * *").next_after(T0 - timedelta(seconds=30))
        assert first is not None
        expected = [first + i * MINUTE for i in range(int((now - first) / MINUTE) + 1)]
        assert created == expected
