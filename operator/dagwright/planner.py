"""The planner: every scheduling decision dagwright makes, as one pure function.

    plan(workflow, status, observations, now) -> Decision(status, launches, stops, events, wake_at)

Backends (the kopf operator, the local runner) gather what they observe of attempts, call `plan`, carry out
the actions, persist the status, and call again when something changes or `wake_at` comes. The planner reads
no clock, does no I/O and is deterministic, so a restarted operator decides exactly what the dead one would
have, and the property tests can drive it through any sequence of outcomes.

Rules, in the order applied:
1. Observations update the current attempt of each node. An attempt numbered higher than the status knows is
   adopted (its launch happened but the status write was lost, or was left to a later call), as started at the
   observation's `started_at` if the backend knows it, else now; lower or repeated ones are ignored, so a
   backend may report every attempt it sees on every call.
2. A failed attempt is retried if the node's policy allows (limit, `policy: Transient`), after an exponential,
   deterministically jittered backoff (node phase Retrying, `nextAttemptAt`); otherwise the node Failed.
3. An attempt running past `timeoutSeconds` is stopped and fails with reason Timeout (transient).
4. `spec.stopped`: stop every running attempt; unfinished nodes become Stopped; phase Stopped, for good.
5. `activeDeadlineSeconds` passed: stop every regular node; running ones Failed, the rest Skipped; phase Failed
   (once the finally nodes, which still run, have ended).
6. Nodes downstream of a node that failed for good are Skipped.
7. Ready nodes (dependencies Succeeded, or backoff elapsed) launch in declaration order, within `parallelism`
   and the backend's `capacity`, unless paused or failing fast (`failFast` after a node failed for good).
   A node with `when` has it evaluated when its turn comes (`conditions.py`, over `params` and the upstream
   nodes' phases and outputs): false, it is Skipped (reason ConditionFalse) and never launched; an evaluation
   error fails it (ConditionError, not retried). Such a skip does not block: dependents treat the node as done,
   except those whose templates read its outputs, which are Skipped too (UpstreamSkipped, passed through alike).
8. The workflow finishes when no node can run any more; then no node is left Pending, Running or Retrying.
9. `finally: true` nodes start only once every regular node has ended (Succeeded, Failed or Skipped, the
   deadline included; never after `spec.stopped`), then as rule 7 says, except that failFast holds none of them
   back. Their `when` and templates may read `workflow.status` ("Failed" if a regular node failed, or was
   skipped for any reason but a condition) and `workflow.failedNodes`. A failed finally node fails the workflow.
10. A forEach node is expanded when its turn comes (rule 7): its items (`fanout.values`) become units of work
    that rules 1-7 apply to one by one, as to nodes (attempts, retries, timeouts, `parallelism`, `capacity`),
    within `forEach.maxParallel` running at once, in item order, retries first. The node is Running while items
    are left, Succeeded when all succeeded (at once with no items; its outputs are each key's array of item
    values), Failed once an item failed for good and no item runs any more (with failFast no new item starts).
    A list that cannot be read (fromJSON not a JSON array) fails the node (InvalidItems).

Backends restate none of these rules: they ask `recorded` whether an attempt's outcome is still news (rule 1),
turn approvals into observations with `answered`/`approvals`, and read `Decision.running`, `waiting` and
`held_back` for the operator-wide limit (`capacity.py`). What a launch runs is rendered by `launches.py`.

Cost is O(nodes + edges + observations) per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import repeat
from typing import Any

from dagwright import conditions, failures, fanout, nodeio
from dagwright.conditions import ConditionFailed, ConditionReason
from dagwright.launches import Launch, Renderer, output_sources
from dagwright.spec import MAX_ITEMS
from dagwright.status import Condition, ItemStatus, NodePhase, NodeStatus, WorkflowPhase, WorkflowStatus
from dagwright.workflows import Workflow

_NEW = NodeStatus()
MAX_MESSAGE = 512  # per node: a 10,000-node status must stay well under etcd's 1.5 MiB object limit
_FINISHED_NODE = frozenset(phase for phase in NodePhase if phase.finished)
_UNBLOCKED = frozenset({NodePhase.SUCCEEDED})
_BLOCKING = frozenset({NodePhase.FAILED, NodePhase.SKIPPED, NodePhase.STOPPED})
_AWAITING_OUTCOME = (NodePhase.RUNNING, NodePhase.AWAITING_APPROVAL)
_PASSABLE = conditions.PASSABLE  # reasons of Skipped nodes that dependents treat as done (rule 7)


class EventReason(StrEnum):
    """Why an Event was posted. Backends act on some (count retries, ask for approvals), so never compare
    against a bare string; the values are what `kubectl get events` shows."""

    NODE_RETRYING = "NodeRetrying"
    NODE_FAILED = "NodeFailed"
    AWAITING_APPROVAL = "AwaitingApproval"
    RETRYING = "Retrying"  # a finished workflow retried (spec.retryToken)
    PAUSED = "Paused"
    RESUMED = "Resumed"
    SUCCEEDED = "Succeeded"  # the workflow finished: its phase
    FAILED = "Failed"
    STOPPED = "Stopped"
    INVALID_SPEC = "InvalidSpec"  # posted by the operator, with `invalid`


class AttemptState(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LOST = "Lost"  # the backend knows the attempt is gone without an outcome (e.g. its Job was deleted)


@dataclass(frozen=True, slots=True)
class Observation:
    """What a backend saw of one attempt. Approval decisions arrive as attempt 1 Succeeded or Failed."""

    node: str
    attempt: int
    state: AttemptState
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    finished_at: datetime | None = None
    outputs: dict[str, Any] | None = None
    progress: str | None = None
    outputs_ref: str | None = None  # the Redis key node-runner stored the outputs under
    item: int | None = None  # a forEach node's item (its index)
    started_at: datetime | None = None  # when the attempt was launched, if the status may not record it (rule 1)


@dataclass(frozen=True, slots=True)
class Stop:
    node: str
    attempt: int
    reason: str
    item: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A transition worth telling a person about (a Kubernetes Event, a log line)."""

    type: str  # "Normal" or "Warning"
    reason: EventReason
    message: str
    node: str | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """An attempt whose end this decision records (for metrics and logs, not for scheduling)."""

    node: str
    attempt: int
    succeeded: bool
    reason: str | None
    started_at: datetime | None
    finished_at: datetime
    item: int | None = None


@dataclass(slots=True, kw_only=True)
class Decision:
    status: WorkflowStatus
    launches: list[Launch] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    wake_at: datetime | None = None
    changed: bool = False
    waiting: int = 0  # ready nodes not launched for lack of room (parallelism or capacity)
    held_back: int = 0  # of those, the ones parallelism alone would have launched: `capacity` held them back
    running: int = 0  # attempts running once this decision is carried out
    ended: list[Ended] = field(default_factory=list)  # attempts whose end this decision records
    suspend: bool = False  # running attempts should be suspended (pauseMode Suspend while paused)


def plan(
    workflow: Workflow,
    status: WorkflowStatus | None,
    observations: Iterable[Observation],
    now: datetime,
    *,
    capacity: int | None = None,
) -> Decision:
    """Decide the next status and actions. `capacity` caps launches in this call (operator-wide limits)."""
    previous = status or WorkflowStatus()
    run = _Pass(workflow, previous, now)
    if previous.phase.finished and not run.retry_requested():
        return _finished(workflow, previous, observations)
    if run.retry_requested():
        run.reset_for_retry()
    run.observe(observations)
    run.enforce_timeouts()
    run.settle_items()
    if workflow.spec.stopped:
        run.stop_all()
        return run.finish()
    if run.deadline_passed():
        run.fail_on_deadline()
    else:
        run.skip_downstream_of_failures()
        run.launch_ready(capacity)
        if run.inputs_failed:
            run.skip_downstream_of_failures()
    if run.close_out() and workflow.finals:
        run.skip_downstream_of_failures()  # a finally node after a failed finally node
        run.launch_ready(capacity)  # the regular nodes have all ended just now: the finally nodes' turn
        run.close_out()
    return run.finish()


def _finished(workflow: Workflow, status: WorkflowStatus, observations: Iterable[Observation]) -> Decision:
    """A finished workflow changes no more; an attempt still seen running (a late or stray one) is stopped."""
    stops = [
        Stop(seen.node, seen.attempt, "WorkflowFinished", seen.item)
        for seen in observations
        if seen.state is AttemptState.RUNNING
    ]
    running = sum(1 for node in status.nodes.values() if node.phase is NodePhase.RUNNING and node.items is None)
    if status.observed_generation != workflow.generation:
        update = {"observed_generation": workflow.generation}
        return Decision(status=status.model_copy(update=update), stops=stops, changed=True, running=running)
    return Decision(status=status, stops=stops, running=running)


def free_slots(workflow: Workflow, running: int) -> int:
    """How many more attempts `parallelism` lets run beside `running` ones (rule 7, before any `capacity`)."""
    return (workflow.spec.parallelism or len(workflow.nodes) + MAX_ITEMS * len(workflow.fan_outs)) - running


def recorded(node: NodeStatus | None, attempt: int) -> bool:
    """Whether `node`'s status already holds how attempt `attempt` ended (an older attempt, or the current one
    finished): rule 1 ignores its observation, so a backend need not even read its outcome."""
    if node is None:
        return False
    return attempt < node.attempts or (attempt == node.attempts and node.phase not in _AWAITING_OUTCOME)


def answered(node: str, approved: bool, message: str | None = None, at: datetime | None = None) -> Observation:
    """A person's answer to an approval node, as `plan` hears it: attempt 1 Succeeded (Approved) or Failed
    (Rejected). Every backend turns answers into observations here, whoever asked."""
    if approved:
        return Observation(node, 1, AttemptState.SUCCEEDED, reason="Approved", message=message, finished_at=at)
    return Observation(node, 1, AttemptState.FAILED, reason="Rejected", message=message or "rejected", finished_at=at)


def approvals(workflow: Workflow) -> list[Observation]:
    """`spec.approvals` (what `dagwright approve|reject` writes on a cluster) as observations."""
    return [answered(node, verdict.approved, verdict.message) for node, verdict in workflow.spec.approvals.items()]


def retry_failed(status: WorkflowStatus) -> WorkflowStatus:
    """Give failed, skipped and stopped nodes a fresh retry budget; succeeded nodes are kept.

    Used by `dagwright run --state` on resume; the operator reaches the same reset through `spec.retryToken`.
    Running and Retrying nodes are reset too: on resume, the process that ran them is gone.
    """
    nodes = {name: node if node.phase is NodePhase.SUCCEEDED else _fresh(node) for name, node in status.nodes.items()}
    return status.model_copy(
        update={"nodes": nodes, "phase": WorkflowPhase.PENDING, "finished_at": None, "message": ""}
    )


def invalid(status: WorkflowStatus | None, message: str, now: datetime, generation: int | None) -> WorkflowStatus:
    """The status of a workflow whose spec cannot run: phase Failed, reason InvalidSpec, nothing launched."""
    previous = status or WorkflowStatus()
    return previous.model_copy(
        update={
            "phase": WorkflowPhase.FAILED,
            "message": message,
            "finished_at": previous.finished_at or now,
            "observed_generation": generation,
            "conditions": _conditions(previous, WorkflowPhase.FAILED, "InvalidSpec", message, now, generation),
        }
    )


def expires_at(workflow: Workflow, status: WorkflowStatus) -> datetime | None:
    """When a finished workflow should be deleted (`ttlSecondsAfterFinished`), if ever."""
    ttl = workflow.spec.ttl_seconds_after_finished
    if ttl is None or not status.phase.finished or status.finished_at is None:
        return None
    return status.finished_at + timedelta(seconds=ttl)


def _fresh(node: NodeStatus) -> NodeStatus:
    items = fanout.fresh(node.items) if node.items is not None else None
    return NodeStatus(
        attempts=node.attempts,
        retry_budget_from=node.attempts + 1,
        started_at=node.started_at,
        attempt_started_at=node.attempt_started_at,  # a launched node always has one (`NodeStatus._wire`)
        items=items,
    )


class _Pass:
    """The working state of one `plan` call: new node statuses and actions, built without touching inputs."""

    def __init__(self, workflow: Workflow, previous: WorkflowStatus, now: datetime) -> None:
        self.workflow = workflow
        self.previous = previous
        self.now = now
        self.names = workflow.graph.names
        known = previous.nodes
        self.nodes: list[NodeStatus] = list(map(known.get, self.names, repeat(_NEW, len(self.names))))
        self.changed = known.keys() != workflow.graph.index.keys()
        self.phase = previous.phase
        self.started_at = previous.started_at or now
        self.retry_token = workflow.spec.retry_token
        self.launches: list[Launch] = []
        self.stops: list[Stop] = []
        self.events: list[Event] = []
        self.wake_at: datetime | None = None
        self.terminal_reason: str | None = None
        self.waiting = 0
        self.ended: list[Ended] = []
        self.terminal_message: str = ""
        self.renderer = Renderer(workflow)
        self.inputs_failed = False  # a node failed at launch (InputsUnavailable, ConditionError): skip downstream
        self.passed: list[bool] | None = None  # per node: Skipped by a condition (rule 7); None: none may be
        self.items: dict[int, fanout.Items] = {}  # forEach nodes' items this call touched (rule 10)

    # -- helpers

    def _set(self, i: int, **update: Any) -> NodeStatus:
        node = _updated(self.nodes[i], update)
        self.nodes[i] = node
        self.changed = True
        return node

    def _wake(self, at: datetime) -> None:
        if self.wake_at is None or at < self.wake_at:
            self.wake_at = at

    def _event(self, type_: str, reason: EventReason, message: str, node: str | None = None) -> None:
        self.events.append(Event(type_, reason, message, node))

    # -- retry of a finished workflow

    def retry_requested(self) -> bool:
        spec = self.workflow.spec
        return (
            spec.retry_token != self.previous.retry_token
            and self.previous.phase in (WorkflowPhase.FAILED, WorkflowPhase.STOPPED)
            and not spec.stopped
        )

    def reset_for_retry(self) -> None:
        for i, node in enumerate(self.nodes):
            if node.phase is not NodePhase.SUCCEEDED:
                self.nodes[i] = _fresh(node)
        self.phase = WorkflowPhase.RUNNING
        self.started_at = self.now
        self.changed = True
        self._event("Normal", EventReason.RETRYING, "retrying failed, skipped and stopped nodes")

    # -- rule 1 and 2: observations

    def observe(self, observations: Iterable[Observation]) -> None:
        # Backends report in any order; apply upstream nodes first and attempts in order, so adopting an
        # attempt never depends on whether its dependencies' outcomes came earlier in the list.
        index = self.workflow.graph.index
        by_node: dict[int, list[Observation]] = {}
        for seen in observations:
            i = index.get(seen.node)
            if i is not None:
                by_node.setdefault(i, []).append(seen)
        rank = self.workflow.rank
        for i in sorted(by_node, key=rank.__getitem__):
            attempts = by_node[i]
            for seen in sorted(attempts, key=_attempt_number) if len(attempts) > 1 else attempts:
                if seen.item is None:
                    self._observe(i, seen)
                elif i in self.workflow.fan_outs:
                    self._observe_item(i, seen)
            if i in self.items:
                # Settled before its dependents' observations: one whose launch was recorded only in a lost
                # status write is adopted only if this node is seen done (else it would be launched again).
                self._settle_items_of(i)

    def _observe(self, i: int, seen: Observation) -> None:
        node = self.nodes[i]
        if node.items is not None:
            return  # a forEach node's attempts are its items'
        if seen.attempt > node.attempts:
            if node.phase.finished or not self._dependencies_met(i):
                return
            node = self._set(i, **_launched(node, seen.attempt, seen.started_at or self.now))
        elif recorded(node, seen.attempt):
            return
        self._apply(i, node, seen)

    def _dependencies_met(self, i: int) -> bool:
        nodes, upstream = self.nodes, self.workflow.graph.upstream[i]
        if all(nodes[p].phase is NodePhase.SUCCEEDED or _passable(nodes[p]) for p in upstream):
            return True
        if not self.workflow.conditional:
            return False
        # The attempt exists, so a planner found these dependencies done: some may be skips by a condition decided
        # in a call whose status write was lost. Decide them again: the same values give the same verdicts.
        graph = self.workflow.graph
        for a in sorted(graph.ancestors(i), key=self.workflow.rank.__getitem__):
            if nodes[a].phase is NodePhase.PENDING and all(_done(nodes[p]) for p in graph.upstream[a]):
                skip = self._unread_skip(a, lambda p: _passable(nodes[p]))
                if skip is None and self.workflow.conditions[a] is not None and self._verdict(a) is False:
                    skip = ConditionReason.CONDITION_FALSE, self._false_message(a)
                if skip is not None:
                    self._set(a, phase=NodePhase.SKIPPED, reason=skip[0].value, message=skip[1], finished_at=self.now)
        return all(_done(nodes[p]) for p in upstream)

    def _apply(self, i: int, node: NodeStatus, seen: Observation) -> None:
        if seen.state is AttemptState.RUNNING:
            if seen.progress is not None and seen.progress != node.progress:
                self._set(i, progress=seen.progress)
            return
        finished = seen.finished_at or self.now
        if seen.state is AttemptState.SUCCEEDED:
            self.ended.append(Ended(seen.node, node.attempts, True, seen.reason, node.attempt_started_at, finished))
            self._set(
                i,
                phase=NodePhase.SUCCEEDED,
                finished_at=finished,
                exit_code=seen.exit_code if seen.exit_code is not None else 0,
                reason=seen.reason,
                message=seen.message,
                outputs=seen.outputs,
                outputs_ref=seen.outputs_ref,
                progress=seen.progress or node.progress,
                next_attempt_at=None,
            )
            return
        reason = seen.reason or ("JobDeleted" if seen.state is AttemptState.LOST else "Error")
        self._fail_attempt(i, node, seen.exit_code, reason, seen.message, finished)

    def _fail_attempt(
        self, i: int, node: NodeStatus, exit_code: int | None, reason: str, message: str | None, at: datetime
    ) -> None:
        name = self.names[i]
        policy = self.workflow.retry[i]
        transient = failures.is_transient(policy, exit_code, reason)
        used = node.attempts - node.retry_budget_from
        detail = (message or (f"exit code {exit_code}" if exit_code is not None else reason))[:MAX_MESSAGE]
        self.ended.append(Ended(name, node.attempts, False, reason, node.attempt_started_at, at))
        if failures.may_retry(policy, used, transient, reason):
            delay = failures.backoff_seconds(policy.backoff, used + 1, f"{self.workflow.key}/{name}/{node.attempts}")
            next_at = at + timedelta(seconds=delay)
            self._set(
                i,
                phase=NodePhase.RETRYING,
                exit_code=exit_code,
                reason=reason,
                message=detail,
                finished_at=at,
                next_attempt_at=next_at,
            )
            self._event(
                "Warning",
                EventReason.NODE_RETRYING,
                f"node {name} attempt {node.attempts} failed ({reason}: {detail}); retrying in {delay:.1f}s",
                name,
            )
        else:
            self._set(i, phase=NodePhase.FAILED, exit_code=exit_code, reason=reason, message=detail, finished_at=at)
            self._event(
                "Warning",
                EventReason.NODE_FAILED,
                f"node {name} failed after {node.attempts} attempt(s): {detail}",
                name,
            )

    # -- rule 3: per-attempt timeouts

    def enforce_timeouts(self) -> None:
        if self.suspended():
            return  # a suspended attempt is not running; Kubernetes restarts its deadline on resume
        # ... and so does timeoutSeconds: time spent suspended does not count against it.
        resumed = self.previous.phase is WorkflowPhase.PAUSED and self.workflow.spec.pause_mode == "Suspend"
        for i in self.workflow.timed:
            spec, node = self.workflow.nodes[i], self.nodes[i]
            if node.items is not None:
                if node.phase is NodePhase.RUNNING:
                    self._item_timeouts(i, resumed)
                continue
            if spec.timeout_seconds is None or node.phase is not NodePhase.RUNNING or node.attempt_started_at is None:
                continue
            started = node.attempt_started_at
            if resumed:
                started = self.now
                node = self._set(i, attempt_started_at=started)
            deadline = started + timedelta(seconds=spec.timeout_seconds)
            if self.now >= deadline:
                self.stops.append(Stop(self.names[i], node.attempts, "Timeout"))
                message = f"attempt {node.attempts} exceeded timeoutSeconds ({spec.timeout_seconds}s)"
                self._fail_attempt(i, node, None, "Timeout", message, self.now)
            else:
                self._wake(deadline)

    # -- rule 4 and 5: stop and the workflow deadline

    def stop_all(self) -> None:
        for i, node in enumerate(self.nodes):
            if node.phase is NodePhase.RUNNING and self._expanded(i):
                self._end_items(i, "Stopped", fanout.NOT_RUN)
            elif node.phase is NodePhase.RUNNING:
                self.stops.append(Stop(self.names[i], node.attempts, "Stopped"))
            if not node.phase.finished:
                self._set(i, phase=NodePhase.STOPPED, reason="Stopped", finished_at=self.now, next_attempt_at=None)
        self.terminal_reason = "Stopped"
        self.terminal_message = "stopped by spec.stopped"

    def deadline_passed(self) -> bool:
        seconds = self.workflow.spec.active_deadline_seconds
        if seconds is None:
            return False
        deadline = self.started_at + timedelta(seconds=seconds)
        if self.now >= deadline:
            return True
        self._wake(deadline)
        return False

    def fail_on_deadline(self) -> None:
        """Everything regular ends now; finally nodes still run (rule 9), under their own timeouts."""
        message = f"workflow exceeded activeDeadlineSeconds ({self.workflow.spec.active_deadline_seconds}s)"
        for i in self.workflow.regular:
            node = self.nodes[i]
            fanned = self._expanded(i)
            if node.phase is NodePhase.RUNNING and (not fanned or self._end_items(i, "DeadlineExceeded")):
                if not fanned:
                    self.stops.append(Stop(self.names[i], node.attempts, "DeadlineExceeded"))
                self._set(
                    i,
                    phase=NodePhase.FAILED,
                    reason="DeadlineExceeded",
                    message=message,
                    finished_at=self.now,
                )
            elif not node.phase.finished:
                self._set(
                    i,
                    phase=NodePhase.SKIPPED,
                    reason="DeadlineExceeded",
                    message=message,
                    next_attempt_at=None,
                )
        self.terminal_reason = "DeadlineExceeded"
        self.terminal_message = message

    # -- rule 6 and 7: skipping and launching

    def skip_downstream_of_failures(self) -> None:
        if _BLOCKING.isdisjoint([node.phase for node in self.nodes]):
            return
        upstream = self.workflow.graph.upstream
        nodes = self.nodes
        for i in self.workflow.topological:
            if nodes[i].phase is not NodePhase.PENDING:
                continue
            blocker = next((p for p in upstream[i] if nodes[p].phase in _BLOCKING and not _passable(nodes[p])), None)
            if blocker is not None:
                message = f"upstream node {self.names[blocker]} did not succeed"
                self._set(i, phase=NodePhase.SKIPPED, reason="UpstreamFailed", message=message)

    def launch_ready(self, capacity: int | None) -> None:
        spec = self.workflow.spec
        phases = [node.phase for node in self.nodes]
        final = False  # the finally nodes' turn (rule 9): failFast no longer holds anything back
        if self.workflow.finals:
            final = self.regular_ended()
            if not final:
                for i in self.workflow.finals:
                    phases[i] = NodePhase.STOPPED  # not theirs to start yet (never read back: a local list)
        failing = spec.fail_fast and not final and (NodePhase.FAILED in phases or self._item_failed(phases))
        if spec.paused or failing:
            return
        running = self._running(phases)
        room = free_slots(self.workflow, running)
        if capacity is not None:
            room = min(room, capacity)
        # `done[p]` is what dependents check: the phases themselves, unless a condition skipped some node (rule 7),
        # which then counts as Succeeded there. Without any, both are one list and the loop costs nothing more.
        done = phases
        if self.workflow.conditional or NodePhase.SKIPPED in phases:
            passed = [
                phase is NodePhase.SKIPPED and _passable(node) for node, phase in zip(self.nodes, phases, strict=True)
            ]
            if self.workflow.conditional or any(passed):
                self.passed = passed
                done = [
                    NodePhase.SUCCEEDED if through else phase for through, phase in zip(passed, phases, strict=True)
                ]
        while True:
            skipped = self._launch_pass(phases, done, room, fail_fast=spec.fail_fast and not final)
            if not skipped or (spec.fail_fast and not final and self.inputs_failed):
                return
            # A node skipped by its condition may unblock nodes declared before it: look again. Each look is
            # O(nodes); there are at most as many as skips chained against declaration order, usually one.
            room = free_slots(self.workflow, running) - len(self.launches)
            if capacity is not None:
                room = min(room, capacity - len(self.launches))
            self.waiting = 0

    def _launch_pass(self, phases: list[NodePhase], done: list[NodePhase], room: int, fail_fast: bool) -> bool:
        """One pass of rule 7 over the nodes in declaration order; True if a condition skipped a node."""
        # The hottest loop on large workflows, hence `phases`: dependencies are checked in it, which is right
        # even for nodes launched in this loop (Pending before, Running now: neither is Succeeded).
        upstream = self.workflow.graph.upstream
        pending, succeeded = NodePhase.PENDING, NodePhase.SUCCEEDED
        conditional = done is not phases
        skipped = False
        for i, phase in enumerate(phases):
            if phase is pending:
                for p in upstream[i]:
                    if done[p] is not succeeded:
                        break
                else:
                    if conditional:
                        room, through = self._start_conditional(i, room, phases, done)
                        skipped = skipped or through
                        phases[i] = self.nodes[i].phase  # so that another pass does not start it again
                    else:
                        room = self._start(i, room)
            elif phase is NodePhase.RUNNING:
                if i in self.workflow.fan_outs:
                    room = self._launch_items(i, room)
            elif phase is NodePhase.RETRYING:
                due = self.nodes[i].next_attempt_at
                assert due is not None
                if due > self.now:
                    self._wake(due)
                else:
                    room = self._start(i, room)
                    phases[i] = self.nodes[i].phase
            if fail_fast and self.inputs_failed:
                return skipped  # that node failed for good: failing fast, nothing more launches
        return skipped

    def _start_conditional(self, i: int, room: int, phases: list[NodePhase], done: list[NodePhase]) -> tuple[int, bool]:
        """Start a ready node of a workflow with conditions (rule 7): skip it if it reads outputs of a node a
        condition skipped, else evaluate its `when` when its turn comes. Returns the room left, and whether the
        node was skipped (its dependents may now be ready)."""
        passed = self.passed
        assert passed is not None
        skip = self._unread_skip(i, passed.__getitem__)
        if skip is not None:
            return room, self._pass_over(i, *skip, phases, done)
        if self.workflow.conditions[i] is None or (room <= 0 and self.workflow.nodes[i].approval is None):
            return self._start(i, room), False
        verdict = self._verdict(i)
        if verdict is True:
            return self._start(i, room), False
        if verdict is False:
            return room, self._pass_over(i, ConditionReason.CONDITION_FALSE, self._false_message(i), phases, done)
        skipped_read = self._skipped_read(i, passed.__getitem__)
        if skipped_read is not None:  # it failed on a node that never ran: skipped as a template reading it is
            reason = self.nodes[self.workflow.graph.index[skipped_read]].reason
            message = f"when reads node {skipped_read}, which was skipped ({reason}): {verdict}"[:MAX_MESSAGE]
            return room, self._pass_over(i, ConditionReason.UPSTREAM_SKIPPED, message, phases, done)
        self._fail_condition(i, verdict)
        phases[i] = done[i] = NodePhase.FAILED
        return room, False

    def _unread_skip(self, i: int, passed: Callable[[int], bool]) -> tuple[ConditionReason, str] | None:
        """Why node i is skipped without running, if its templates read outputs of a node skipped by a condition."""
        graph = self.workflow.graph
        if not any(passed(p) for p in graph.upstream[i]):
            return None
        unread = sorted(name for name in output_sources(self.workflow.nodes[i]) if passed(graph.index[name]))
        if not unread:
            return None
        reason = self.nodes[graph.index[unread[0]]].reason
        return ConditionReason.UPSTREAM_SKIPPED, f"reads outputs of node {unread[0]}, which was skipped ({reason})"

    def _skipped_read(self, i: int, passed: Callable[[int], bool]) -> str | None:
        """The first node skipped by a condition that node i's `when` reads (its dependencies and the nodes it
        names), if any: a `when` failing over such a node failed for want of outputs that node never made."""
        graph = self.workflow.graph
        condition = self.workflow.conditions[i]
        assert condition is not None
        read = {self.names[p] for p in graph.upstream[i]} | condition.reads
        return next((name for name in sorted(read) if passed(graph.index[name])), None)

    def _verdict(self, i: int) -> bool | str:
        """Node i's `when` over its upstream nodes: True, False, or why it could not be evaluated."""
        condition = self.workflow.conditions[i]
        assert condition is not None
        graph = self.workflow.graph
        readable = {self.names[p]: self.nodes[p] for p in graph.upstream[i]}
        for name in condition.reads:  # validation made sure each is upstream
            readable[name] = self.nodes[graph.index[name]]
        outcome = None
        if self.workflow.nodes[i].finally_:
            status, failed = self.workflow.outcome(self.nodes)
            outcome = {"status": status, "failedNodes": failed}
        try:
            return conditions.evaluate(condition, self.workflow.spec.parameters, readable, outcome)
        except ConditionFailed as error:
            return str(error)

    def _false_message(self, i: int) -> str:
        condition = self.workflow.conditions[i]
        assert condition is not None
        return f"when is false: {condition.expression}"[:MAX_MESSAGE]

    def _pass_over(
        self, i: int, reason: ConditionReason, message: str, phases: list[NodePhase], done: list[NodePhase]
    ) -> bool:
        """Skip node i without blocking its dependents (rule 7)."""
        assert self.passed is not None
        self._set(i, phase=NodePhase.SKIPPED, reason=reason.value, message=message, finished_at=self.now)
        phases[i] = NodePhase.SKIPPED
        done[i] = NodePhase.SUCCEEDED
        self.passed[i] = True
        return True

    def _fail_condition(self, i: int, message: str) -> None:
        """A `when` that fails to evaluate fails its node for good: the same values would fail it again."""
        name = self.names[i]
        reason = ConditionReason.CONDITION_ERROR.value
        self._set(i, phase=NodePhase.FAILED, reason=reason, message=message[:MAX_MESSAGE], finished_at=self.now)
        self._event("Warning", EventReason.NODE_FAILED, f"node {name} failed: when: {message}", name)
        self.inputs_failed = True

    def _start(self, i: int, room: int) -> int:
        """Start a ready node if there is room (approval nodes need none); returns the room left."""
        if i in self.workflow.fan_outs:
            return self._launch_items(i, room) if self._expand(i) else room
        if self.workflow.nodes[i].approval is not None:
            self._await_approval(i)
        elif room > 0:
            return room - 1 if self._launch(i, self.nodes[i]) else room
        else:
            self.waiting += 1
        return room

    def _await_approval(self, i: int) -> None:
        name = self.names[i]
        self._set(i, **{**_launched(self.nodes[i], 1, self.now), "phase": NodePhase.AWAITING_APPROVAL})
        self._event("Normal", EventReason.AWAITING_APPROVAL, f"node {name} is waiting for approval", name)

    def _launch(self, i: int, node: NodeStatus) -> bool:
        """Launch attempt n+1 of node i; False when it cannot run because its inputs are out of its reach."""
        spec = self.workflow.nodes[i]
        sources, held = self.renderer.reads(i, self.nodes)
        if held and not spec.node_runner:
            self._fail_without_node_runner(i, held)
            return False
        attempt = node.attempts + 1
        self.nodes[i] = _updated(node, _launched(node, attempt, self.now))
        self.changed = True
        self.launches.append(self.renderer.launch(i, attempt, self.nodes, sources, held))
        if spec.timeout_seconds is not None:
            self._wake(self.now + timedelta(seconds=spec.timeout_seconds))
        return True

    def _fail_without_node_runner(self, i: int, held: dict[str, str]) -> None:
        """Only node-runner can read Redis; launching anyway would run the command with `{{ ... }}` unrendered."""
        name = self.names[i]
        upstream = f"{'nodes' if len(held) > 1 else 'node'} {', '.join(held)}"
        message = (
            f"outputs of {upstream} are stored in Redis (larger than {nodeio.TERMINATION_LIMIT // 1024} KiB, "
            f"so not in status); set nodeRunner: true on node {name} so node-runner can read them"
        )
        self._set(i, phase=NodePhase.FAILED, reason="InputsUnavailable", message=message, finished_at=self.now)
        self._event("Warning", EventReason.NODE_FAILED, f"node {name} failed: {message}", name)
        self.inputs_failed = True

    # -- rule 10: forEach items

    def _expanded(self, i: int) -> bool:
        """Whether node i is a forEach node with items (expanded before, or by this call)."""
        return i in self.items or self.nodes[i].items is not None

    def _work(self, i: int) -> fanout.Items:
        """Node i's items as this call changes them (copied from the status on first touch)."""
        work = self.items.get(i)
        if work is None:
            known = self.nodes[i].items
            assert known is not None
            work = self.items[i] = fanout.Items(known)
        return work

    def _running(self, phases: list[NodePhase]) -> int:
        """Attempts running: plain nodes' and forEach items' (a forEach node itself runs nothing)."""
        running = phases.count(NodePhase.RUNNING)
        for i in self.workflow.fan_outs:
            if phases[i] is NodePhase.RUNNING:
                running += self._count_items(i, fanout.RUNNING) - 1
        return running

    def _item_failed(self, phases: list[NodePhase]) -> bool:
        """Whether a running forEach node has an item that failed for good (failFast stops launches then)."""
        return any(
            phases[i] is NodePhase.RUNNING and self._count_items(i, fanout.FAILED) for i in self.workflow.fan_outs
        )

    def _count_items(self, i: int, state: int) -> int:
        """How many of node i's items are in `state` (none before it is expanded)."""
        work = self.items.get(i)
        if work is not None:
            return work.count(state)
        items = self.nodes[i].items
        return items.states.count(chr(state)) if items is not None else 0

    def _values(self, i: int) -> list[Any] | str:
        spec = self.workflow.nodes[i]
        assert spec.for_each is not None
        sources, _ = self.renderer.reads(i, self.nodes)
        return fanout.values(spec.for_each, lambda text: self.renderer.text(i, text, self.nodes, sources))

    def _expand(self, i: int) -> bool:
        """Expand a ready forEach node into its items (kept if it has them: a retried workflow's); False when
        it ended at once (no items, or a list that cannot be read)."""
        spec, node, name = self.workflow.nodes[i], self.nodes[i], self.names[i]
        _, held = self.renderer.reads(i, self.nodes)
        if held and not spec.node_runner:
            self._fail_without_node_runner(i, held)
            return False
        values = self._values(i)
        if isinstance(values, str):
            self._set(i, phase=NodePhase.FAILED, reason="InvalidItems", message=values, finished_at=self.now)
            self._event("Warning", EventReason.NODE_FAILED, f"node {name} failed: {values}", name)
            self.inputs_failed = True
            return False
        if node.items is None or node.items.total != len(values):
            self.items[i] = fanout.Items.new(len(values))
        else:
            self._work(i)
        self._set(i, phase=NodePhase.RUNNING, started_at=node.started_at or self.now, finished_at=None)
        if not values:
            self._set(i, phase=NodePhase.SUCCEEDED, finished_at=self.now, outputs={}, message="no items")
            self._wake(self.now)  # its dependents may run now: plan again
            return False
        return True

    def _launch_items(self, i: int, room: int) -> int:
        """Launch node i's ready items (due retries first, then pending ones in order) within `room` and
        maxParallel; returns the room left."""
        for_each = self.workflow.nodes[i].for_each
        assert for_each is not None
        work = self._work(i)
        allowed = (for_each.max_parallel or work.total) - work.count(fanout.RUNNING)
        ready = self._due_retries(work)
        values: list[Any] | str | None = None
        sources: set[str] = set()
        held: dict[str, str] = {}
        position = 0
        while allowed > 0:
            index = ready.pop(0) if ready else work.states.find(fanout.PENDING, position)
            if index < 0:
                break
            if not ready:
                position = index + 1
            if room <= 0:
                self.waiting += min(allowed, 1 + len(ready) + work.states.count(fanout.PENDING, index + 1))
                break
            if values is None:
                values = self._values(i)
                assert not isinstance(values, str)  # it expanded, and its upstream outputs do not change
                sources, held = self.renderer.reads(i, self.nodes)
            attempt = work.attempts(index) + 1
            self._item_launched(i, work, index, attempt)
            self.launches.append(self.renderer.launch(i, attempt, self.nodes, sources, held, (index, values[index])))
            room -= 1
            allowed -= 1
        return room

    def _due_retries(self, work: fanout.Items) -> list[int]:
        due = []
        states = work.states
        for key, detail in work.detail.items():
            index = int(key)
            if states[index] == fanout.RETRYING:
                assert detail.next_attempt_at is not None
                if detail.next_attempt_at <= self.now:
                    due.append(index)
                else:
                    self._wake(detail.next_attempt_at)
        return sorted(due)

    def _item_launched(self, i: int, work: fanout.Items, index: int, attempt: int, at: datetime | None = None) -> None:
        before = work.detail.get(str(index))
        started = at or self.now
        work.detail[str(index)] = _item_status(
            {"attempts": attempt, "retry_budget_from": before.retry_budget_from if before is not None else 1},
            attempt_started_at=started,
        )
        work.states[index] = fanout.RUNNING
        work.launched += 1
        timeout = self.workflow.nodes[i].timeout_seconds
        if timeout is not None:
            self._wake(started + timedelta(seconds=timeout))

    def _observe_item(self, i: int, seen: Observation) -> None:
        """Rules 1-2 for one item's attempt."""
        node, index = self.nodes[i], seen.item
        assert index is not None
        # Its items were launched, but the status that expanded it was lost: expand it again (the same list).
        expanded = node.items is not None or i in self.items
        if not expanded and (node.phase.finished or not self._dependencies_met(i) or not self._expand(i)):
            return
        work = self._work(i)
        if index >= work.total:
            return
        state, attempts = work.states[index], work.attempts(index)
        if seen.attempt > attempts:
            if state in (fanout.SUCCEEDED, fanout.FAILED, fanout.NOT_RUN):
                return
            self._item_launched(i, work, index, seen.attempt, seen.started_at)  # launched, status not written
        elif seen.attempt < attempts or state != fanout.RUNNING:
            return
        if seen.state is AttemptState.RUNNING:
            return
        detail = work.detail[str(index)]
        finished = seen.finished_at or self.now
        if seen.state is AttemptState.SUCCEEDED:
            self.ended.append(
                Ended(seen.node, seen.attempt, True, seen.reason, detail.attempt_started_at, finished, index)
            )
            work.states[index] = fanout.SUCCEEDED
            del work.detail[str(index)]
            work.record_outputs(index, seen.outputs)
            return
        reason = seen.reason or ("JobDeleted" if seen.state is AttemptState.LOST else "Error")
        self._fail_item(i, work, index, seen.exit_code, reason, seen.message, finished)

    def _fail_item(
        self,
        i: int,
        work: fanout.Items,
        index: int,
        exit_code: int | None,
        reason: str,
        message: str | None,
        at: datetime,
    ) -> None:
        """Rule 2 for an item: retried within the node's policy, else failed for good."""
        name = self.names[i]
        detail = work.detail[str(index)]
        policy = self.workflow.retry[i]
        transient = failures.is_transient(policy, exit_code, reason)
        used = detail.attempts - detail.retry_budget_from
        text = (message or (f"exit code {exit_code}" if exit_code is not None else reason))[:MAX_MESSAGE]
        self.ended.append(Ended(name, detail.attempts, False, reason, detail.attempt_started_at, at, index))
        update: dict[str, Any] = {"exit_code": exit_code, "reason": reason, "message": text}
        if failures.may_retry(policy, used, transient, reason):
            key = f"{self.workflow.key}/{name}/{index}/{detail.attempts}"
            delay = failures.backoff_seconds(policy.backoff, used + 1, key)
            update["next_attempt_at"] = at + timedelta(seconds=delay)
            work.states[index] = fanout.RETRYING
            what = f"node {name} item {index} attempt {detail.attempts} failed ({reason}: {text})"
            self._event("Warning", EventReason.NODE_RETRYING, f"{what}; retrying in {delay:.1f}s", name)
        else:
            work.states[index] = fanout.FAILED
            what = f"node {name} item {index} failed after {detail.attempts} attempt(s): {text}"
            self._event("Warning", EventReason.NODE_FAILED, what, name)
        work.detail[str(index)] = _item_status(detail.__dict__, **update)

    def _item_timeouts(self, i: int, resumed: bool) -> None:
        """Rule 3 for node i's running items."""
        timeout = self.workflow.nodes[i].timeout_seconds
        assert timeout is not None
        work = self._work(i)
        for key, detail in list(work.detail.items()):
            index = int(key)
            if work.states[index] != fanout.RUNNING or detail.attempt_started_at is None:
                continue
            started = detail.attempt_started_at
            if resumed:
                started = self.now
                detail = work.detail[key] = _item_status(detail.__dict__, attempt_started_at=started)
            deadline = started + timedelta(seconds=timeout)
            if self.now >= deadline:
                self.stops.append(Stop(self.names[i], detail.attempts, "Timeout", index))
                message = f"attempt {detail.attempts} exceeded timeoutSeconds ({timeout}s)"
                self._fail_item(i, work, index, None, "Timeout", message, self.now)
            else:
                self._wake(deadline)

    def settle_items(self) -> None:
        """A running forEach node whose items all ended ends too (rule 10); with failFast, one whose item failed
        for good ends once no item of it runs (its pending items are not run)."""
        for i in list(self.items):
            self._settle_items_of(i)

    def _settle_items_of(self, i: int) -> None:
        work = self.items[i]
        if self.nodes[i].phase is not NodePhase.RUNNING or work.count(fanout.RUNNING):
            return
        if self.workflow.spec.fail_fast and work.count(fanout.FAILED):
            self._close_items(i)
        elif not (work.count(fanout.PENDING) or work.count(fanout.RETRYING)):
            self._end_node(i)

    def _close_items(self, i: int) -> None:
        """Failing fast: node i's items that have not started never will (retrying ones fail for good)."""
        work = self._work(i)
        for key, detail in work.detail.items():
            if work.states[int(key)] == fanout.RETRYING:
                work.states[int(key)] = fanout.FAILED
                message = f"{detail.message} (not retried: failFast)"[:MAX_MESSAGE]
                work.detail[key] = _item_status(detail.__dict__, message=message)
        work.states[:] = work.states.replace(b"P", b"X")
        self._end_node(i)

    def _end_node(self, i: int) -> None:
        work = self._work(i)
        failed = work.count(fanout.FAILED)
        if failed:
            index = work.states.find(fanout.FAILED)
            first = work.detail[str(index)]
            message = f"{failed} of {work.total} items failed; item {index}: {first.message}"[:MAX_MESSAGE]
            update = {"reason": first.reason, "exit_code": first.exit_code, "message": message}
            self._set(i, phase=NodePhase.FAILED, finished_at=self.now, **update)
        elif work.count(fanout.NOT_RUN):
            message = (
                f"{work.count(fanout.NOT_RUN)} of {work.total} items not run: another node failed and failFast is set"
            )
            self._set(i, phase=NodePhase.SKIPPED, reason="FailFast", message=message, finished_at=self.now)
        else:
            self._set(i, phase=NodePhase.SUCCEEDED, finished_at=self.now, outputs=fanout.gather(work.outputs))
            work.outputs = None  # gathered into the node's outputs: kept once

    def _end_items(self, i: int, reason: str, running_to: int = fanout.FAILED) -> bool:
        """Rules 4-5 for node i's items: running ones are stopped (and become `running_to`), the others are not
        run. Returns whether any was running."""
        work = self._work(i)
        was_running = False
        for key, detail in work.detail.items():
            index = int(key)
            if work.states[index] == fanout.RUNNING:
                self.stops.append(Stop(self.names[i], detail.attempts, reason, index))
                work.states[index] = running_to
                was_running = True
        work.states[:] = work.states.replace(b"P", b"X").replace(b"B", b"X")
        return was_running

    def _write_items(self) -> None:
        """Put the items this call changed back into their nodes' statuses, with "succeeded/total" progress."""
        for i, work in self.items.items():
            node, before = self.nodes[i], self.nodes[i].items
            unchanged = (
                before is not None
                and not work.launched
                and work.detail == before.detail
                and work.outputs == before.outputs
                and work.states == before.states.encode("ascii")
            )
            if not unchanged:
                self._set(i, items=work.frozen(), progress=work.progress(), attempts=node.attempts + work.launched)
                work.launched = 0

    # -- rule 8: the workflow's own phase

    def finish(self) -> Decision:
        spec = self.workflow.spec
        self._write_items()
        running = self._running([node.phase for node in self.nodes])
        phase, reason, message = self._phase()
        if phase is WorkflowPhase.PAUSED and self.phase is not WorkflowPhase.PAUSED:
            self._event("Normal", EventReason.PAUSED, "workflow paused: no new nodes launch until it is resumed")
        if self.phase is WorkflowPhase.PAUSED and phase is WorkflowPhase.RUNNING:
            self._event("Normal", EventReason.RESUMED, "workflow resumed")
        if phase.finished:
            self._event("Normal" if phase is WorkflowPhase.SUCCEEDED else "Warning", EventReason(phase.value), message)
            self.wake_at = None
        succeeded = [node.phase for node in self.nodes].count(NodePhase.SUCCEEDED)
        partial = sum(
            nodeio.progress_fraction(node.progress) or 0.0
            for node in self.nodes
            if node.progress is not None and node.phase is NodePhase.RUNNING
        )
        previous = self.previous
        # Not validated: every value is built here, and validating 10,000 node statuses costs 2 ms a call.
        status = WorkflowStatus.model_construct(
            phase=phase,
            progress=f"{succeeded}/{len(self.nodes)}",
            percent=int(100 * (succeeded + partial) / len(self.nodes)),
            started_at=self.started_at,
            finished_at=self.now if phase.finished else None,
            message=message,
            conditions=_conditions(previous, phase, reason, message, self.now, self.workflow.generation, spec.paused),
            observed_generation=self.workflow.generation,
            retry_token=self.retry_token,
            nodes=dict(zip(self.names, self.nodes, strict=True)) if self.changed else previous.nodes,
            template=previous.template,  # the backend's snapshot of a WorkflowTemplate: kept, never decided here
        )
        changed = self.changed or _summary(status) != _summary(previous)
        suspend = self.suspended() and not phase.finished
        return Decision(
            status=status,
            launches=self.launches,
            stops=self.stops,
            events=self.events,
            wake_at=self.wake_at,
            changed=changed,
            waiting=self.waiting,
            held_back=max(0, min(self.waiting, free_slots(self.workflow, running))),
            running=running,
            ended=self.ended,
            suspend=suspend,
        )

    def suspended(self) -> bool:
        spec = self.workflow.spec
        return spec.paused and spec.pause_mode == "Suspend" and not spec.stopped

    def regular_ended(self) -> bool:
        """Whether every regular node has ended: from then on the finally nodes may start (rule 9)."""
        nodes = self.nodes
        return all(nodes[i].phase.finished for i in self.workflow.regular)

    def close_out(self) -> bool:
        """With nothing running and nothing launched, close out regular nodes that can no longer run (failFast
        after a failure). True if the regular nodes have all ended (then finally nodes may start)."""
        if self.terminal_reason is not None:
            return True  # stopped or past the deadline: every regular node ended already
        nodes = self.nodes
        if self._running([node.phase for node in nodes]) or self.launches:
            return False
        regular = self.workflow.regular if self.workflow.finals else range(len(nodes))
        waiting = any(
            nodes[i].phase in (NodePhase.RETRYING, NodePhase.AWAITING_APPROVAL, NodePhase.PENDING)
            or (nodes[i].phase is NodePhase.RUNNING and self._expanded(i))  # items not started (rule 10)
            for i in regular
        )
        failed = any(nodes[i].phase is NodePhase.FAILED for i in regular)
        if not waiting or not (self.workflow.spec.fail_fast and failed):
            return not waiting
        for i in regular:
            node = nodes[i]
            if node.phase is NodePhase.RUNNING and self._expanded(i):
                self._close_items(i)
            elif node.phase is NodePhase.RETRYING:
                self._set(i, phase=NodePhase.FAILED, message=f"{node.message} (not retried: failFast)")
            elif node.phase in (NodePhase.PENDING, NodePhase.AWAITING_APPROVAL):
                message = "not run: another node failed and failFast is set"
                self._set(i, phase=NodePhase.SKIPPED, reason="FailFast", message=message)
        return True

    def _phase(self) -> tuple[WorkflowPhase, str, str]:
        if self.terminal_reason == "Stopped":
            return WorkflowPhase.STOPPED, "Stopped", self.terminal_message
        if self.terminal_reason is not None:
            if self.workflow.finals and not _FINISHED_NODE.issuperset([node.phase for node in self.nodes]):
                return WorkflowPhase.RUNNING, "RunningFinally", f"{self.terminal_message}; finally nodes running"
            return WorkflowPhase.FAILED, self.terminal_reason, self.terminal_message
        if _FINISHED_NODE.issuperset([node.phase for node in self.nodes]):
            failed = [self.names[i] for i, node in enumerate(self.nodes) if node.phase is NodePhase.FAILED]
            if not failed:
                skipped = sum(1 for node in self.nodes if node.phase is NodePhase.SKIPPED)
                if skipped:  # by their conditions: anything else that skips a node also fails one
                    ran = len(self.nodes) - skipped
                    return WorkflowPhase.SUCCEEDED, "Succeeded", f"{ran} nodes succeeded, {skipped} skipped by when"
                return WorkflowPhase.SUCCEEDED, "Succeeded", f"all {len(self.nodes)} nodes succeeded"
            first = self.nodes[self.workflow.graph.index[failed[0]]]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            return WorkflowPhase.FAILED, "NodeFailed", f"node {failed[0]} failed{more}: {first.message}"
        if self.workflow.spec.paused:
            return WorkflowPhase.PAUSED, "Paused", "paused by spec.paused"
        awaiting = [self.names[i] for i, node in enumerate(self.nodes) if node.phase is NodePhase.AWAITING_APPROVAL]
        if awaiting:  # what `kubectl get workflows` shows in its MESSAGE column
            more = f" (and {len(awaiting) - 1} more)" if len(awaiting) > 1 else ""
            return WorkflowPhase.RUNNING, "AwaitingApproval", f"waiting for approval of node {awaiting[0]}{more}"
        if any(node.attempts for node in self.nodes) or self.phase is not WorkflowPhase.PENDING:
            return WorkflowPhase.RUNNING, "Running", ""
        return WorkflowPhase.PENDING, "Pending", ""


def _passable(node: NodeStatus) -> bool:
    """Skipped by a condition (rule 7): dependents treat it as done."""
    return node.phase is NodePhase.SKIPPED and node.reason in _PASSABLE


def _done(node: NodeStatus) -> bool:
    """Done as its dependents see it: Succeeded, or skipped by a condition."""
    return node.phase is NodePhase.SUCCEEDED or _passable(node)


def _attempt_number(seen: Observation) -> tuple[int, int]:
    return (-1 if seen.item is None else seen.item), seen.attempt


def _launched(node: NodeStatus, attempt: int, now: datetime) -> dict[str, Any]:
    return {
        "phase": NodePhase.RUNNING,
        "attempts": attempt,
        "started_at": node.started_at or now,
        "attempt_started_at": now,
        "finished_at": None,
        "exit_code": None,
        "reason": None,
        "message": None,
        "next_attempt_at": None,
        "progress": None,
    }


def _updated(node: NodeStatus, update: dict[str, Any]) -> NodeStatus:
    """`node.model_copy(update=update)` at about a third of its cost: on a 10,000-node workflow the planner
    copies thousands of node statuses per call. Like model_copy it does not validate: the values come from the
    planner itself."""
    new = _new_object(NodeStatus)
    _set_attribute(new, "__dict__", {**node.__dict__, **update})
    _set_attribute(new, "__pydantic_fields_set__", node.__pydantic_fields_set__.union(update))
    _set_attribute(new, "__pydantic_extra__", None)
    _set_attribute(new, "__pydantic_private__", None)
    return new


_ITEM_DEFAULTS = ItemStatus().__dict__
_ITEM_FIELDS = frozenset(_ITEM_DEFAULTS)


def _item_status(base: dict[str, Any], **update: Any) -> ItemStatus:
    """An ItemStatus from `base`'s fields and `update`, like `_updated`: unvalidated, built by the planner.
    A 10,000-item node launches and records up to thousands of items per call."""
    new = _new_object(ItemStatus)
    _set_attribute(new, "__dict__", {**_ITEM_DEFAULTS, **base, **update})
    _set_attribute(new, "__pydantic_fields_set__", _ITEM_FIELDS)
    _set_attribute(new, "__pydantic_extra__", None)
    _set_attribute(new, "__pydantic_private__", None)
    return new


_new_object = object.__new__
_set_attribute = object.__setattr__


def _summary(status: WorkflowStatus) -> tuple[Any, ...]:
    return (
        status.phase,
        status.progress,
        status.percent,
        status.message,
        status.observed_generation,
        status.retry_token,
        status.started_at,
        status.finished_at,
        status.conditions,
    )


def _conditions(
    previous: WorkflowStatus,
    phase: WorkflowPhase,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
    paused: bool = False,
) -> list[Condition]:
    """The `Succeeded` summary condition and `Paused`, derived from the same phase as `status.phase`."""
    succeeded = {
        WorkflowPhase.SUCCEEDED: "True",
        WorkflowPhase.FAILED: "False",
        WorkflowPhase.STOPPED: "False",
    }
    wanted = [
        ("Succeeded", succeeded.get(phase, "Unknown"), reason, message),
        (
            "Paused",
            "True" if paused and not phase.finished else "False",
            "Paused" if paused else "NotPaused",
            "",
        ),
    ]
    before = {condition.type: condition for condition in previous.conditions}
    conditions = []
    for type_, value, why, text in wanted:
        old = before.get(type_)
        since = old.last_transition_time if old is not None and old.status == value else now
        conditions.append(
            Condition(
                type=type_,
                status=value,
                reason=why,
                message=text,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return conditions


__all__ = [
    "MAX_MESSAGE",
    "AttemptState",
    "Decision",
    "Ended",
    "Event",
    "EventReason",
    "Launch",  # rendered in launches.py; re-exported: backends take everything they carry out from here
    "Observation",
    "Stop",
    "answered",
    "approvals",
    "expires_at",
    "free_slots",
    "invalid",
    "plan",
    "recorded",
    "retry_failed",
]
