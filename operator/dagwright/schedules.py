"""When a CronWorkflow's runs are due: the schedule's times as one pure function.

    due(schedule, last=..., created=..., now=..., catch_up=..., starting_deadline_seconds=...)
        -> Due(start, skipped, earlier_skipped, next_time)

The operator (a later piece of issue 13) parses `spec.schedule` and `spec.timezone` with `parse`, calls `due`
when it is woken, creates one Workflow per time in `start` (named `<cron>-<unix seconds>`: a time's identity is
`unix_seconds(time)`, so a restart, a second replica or a retried pass cannot create a run twice), posts
RunSkipped for `skipped`, and sleeps until `next_time`: it never polls. Nothing here reads a clock or does I/O
(the IANA zone data that `zoneinfo` loads is data, not the world), and the answer is a function of the
arguments (and of that data), so a restarted operator decides exactly what the dead one would have. Every
datetime taken must be timezone-aware; every one returned is in UTC, whole seconds.

The cron expressions are read by `cronsim` (https://pypi.org/project/cronsim), not by a parser of our own. Of
the maintained libraries it is the one that gets daylight saving right: it follows Debian's (Vixie) cron, is
typed, has no dependencies and is what Healthchecks (a cron monitoring service) runs on. `croniter`, the best
known, was declared abandoned by its author in early 2025 and lives on under pallets-eco; its 7.0 starts a
02:30 Europe/Berlin schedule twice in the fall-back night (00:30 and 01:30 UTC), the Kubernetes CronJob bug
users report (kubernetes#121594). `crontab` and `cron-converter` handle no time zone transitions of their own.

Daylight saving, as Debian's cron and GitHub Actions do it (and as users of Kubernetes CronJobs and Argo, whose
robfig/cron silently drops such runs, ask for in robfig/cron#541):
- a time that does not exist (02:30 in a spring-forward night) runs once, at the first valid instant after the
  gap (03:00 local); several such times of one night (02:00 and 02:30) are one run;
- a time that happens twice (02:30 in a fall-back night) runs once, at its first occurrence;
- both apply to schedules at fixed hours and minutes. A schedule whose minute or hour field starts with `*`
  (`*/15 * * * *`, `0 * * * *`) is a rhythm of elapsed time: in a fall-back night it runs in both passes of
  the repeated hour, and in a spring-forward night nothing runs in the hour that does not exist.

Rules of `due`, in the order applied:
1. The missed times are the schedule's times after `last` (the newest scheduled time already started; None:
   never, and then after `created`, the resource's creation time) up to and including `now`. Only the newest
   MAX_CATCH_UP of them are looked at; any older ones are skipped (`earlier_skipped` says so, and why).
2. A missed time older than `starting_deadline_seconds` is skipped (StartingDeadlineExceeded).
3. Of the rest, `catchUp` chooses what starts, oldest first; the others are skipped (CatchUpPolicy):
   `Latest` the newest one, `All` every one (so at most MAX_CATCH_UP after any downtime), `None` the newest one
   only if it is due now: at most DUE_WITHIN old (the operator's wake-up lag), so nothing runs late.
4. `next_time` is the first scheduled time after `now` (and after `last`): when to call again.

A skipped time stays skipped in every later call (it only gets older, and a newer time exists), so passing the
newest skipped time as `last` instead of the newest started one changes no start; it only stops the skips from
being reported again. The schedule and its zone can change between calls: `last` is only a lower bound.
Cost: O(MAX_CATCH_UP) cron steps per call for regular schedules (the newest times are found in windows growing
back from `now`), never a step per minute of downtime.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from dagwright.errors import Problem, SpecError

MAX_CATCH_UP = 100  # missed times looked at after a downtime: a Kubernetes CronJob gives up past 100 too
DUE_WITHIN = timedelta(seconds=60)  # `catchUp: None` still starts a time this late (a busy operator's lag)
DEFAULT_TIMEZONE = "UTC"
FIELDS = "minute hour day-of-month month day-of-week"
_FIRST_WINDOW = timedelta(hours=1)
_WINDOW_GROWTH = 8
_EPOCH = datetime(2000, 1, 1)  # any instant: cronsim parses when it is given a start
# Kubernetes CronJob's shorthands, so a schedule copied from one keeps working.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_TZ_PREFIX = re.compile(r"^\s*(CRON_)?TZ=", re.IGNORECASE)


class CatchUp(StrEnum):
    """`spec.catchUp`: which missed times run after a downtime (rule 3)."""

    LATEST = "Latest"
    ALL = "All"
    NONE = "None"


class SkipReason(StrEnum):
    """Why a missed time does not run: the RunSkipped Event's reason."""

    STARTING_DEADLINE = "StartingDeadlineExceeded"  # rule 2
    CATCH_UP = "CatchUpPolicy"  # rule 3, and rule 1 when older than MAX_CATCH_UP


@dataclass(frozen=True, slots=True)
class Schedule:
    """A checked `schedule` and `timezone`; build it with `parse`."""

    expression: str  # as written
    timezone: str
    cron: str  # the 5 fields (a macro expanded)
    zone: ZoneInfo

    def times_after(self, instant: datetime) -> Iterator[datetime]:
        """The scheduled times after `instant`, in UTC, strictly increasing, for about 50 years."""
        previous = _utc(instant)
        for local in CronSim(self.cron, previous.astimezone(self.zone)):
            time = local.astimezone(UTC)
            # cronsim walks local wall time: starting inside the second pass of a repeated hour it may offer
            # a wall time whose first occurrence has passed. That time ran (or was due) already.
            if time > previous:
                previous = time
                yield time

    def next_after(self, instant: datetime) -> datetime | None:
        """The first scheduled time after `instant`; None if there is none within about 50 years."""
        return next(self.times_after(instant), None)


@dataclass(frozen=True, slots=True)
class Skip:
    time: datetime
    reason: SkipReason


@dataclass(frozen=True, slots=True, kw_only=True)
class Due:
    start: tuple[datetime, ...]  # start these now, in this order
    skipped: tuple[Skip, ...]  # missed and never to run, oldest first
    earlier_skipped: SkipReason | None  # times before `skipped` (and `start`) were skipped too, for this reason
    next_time: datetime | None  # call again then; None: the schedule has no time within about 50 years


def problems(schedule: str, timezone: str | None, *, path: str = "spec") -> list[Problem]:
    """Everything wrong with a schedule and its zone, each naming its field (`spec.schedule`, `spec.timezone`)."""
    return _check(schedule, timezone, path)[2]


def parse(schedule: str, timezone: str | None = None, *, path: str = "spec") -> Schedule:
    """A checked Schedule, or SpecError with every problem (`timezone` None means UTC)."""
    cron, zone, found = _check(schedule, timezone, path)
    if cron is None or zone is None:
        raise SpecError(found)
    return Schedule(expression=schedule, timezone=zone.key, cron=cron, zone=zone)


def due(
    schedule: Schedule,
    *,
    last: datetime | None,
    created: datetime,
    now: datetime,
    catch_up: CatchUp = CatchUp.LATEST,
    starting_deadline_seconds: int | None = None,
) -> Due:
    """What to start now, what was missed for good, and when to call again (the module's rules 1-4)."""
    now = _utc(now)
    lower = _utc(last if last is not None else created)
    missed, earlier = _newest(schedule, lower, now, MAX_CATCH_UP)  # rule 1
    deadline = None if starting_deadline_seconds is None else timedelta(seconds=starting_deadline_seconds)
    skipped = [Skip(t, SkipReason.STARTING_DEADLINE) for t in missed if deadline is not None and now - t > deadline]
    fresh = missed[len(skipped) :]  # rule 2: the deadline cuts off the oldest
    if catch_up is CatchUp.ALL:  # rule 3
        start = fresh
    elif catch_up is CatchUp.LATEST:
        start = fresh[-1:]
    else:
        start = [t for t in fresh[-1:] if now - t <= DUE_WITHIN]
    skipped += [Skip(t, SkipReason.CATCH_UP) for t in fresh if t not in start]
    older = None
    if earlier:  # older still than an expired time: expired too; otherwise the look-back's cut-off
        expired = deadline is not None and now - missed[0] > deadline
        older = SkipReason.STARTING_DEADLINE if expired else SkipReason.CATCH_UP
    return Due(
        start=tuple(start),
        skipped=tuple(skipped),
        earlier_skipped=older,
        next_time=schedule.next_after(max(now, lower)),  # rule 4
    )


def unix_seconds(time: datetime) -> int:
    """A scheduled time's identity: the suffix of its run's name and `dagwright.io/scheduled-time`."""
    return int(_utc(time).timestamp())


def from_unix_seconds(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _newest(schedule: Schedule, lower: datetime, now: datetime, count: int) -> tuple[list[datetime], bool]:
    """The newest `count` scheduled times in (lower, now], oldest first, and whether older ones exist.

    Looks back from `now` in windows growing by _WINDOW_GROWTH until one holds `count` times or reaches
    `lower`, so a long downtime costs a few windows, not a cron step per minute of it.
    """
    if now <= lower:
        return [], False
    span = _FIRST_WINDOW
    while True:
        begin = max(lower, now - span)
        window: deque[datetime] = deque(maxlen=count)
        for time in schedule.times_after(begin):
            if time > now:
                break
            window.append(time)
        if len(window) == count or begin == lower:
            break
        span *= _WINDOW_GROWTH
    if not window:
        return [], False
    first = schedule.next_after(lower)
    return list(window), first is not None and first < window[0]


def _check(schedule: str, timezone: str | None, path: str) -> tuple[str | None, ZoneInfo | None, list[Problem]]:
    cron, cron_problem = _cron(schedule, path)
    zone, zone_problem = _zone(timezone)
    found = [Problem(f"{path}.schedule", cron_problem)] if cron_problem else []
    found += [Problem(f"{path}.timezone", zone_problem)] if zone_problem else []
    return cron, zone, found


def _cron(schedule: str, path: str) -> tuple[str | None, str | None]:
    """The 5 fields to give cronsim, or why there are none."""
    text = schedule.strip()
    if not text:
        return None, f"required: a cron expression of 5 fields ({FIELDS}), such as '30 2 * * *'"
    if _TZ_PREFIX.match(text):
        return None, f"{schedule!r}: set the time zone in {path}.timezone, not in the schedule"
    cron = MACROS.get(text.lower(), text)
    fields = cron.split()
    if cron.startswith("@"):
        return None, f"{schedule!r}: unknown shorthand; use one of {', '.join(MACROS)} or 5 fields ({FIELDS})"
    if len(fields) != 5:
        return None, f"{schedule!r} has {len(fields)} fields; a schedule has 5: {FIELDS}"
    try:
        CronSim(" ".join(fields), _EPOCH)
    except CronSimError as error:
        return None, f"{schedule!r}: {str(error).lower()} field ({FIELDS})"
    return " ".join(fields), None


def _zone(timezone: str | None) -> tuple[ZoneInfo | None, str | None]:
    name = DEFAULT_TIMEZONE if timezone is None else timezone
    hint = "an IANA time zone name such as Europe/Berlin, America/New_York or UTC"
    if name == "localtime":  # the machine's own zone: the same CronWorkflow would run at different times
        return None, f"'localtime' depends on the machine; use {hint}"
    try:
        return ZoneInfo(name), None
    except (ValueError, LookupError, OSError):  # malformed, unknown, a directory such as `America`
        return None, f"unknown time zone {name!r}; use {hint}"


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"a naive datetime: {instant!r} (pass timezone-aware datetimes)")
    return instant.astimezone(UTC)
