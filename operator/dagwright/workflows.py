"""A validated workflow as the planner sees it: spec with defaults merged, the graph, and identity.

Built by `validation.compile_spec` once per spec change and reused for every planner call. Identity (name,
namespace, uid) feeds templates and the deterministic backoff jitter; `conditions` holds each node's compiled
`when` (compiled by validation, and cached by text in `conditions.compile_condition`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from dagwright import fanout
from dagwright.conditions import PASSABLE, Condition, compile_condition
from dagwright.graph import Graph
from dagwright.spec import NodeSpec, RetryPolicy, WorkflowSpec
from dagwright.status import NodePhase, NodeStatus

NO_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    spec: WorkflowSpec
    nodes: list[NodeSpec]
    graph: Graph
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    topological: tuple[int, ...] = field(init=False)
    rank: tuple[int, ...] = field(init=False)  # each node's position in `topological`
    retry: tuple[RetryPolicy, ...] = field(init=False)
    timed: tuple[int, ...] = field(init=False)  # the nodes with a timeoutSeconds
    # Each node's compiled `when`: given by validation, which compiled them already, else compiled here.
    conditions: tuple[Condition | None, ...] = ()
    conditional: bool = field(init=False)  # some node has a `when`
    finals: tuple[int, ...] = field(init=False)  # the `finally: true` nodes, in declaration order
    regular: tuple[int, ...] = field(init=False)  # the others
    fan_outs: frozenset[int] = field(init=False)  # the forEach nodes

    def __post_init__(self) -> None:
        order = self.graph.topological_order()
        rank = [0] * len(order)
        for position, node in enumerate(order):
            rank[node] = position
        object.__setattr__(self, "topological", tuple(order))
        object.__setattr__(self, "rank", tuple(rank))
        object.__setattr__(self, "retry", tuple(node.retry or NO_RETRY for node in self.nodes))
        object.__setattr__(self, "timed", tuple(i for i, node in enumerate(self.nodes) if node.timeout_seconds))
        conditions = self.conditions
        if len(conditions) != len(self.nodes):
            conditions = tuple(
                compile_condition(node.when, final=node.finally_) if node.when else None for node in self.nodes
            )
            object.__setattr__(self, "conditions", conditions)
        object.__setattr__(self, "conditional", any(condition is not None for condition in conditions))
        object.__setattr__(self, "finals", tuple(i for i, node in enumerate(self.nodes) if node.finally_))
        finals = set(self.finals)
        object.__setattr__(self, "regular", tuple(i for i in range(len(self.nodes)) if i not in finals))
        object.__setattr__(self, "fan_outs", frozenset(i for i, node in enumerate(self.nodes) if node.for_each))

    @property
    def key(self) -> str:
        """What makes this workflow's jitter differ from another's with the same node names."""
        return self.uid or f"{self.namespace or ''}/{self.name}"

    def outcome(self, nodes: Sequence[NodeStatus]) -> tuple[str, list[str]]:
        """What the regular nodes reached, as finally nodes read it (`workflow.status`, `workflow.failedNodes`):
        "Failed" if one failed, or was skipped for a reason other than a condition (a failure upstream, failFast,
        the deadline); else "Succeeded"."""
        failed = [self.graph.names[i] for i in self.regular if nodes[i].phase is NodePhase.FAILED]
        broken = any(nodes[i].phase is NodePhase.SKIPPED and nodes[i].reason not in PASSABLE for i in self.regular)
        return ("Failed" if failed or broken else "Succeeded"), failed

    def outcome_context(self, nodes: Sequence[NodeStatus]) -> dict[str, str]:
        """The outcome as finally nodes' templates render it."""
        status, failed = self.outcome(nodes)
        return {"workflow.status": status, "workflow.failedNodes": json.dumps(failed)}

    def notes(self) -> list[str]:
        """What `dagwright graph` shows beside each node: finally, forEach, its `when`."""
        notes = []
        for node in self.nodes:
            parts = ["finally"] if node.finally_ else []
            fan_out = fanout.note(node.for_each)  # a forEach node is drawn once, with its item count
            if fan_out:
                parts.append(fan_out)
            if node.when:
                parts.append(f"when: {node.when}")
            notes.append("; ".join(parts))
        return notes
