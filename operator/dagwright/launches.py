"""Rendering a node's attempt into a `Launch`: its templates filled in, or handed to node-runner.

The planner decides *that* attempt n of a node starts (rule 7 in `planner.py`); this module says *what* starts:
command, args and env with `{{ params.* }}`, `{{ workflow.* }}`, `{{ node.* }}` and upstream outputs
substituted (`templates.render`, never a shell). Outputs that only Redis holds cannot be rendered here (the
operator never reads Redis): such a node's templates travel as `nodeio.Inputs`, for node-runner to render in
the pod, once. Pure like the planner: no clock, no I/O. Called only by `planner.plan`; backends read `Launch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


class Renderer:
    """Renders the launches of one `plan` call; the workflow-wide part of the template context is built once."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self._base: dict[str, str] | None = None

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
        self, i: int, attempt: int, nodes: Sequence[NodeStatus], sources: set[str], held: dict[str, str]
    ) -> Launch:
        """Attempt `attempt` of node i, given `reads(i, nodes)`; `held` outputs are left to node-runner."""
        spec = self.workflow.nodes[i]
        context = self._context(i, attempt, nodes, sources)
        return _deferred(spec, attempt, context, held) if held else _rendered(spec, attempt, context)

    def _context(self, i: int, attempt: int, nodes: Sequence[NodeStatus], sources: set[str]) -> dict[str, str]:
        workflow = self.workflow
        if self._base is None:
            base = {f"params.{key}": value for key, value in workflow.spec.parameters.items()}
            base["workflow.name"] = workflow.name
            base["workflow.namespace"] = workflow.namespace or ""
            base["workflow.uid"] = workflow.uid or ""
            self._base = base
        context = dict(self._base)
        context["node.name"] = workflow.graph.names[i]
        context["node.attempt"] = str(attempt)
        if workflow.nodes[i].finally_:
            context.update(workflow.outcome_context(nodes))
        for name in sources:  # validation made sure each is upstream
            context.update(templates.outputs_context(name, nodes[workflow.graph.index[name]].outputs or {}))
        return context


def output_sources(spec: NodeSpec) -> set[str]:
    """The upstream nodes whose outputs `spec`'s templates read."""
    sources: set[str] = set()
    for value in (*spec.command, *spec.args, *(var.value for var in spec.env)):
        if "nodes." in value:
            for text in templates.references(value):
                upstream = templates.output_upstream(text)
                if upstream is not None:
                    sources.add(upstream)
    return sources


def _rendered(spec: NodeSpec, attempt: int, context: dict[str, str]) -> Launch:
    render = templates.render
    return Launch(
        node=spec.name,
        attempt=attempt,
        spec=spec,
        command=tuple([render(v, context) for v in spec.command]),
        args=tuple([render(v, context) for v in spec.args]),
        env=tuple([(var.name, render(var.value, context)) for var in spec.env]),
        timeout_seconds=spec.timeout_seconds,
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
