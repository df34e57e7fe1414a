"""A validated workflow as the planner sees it: spec with defaults merged, the graph, and identity.

Built by `validation.compile_spec` once per spec change and reused for every planner call. Identity (name,
namespace, uid) feeds templates and the deterministic backoff jitter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    def __post_init__(self) -> None:
        order = self.graph.topological_order()
        rank = [0] * len(order)
        for position, node in enumerate(order):
            rank[node] = position
        object.__setattr__(self, "topological", tuple(order))
        object.__setattr__(self, "rank", tuple(rank))
        object.__setattr__(self, "retry", tuple(node.retry or NO_RETRY for node in self.nodes))
        object.__setattr__(self, "timed", tuple(i for i, node in enumerate(self.nodes) if node.timeout_seconds))

    @property
    def key(self) -> str:
        """What makes this workflow's jitter differ from another's with the same node names."""
        return self.uid or f"{self.namespace or ''}/{self.name}"
