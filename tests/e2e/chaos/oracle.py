"""Judging a chaos run from what the API server holds, not from the operator's own account.

The facts are the Jobs the recorder saw (labels say workflow, node and attempt) and the revisions etcd gave
each write. On one etcd every write gets the next revision, so revisions order a Job's creation against an
upstream Job finishing, or against the moment the operator acknowledged a pause or a stop (the first Workflow
write whose status.observedGeneration reached the generation of the test's patch). A Job created after that
acknowledgement is a violation; one created between the patch and its acknowledgement was decided before the
operator could know, and is only counted.

Checks, each a violation when broken (a forEach node's items are judged as nodes are: `JobRecord.unit`):
- one Job per (workflow, node or item, attempt), and never two Jobs of one node or item alive at once;
- never more Jobs of a forEach node's items alive at once than its maxParallel;
- no Job before every upstream node had a Job that succeeded (for a forEach upstream, every item);
- no Job while a pause was acknowledged and not yet lifted, none after a stop was acknowledged, none after
  the workflow's ending was written;
- every workflow ends in the phase its kind dictates, and its Jobs agree: a succeeded node had a Job that
  succeeded, a node failing its first k attempts had exactly k + 1 Jobs, descendants of a failed node had none.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ..operator_fixtures import JobRecord
from .workload import Planned


@dataclass
class Toggle:
    """A patch the test made to a Workflow's spec: its revision and the generation it produced."""

    action: str  # pause, resume, stop
    revision: int
    generation: int
    phase_before: str  # the status the patch's response carried


@dataclass
class Verdict:
    workflows: int = 0
    jobs: int = 0
    attempts_retried: int = 0
    race_window_launches: int = 0  # Jobs created between a pause/stop patch and its acknowledgement
    inexact: int = 0  # Jobs first seen in a relist: creation revision unknown, skipped by ordering checks
    violations: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "workflows": self.workflows,
            "jobs": self.jobs,
            "retried_attempts": self.attempts_retried,
            "race_window_launches": self.race_window_launches,
            "jobs_without_exact_revision": self.inexact,
            "violations": len(self.violations),
        }


Write = tuple[int, int, int, str]  # a Workflow write: (resourceVersion, generation, observedGeneration, phase)


def _acknowledged(writes: list[Write], generation: int) -> int | None:
    """Revision of the first write whose status had seen `generation`."""
    for revision, _, observed, _ in sorted(writes):
        if observed >= generation:
            return revision
    return None


def _end_revision(job: JobRecord) -> int | None:
    ends = [r for r in (job.finished_rv, job.deleted_rv) if r is not None]
    return min(ends) if ends else None


def judge(
    plans: list[Planned],
    jobs_of: dict[str, list[JobRecord]],
    writes_of: dict[str, list[Write]],
    toggles: dict[str, list[Toggle]],
    final: dict[str, dict[str, Any]],
) -> Verdict:
    """Every violation of the run, from each workflow's Jobs (in creation order) and Workflow writes."""
    verdict = Verdict(workflows=len(plans))
    for plan in plans:
        jobs = jobs_of.get(plan.name, [])
        writes = writes_of.get(plan.name, [])
        verdict.jobs += len(jobs)
        verdict.inexact += sum(1 for job in jobs if not job.created_rv_exact)
        problems: list[str] = []
        problems += _doubles(jobs)
        problems += _max_parallel(plan, jobs)
        problems += _order(plan, jobs)
        problems += _toggles(jobs, toggles.get(plan.name, []), writes, verdict)
        problems += _after_end(jobs, writes)
        problems += _ending(plan, jobs, toggles.get(plan.name, []), final.get(plan.name) or {}, verdict)
        verdict.violations += [f"{plan.name}: {problem}" for problem in problems]
    return verdict


def _doubles(jobs: list[JobRecord]) -> list[str]:
    problems: list[str] = []
    seen: dict[tuple[str, int], JobRecord] = {}
    by_node: dict[str, list[JobRecord]] = {}
    for job in jobs:
        key = (job.unit, job.attempt)
        if key in seen:
            problems.append(f"node {job.unit} attempt {job.attempt} got two Jobs ({seen[key].uid}, {job.uid})")
        seen[key] = job
        by_node.setdefault(job.unit, []).append(job)
    for name, runs in by_node.items():
        exact = sorted((job for job in runs if job.created_rv_exact), key=lambda job: job.created_rv)
        for earlier, later in itertools.pairwise(exact):
            ended = _end_revision(earlier)
            if ended is None or ended > later.created_rv:
                problems.append(f"node {name}: attempt {later.attempt} started while attempt {earlier.attempt} ran")
    return problems


def _max_parallel(plan: Planned, jobs: list[JobRecord]) -> list[str]:
    problems = []
    for name, limit in plan.max_parallel.items():
        changes: list[tuple[int, int]] = []
        for job in jobs:
            if job.node == name and job.created_rv_exact:
                changes.append((job.created_rv, 1))
                ended = _end_revision(job)
                if ended is not None:
                    changes.append((ended, -1))
        running = most = 0
        for _, delta in sorted(changes):  # an end sorts before a start at the same revision
            running += delta
            most = max(most, running)
        if most > limit:
            problems.append(f"node {name}: {most} items ran at once, maxParallel is {limit}")
    return problems


def _order(plan: Planned, jobs: list[JobRecord]) -> list[str]:
    by_unit: dict[str, int] = {}  # each node or item: when it first succeeded
    for job in jobs:
        if job.outcome == "Succeeded" and job.finished_rv is not None:
            by_unit[job.unit] = min(job.finished_rv, by_unit.get(job.unit, job.finished_rv))
    succeeded: dict[str, int] = {}  # each node: when the last of its units succeeded (an empty forEach: at once)
    for name in plan.deps:
        times = [by_unit.get(unit, 1 << 62) for unit in plan.units(name)]
        succeeded[name] = max(times, default=0)
    problems = []
    for job in jobs:
        if not job.created_rv_exact:
            continue
        early = [up for up in plan.deps.get(job.node, []) if succeeded.get(up, 1 << 62) > job.created_rv]
        if early:
            problems.append(f"node {job.node} attempt {job.attempt} launched before {', '.join(early)} succeeded")
    return problems


def _toggles(jobs: list[JobRecord], toggles: list[Toggle], writes: list[Write], verdict: Verdict) -> list[str]:
    problems = []
    windows: list[tuple[str, int, int, int]] = []  # (action, patched, acknowledged, lifted)
    for index, toggle in enumerate(toggles):
        if toggle.action not in ("pause", "stop"):
            continue
        lifted = next((t.revision for t in toggles[index + 1 :] if t.action == "resume"), 1 << 62)
        acknowledged = _acknowledged(writes, toggle.generation)
        if acknowledged is None:
            if toggle.action == "stop":
                problems.append("the stop was never acknowledged in status.observedGeneration")
            continue
        windows.append((toggle.action, toggle.revision, acknowledged, lifted))
    for job in jobs:
        if not job.created_rv_exact:
            continue
        for action, patched, acknowledged, lifted in windows:
            if acknowledged < job.created_rv < lifted:
                problems.append(f"node {job.node} attempt {job.attempt} launched after the {action} was acknowledged")
            elif patched < job.created_rv <= acknowledged:
                verdict.race_window_launches += 1
    return problems


def _after_end(jobs: list[JobRecord], writes: list[Write]) -> list[str]:
    ended = next(
        (revision for revision, _, _, phase in sorted(writes) if phase in ("Succeeded", "Failed", "Stopped")), None
    )
    if ended is None:
        return []
    late = [job for job in jobs if job.created_rv_exact and job.created_rv > ended]
    return [f"node {job.node} attempt {job.attempt} launched after the workflow had ended" for job in late]


def _expected_phase(plan: Planned, jobs: list[JobRecord], toggles: list[Toggle]) -> set[str]:
    if plan.kind == "failing":
        return {"Failed"}
    stop = next((t for t in toggles if t.action == "stop"), None)
    if stop is None:
        return {"Succeeded"}
    if stop.phase_before in ("Succeeded", "Failed"):
        return {stop.phase_before}
    done_before = {job.node for job in jobs if job.outcome == "Succeeded" and (job.finished_rv or 0) < stop.revision}
    return {"Stopped", "Succeeded"} if done_before >= set(plan.deps) else {"Stopped"}


def _ending(
    plan: Planned, jobs: list[JobRecord], toggles: list[Toggle], status: dict[str, Any], verdict: Verdict
) -> list[str]:
    expected = _expected_phase(plan, jobs, toggles)
    phase = status.get("phase")
    if phase not in expected:
        return [f"ended {phase} ({status.get('message')}), expected {' or '.join(sorted(expected))}"]
    problems: list[str] = []
    runs: dict[str, list[JobRecord]] = {}
    for job in jobs:
        runs.setdefault(job.unit, []).append(job)
    verdict.attempts_retried += sum(max(0, len(r) - 1) for r in runs.values())
    if phase == "Stopped":
        return problems
    skipped = plan.descendants(plan.failing_node) if plan.failing_node else set()
    for name in plan.deps:
        if name in skipped:
            if any(runs.get(unit) for unit in plan.units(name)):
                problems.append(f"node {name} ran although upstream {plan.failing_node} had failed")
            continue
        for unit in plan.units(name):
            mine = runs.get(unit, [])
            if not mine and plan.failing_node and plan.fail_fast:
                continue  # failFast: nodes (and items) not started when the failure was seen are Skipped
            wanted = 1 + plan.extra_attempts.get(name, 0)
            if len(mine) != wanted:
                problems.append(f"node {unit} had {len(mine)} Jobs, expected {wanted}")
            want = "Failed" if name == plan.failing_node else "Succeeded"
            if not mine or mine[-1].outcome != want:
                ended = mine[-1].outcome if mine else "never"
                problems.append(f"node {unit}'s last Job ended {ended}, expected {want}")
    return problems
