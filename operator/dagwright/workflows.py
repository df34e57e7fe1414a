"""A validated workflow as the planner sees it: spec with defaults merged, the graph, and identity.

Built by `validation.compile_spec` once per spec change and reused for every planner call. Identity (name,
namespace, uid) feeds templates and the deterministic backoff jitter; `conditions` holds each node's compiled
`when` (compiled by validation, and cached by text in `conditions.compile_condition`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagwright.conditions import Condition, compile_condition
from dagwright.graph import Graph
from dagwright.spec import NodeSpec, RetryPolicy, WorkflowSpec

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
            conditions = tuple(compile_condition(node.when) if node.when else None for node in self.nodes)
            object.__setattr__(self, "conditions", conditions)
        object.__setattr__(self, "conditional", any(condition is not None for condition in conditions))

    @property
    def key(self) -> str:
        """What makes this workflow's jitter differ from another's with the same node names."""
        return self.uid or f"{self.namespace or ''}/{self.name}"
