"""What `dagwright run` shows while it works: a live rich view on a terminal, plain lines elsewhere.

Both are reporters called after every planner decision with the decision and the outcomes it was based on.
The plain one prints transitions (started, succeeded, failed, retrying) so CI logs read like a story; the
live one draws one line per running node and an overall bar with succeeded/total and elapsed time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dagwright import eta
from dagwright.planner import AttemptState, Decision, EventReason, Observation
from dagwright.status import NodePhase, WorkflowStatus

# Events the plain report prints as they come (the workflow's own end is printed from its status instead).
_TOLD = frozenset(
    {
        EventReason.NODE_RETRYING,
        EventReason.NODE_FAILED,
        EventReason.AWAITING_APPROVAL,
        EventReason.PAUSED,
        EventReason.RESUMED,
        EventReason.RETRYING,
    }
)


class PlainReport:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.skipped: set[str] = set()

    def __call__(self, decision: Decision, observations: list[Observation]) -> None:
        for seen in observations:
            if seen.state is AttemptState.SUCCEEDED:
                self._line(f"{_unit(seen.node, seen.item)} attempt {seen.attempt} succeeded")
        for launch in decision.launches:
            self._line(f"{_unit(launch.node, launch.item)} attempt {launch.attempt} started")
        for event in decision.events:
            if event.reason in _TOLD:
                self._line(event.message)
        if decision.changed:  # a node skipped by its `when`, or after a failure, runs nothing: say so once
            for name, node in decision.status.nodes.items():
                if node.phase is NodePhase.SKIPPED and name not in self.skipped:
                    self.skipped.add(name)
                    self._line(f"{name} skipped ({node.reason}): {node.message}")
        if decision.status.phase.finished:
            status = decision.status
            self._line(f"workflow {status.phase.value} ({status.progress}): {status.message}")

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{elapsed:8.2f}s] {text}\n")
        self.stream.flush()


def _unit(node: str, item: int | None) -> str:
    """A node, or one of a forEach node's items: `work[3]`."""
    return node if item is None else f"{node}[{item}]"


class LiveReport:
    """A rich Live view; `close()` must be called to leave the terminal clean."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("workflow", total=total)
        self.status: WorkflowStatus | None = None
        # get_renderable: redrawn on every refresh, so running nodes' elapsed times keep ticking.
        self.live = Live(console=console, refresh_per_second=8, transient=False, get_renderable=self._render)
        self.live.start()

    def __call__(self, decision: Decision, observations: list[Observation]) -> None:
        self.status = decision.status
        succeeded = sum(1 for node in decision.status.nodes.values() if node.phase is NodePhase.SUCCEEDED)
        self.progress.update(self.task, completed=succeeded, description=f"workflow {decision.status.phase.value}")
        for event in decision.events:
            if event.type == "Warning":
                self.console.print(f"[yellow]{event.message}[/yellow]")

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        if self.status is not None and not self.status.phase.finished:
            nodes = [
                {"phase": n.phase.value, "startedAt": n.started_at, "finishedAt": n.finished_at}
                for n in self.status.nodes.values()
            ]
            left = eta.text(eta.estimate(nodes, len(self.status.nodes), datetime.now(UTC)))
            if left:
                table.add_row(f"  {left}", "", "", "")
        if self.status is not None:
            now = time.time()
            for name, node in self.status.nodes.items():
                if node.phase in (NodePhase.RUNNING, NodePhase.RETRYING, NodePhase.AWAITING_APPROVAL):
                    since = node.attempt_started_at.timestamp() if node.attempt_started_at else now
                    detail = f"{now - since:6.1f}s" if node.phase is NodePhase.RUNNING else node.phase.value
                    progress = node.progress or ""
                    table.add_row(f"  {name}", f"attempt {node.attempts}", detail, progress)
        return Group(self.progress, table)

    def close(self) -> None:
        self.live.stop()
