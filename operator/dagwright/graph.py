"""The DAG behind a workflow: nodes by index, their edges, cycle detection, and text renderings.

Built once per spec and reused by every planner call, so the planner itself does no graph work beyond a linear
pass. Indexes follow declaration order, which is also the order ready nodes launch in.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Graph:
    names: tuple[str, ...]
    index: dict[str, int]
    upstream: tuple[tuple[int, ...], ...]
    downstream: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, names: Sequence[str], depends_on: Sequence[Sequence[str]]) -> Graph:
        """Edges by index; unknown names must have been rejected before (see validation)."""
        index = {name: i for i, name in enumerate(names)}
        upstream = tuple(tuple(dict.fromkeys(index[dep] for dep in deps)) for deps in depends_on)
        downstream: list[list[int]] = [[] for _ in names]
        for child, parents in enumerate(upstream):
            for parent in parents:
                downstream[parent].append(child)
        return cls(tuple(names), index, upstream, tuple(tuple(d) for d in downstream))

    def find_cycle(self) -> list[str] | None:
        """One cycle as a closed path of names (`a, b, c, a`), or None for a DAG.

        Iterative depth-first search: a 10,000-node chain must not hit Python's recursion limit.
        """
        white, grey, black = 0, 1, 2
        color = [white] * len(self.names)
        parent = [-1] * len(self.names)
        for root in range(len(self.names)):
            if color[root] != white:
                continue
            stack = [(root, iter(self.downstream[root]))]
            color[root] = grey
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    color[node] = black
                    stack.pop()
                elif color[child] == white:
                    color[child] = grey
                    parent[child] = node
                    stack.append((child, iter(self.downstream[child])))
                elif color[child] == grey:
                    return self._cycle_path(node, child, parent)
        return None

    def _cycle_path(self, last: int, first: int, parent: list[int]) -> list[str]:
        path = [last]
        while path[-1] != first:
            path.append(parent[path[-1]])
        path.reverse()
        return [self.names[i] for i in path] + [self.names[first]]

    def ancestors(self, node: int) -> set[int]:
        seen: set[int] = set()
        stack = list(self.upstream[node])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.upstream[current])
        return seen

    def levels(self) -> list[int]:
        """Each node's depth: 0 for roots, else 1 + the deepest upstream node. Needs an acyclic graph."""
        depth = [0] * len(self.names)
        for node in self.topological_order():
            for child in self.downstream[node]:
                depth[child] = max(depth[child], depth[node] + 1)
        return depth

    def topological_order(self) -> list[int]:
        pending = [len(parents) for parents in self.upstream]
        ready = [i for i, count in enumerate(pending) if count == 0]
        order: list[int] = []
        while ready:
            node = ready.pop()
            order.append(node)
            for child in self.downstream[node]:
                pending[child] -= 1
                if pending[child] == 0:
                    ready.append(child)
        return order


def render_text(graph: Graph, notes: Sequence[str] = (), last: Collection[int] = ()) -> str:
    """One line per node, grouped by depth, with its dependencies and its note (`notes[i]`, e.g. its `when`):
    readable for DAGs of any width. The `last` nodes (finally nodes) come after the others, in a group of
    their own, since they run after all of them."""
    depth = graph.levels()
    lines: list[str] = []
    buckets: dict[tuple[bool, int], list[int]] = {}
    for i, level in enumerate(depth):
        buckets.setdefault((i in last, level), []).append(i)
    for final, level in sorted(buckets):
        lines.append(f"finally, level {level}:" if final else f"level {level}:")
        for i in buckets[(final, level)]:
            name = graph.names[i]
            parents = ", ".join(graph.names[p] for p in graph.upstream[i])
            note = notes[i] if i < len(notes) else ""
            lines.append(f"  {name}" + (f"  <- {parents}" if parents else "") + (f"  [{note}]" if note else ""))
    return "\n".join(lines)


def render_mermaid(graph: Graph, notes: Sequence[str] = ()) -> str:
    lines = ["flowchart TD"]
    for i, name in enumerate(graph.names):
        note = notes[i] if i < len(notes) else ""
        label = f'"{name}<br/>{_mermaid_text(note)}"' if note else name
        lines.append(f"  {_mermaid_id(name)}[{label}]")
        for parent in graph.upstream[i]:
            lines.append(f"  {_mermaid_id(graph.names[parent])} --> {_mermaid_id(name)}")
    return "\n".join(lines)


def _mermaid_id(name: str) -> str:
    # Mermaid ids cannot contain '-'; node names are RFC 1123 labels, so '_' cannot collide.
    return "n_" + name.replace("-", "_")


def _mermaid_text(text: str) -> str:
    """A note inside a quoted Mermaid label: quotes and angle brackets as entities, so a `when` cannot end it."""
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
