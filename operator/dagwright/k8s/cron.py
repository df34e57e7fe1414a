"""The cron loop: one pass per CronWorkflow when its next time comes (never polling), or when it or a run changes.

`operator.py` keeps the CronWorkflows it watches in a `CronBook` and queues a pass for a CronWorkflow (in a
`WorkQueue` of its own, so a busy Workflow queue never delays a scheduled time) when it changes, when one of its
runs finishes or goes away, when this replica becomes the leader, and at the delay a pass returns: the seconds
until the schedule's next time. A pass reads like a reconcile:

    leader? -> the object from the watch -> invalid: say so in status, stop -> its runs -> the pure decision
    (`cronplan.plan`, on top of `schedules.due`) -> stop, create (AlreadyExists is success), delete -> Events
    (posted off the pass, see `post`) and metrics -> status, if it changed -> sleep until `plan.wake`.

Its runs come from the operator's watch of Workflows (`cache.Cache`, by the run label), not from a LIST per
pass: at 200 CronWorkflows due at once, the LIST was one of four API calls in each pass. The watch is the API
server's state, so a restarted operator still decides from that state, with two guards:
- until the watch has delivered a CronWorkflow's runs, its passes LIST them: a pass LISTs, and reads the watch
  from then on only once every run the LIST returned is in the cache (a restart decides from the API server
  even while kopf's initial listing is still arriving);
- a run this pass creates goes into the cache from the create's response (`remember`), so the next pass sees
  it before its watch event comes.
Creating a run that exists is AlreadyExists (a run's name is its scheduled time), so a stale view can never
start a scheduled run twice.

Only the leader passes (and it checks again before each create), so two replicas never both start a run; and
since a run's name is its scheduled time, even they could not start one twice.

The clock is `Clock`: wall time. Tests may set DAGWRIGHT_TEST_CLOCK=ANCHOR:SPEED (unix seconds, a factor) to run
it SPEED times as fast from ANCHOR, so that an every-minute schedule fires every few seconds on a real API
server; every operator process given the same value agrees on the time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from dagwright import cronplan, cronspec, schedules
from dagwright.cronspec import CronWorkflowStatus
from dagwright.errors import Problem, SpecError
from dagwright.k8s import cronruns, metrics, names
from dagwright.k8s.reconcile import compile_body
from dagwright.validation import parse_spec, parse_template_spec, template_field

log = logging.getLogger("dagwright.cron")

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, CronWorkflow name)
CLOCK_ENV = "DAGWRIGHT_TEST_CLOCK"
_WAKE_MARGIN = 0.05  # seconds past the time: a timer that fires a hair early would find nothing due yet


class CronApi(Protocol):
    """What a pass asks of the API server (`client.KubeApi` is the real one)."""

    def list_workflows(self, namespace: str, selector: str) -> list[Body]: ...
    def create_workflow(self, namespace: str, body: Body) -> Body | None: ...
    def patch_workflow(self, namespace: str, name: str, patch: Body) -> None: ...
    def delete_workflow(self, namespace: str, name: str, uid: str) -> None: ...
    def patch_cron_status(self, namespace: str, name: str, patch: Body) -> None: ...
    def emit_event(self, workflow: Body, type_: str, reason: str, message: str, *, kind: str = "Workflow") -> None: ...


@dataclass(frozen=True)
class Clock:
    """Wall time, or (tests) wall time running `speed` times as fast from `anchor` (unix seconds)."""

    anchor: float = 0.0
    speed: float = 1.0

    @classmethod
    def from_env(cls) -> Clock:
        value = os.environ.get(CLOCK_ENV, "")
        if not value:
            return cls()
        anchor, _, speed = value.partition(":")
        return cls(float(anchor), float(speed or 1))

    def now(self) -> datetime:
        real = time.time()
        return datetime.fromtimestamp(self.anchor + (real - self.anchor) * self.speed, UTC)

    def seconds_until(self, instant: datetime) -> float:
        """Real seconds to sleep until the clock shows `instant` (0 if it has passed)."""
        return max(0.0, (instant - self.now()).total_seconds() / self.speed)


class CronBook:
    """The CronWorkflows this replica watches, as the watch last delivered them; any thread may read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[Key, Body] = {}

    def put(self, body: Body) -> Key | None:
        """Keep the newer object; its key when a pass is wanted (a new object, or a new spec), else None: the
        watch event of a pass's own status write must not start another pass."""
        key = key_of(body)
        with self._lock:
            current = self._bodies.get(key)
            if current is not None and _version(body) < _version(current):
                return None
            self._bodies[key] = body
        if current is None or current["metadata"].get("uid") != body["metadata"].get("uid"):
            return key
        return key if current["metadata"].get("generation") != body["metadata"].get("generation") else None

    def drop(self, body: Body) -> Key:
        key = key_of(body)
        with self._lock:
            current = self._bodies.get(key)
            if current is not None and current["metadata"].get("uid") == body["metadata"].get("uid"):
                del self._bodies[key]
        return key

    def get(self, key: Key) -> Body | None:
        with self._lock:
            return self._bodies.get(key)

    def names(self) -> list[Key]:
        with self._lock:
            return list(self._bodies)


def key_of(body: Body) -> Key:
    meta = body["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


def cron_of_run(body: Body) -> Key | None:
    """The CronWorkflow a Workflow is a run of (its controller ownerReference), if any."""
    meta = body.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == names.CRON_KIND and ref.get("apiVersion", "").startswith(names.GROUP + "/"):
            return (str(meta.get("namespace") or ""), str(ref.get("name")))
    return None


# (namespace, name) -> a WorkflowTemplate object, or None when there is none
TemplateLookup = Callable[[str, str], Mapping[str, Any] | None]


def check(body: Body, templates: TemplateLookup | None = None) -> cronspec.CronWorkflowSpec:
    """The spec, or SpecError with every problem: the CronWorkflow's own, and its `spec.workflow` checked as the
    Workflow reconciler (and webhook) check a Workflow, with `spec.workflow` in front of each field.

    A `spec.workflow` running a WorkflowTemplate is resolved when each run starts (the template may change
    between runs); with `templates` (the webhook) it is also checked against the template as it is now, so a
    parameter the template does not declare is refused at `kubectl apply`, not at the first scheduled run."""
    found = cronspec.problems(body)
    workflow = (body.get("spec") or {}).get("workflow") if isinstance(body.get("spec"), dict) else None
    if isinstance(workflow, dict):
        meta = body.get("metadata") or {}
        run = {"metadata": {"name": meta.get("name") or "", "namespace": meta.get("namespace")}, "spec": workflow}
        try:
            spec = parse_spec(workflow)
            ref = spec.template_ref
            if ref is None:
                compile_body(run, spec=spec)
            elif templates is not None and (template := templates(meta.get("namespace") or "", ref.name)):
                compile_body(
                    run, spec=spec, template=parse_template_spec(template.get("spec"), prefix=template_field(ref.name))
                )
        except SpecError as error:
            known = {str(problem) for problem in found}
            moved = [Problem(_under_workflow(problem.field), problem.message) for problem in error.problems]
            found += [problem for problem in moved if str(problem) not in known]
    if found:
        raise SpecError(found)
    return cronspec.parse_spec(body.get("spec"))


def _under_workflow(field: str) -> str:
    return "spec.workflow" + field[len("spec") :] if field == "spec" or field.startswith("spec.") else field


class CronRunner:
    """Runs passes; `reconcile` is called from worker threads, one pass per CronWorkflow at a time."""

    def __init__(
        self,
        *,
        api: CronApi,
        book: CronBook,
        is_leader: Callable[[], bool],
        clock: Clock | None = None,
        cached_runs: Callable[[str, str], list[Body]] | None = None,
        remember: Callable[[Body], None] | None = None,
        post: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """`cached_runs(namespace, label value)`: the watched Workflows carrying that run label (None: LIST on
        every pass); `remember(workflow)`: put a created run into that cache; `post(call)`: run a best-effort
        call (an Event) off the pass, so that 200 passes due together are not each one more API call long."""
        self.api = api
        self.book = book
        self.is_leader = is_leader
        self.clock = clock or Clock.from_env()
        self.cached_runs = cached_runs
        self.remember = remember
        self.post = post
        self._synced: set[str] = set()  # CronWorkflow uids whose runs the watch has delivered
        self._specs: dict[tuple[str, int | None], tuple[cronspec.CronWorkflowSpec, schedules.Schedule]] = {}

    def reconcile(self, key: Key) -> float | None:
        """One pass; the real seconds until the next one should run, or None (a change will queue it)."""
        body = self.book.get(key)
        if body is None or not self.is_leader() or (body["metadata"].get("deletionTimestamp")):
            return None
        _, name = key
        now = self.clock.now()
        status = _status(body)
        try:
            spec, schedule = self._checked(body)
        except SpecError as error:
            self._invalid(body, status, error, now)
            return None
        runs = cronruns.runs_of(body["metadata"]["uid"], self._runs(body))
        plan = cronplan.plan(
            cron=name,
            spec=spec,
            schedule=schedule,
            status=status,
            runs=runs,
            created=cronruns.parse_time(body["metadata"].get("creationTimestamp")) or now,
            now=now,
            generation=body["metadata"].get("generation"),
        )
        if not self._act(body, plan, runs):
            return None
        self._write_status(body, plan.status)
        return None if plan.wake is None else self.clock.seconds_until(plan.wake) + _WAKE_MARGIN

    def order(self, key: Key) -> tuple[int, str, str]:
        """The cron queue's order: passes whose scheduled time has come first (they create runs, and lag is what
        a user sees), before passes a finished run or a status change asked for (history, status), which would
        otherwise hold the workers while 200 runs wait to be created."""
        body = self.book.get(key)
        due = cronruns.parse_time(((body or {}).get("status") or {}).get("nextScheduleTime"))
        return (0 if due is None or due <= self.clock.now() else 1, *key)

    def _runs(self, body: Body) -> list[Body]:
        """The CronWorkflow's runs as Workflow objects: from the watch once it has delivered them, else LISTed."""
        namespace, name = key_of(body)
        uid = str(body["metadata"].get("uid"))
        if self.cached_runs is not None and uid in self._synced:
            return self.cached_runs(namespace, names.label_value(name))
        listed = self.api.list_workflows(namespace, cronruns.selector(name))
        if self.cached_runs is not None:
            cached = {run["metadata"]["name"] for run in self.cached_runs(namespace, names.label_value(name))}
            if all(run["metadata"]["name"] in cached for run in listed):
                self._synced.add(uid)
        return listed

    def _checked(self, body: Body) -> tuple[cronspec.CronWorkflowSpec, schedules.Schedule]:
        """`check` once per generation of the spec (the spec of a generation never changes), then remembered."""
        meta = body["metadata"]
        key = (str(meta.get("uid")), meta.get("generation"))
        found = self._specs.get(key)
        if found is None:
            spec = check(body)
            found = self._specs[key] = (spec, schedules.parse(spec.schedule, spec.timezone))
        return found

    def forget(self, uid: str) -> None:
        """A CronWorkflow was deleted: drop what was remembered of its specs."""
        for key in [key for key in list(self._specs) if key[0] == uid]:
            self._specs.pop(key, None)
        self._synced.discard(uid)

    def _act(self, body: Body, plan: cronplan.Plan, runs: list[cronplan.Run]) -> bool:
        """Stop, create, delete; False when leadership was lost on the way (the new leader carries on)."""
        namespace, name = key_of(body)
        for run in plan.stop:
            self.api.patch_workflow(namespace, run, {"spec": {"stopped": True}})
            self._event(body, "Normal", "RunStopped", f"stopped {run}: concurrencyPolicy Replace")
        for scheduled in plan.create:
            if not self.is_leader():
                return False
            run_body = cronruns.run_body(body, scheduled)
            created = self.api.create_workflow(namespace, run_body)
            lag = (self.clock.now() - scheduled).total_seconds()
            run = run_body["metadata"]["name"]
            if created is None:
                log.info("cron %s/%s: run %s already exists", namespace, name, run)
                continue
            if self.remember is not None:
                self.remember(created)
            log.info("cron %s/%s: started %s", namespace, name, run)
            metrics.CRON_RUNS_STARTED.inc()
            metrics.CRON_SCHEDULE_LAG.observe(max(0.0, lag))
            when = scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
            self._event(body, "Normal", "RunStarted", f"started {run} for {when} ({lag:.1f}s after it)")
        for skip in plan.skipped:
            metrics.CRON_RUNS_SKIPPED.labels(skip.reason).inc()
            when = skip.time.strftime("%Y-%m-%dT%H:%M:%SZ")
            self._event(body, "Normal", "RunSkipped", f"{when} skipped: {skip.reason}: {skip.message}")
        uids = {run.name: run.uid for run in runs}
        for run in plan.delete:
            self.api.delete_workflow(namespace, run, uids.get(run, ""))
        return True

    def _invalid(self, body: Body, status: CronWorkflowStatus, error: SpecError, now: datetime) -> None:
        message = "invalid spec: " + "; ".join(str(problem) for problem in error.problems[:20])
        old = next((c for c in status.conditions if c.type == cronplan.CONDITION), None)
        if old is not None and old.reason == "InvalidSpec" and old.message == message:
            return
        generation = body["metadata"].get("generation")
        invalid = cronplan.condition(status, "False", "InvalidSpec", message, now, generation)
        new = status.model_copy(update={"conditions": [invalid], "observed_generation": generation})
        self._write_status(body, new)
        self._event(body, "Warning", "InvalidSpec", message)
        log.info("cron %s/%s: %s", *key_of(body), message)

    def _write_status(self, body: Body, status: CronWorkflowStatus) -> None:
        wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if wire == _comparable(body.get("status") or {}):
            return
        # Every field, None included: a merge patch removes what is null (a nextScheduleTime that is no more).
        patch = {field.alias or key: wire.get(field.alias or key) for key, field in _STATUS_FIELDS.items()}
        namespace, name = key_of(body)
        self.api.patch_cron_status(namespace, name, {"status": patch})

    def _event(self, body: Body, type_: str, reason: str, message: str) -> None:
        def emit() -> None:
            self.api.emit_event(body, type_, reason, message, kind=names.CRON_KIND)

        if self.post is None:
            emit()
        else:
            self.post(emit)


_STATUS_FIELDS = CronWorkflowStatus.model_fields


def _status(body: Body) -> CronWorkflowStatus:
    """The stored status; what cannot be read is started afresh (the runs' labels still give the last time)."""
    try:
        return CronWorkflowStatus.model_validate(body.get("status") or {})
    except ValueError:
        return CronWorkflowStatus()


def _comparable(stored: Body) -> Body:
    try:
        return _status({"status": stored}).model_dump(mode="json", by_alias=True, exclude_none=True)
    except ValueError:
        return {}


def _version(body: Body) -> int:
    value = body["metadata"].get("resourceVersion") or "0"
    return int(value) if str(value).isdigit() else 0
