"""Which node ends need a reconcile pass at once, and which can wait for the next one.

Why: one pass per pod end was most of the operator's CPU per node (bench/operator_throughput.py: ~1 pass per
node, ~4 ms each), yet in a wide layer most ends change nothing but the node's own phase: each dependent still
waits for another dependency. After every pass the operator keeps `Waits` for the workflow: for each running
node, its dependents that have not started and how many of their dependencies are unfinished. A node's success
is then counted down against them as its pod's end arrives; a pass is due at once when a count reaches zero (a
dependent can start, or be skipped), when the last running node ends (the workflow may finish, or its finally
nodes start), and for everything `Waits` cannot vouch for: a failure, a forEach item, a node it does not know,
a workflow short of room (an end frees a slot). Any other end is recorded by the next pass, which comes within
a bounded delay in any case (the operator's `LATER`): the rule only ever delays a status write, never a launch.

Pure (no I/O, no clock): built from the planner's decision, consulted by the operator's event path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagwright.status import NodePhase, WorkflowStatus
from dagwright.workflows import Workflow


@dataclass
class Waits:
    """What the running nodes' ends mean to their dependents, as of one pass; `ended` counts them down."""

    attempts: dict[str, int]  # running node -> its running attempt
    dependents: dict[str, tuple[str, ...]]  # running node -> dependents not started yet
    unfinished: dict[str, int]  # dependent not started -> its dependencies not finished
    counted: set[str] = field(default_factory=set)  # running nodes whose end was counted

    def ended(self, node: str, attempt: int) -> bool:
        """Count one running attempt's success; whether a pass is due at once for it. An end counted already
        (a later update of the same pod) is not."""
        if self.attempts.get(node) != attempt:
            return True  # not a running attempt this pass knew of: let a pass look at it
        if node in self.counted:
            return False
        self.counted.add(node)
        due = len(self.counted) == len(self.attempts)  # the last running node ended
        for dependent in self.dependents[node]:
            self.unfinished[dependent] -= 1
            due = due or self.unfinished[dependent] <= 0
        return due


def waits(workflow: Workflow, status: WorkflowStatus, waiting: int) -> Waits | None:
    """The Waits of a workflow after a pass whose decision left `status` and `waiting` ready nodes short of room;
    None when every end needs a pass at once: room is short, a forEach node runs, or nothing runs."""
    if waiting:
        return None
    graph = workflow.graph
    phases = [status.nodes[name].phase if name in status.nodes else NodePhase.PENDING for name in graph.names]
    running = [i for i, phase in enumerate(phases) if phase is NodePhase.RUNNING]
    if not running or any(i in workflow.fan_outs for i in running):
        return None
    attempts = {graph.names[i]: status.nodes[graph.names[i]].attempts for i in running}
    dependents: dict[str, tuple[str, ...]] = {}
    unfinished: dict[str, int] = {}
    for i in running:
        waiting_on = tuple(d for d in graph.downstream[i] if phases[d] is NodePhase.PENDING)
        dependents[graph.names[i]] = tuple(graph.names[d] for d in waiting_on)
        for d in waiting_on:
            unfinished[graph.names[d]] = sum(1 for u in graph.upstream[d] if not phases[u].finished)
    return Waits(attempts, dependents, unfinished)
