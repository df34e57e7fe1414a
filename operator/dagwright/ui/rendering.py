"""The command a node's latest attempt ran (or will run), rendered the way the backends render it.

The node panel shows it so a user sees `echo 42` rather than `echo {{ nodes.a.outputs.n }}`. It uses the planner's
own `launches.Renderer`, so it cannot drift from what the Job or process got; only the statuses the templates read
are turned into models, which keeps opening a panel on a 10,000-node workflow cheap. Env values are not shown
(they may hold what a page should not), only the command and args.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dagwright.errors import SpecError
from dagwright.launches import Renderer, output_sources
from dagwright.status import NodeStatus
from dagwright.validation import compile_spec, parse_spec
from dagwright.workflows import Workflow


def rendered(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    try:
        workflow = _compiled(
            meta.get("name", ""),
            meta.get("namespace"),
            meta.get("uid"),
            str(generation or ""),
            # In the cluster, uid and generation name the spec: no need to serialize 10,000 nodes per panel.
            _frozen(None if generation and meta.get("uid") else body.get("spec"), body.get("spec")),
        )
    except SpecError:
        return None
    index = workflow.graph.index.get(name)
    if index is None:
        return None
    stored = (body.get("status") or {}).get("nodes") or {}
    spec = workflow.nodes[index]
    wanted = set(workflow.graph.names) if spec.finally_ else output_sources(spec)
    empty = NodeStatus()
    nodes = [
        NodeStatus.model_validate(stored[node]) if node in wanted and node in stored else empty
        for node in workflow.graph.names
    ]
    attempt = max(1, int((stored.get(name) or {}).get("attempts") or 1))
    renderer = Renderer(workflow)
    sources, held = renderer.reads(index, nodes)
    launch = renderer.launch(index, attempt, nodes, sources, held)
    if launch.inputs is not None:
        return {"command": list(launch.inputs.command), "args": list(launch.inputs.args), "inPod": True}
    return {"command": list(launch.command), "args": list(launch.args), "inPod": False}


class _Frozen(str):
    """The spec as JSON text with the parsed spec beside it: hashable for the cache, parsed only once."""

    value: Any


def _frozen(key: Any, spec: Any) -> _Frozen:
    import json

    text = _Frozen(json.dumps(key, sort_keys=True, separators=(",", ":")) if key is not None else "")
    text.value = spec
    return text


@lru_cache(maxsize=4)
def _compiled(name: str, namespace: str | None, uid: str | None, generation: str, spec: _Frozen) -> Workflow:
    return compile_spec(parse_spec(spec.value), name=name, namespace=namespace, uid=uid)
