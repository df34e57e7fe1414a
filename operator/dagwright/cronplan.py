"""One pass of a CronWorkflow as a pure function: what exists and what time it is -> what to do.

    plan(spec=..., schedule=..., status=..., runs=..., created=..., now=...) -> Plan

The operator (`k8s/cron.py`) lists the CronWorkflow's runs from the API server (never from memory), calls
`plan`, then creates `plan.create` (one Workflow per scheduled time, named by `run_name`: creating one that
exists is AlreadyExists, so a restart, a second replica or a retried pass never starts a time twice), stops
`plan.stop`, deletes `plan.delete`, posts RunStarted and RunSkipped Events and writes `plan.status`, and is
woken again at `plan.wake`. Nothing here reads a clock or does I/O.

The rules, in order:
1. The newest time already dealt with (`last`) is the newest of `status.lastScheduleTime`,
   `status.lastSkipped.scheduledTime` and the scheduled-time labels of the runs that exist: so a run created
   by a pass whose status write was lost still counts, and `schedules.due` decides the rest (missed times,
   `catchUp`, `startingDeadlineSeconds`, the next time). Manual runs (`dagwright cron trigger`) are no
   scheduled time and do not count.
2. `suspend`: every due time is skipped (reason Suspended) and recorded, so resuming starts nothing stale.
3. `concurrencyPolicy` (an active run is one whose phase is not Succeeded, Failed or Stopped):
   Allow starts every due time; Forbid skips every due time while a run is active, and of several due times
   starts the oldest only (it is active when the next would start); Replace starts the newest due time only
   (the others would be replaced at once) and stops every active run.
4. History: finished runs beyond `successfulRunsHistoryLimit` (Succeeded) and `failedRunsHistoryLimit`
   (Failed or Stopped) are deleted, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dagwright import schedules
from dagwright.cronspec import ConcurrencyPolicy, CronWorkflowSpec, CronWorkflowStatus, RunRef, SkipRecord
from dagwright.schedules import CatchUp, Schedule
from dagwright.status import Condition

FINISHED = ("Succeeded", "Failed", "Stopped")
SUSPENDED = "Suspended"
CONCURRENCY = "ConcurrencyPolicy"
CONDITION = "Scheduling"


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """A Workflow this CronWorkflow started, as the API server holds it."""

    name: str
    uid: str = ""
    scheduled_time: datetime | None  # None for an object without a readable `dagwright.io/scheduled-time`
    manual: bool = False
    phase: str | None = None
    created: datetime | None = None
    finished_at: datetime | None = None
    stopped: bool = False  # spec.stopped already set

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    def ref(self) -> RunRef:
        return RunRef(name=self.name, scheduled_time=self.scheduled_time, finished_at=self.finished_at)


@dataclass(frozen=True, slots=True)
class Skipped:
    time: datetime
    reason: str  # a schedules.SkipReason, Suspended or ConcurrencyPolicy
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    create: tuple[datetime, ...]  # scheduled times to start, oldest first
    stop: tuple[str, ...]  # active runs to stop (Replace)
    delete: tuple[str, ...]  # finished runs beyond the history limits
    skipped: tuple[Skipped, ...]
    status: CronWorkflowStatus  # as it is once the above is done
    wake: datetime | None  # pass again then (also on any change of the CronWorkflow or its runs)


def run_name(cron: str, time: datetime) -> str:
    """A scheduled run's name: `<cron>-<unix seconds>`, the time's identity (`schedules.unix_seconds`)."""
    return f"{cron}-{schedules.unix_seconds(time)}"


def manual_run_name(cron: str, time: datetime) -> str:
    """A run started by `dagwright cron trigger`: `<cron>-manual-<unix seconds>`."""
    return f"{cron}-manual-{schedules.unix_seconds(time)}"


def plan(
    *,
    cron: str,
    spec: CronWorkflowSpec,
    schedule: Schedule,
    status: CronWorkflowStatus,
    runs: list[Run],
    created: datetime,
    now: datetime,
    generation: int | None = None,
) -> Plan:
    """The module's rules 1-4 for one pass."""
    due = schedules.due(
        schedule,
        last=_last(status, runs),
        created=created,
        now=now,
        catch_up=CatchUp(spec.catch_up),
        starting_deadline_seconds=spec.starting_deadline_seconds,
    )
    skipped = [_missed(skip, due.earlier_skipped if i == 0 else None) for i, skip in enumerate(due.skipped)]
    active = sorted((run for run in runs if not run.finished), key=_age)
    start, stop, held_back = _concurrency(spec, list(due.start), active, cron)
    skipped += held_back
    delete = _beyond_history(spec, runs)
    return Plan(
        create=tuple(start),
        stop=tuple(stop),
        delete=tuple(delete),
        skipped=tuple(sorted(skipped, key=lambda skip: skip.time)),
        status=_status(spec, status, runs, active, start, skipped, due.next_time, cron, now, generation),
        wake=due.next_time,
    )


def _last(status: CronWorkflowStatus, runs: list[Run]) -> datetime | None:
    times = [run.scheduled_time for run in runs if run.scheduled_time is not None and not run.manual]
    times += [status.last_schedule_time] if status.last_schedule_time is not None else []
    times += [status.last_skipped.scheduled_time] if status.last_skipped is not None else []
    return max(times, default=None)


def _missed(skip: schedules.Skip, earlier: schedules.SkipReason | None) -> Skipped:
    if skip.reason is schedules.SkipReason.STARTING_DEADLINE:
        message = "missed by more than spec.startingDeadlineSeconds"
    else:
        message = "a missed time that spec.catchUp does not start"
    if earlier is not None:
        message += f"; earlier missed times were skipped too ({earlier})"
    return Skipped(skip.time, str(skip.reason), message)


def _concurrency(
    spec: CronWorkflowSpec, due: list[datetime], active: list[Run], cron: str
) -> tuple[list[datetime], list[str], list[Skipped]]:
    """(times to start, runs to stop, times held back): rules 2 and 3."""
    if not due:
        return [], [], []
    if spec.suspend:
        return [], [], [Skipped(time, SUSPENDED, "spec.suspend is true") for time in due]
    policy = ConcurrencyPolicy(spec.concurrency_policy)
    if policy is ConcurrencyPolicy.FORBID:
        if active:
            names = ", ".join(run.name for run in active)
            return [], [], [Skipped(time, CONCURRENCY, f"Forbid: {names} still active") for time in due]
        first = run_name(cron, due[0])
        return due[:1], [], [Skipped(time, CONCURRENCY, f"Forbid: {first} still active") for time in due[1:]]
    if policy is ConcurrencyPolicy.REPLACE:
        newest = run_name(cron, due[-1])
        held = [Skipped(time, CONCURRENCY, f"Replace: replaced by {newest}") for time in due[:-1]]
        return due[-1:], [run.name for run in active if not run.stopped], held
    return due, [], []


def _beyond_history(spec: CronWorkflowSpec, runs: list[Run]) -> list[str]:
    succeeded = sorted((run for run in runs if run.phase == "Succeeded"), key=_finish, reverse=True)
    failed = sorted((run for run in runs if run.phase in ("Failed", "Stopped")), key=_finish, reverse=True)
    old = succeeded[spec.successful_runs_history_limit :] + failed[spec.failed_runs_history_limit :]
    return [run.name for run in sorted(old, key=_finish)]


def _status(
    spec: CronWorkflowSpec,
    before: CronWorkflowStatus,
    runs: list[Run],
    active: list[Run],
    start: list[datetime],
    skipped: list[Skipped],
    next_time: datetime | None,
    cron: str,
    now: datetime,
    generation: int | None,
) -> CronWorkflowStatus:
    started = [before.last_schedule_time] if before.last_schedule_time is not None else []
    started += start + [run.scheduled_time for run in runs if run.scheduled_time is not None and not run.manual]
    newest_skip = max(skipped, key=lambda skip: skip.time, default=None)
    last_skipped = before.last_skipped
    if newest_skip is not None and (last_skipped is None or newest_skip.time >= last_skipped.scheduled_time):
        last_skipped = SkipRecord(
            scheduled_time=newest_skip.time, reason=newest_skip.reason, message=newest_skip.message
        )
    names = [run.name for run in active] + [run_name(cron, time) for time in start]
    return CronWorkflowStatus(
        last_schedule_time=max(started, default=None),
        next_schedule_time=next_time,
        active=names,
        active_count=len(names),
        last_succeeded=_newest_finished(runs, ("Succeeded",), before.last_succeeded),
        last_failed=_newest_finished(runs, ("Failed", "Stopped"), before.last_failed),
        last_skipped=last_skipped,
        conditions=[_condition(spec, before, now, generation)],
        observed_generation=generation,
    )


def _newest_finished(runs: list[Run], phases: tuple[str, ...], before: RunRef | None) -> RunRef | None:
    """The newest finished run in these phases; the one recorded before if it is newer (its run was deleted)."""
    found = max((run for run in runs if run.phase in phases), key=_finish, default=None)
    if found is None:
        return before
    if before is not None and _later(before.finished_at, found.finished_at):
        return before
    return found.ref()


def _later(first: datetime | None, second: datetime | None) -> bool:
    return first is not None and second is not None and first > second


def _condition(spec: CronWorkflowSpec, before: CronWorkflowStatus, now: datetime, generation: int | None) -> Condition:
    if spec.suspend:
        status, reason, message = "False", SUSPENDED, "spec.suspend is true: scheduled times are skipped"
    else:
        status, reason, message = "True", "Scheduled", f"{spec.schedule} ({spec.timezone})"
    return condition(before, status, reason, message, now, generation)


def condition(
    before: CronWorkflowStatus, status: str, reason: str, message: str, now: datetime, generation: int | None
) -> Condition:
    """The `Scheduling` condition, keeping its lastTransitionTime while its status stays the same."""
    old = next((c for c in before.conditions if c.type == CONDITION), None)
    since = old.last_transition_time if old is not None and old.status == status else now
    return Condition(
        type=CONDITION,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def _age(run: Run) -> tuple[datetime, str]:
    return (run.scheduled_time or run.created or _EPOCH, run.name)


def _finish(run: Run) -> tuple[datetime, str]:
    return (run.finished_at or run.scheduled_time or run.created or _EPOCH, run.name)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
