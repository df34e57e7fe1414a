"""`dagwright run`: the local backend. It carries out the planner's actions as subprocesses.

The loop is the same as the operator's reconcile, with processes instead of Jobs: observe the attempts that
ended, call the planner, stop what it says to stop, start what it says to start, save status, and wait until a
process ends, the planner's wake-up time comes, or the user presses Ctrl-C (which sets `stopped`, exactly as
`spec.stopped` does in the cluster). No scheduling decision is made here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from dagwright.local.processes import Processes
from dagwright.planner import Decision, EventReason, Observation, answered, plan
from dagwright.status import NodePhase, WorkflowStatus
from dagwright.workflows import Workflow

PROGRESS_POLL_SECONDS = 1.0
SAVE_INTERVAL_SECONDS = 0.5

Approver = Callable[[str, str], bool]  # (node, message) -> approved?
Reporter = Callable[[Decision, list[Observation]], None]
Saver = Callable[[WorkflowStatus], None]


class Inbox(Protocol):
    """Requests from outside the run while it works (the web UI of `dagwright run --ui`): spec changes, as
    `spec.paused`/`spec.stopped` are patched in the cluster, and approval answers, as `spec.approvals` holds them.
    With an inbox and no `approve`, an approval node waits for an answer from it instead of being refused."""

    def attach(self, wake: Callable[[], None]) -> None:
        """`wake()` makes the run look at the inbox now; called from any thread."""

    def take(self) -> tuple[dict[str, Any], list[Observation]]:
        """The spec fields to change (snake_case) and the answers that came since the last call."""


@dataclasses.dataclass
class RunOptions:
    logs_dir: Path | None = None
    approve: Approver | None = None
    report: Reporter | None = None
    save: Saver | None = None
    workdir: Path | None = None
    inbox: Inbox | None = None
    environ: dict[str, str] | None = None  # every attempt's environment before its own; default: this process's


def run(workflow: Workflow, status: WorkflowStatus | None, options: RunOptions) -> WorkflowStatus:
    """Run until the workflow finishes (or is stopped by Ctrl-C); returns the final status."""
    logs_dir = options.logs_dir or Path(tempfile.mkdtemp(prefix=f"dagwright-{workflow.name}-"))
    logs_dir.mkdir(parents=True, exist_ok=True)
    with _InterruptWatch() as interrupts:
        processes = Processes(logs_dir, interrupts.read_fd, options.environ)
        if options.inbox is not None:
            options.inbox.attach(interrupts.wake)
        try:
            return _loop(workflow, status, options, processes, interrupts)
        finally:
            if options.inbox is not None:
                options.inbox.attach(lambda: None)  # the pipe closes with the watch
            processes.stop_all()
            processes.close()


def _loop(
    workflow: Workflow,
    status: WorkflowStatus | None,
    options: RunOptions,
    processes: Processes,
    interrupts: _InterruptWatch,
) -> WorkflowStatus:
    observations: list[Observation] = []
    next_progress = time.monotonic() + PROGRESS_POLL_SECONDS
    saves = _Saves(options.save)
    while True:
        if interrupts.count and not workflow.spec.stopped:
            workflow = dataclasses.replace(workflow, spec=workflow.spec.model_copy(update={"stopped": True}))
        if options.inbox is not None:
            updates, answers = options.inbox.take()
            if updates:
                workflow = dataclasses.replace(workflow, spec=workflow.spec.model_copy(update=updates))
            observations += answers
        decision = plan(workflow, status, observations, _now())
        status = decision.status
        if options.report:
            options.report(decision, observations)
        observations = _carry_out(decision, processes, options)
        if decision.changed:
            saves.changed(status)
        if observations:
            continue  # attempts that could not start, or approval answers: plan again at once
        if status.phase.finished and not processes.running:
            return status
        timeout = _seconds_until(decision.wake_at)
        if processes.running:
            until_progress = max(0.0, next_progress - time.monotonic())
            timeout = until_progress if timeout is None else min(timeout, until_progress)
        until_save = saves.seconds_until_due()
        if until_save is not None:
            timeout = until_save if timeout is None else min(timeout, until_save)
        observations = processes.wait(timeout)
        saves.flush()
        if time.monotonic() >= next_progress:
            observations += processes.progress()
            next_progress = time.monotonic() + PROGRESS_POLL_SECONDS


class _Saves:
    """Hands the latest changed status to `save` at most every SAVE_INTERVAL_SECONDS (and a finished one at once).

    Writing the whole object after every change made a 3,000-node run with --state three times slower, and a
    10,000-node one far worse; a change waits at most half a second before it is on disk.
    """

    def __init__(self, save: Saver | None) -> None:
        self.save = save
        self.pending: WorkflowStatus | None = None
        self.last = -math.inf

    def changed(self, status: WorkflowStatus) -> None:
        if self.save is not None:
            self.pending = status
            self.flush(force=status.phase.finished)

    def flush(self, force: bool = False) -> None:
        due = force or time.monotonic() - self.last >= SAVE_INTERVAL_SECONDS
        if self.save is not None and self.pending is not None and due:
            self.save(self.pending)
            self.pending = None
            self.last = time.monotonic()

    def seconds_until_due(self) -> float | None:
        if self.pending is None:
            return None
        return max(0.0, self.last + SAVE_INTERVAL_SECONDS - time.monotonic())


def _carry_out(decision: Decision, processes: Processes, options: RunOptions) -> list[Observation]:
    """Stops first (a timed-out attempt ends before its retry starts), then launches and approvals."""
    for stop in decision.stops:
        processes.stop(stop.node, stop.attempt, stop.item)
    if decision.stops:
        processes.reap_stopped()
    immediate = processes.start_all(decision.launches, options.workdir)
    asks = _awaits_approval(decision) and (options.approve is not None or options.inbox is None)
    for name, node in decision.status.nodes.items() if asks else ():
        if node.phase is NodePhase.AWAITING_APPROVAL:
            immediate.append(_approval(name, node.message or "", options.approve))
    return immediate


def _awaits_approval(decision: Decision) -> bool:
    return any(event.reason is EventReason.AWAITING_APPROVAL for event in decision.events)


def _approval(node: str, message: str, approve: Approver | None) -> Observation:
    if approve is None:
        text = "approval needed, but there is no terminal to ask on (use --approve-all)"
        return answered(node, False, text, at=_now())
    return answered(node, approve(node, message), at=_now())


def _seconds_until(at: datetime | None) -> float | None:
    return None if at is None else max(0.0, (at - _now()).total_seconds())


def _now() -> datetime:
    return datetime.now(UTC)


class _InterruptWatch:
    """Turns Ctrl-C (SIGINT) and SIGTERM into a counter and a readable fd, instead of KeyboardInterrupt.

    The first interrupt stops the workflow cleanly (attempts are terminated, status says Stopped); a third one
    gives up waiting and exits at once.
    """

    def __init__(self) -> None:
        self.count = 0
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1

    def __enter__(self) -> _InterruptWatch:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.set_wakeup_fd(self._previous_wakeup)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        os.close(self.read_fd)
        os.close(self._write_fd)

    def wake(self) -> None:
        """Wake the run's wait from another thread (the wait drains the byte)."""
        with contextlib.suppress(OSError):  # a full pipe wakes it anyway
            os.write(self._write_fd, b"w")

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 3:
            print("dagwright: interrupted three times, exiting without waiting", file=sys.stderr)
            os._exit(130)
