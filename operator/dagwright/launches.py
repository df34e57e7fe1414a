"""Rendering a node's attempt into a `Launch`: its templates filled in, or handed to node-runner.

The planner decides *that* attempt n of a node starts (rule 7 in `planner.py`); this module says *what* starts:
command, args and env with `{{ params.* }}`, `{{ workflow.* }}`, `{{ node.* }}` and upstream outputs
substituted (`templates.render`, never a shell). Outputs that only Redis holds cannot be rendered here (the
operator never reads Redis): such a node's templates travel as `nodeio.Inputs`, for node-runner to render in
the pod, once. Pure like the planner: no clock, no I/O. Called only by `planner.plan`; backends read `Launch`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagwright import nodeio, templates
from dagwright.spec import NodeSpec
from dagwright.status import NodeStatus
from dagwright.workflows import Workflow


@dataclass(frozen=True, slots=True)
class Launch:
    """Start attempt `attempt` of `node`: command, args and env are already rendered.

    Except with `inputs`: the node reads outputs only Redis holds, so node-runner renders its command, args and
    the env variables that read them in the pod (`command` and `args` are then empty, `env` holds the rest).
    """

    node: str
    attempt: int
    spec: NodeSpec
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    timeout_seconds: int | None
    inputs: nodeio.Inputs | None = None
    item: int | None = None  # a forEach node's item (its index); its templates were rendered with its value


class Renderer:
    """Renders the launches of one `plan` call; the workflow-wide part of the template context is built once."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self._base: dict[str, str] | None = None
        self._nodes: dict[int, dict[str, str]] = {}  # each node's context: its items share it
        self._item_texts: dict[int, list[str]] = {}  # each forEach node's `item.KEY` references

    def reads(self, i: int, nodes: Sequence[NodeStatus]) -> tuple[set[str], dict[str, str]]:
        """The upstream nodes whose outputs node i's templates read, and of those, the ones whose outputs only
        Redis holds (node -> Redis key): status does not mirror them (node-runner mirrors all of an attempt's
        outputs or none, so a mirrored object is complete)."""
        sources = output_sources(self.workflow.nodes[i])
        if not sources:
            return sources, {}
        held = {}
        index = self.workflow.graph.index
        for name in sorted(sources):
            upstream = nodes[index[name]]
            if upstream.outputs is None and upstream.outputs_ref is not None:
                held[name] = upstream.outputs_ref
        return sources, held

    def launch(
        self,
        i: int,
        attempt: int,
        nodes: Sequence[NodeStatus],
        sources: set[str],
        held: dict[str, str],
        item: tuple[int, Any] | None = None,
    ) -> Launch:
        """Attempt `attempt` of node i, given `reads(i, nodes)`; `held` outputs are left to node-runner.
        `item`: a forEach item's (index, value), for `{{ item }}` and `{{ node.index }}`."""
        spec = self.workflow.nodes[i]
        context = dict(self._context(i, nodes, sources))
        context["node.attempt"] = str(attempt)
        if item is None:
            return _deferred(spec, attempt, context, held) if held else _rendered(spec, attempt, context)
        texts = self._item_texts.get(i)
        if texts is None:
            texts = self._item_texts[i] = [text for text in _references(spec) if text.startswith("item.")]
        context.update(templates.item_context(item[1], item[0], texts))
        if held:
            return dataclasses.replace(_deferred(spec, attempt, context, held), item=item[0])
        return _rendered(spec, attempt, context, item[0])

    def text(self, i: int, value: str, nodes: Sequence[NodeStatus], sources: set[str]) -> str:
        """`value` rendered in node i's context, without attempt or item (what forEach.fromJSON renders in)."""
        return templates.render(value, self._context(i, nodes, sources))

    def _context(self, i: int, nodes: Sequence[NodeStatus], sources: set[str]) -> dict[str, str]:
        known = self._nodes.get(i)
        if known is not None:
            return known
        workflow = self.workflow
        if self._base is None:
            base = {f"params.{key}": value for key, value in workflow.spec.parameters.items()}
            base["workflow.name"] = workflow.name
            base["workflow.namespace"] = workflow.namespace or ""
            base["workflow.uid"] = workflow.uid or ""
            self._base = base
        context = dict(self._base)
        context["node.name"] = workflow.graph.names[i]
        if workflow.nodes[i].finally_:
            context.update(workflow.outcome_context(nodes))
        for name in sources:  # validation made sure each is upstream
            upstream = nodes[workflow.graph.index[name]]
            context.update(templates.outputs_context(name, upstream.outputs or {}))
            if upstream.items is not None:  # a forEach upstream: a key no item produced is an array of nulls
                missing = json.dumps([None] * upstream.items.total)
                prefix = f"nodes.{name}.outputs."
                for text in _references(workflow.nodes[i]):
                    if text.startswith(prefix) and text not in context:
                        context[text] = missing
        self._nodes[i] = context
        return context


def output_sources(spec: NodeSpec) -> set[str]:
    """The upstream nodes whose outputs `spec`'s templates read."""
    sources: set[str] = set()
    from_json = (spec.for_each.from_json or "",) if spec.for_each is not None else ()
    for value in (*spec.command, *spec.args, *(var.value for var in spec.env), *from_json):
        if "nodes." in value:
            for text in templates.references(value):
                upstream = templates.output_upstream(text)
                if upstream is not None:
                    sources.add(upstream)
    return sources


def _references(spec: NodeSpec) -> list[str]:
    from_json = (spec.for_each.from_json or "",) if spec.for_each is not None else ()
    values = (*spec.command, *spec.args, *(var.value for var in spec.env), *from_json)
    return [text for value in values if "{{" in value for text in templates.references(value)]


def _rendered(spec: NodeSpec, attempt: int, context: dict[str, str], item: int | None = None) -> Launch:
    render = templates.render
    return Launch(
        node=spec.name,
        attempt=attempt,
        spec=spec,
        command=tuple([render(v, context) for v in spec.command]),
        args=tuple([render(v, context) for v in spec.args]),
        env=tuple([(var.name, render(var.value, context)) for var in spec.env]),
        timeout_seconds=spec.timeout_seconds,
        item=item,
    )


def _deferred(spec: NodeSpec, attempt: int, context: dict[str, str], held: dict[str, str]) -> Launch:
    """A Launch whose templates reading `held` outputs node-runner renders; each template is rendered once,
    here or there, never both (a value that itself contains `{{ ... }}` stays literal)."""
    deferred = [var for var in spec.env if _reads(var.value, held)]
    names = {var.name for var in deferred}
    templated = [*spec.command, *spec.args, *(var.value for var in deferred)]
    used = {text for value in templated for text in templates.references(value) if text in context}
    inputs = nodeio.Inputs(
        command=tuple(spec.command),
        args=tuple(spec.args),
        env=tuple([(var.name, var.value) for var in deferred]),
        values=tuple(sorted((text, context[text]) for text in used)),
        outputs=tuple(held.items()),
    )
    return Launch(
        node=spec.name,
        attempt=attempt,
        spec=spec,
        command=(),
        args=(),
        env=tuple([(var.name, templates.render(var.value, context)) for var in spec.env if var.name not in names]),
        timeout_seconds=spec.timeout_seconds,
        inputs=inputs,
    )


def _reads(value: str, held: dict[str, str]) -> bool:
    return any(templates.output_upstream(text) in held for text in templates.references(value))
