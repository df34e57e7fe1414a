"""One reconcile pass of one Workflow: observe, plan, act, write status once.

    observe the Workflow and its Jobs/pods (from the watch cache) -> stop if gone or not the leader
    -> invalid spec: record InvalidSpec, do not retry -> plan (the core decides everything)
    -> delete Jobs of stopped attempts, create Jobs of launched ones, (un)suspend
    -> write status in one merge patch -> post Events -> requeue at the planner's wake-up time

Nothing here decides what runs next: the planner does, and the operator-wide limit on running attempts is
`capacity.Fleet`'s (a pass asks it for room, then records what the workflow holds). Order matters for restart
safety: Jobs are created before the status that records them is written, and Job names are deterministic, so
a pass interrupted anywhere is repeated by the next one without running an attempt twice (an existing Job is
adopted, not recreated).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dagwright import fanout, planner, urgency
from dagwright.capacity import Fleet, Standing
from dagwright.errors import Problem, SpecError
from dagwright.k8s import metrics, names, outcomes, statuswire
from dagwright.k8s.cache import Body, Cache, Key, key_of
from dagwright.k8s.client import Api
from dagwright.k8s.jobs import RedisSettings, build_job
from dagwright.k8s.patches import merge_patch
from dagwright.planner import AttemptState, Decision, EventReason, Launch, Observation
from dagwright.spec import WorkflowSpec
from dagwright.status import NodePhase, NodeStatus, TemplateSnapshot, WorkflowStatus, to_wire
from dagwright.validation import compile_resolved, compile_spec, parse_spec, parse_template_spec, template_field
from dagwright.workflows import Workflow

log = logging.getLogger("dagwright.operator")

_LAUNCH_THREADS = 8  # Job creates in flight at once for one pass's launches
_COALESCE_MAX = 1.0  # seconds a status write may be left to the next pass, at most
# How often a pod still waiting to start after `stuck_after` (without being stuck: pulling a large image, say)
# is asked for again: the pod watch does not bring its updates (see `outcomes.start_due`).
_START_RECHECK = timedelta(seconds=30)
# How long a node's success that starts nothing may wait for its workflow's next pass, at most (`may_wait`).
LATER = 1.0


@dataclass
class Settings:
    namespaces: list[str] = field(default_factory=list)  # empty: all namespaces
    max_running_nodes: int | None = None
    stuck_after: timedelta = outcomes.STUCK_AFTER
    workers: int = 4
    redis: RedisSettings | None = None  # node-runner's outputs and progress
    redis_ca_file: str | None = None  # the CA the operator's own progress feed trusts for a rediss:// URL
    # Seconds one workflow's status writes are at least apart (0: each pass writes at once); see `_coalesce`.
    status_interval: float = 0.0


class LeadershipLost(Exception):
    """This replica's Lease ran out mid-pass: it must not create anything more."""


Progress = Callable[[str, str, int], str | None]  # (workflow uid, node, attempt) -> latest progress line


class Reconciler:
    """Reconciles one Workflow per call to `reconcile`; every collaborator is passed in (operator.py builds it,
    unit tests give it a fake `Api`)."""

    def __init__(
        self,
        *,
        api: Api,
        cache: Cache,
        settings: Settings,
        is_leader: Callable[[], bool],
        identity: str | None,
        requeue: Callable[[Key, float], None],
        queued_again: Callable[[Key], bool],
        progress: Progress | None,
    ) -> None:
        """`is_leader`: whether this replica still holds the Lease (asked before each pass and each Job create);
        `identity`: its Lease identity, written on the Jobs it creates; `requeue(key, delay)`: pass a workflow
        again; `queued_again(key)`: more events arrived for it during this pass; `progress`: node-runner's
        latest progress line from Redis, None without Redis."""
        self.api = api
        self.cache = cache
        self.settings = settings
        self.is_leader = is_leader
        self.identity = identity
        self.requeue = requeue
        self.queued_again = queued_again
        self.progress = progress
        self._coalescing: dict[Key, float] = {}
        self._written: dict[Key, float] = {}  # when each workflow's status was last written (time.monotonic)
        self.fleet: Fleet[Key] = Fleet(settings.max_running_nodes)
        self._compiled: dict[str, tuple[int | None, Workflow | SpecError, TemplateSnapshot | None]] = {}
        self._statuses: dict[str, tuple[str, WorkflowStatus]] = {}
        self._node_maps: dict[str, statuswire.NodeMap] = {}  # by uid: large workflows' compressed node maps
        self._own: set[str] = set()  # uids whose remembered status (`_statuses`) is our own write
        self._running: dict[str, dict[str, _Reading]] = {}  # by uid, by Job name: running attempts as last read
        self._unwritten: dict[str, dict[str, datetime]] = {}  # by uid, by Job name: launched, status not written
        self._waits: dict[Key, urgency.Waits] = {}  # as of each workflow's last pass; see `may_wait`
        self._waits_lock = threading.Lock()
        self._launcher = ThreadPoolExecutor(max_workers=_LAUNCH_THREADS, thread_name_prefix="launch")

    # -- the pass

    def reconcile(self, key: Key) -> float | None:
        """One pass; returns seconds until the next time-based pass is due, if any."""
        body = self.cache.workflow(key)
        if body is None:
            self._forget(key)
            return None
        if not self.is_leader() or body["metadata"].get("deletionTimestamp"):
            return None
        started = time.perf_counter()
        now = datetime.now(UTC)
        status = self._status(body)
        compiled, snapshot = self._compile(body, status)
        if isinstance(compiled, SpecError):
            self._record_invalid(body, compiled, now)
            return None
        snapshot_new = snapshot is not None and (status is None or status.template is None)
        if snapshot_new:  # the first pass of a template-based run: its status keeps the template from now on
            status = (status or WorkflowStatus()).model_copy(update={"template": snapshot})
        observations, cleanup, ended, check_at = self._observe(compiled, status, now, own=self._own_status(body))
        with self.fleet.turn():
            capacity = self.fleet.room(key, compiled.spec.priority)
            decision = planner.plan(compiled, status, observations, now, capacity=capacity)
            try:
                self._carry_out(compiled, decision, cleanup)
            except LeadershipLost:
                log.info("lost the leadership during a pass of %s; leaving it to the new leader", key[1])
                return None
            for other in self.fleet.record(key, _standing(compiled, decision)):
                self.requeue(other, 0.0)
        self._keep_waits(key, compiled, decision)
        if snapshot_new:
            decision = dataclasses.replace(decision, changed=True)
        elif self._coalesce(key, decision, cleanup):
            # A later pass writes this status and posts its events; it adopts the Jobs this pass created
            # instead of launching them, so their count is this pass's to record.
            metrics.ATTEMPTS_STARTED.inc(len(decision.launches))
            self._launched_unwritten(compiled, decision.launches, now)
            return None
        self._write_status(body, decision, status)
        if decision.changed:
            self._written[key] = time.monotonic()
        self._unwritten.pop(compiled.uid or "", None)
        self._settle(compiled, decision.status, ended)
        self._emit(body, decision)
        _record_metrics(decision, now)
        metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)
        return self._next_pass(compiled, decision, now, check_at)

    def may_wait(self, key: Key, pod: Body) -> bool:
        """Whether this ended pod's workflow may have its next pass up to `LATER` seconds from now rather than at
        once (`urgency`): the pod succeeded and, by the workflow's last pass, its end starts nothing yet. Ask only
        while no pass of the workflow runs: ends arriving during a pass are not in what that pass leaves."""
        labels = pod["metadata"].get("labels") or {}
        node, attempt = labels.get(names.LABEL_NODE), labels.get(names.LABEL_ATTEMPT, "")
        if (pod.get("status") or {}).get("phase") != "Succeeded" or names.LABEL_ITEM in labels:
            return False
        with self._waits_lock:
            waits = self._waits.get(key)
            return waits is not None and node is not None and attempt.isdigit() and not waits.ended(node, int(attempt))

    def _keep_waits(self, key: Key, workflow: Workflow, decision: Decision) -> None:
        waits = urgency.waits(workflow, decision.status, decision.waiting) if self.fleet.limit is None else None
        with self._waits_lock:
            if waits is None:
                self._waits.pop(key, None)
            else:
                self._waits[key] = waits

    def _compile(
        self, body: Body, status: WorkflowStatus | None
    ) -> tuple[Workflow | SpecError, TemplateSnapshot | None]:
        """The planner's view of the spec, rebuilt only when the generation changes, and the template it runs
        (the one snapshotted in `status`, else read from the API server now)."""
        meta = body["metadata"]
        cached = self._compiled.get(meta["uid"])
        if cached is not None and cached[0] == meta.get("generation"):
            return cached[1], cached[2]
        result: Workflow | SpecError
        snapshot = None
        try:
            spec = parse_spec(body.get("spec"))
            snapshot = self._template(meta.get("namespace") or "", spec, status)
            template = parse_template_spec(snapshot.spec, prefix=template_field(snapshot.name)) if snapshot else None
            result = _held_once(compile_body(body, spec=spec, template=template))
        except SpecError as error:
            result, snapshot = error, None
        self._compiled[meta["uid"]] = (meta.get("generation"), result, snapshot)
        return result, snapshot

    def _template(self, namespace: str, spec: WorkflowSpec, status: WorkflowStatus | None) -> TemplateSnapshot | None:
        """The WorkflowTemplate a template-based Workflow runs: as its status keeps it once started, else as the
        API server has it now; None for a Workflow with nodes of its own, SpecError for a missing template."""
        ref = spec.template_ref
        if ref is None:
            return None
        if status is not None and status.template is not None:
            if status.template.name != ref.name:
                message = f"cannot change once the Workflow started: it runs WorkflowTemplate '{status.template.name}'"
                raise SpecError([Problem("spec.templateRef.name", message)])
            return status.template
        found = self.api.get_workflow_template(namespace, ref.name)
        if found is None:
            raise SpecError(
                [Problem("spec.templateRef.name", f"WorkflowTemplate '{ref.name}' not found in {namespace}")]
            )
        version = (found.get("metadata") or {}).get("resourceVersion")
        return TemplateSnapshot(name=ref.name, resource_version=version, spec=found.get("spec") or {})

    def _status(self, body: Body) -> WorkflowStatus | None:
        """The stored status, parsed once per resourceVersion (our own writes are remembered, not re-parsed)."""
        meta = body["metadata"]
        cached = self._statuses.get(meta["uid"])
        if cached is not None and cached[0] == meta.get("resourceVersion"):
            return cached[1]
        self._own.discard(meta["uid"])
        raw = body.get("status")
        if not raw:
            return None
        try:
            status = WorkflowStatus.model_validate(statuswire.expanded(raw))
        except ValueError as error:
            log.warning("ignoring unreadable status of %s: %s", meta["name"], error)
            return None
        self._statuses[meta["uid"]] = (meta.get("resourceVersion", ""), status)
        return status

    def _observe(
        self, workflow: Workflow, status: WorkflowStatus | None, now: datetime, *, own: bool = False
    ) -> tuple[list[Observation], list[str], dict[str, Body], datetime | None]:
        """Every attempt's outcome as Kubernetes shows it, Jobs to clean up (pods stuck for good), the Jobs
        whose attempts this pass sees ended (to settle once the status records them), and when a pod still
        waiting to start should be looked at again (`_start_check`).

        Settled Jobs (outcome recorded by an earlier write) are left out when `own` says that write is the stored
        status: the planner ignores recorded attempts, and those are nearly all of a long workflow's Jobs. Every
        other Job is read on every pass, not just the ones whose watch events queued it: a running attempt's
        pod may get stuck with no event at all (`stuck_after` counts from its creation), and a pass that
        coalesced or failed leaves the Jobs it read to the next pass as they are."""
        namespace = workflow.namespace or ""
        jobs = self.cache.jobs(workflow.uid or "", settled=not own)
        observations: list[Observation] = []
        cleanup: list[str] = []
        recorded: list[str] = []
        ended: dict[str, Body] = {}
        before = self._running.get(workflow.uid or "", {})
        unwritten = self._unwritten.get(workflow.uid or "", {})
        running: dict[str, _Reading] = {}
        check_at: datetime | None = None
        for name, job in jobs.live.items():
            pod = self.cache.pod(namespace, name)
            seen = _unchanged(before.get(name), job, pod, now)
            if seen is not None:  # still running as last read: its identity is known without parsing labels
                if _attempt_recorded(status, seen.node, seen.attempt, seen.item):
                    recorded.append(name)
                    continue  # stopped, or ended as its pod said: the status records it
                running[name] = before[name]
                check_at = _earliest(check_at, before[name][3])
            elif _recorded(status, job):
                recorded.append(name)
                continue  # the planner ignores it; and its pod may be long gone (no API call for it)
            else:
                due = outcomes.start_due(job, self.settings.stuck_after)
                seen = outcomes.observe(
                    job, pod or self._pod(namespace, name, job, due, now), now, self.settings.stuck_after
                )
                check = _start_check(due, pod, now)
                if seen is not None and _reusable(seen, pod):
                    running[name] = (_version(job), _version(pod), seen, check)
                if seen is not None and seen.state is AttemptState.RUNNING:
                    check_at = _earliest(check_at, check)
            if seen is not None and seen.state is AttemptState.RUNNING and self.progress is not None:
                seen = _with_progress(seen, self.progress(workflow.uid or "", seen.node, seen.attempt))
            if seen is not None and name in unwritten:
                seen = dataclasses.replace(seen, started_at=unwritten[name])
            if seen is not None:
                observations.append(seen)
                if outcomes.abandoned(seen):
                    cleanup.append(name)
                elif seen.state is not AttemptState.RUNNING:
                    ended[name] = job
        for job in jobs.gone.values():
            seen = outcomes.observe(job, None, now)
            if seen is not None:
                observations.append(seen if seen.state is not AttemptState.RUNNING else _lost(seen, now))
        self._running[workflow.uid or ""] = running
        # The stored status holds these outcomes: the cache keeps only each Job's identity and end, not its pod.
        self.cache.settle_jobs(workflow.uid or "", namespace, recorded)
        observations += self._missing(workflow, status, jobs.live.keys() | jobs.settled | jobs.gone.keys(), now)
        observations += planner.approvals(workflow)
        return observations, cleanup, ended, check_at

    def _settle(self, workflow: Workflow, written: WorkflowStatus, ended: dict[str, Body]) -> None:
        """Settle the Jobs whose ends this pass's status write recorded, now rather than on the next pass: their
        pods' and Jobs' later updates (the Job's condition after an end read from its pod, the Job controller
        removing its pod finalizer) then change nothing in the cache and queue no pass."""
        done = [name for name, job in ended.items() if _recorded(written, job)]
        self.cache.settle_jobs(workflow.uid or "", workflow.namespace or "", done)

    def _pod(self, namespace: str, job_name: str, job: Body, due: datetime | None, now: datetime) -> Body | None:
        """The Job's pod when a pass needs it and the watch has not brought it: a finished Job's (the pod carries
        the exit code and outputs; its watch event may not have arrived yet), or a running attempt's whose pod
        has not started by `due` (`outcomes.start_due`; the watch brings only ended pods). A pod found running is
        kept in the cache, which its end then updates; one still waiting is asked for again (`_start_check`)."""
        pod = self.cache.pod(namespace, job_name)
        if pod is not None:
            return pod
        if not outcomes.job_finished(job) and (due is None or due > now):
            return None
        pods = self.api.list_pods(namespace, job_name)
        pod = pods[0] if pods else None
        if pod is not None and (pod.get("status") or {}).get("phase") == "Running":
            self.cache.put_pod(pod)
        return pod

    def _missing(
        self, workflow: Workflow, status: WorkflowStatus | None, known: set[str], now: datetime
    ) -> Iterator[Observation]:
        """Running attempts whose Job the cache does not hold: ask the API server; gone means Lost."""
        if status is None:
            return
        for node_name, node in status.nodes.items():
            if node.phase is not NodePhase.RUNNING:
                continue
            for item, attempt in _running_attempts(node):
                job_name = names.job_name(workflow.name, node_name, attempt, item)
                if job_name in known:
                    continue
                job = self.api.get_job(workflow.namespace or "", job_name)
                if job is None:
                    message = f"Job {job_name} was deleted before the attempt finished"
                    yield Observation(
                        node_name, attempt, AttemptState.LOST, reason="JobDeleted", message=message, item=item
                    )
                else:
                    self.cache.put_job(job)
                    seen = outcomes.observe(job, None, now)
                    if seen is not None:
                        yield seen

    def _carry_out(self, workflow: Workflow, decision: Decision, cleanup: list[str]) -> None:
        namespace = workflow.namespace or ""
        for stop in decision.stops:
            self.api.delete_job(namespace, names.job_name(workflow.name, stop.node, stop.attempt, stop.item))
        for job_name in cleanup:
            self.api.delete_job(namespace, job_name)
        launches = decision.launches
        if len(launches) > 1:
            # A fan-out launches many Jobs at once: one create round trip each, so run them side by side.
            # Every create is finished (or failed) before the status that records them is written.
            results = list(self._launcher.map(lambda launch: self._launch(workflow, decision, launch), launches))
            for result in results:
                if isinstance(result, Exception):
                    raise result
        elif launches:
            self._launch(workflow, decision, launches[0], catch=False)
        self._suspend(workflow, decision)

    def _launch(self, workflow: Workflow, decision: Decision, launch: Launch, catch: bool = True) -> Exception | None:
        namespace = workflow.namespace or ""
        name = names.job_name(workflow.name, launch.node, launch.attempt, launch.item)
        try:
            if not self.is_leader():  # checked again per Job: a pass may outlast the Lease it started under
                raise LeadershipLost()
            job = build_job(workflow, launch, suspend=decision.suspend, redis=self.settings.redis)
            if self.identity:
                job["metadata"].setdefault("annotations", {})[names.ANNOTATION_CREATED_BY] = self.identity
            self.cache.expect_job(namespace, name)
            created = self.api.create_job(namespace, job)
        except Exception as error:
            self.cache.expect_job(namespace, name, expected=False)
            if not catch:
                raise
            return error
        if created is None:  # it existed: adopted, and its own watch events may queue passes as usual
            self.cache.expect_job(namespace, name, expected=False)
        else:
            self.cache.put_job(created)
            ready_since = self._ready_since(workflow, decision.status, launch.node)
            if ready_since is not None:
                metrics.LAUNCH_LATENCY.observe(max(0.0, (datetime.now(UTC) - ready_since).total_seconds()))
        unit = launch.node if launch.item is None else f"{launch.node}[{launch.item}]"
        log.info("launched %s attempt %d", unit, launch.attempt, extra=_context(workflow, launch.node))
        return None

    def _ready_since(self, workflow: Workflow, status: WorkflowStatus, node: str) -> datetime | None:
        """When the last of `node`'s dependencies finished: when the operator first saw its Job finish (the
        Job's own condition times have 1 s resolution), else the status' finishedAt."""
        graph = workflow.graph
        latest: datetime | None = None
        for parent in graph.upstream[graph.index[node]]:
            name = graph.names[parent]
            parent_status = status.nodes[name]
            job_name = names.job_name(workflow.name, name, parent_status.attempts)
            seen = self.cache.finished_seen(workflow.namespace or "", job_name) or parent_status.finished_at
            if seen is not None and (latest is None or seen > latest):
                latest = seen
        return latest

    def _suspend(self, workflow: Workflow, decision: Decision) -> None:
        """Make running Jobs' `suspend` match the planner's wish (pauseMode Suspend). Settled Jobs have finished:
        nothing to (un)suspend, so they are not even looked at."""
        for name, job in self.cache.jobs(workflow.uid or "", settled=False).live.items():
            if bool(job.get("spec", {}).get("suspend")) != decision.suspend and not outcomes.job_finished(job):
                if _recorded(decision.status, job):
                    continue  # its pod ended and the status records it: the Job's own condition is on its way
                deadline = None if decision.suspend else _deadline_after_resume(job, datetime.now(UTC))
                self.api.set_job_suspended(workflow.namespace or "", name, decision.suspend, deadline)

    def _coalesce(self, key: Key, decision: Decision, cleanup: list[str]) -> bool:
        """Leave this pass's status write (and its events and metrics) to a later pass: the one already queued
        because more events arrived meanwhile, or, within `status_interval` of the workflow's last write, one
        queued for when that interval ends. When several Jobs finish close together (the two sides of a diamond,
        a layer of a fan-out), one patch records them all, and the pass that launches the fan-in node is not kept
        waiting behind a patch. Why the interval: one status patch of a 50-node workflow costs the API server
        ~28 ms of CPU (bench/apiserver_status_patch.py), more than half what a whole bare Job costs it, and a layer's
        Jobs end spread over a second or two, each a pass of its own. The later pass recomputes the same changes
        from the same stored status, so nothing is lost, even by a crash.

        Passes that launched Jobs too: the next pass (or, after a crash, the next process's first) finds each
        created Job in the cache, as a running attempt the stored status does not record, and the planner adopts
        it (rule 1) rather than launching it again. Not passes that stopped or cleaned up Jobs: the next pass
        would find those Jobs gone, an attempt lost, and record that instead of the stop or the stuck pod this
        pass read. Nor the write that finishes the workflow: its end is reported at once. A busy workflow's
        status lags by at most status_interval + _COALESCE_MAX seconds, plus LATER for an end `may_wait` deferred."""
        if not decision.changed or decision.stops or cleanup:
            self._coalescing.pop(key, None)
            return False
        now = time.monotonic()
        if self.queued_again(key):
            first = self._coalescing.setdefault(key, now)
            if now - first < _COALESCE_MAX:
                return True
        elif not decision.status.phase.finished:
            wait = self._written.get(key, -math.inf) + self.settings.status_interval - now
            if wait > 0:
                self.requeue(key, wait)
                return True
        self._coalescing.pop(key, None)
        return False

    def _launched_unwritten(self, workflow: Workflow, launches: list[Launch], now: datetime) -> None:
        """Remember when this pass launched what its unwritten status records: the pass that adopts those attempts
        records them as started then, as this pass's write would have (not when that pass runs, up to
        _COALESCE_MAX later). A new process adopts them as started at its own pass."""
        if not launches:
            return
        unwritten = self._unwritten.setdefault(workflow.uid or "", {})
        for launch in launches:
            unwritten[names.job_name(workflow.name, launch.node, launch.attempt, launch.item)] = now

    def _write_status(self, body: Body, decision: Decision, previous: WorkflowStatus | None = None) -> None:
        if not decision.changed:
            return
        meta = body["metadata"]
        patch = status_patch(body.get("status") or {}, previous, decision.status, self._node_map(meta["uid"]))
        if not patch:
            return
        updated = self.api.patch_status(meta["namespace"], meta["name"], {"status": patch})
        if updated is not None:
            self.cache.put_workflow(_spec_kept(updated, body))
            self._statuses[meta["uid"]] = (updated["metadata"]["resourceVersion"], decision.status)
            self._own.add(meta["uid"])

    def _own_status(self, body: Body) -> bool:
        """Whether the Workflow's stored status is the one this process last wrote (no one else's write came
        since): every Job a pass settled is recorded in it, for the planner's statuses only ever add outcomes
        (a retry keeps attempt numbers), so a pass may skip settled Jobs without asking. After anyone else's
        status write (or a restart) a pass checks every Job again, as the status may have lost outcomes."""
        meta = body["metadata"]
        cached = self._statuses.get(meta["uid"])
        return meta["uid"] in self._own and cached is not None and cached[0] == meta.get("resourceVersion")

    def _node_map(self, uid: str) -> statuswire.NodeMap:
        node_map = self._node_maps.get(uid)
        if node_map is None:
            node_map = self._node_maps[uid] = statuswire.NodeMap()
        return node_map

    def _emit(self, body: Body, decision: Decision) -> None:
        for event in decision.events:
            self.api.emit_event(body, event.type, event.reason, event.message)

    def _next_pass(
        self, workflow: Workflow, decision: Decision, now: datetime, check_at: datetime | None = None
    ) -> float | None:
        expires = planner.expires_at(workflow, decision.status)
        if expires is not None:
            if now >= expires:
                self.api.delete_workflow(workflow.namespace or "", workflow.name, workflow.uid or "")
                return None
            return (expires - now).total_seconds()
        wake_at = _earliest(decision.wake_at, check_at if not decision.status.phase.finished else None)
        if wake_at is None:
            return None
        return max(0.0, (wake_at - now).total_seconds())

    # -- invalid specs

    def _record_invalid(self, body: Body, error: SpecError, now: datetime) -> None:
        meta = body["metadata"]
        status = self._status(body)
        message = "invalid spec: " + "; ".join(str(problem) for problem in error.problems)
        if status is not None and status.message == message and status.observed_generation == meta.get("generation"):
            return
        new = planner.invalid(status, message[:4096], now, meta.get("generation"))
        self._write_status(body, Decision(status=new, changed=True))
        self.api.emit_event(body, "Warning", EventReason.INVALID_SPEC, message)
        log.warning("%s", message, extra={"workflow": meta["name"], "namespace": meta["namespace"]})

    def _forget(self, key: Key) -> None:
        self._coalescing.pop(key, None)
        with self._waits_lock:
            self._waits.pop(key, None)
        self._written.pop(key, None)
        self.fleet.forget(key)

    def forget_uid(self, uid: str) -> None:
        self._compiled.pop(uid, None)
        self._statuses.pop(uid, None)
        self._own.discard(uid)
        self._running.pop(uid, None)
        self._unwritten.pop(uid, None)
        self._node_maps.pop(uid, None)

    def phase_counts(self) -> dict[str, int]:
        return self.fleet.phase_counts()

    def waiting_total(self) -> int:
        return self.fleet.waiting_total()


def compile_body(body: Body, *, spec: WorkflowSpec | None = None, template: WorkflowSpec | None = None) -> Workflow:
    """A cluster object's spec as the planner sees it, or SpecError: what the operator and its webhook both apply.
    `spec`: the body's spec already parsed; `template`: the spec of the WorkflowTemplate it runs, if any."""
    meta = body.get("metadata") or {}
    return compile_resolved(
        spec if spec is not None else parse_spec(body.get("spec")),
        template,
        name=meta.get("name") or meta.get("generateName") or "",
        namespace=meta.get("namespace"),
        uid=meta.get("uid"),
        generation=meta.get("generation"),
        check=_check_cluster_rules,
    )


def compile_template_body(body: Body) -> Workflow:
    """A WorkflowTemplate object checked as a Workflow running it with its defaults would be (its webhook)."""
    meta = body.get("metadata") or {}
    workflow = compile_spec(parse_template_spec(body.get("spec")), name=meta.get("name") or "")
    _check_cluster_rules(workflow)
    return workflow


def _held_once(workflow: Workflow) -> Workflow:
    """The compiled workflow as kept between passes: `spec.nodes` (the nodes as declared) replaced by the
    resolved nodes `workflow.nodes` already holds, so each node's model is kept once, not twice (a node that
    inherits anything from `spec.defaults`, such as the image, is a second model). That is about half of a
    compiled 20-node workflow (~40 KiB); nothing reads `spec.nodes` once the spec is compiled."""
    if workflow.spec.nodes is workflow.nodes:
        return workflow
    return dataclasses.replace(workflow, spec=workflow.spec.model_copy(update={"nodes": workflow.nodes}))


def _check_cluster_rules(workflow: Workflow) -> None:
    """What only the cluster needs: every node that runs something needs an image."""
    problems = [
        Problem(f"spec.nodes[{i}].image", f"node '{node.name}' needs an image on Kubernetes (or spec.defaults.image)")
        for i, node in enumerate(workflow.nodes)
        if node.approval is None and not node.image
    ]
    if problems:
        raise SpecError(problems)


def status_patch(
    stored: Body, previous: WorkflowStatus | None, new: WorkflowStatus, node_map: statuswire.NodeMap | None = None
) -> Body:
    """The merge patch from the stored status to `new`, serializing only the nodes the planner changed.

    `previous` is the status the planner started from, parsed from `stored` (or the one we wrote, which
    `stored` holds). The planner hands back the very same NodeStatus object for every node it left alone, so
    those are skipped by identity; a 10,000-node workflow pays for the few nodes that moved, not for
    serializing and diffing all of them on every pass. Without `previous`, the whole status is diffed.
    A large workflow's map is compressed whole; `node_map` (kept per workflow) remembers each node's JSON.
    """
    items = sum(node.items.total for node in new.nodes.values() if node.items is not None)
    if statuswire.should_compress(len(new.nodes) + items, stored):
        return _compressed_patch(stored, new, node_map or statuswire.NodeMap())
    if previous is None:
        return merge_patch(stored, to_wire(new))
    old_summary = {key: value for key, value in stored.items() if key != "nodes"}
    new_summary = new.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"nodes"})
    patch = merge_patch(old_summary, new_summary)
    if new.nodes is previous.nodes:
        return patch
    stored_nodes: Body = stored.get("nodes") or {}
    nodes: Body = {}
    before_nodes = previous.nodes
    for name, node in new.nodes.items():
        if before_nodes.get(name) is node and name in stored_nodes:
            continue
        wire = node.model_dump(mode="json", by_alias=True, exclude_none=True)
        before = stored_nodes.get(name)
        if before is None:
            nodes[name] = wire
        else:
            inner = merge_patch(before, wire)
            if inner:
                nodes[name] = inner
    if len(stored_nodes) != len(new.nodes) or any(name not in new.nodes for name in stored_nodes):
        for name in stored_nodes:
            if name not in new.nodes:
                nodes[name] = None
    if nodes:
        patch["nodes"] = nodes
    return patch


def _compressed_patch(stored: Body, new: WorkflowStatus, node_map: statuswire.NodeMap) -> Body:
    """Large workflows: the summary fields as usual, the node map as one compressed string."""
    old_summary = {key: value for key, value in stored.items() if key not in ("nodes", "compressedNodes")}
    new_summary = new.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"nodes", "compressed_nodes"})
    patch = merge_patch(old_summary, new_summary)
    encoded = node_map.encode(new.nodes)
    if stored.get("compressedNodes") != encoded:
        patch["compressedNodes"] = encoded
    if stored.get("nodes"):
        patch["nodes"] = None
    return patch


def _spec_kept(updated: Body, cached: Body) -> Body:
    """The Workflow a status patch returned, holding the cached body's spec when the generation says it is the
    same one (the API server counts every spec change): the response's own copy of a 10,000-node spec is then
    freed at once instead of replacing an equal one in the cache, which made every pass leave ~100,000 new
    long-lived objects behind for the garbage collector's full collections to walk."""
    if updated["metadata"].get("generation") != cached["metadata"].get("generation") or "spec" not in cached:
        return updated
    return {**updated, "spec": cached["spec"]}


def _record_metrics(decision: Decision, now: datetime) -> None:
    metrics.ATTEMPTS_STARTED.inc(len(decision.launches))
    for ended in decision.ended:
        metrics.ATTEMPTS_FINISHED.labels("succeeded" if ended.succeeded else "failed", ended.reason or "").inc()
        if ended.started_at is not None:
            metrics.NODE_DURATION.observe(max(0.0, (ended.finished_at - ended.started_at).total_seconds()))
    metrics.RETRIES.inc(sum(1 for event in decision.events if event.reason is EventReason.NODE_RETRYING))


def _standing(workflow: Workflow, decision: Decision) -> Standing:
    return Standing(
        running=decision.running,
        waiting=decision.waiting,
        held_back=decision.held_back,
        priority=workflow.spec.priority,
        phase=decision.status.phase.value,
    )


def _recorded(status: WorkflowStatus | None, job: Body) -> bool:
    """Whether the status already holds how this Job's attempt ended (the planner's `recorded`)."""
    attempt = outcomes.attempt_of(job)
    if status is None or attempt is None:
        return False
    return _attempt_recorded(status, attempt[0], attempt[1], outcomes.item_of(job))


# A running attempt as last read: its Job's and its pod's resourceVersions, what they said, and until when that
# holds without a new version (the pod may count as stuck from then on; None: for as long as they do not change).
_Reading = tuple[str | None, str | None, Observation, datetime | None]


def _unchanged(reading: _Reading | None, job: Body, pod: Body | None, now: datetime) -> Observation | None:
    """A running attempt's last reading while neither its Job nor its pod changed since (`_reusable`), and the
    time it holds until has not come."""
    if reading is None or reading[0] != _version(job) or reading[1] != _version(pod):
        return None
    if reading[3] is not None and now >= reading[3]:
        return None
    return reading[2]


def _reusable(seen: Observation, pod: Body | None) -> bool:
    """Whether reading the same Job and pod again gives the same observation: a running attempt's, unless its
    pod is Pending (it becomes stuck by the clock alone, `outcomes.observe`'s `now`); one whose pod the watch has
    not brought holds until its `_start_check`. Most Jobs a large workflow's pass reads are running ones;
    reading each again (labels, conditions, pod) was most of a pass."""
    return seen.state is AttemptState.RUNNING and ((pod or {}).get("status") or {}).get("phase") != "Pending"


def _start_check(due: datetime | None, pod: Body | None, now: datetime) -> datetime | None:
    """When to look again at a running attempt whose pod is not known to have started (`due`: when it would
    count as stuck, `outcomes.start_due`), or, past that and still waiting, `_START_RECHECK` from now. No watch
    event comes for it."""
    if due is None or (pod is not None and (pod.get("status") or {}).get("phase") != "Pending"):
        return None
    return due if due > now else now + _START_RECHECK


def _earliest(*times: datetime | None) -> datetime | None:
    return min((at for at in times if at is not None), default=None)


def _version(body: Body | None) -> str | None:
    return None if body is None else body["metadata"].get("resourceVersion")


def _attempt_recorded(status: WorkflowStatus | None, node_name: str, attempt: int, item: int | None) -> bool:
    if status is None:
        return False
    node = status.nodes.get(node_name)
    if item is not None:
        return fanout.recorded(node.items if node is not None else None, item, attempt)
    return planner.recorded(node, attempt)


def _running_attempts(node: NodeStatus) -> Iterator[tuple[int | None, int]]:
    """(item, attempt) of a running node's current attempt, or of each running item of a forEach node."""
    if node.items is None:
        yield None, node.attempts
        return
    for key, detail in node.items.detail.items():
        if fanout.running(node.items, int(key)) is not None:
            yield int(key), detail.attempts


def _with_progress(seen: Observation, progress: str | None) -> Observation:
    if progress is None or progress == seen.progress:
        return seen
    return dataclasses.replace(seen, progress=progress)  # keeps `item`: a forEach item's attempt stays one


def _lost(seen: Observation, now: datetime) -> Observation:
    message = "the attempt's Job was deleted before it finished"
    return Observation(
        seen.node, seen.attempt, AttemptState.LOST, reason="JobDeleted", message=message, finished_at=now
    )


def _deadline_after_resume(job: Body, now: datetime) -> int | None:
    """A resumed Job's activeDeadlineSeconds, stretched by the time since its start before the suspension.

    Kubernetes (1.34) checks a resumed Job's deadline against its old startTime before resetting it, so a
    Job suspended for longer than its deadline would fail at once with DeadlineExceeded. The planner enforces
    timeoutSeconds itself without counting suspended time; the Job's own deadline stays a backstop.
    """
    seconds = job.get("spec", {}).get("activeDeadlineSeconds")
    started = job.get("status", {}).get("startTime")
    if not isinstance(seconds, int) or not isinstance(started, str):
        return None
    elapsed = (now - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds()
    return seconds + int(max(0.0, elapsed)) + 1


def _context(workflow: Workflow, node: str) -> dict[str, Any]:
    return {"workflow": workflow.name, "namespace": workflow.namespace, "node": node}


__all__ = ["Reconciler", "Settings", "key_of"]
