"""The chaos oracle itself: it must find each kind of violation it claims to, and pass a clean run.

Why: a chaos suite whose judge cannot fail proves nothing. These feed hand-made Job histories (no cluster).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ..operator_fixtures import JobRecord
from .leadership import CREATED_BY, acted_without_lease
from .oracle import Toggle, Verdict, Write, judge
from .workload import Planned

DONE: dict[str, dict[str, str]] = {"flow": {"phase": "Succeeded"}}


def job(node: str, attempt: int, created: int, finished: int | None, outcome: str = "Succeeded") -> JobRecord:
    return JobRecord(
        uid=f"{node}-{attempt}-{created}",
        name=f"flow-{node}-{attempt}",
        workflow="flow",
        node=node,
        attempt=attempt,
        created=datetime.now(UTC),
        added_seq=created,
        added_at=0.0,
        last={},
        created_rv=created,
        finished_rv=finished,
        outcome=outcome if finished is not None else None,
    )


def chain() -> Planned:
    """flow: a -> b."""
    return Planned(name="flow", kind="plain", manifest={}, deps={"a": [], "b": ["a"]})


def verdict(
    jobs: list[JobRecord],
    plan: Planned | None = None,
    writes: list[Write] | None = None,
    toggles: list[Toggle] | None = None,
    final: dict[str, dict[str, str]] | None = None,
) -> Verdict:
    written = writes if writes is not None else [(100, 1, 1, "Succeeded")]
    return judge([plan or chain()], {"flow": jobs}, {"flow": written}, {"flow": toggles or []}, final or DONE)


def test_a_clean_run_has_no_violations() -> None:
    assert verdict([job("a", 1, 10, 20), job("b", 1, 30, 40)]).violations == []


@pytest.mark.parametrize(
    ("jobs", "found"),
    [
        ([job("a", 1, 10, 20), job("b", 1, 15, 40)], "b attempt 1 launched before a succeeded"),
        ([job("a", 1, 10, 20), job("a", 1, 21, 25), job("b", 1, 30, 40)], "a attempt 1 got two Jobs"),
        (
            [job("a", 1, 10, 20, "Failed"), job("a", 2, 15, 30), job("b", 1, 35, 40)],
            "a: attempt 2 started while attempt 1 ran",
        ),
        ([job("a", 1, 10, 20), job("b", 1, 30, 40), job("b", 2, 120, 130)], "b attempt 2 launched after the workflow"),
        ([job("a", 1, 10, 20)], "node b had 0 Jobs, expected 1"),
        ([job("a", 1, 10, 20), job("b", 1, 30, 40, "Failed")], "node b's last Job ended Failed"),
    ],
)
def test_each_violation_is_found(jobs: list[JobRecord], found: str) -> None:
    problems = verdict(jobs).violations
    assert any(found in problem for problem in problems), problems


def test_a_launch_after_an_acknowledged_stop_is_a_violation_one_before_it_is_only_counted() -> None:
    stop = Toggle("stop", revision=25, generation=2, phase_before="Running")
    stopped = {"flow": {"phase": "Stopped"}}
    late = verdict([job("a", 1, 10, 20), job("b", 1, 30, 40)], writes=[(28, 2, 2, "Stopped")], toggles=[stop])
    assert any("launched after the stop was acknowledged" in p for p in late.violations)
    racing = verdict(
        [job("a", 1, 10, 20), job("b", 1, 26, 40)], writes=[(28, 2, 2, "Stopped")], toggles=[stop], final=stopped
    )
    assert racing.violations == [] and racing.race_window_launches == 1


def test_a_launch_while_a_pause_is_acknowledged_is_a_violation_and_after_resume_is_not() -> None:
    pause = Toggle("pause", revision=21, generation=2, phase_before="Running")
    resume = Toggle("resume", revision=50, generation=3, phase_before="Paused")
    writes: list[Write] = [(22, 2, 2, "Paused"), (51, 3, 3, "Running"), (100, 3, 3, "Succeeded")]
    during = verdict([job("a", 1, 10, 20), job("b", 1, 30, 40)], writes=writes, toggles=[pause, resume])
    assert any("launched after the pause was acknowledged" in p for p in during.violations)
    after = verdict([job("a", 1, 10, 20), job("b", 1, 55, 60)], writes=writes, toggles=[pause, resume])
    assert after.violations == []


def test_a_wrong_ending_is_a_violation() -> None:
    problems = verdict([job("a", 1, 10, 20), job("b", 1, 30, 40)], final={"flow": {"phase": "Failed"}}).violations
    assert problems == ["flow: ended Failed (None), expected Succeeded"]


def test_retries_must_show_as_exactly_that_many_jobs() -> None:
    plan = chain()
    plan.extra_attempts = {"a": 1}
    assert any(
        "node a had 1 Jobs, expected 2" in p
        for p in verdict([job("a", 1, 10, 20), job("b", 1, 30, 40)], plan).violations
    )
    retried = [job("a", 1, 10, 15, "Failed"), job("a", 2, 16, 20), job("b", 1, 30, 40)]
    assert verdict(retried, plan).violations == []


def test_a_job_created_by_a_replica_not_holding_the_lease_is_found() -> None:
    def by(replica: str, created: int) -> JobRecord:
        record = job("a", created, created, None)
        record.last = {"metadata": {"annotations": {CREATED_BY: replica}}}
        return record

    lease = [(5, "one"), (50, "one"), (60, ""), (70, "two")]
    assert acted_without_lease([by("one", 10), by("one", 55), by("two", 80)], lease) == []
    problems = acted_without_lease([by("one", 75), by("two", 65), job("b", 1, 90, None)], lease)
    assert problems == [
        "Job flow-a-75 was created by one while the Lease named two",
        "Job flow-a-65 was created by two while the Lease named nobody",
        "Job flow-b-1 does not say which replica created it",
    ]


def item(node: str, index: int, attempt: int, created: int, finished: int | None) -> JobRecord:
    record = job(node, attempt, created, finished)
    record.item, record.uid = index, f"{node}-{index}-{attempt}-{created}"
    return record


def fan_out(max_parallel: int | None = None) -> Planned:
    """flow: a (forEach of 2 items) -> b."""
    plan = Planned(name="flow", kind="plain", manifest={}, deps={"a": [], "b": ["a"]}, items={"a": 2})
    if max_parallel is not None:
        plan.max_parallel["a"] = max_parallel
    return plan


def test_a_clean_fan_out_has_no_violations() -> None:
    jobs = [item("a", 0, 1, 10, 20), item("a", 1, 1, 11, 25), job("b", 1, 30, 40)]
    assert verdict(jobs, fan_out(max_parallel=2)).violations == []


@pytest.mark.parametrize(
    ("jobs", "max_parallel", "found"),
    [
        (
            [item("a", 0, 1, 10, 20), item("a", 0, 1, 12, 22), item("a", 1, 1, 13, 23), job("b", 1, 30, 40)],
            None,
            "a[0] attempt 1 got two Jobs",
        ),
        (
            [item("a", 0, 1, 10, 20), item("a", 1, 1, 11, 35), job("b", 1, 30, 40)],
            None,
            "b attempt 1 launched before a succeeded",
        ),
        (
            [item("a", 0, 1, 10, 20), item("a", 1, 1, 11, 25), job("b", 1, 30, 40)],
            1,
            "2 items ran at once, maxParallel is 1",
        ),
        ([item("a", 0, 1, 10, 20), job("b", 1, 30, 40)], None, "node a[1] had 0 Jobs, expected 1"),
    ],
)
def test_fan_out_violations_are_found(jobs: list[JobRecord], max_parallel: int | None, found: str) -> None:
    violations = verdict(jobs, fan_out(max_parallel)).violations
    assert any(found in violation for violation in violations), violations
