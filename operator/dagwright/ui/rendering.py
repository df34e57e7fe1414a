"""The command a node's latest attempt ran (or will run), rendered the way the backends render it.

The node panel shows it so a user sees `echo 42` rather than `echo {{ nodes.a.outputs.n }}`. It uses the planner's
own `launches.Renderer`, so it cannot drift from what the Job or process got; only the statuses the templates read
are turned into models, which keeps opening a panel on a 10,000-node workflow cheap. Env values are not shown
(they may hold what a page should not), only the command and args.

A forEach node runs one command per item: its panel shows the command as written (`{{ item }}` left as a
template) and, for the items whose detail is kept (running, retrying, failed: a few), each as it was rendered.
A template-based Workflow is rendered from the template its status copied when it started.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dagwright import fanout
from dagwright.errors import SpecError
from dagwright.launches import Launch, Renderer, output_sources
from dagwright.status import NodeStatus
from dagwright.ui.views import ITEM_DETAIL_MAX
from dagwright.validation import compile_resolved, parse_spec, parse_template_spec
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
            _frozen(_template(body), _template(body)),
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
    if spec.for_each is None:
        return _shown(renderer.launch(index, attempt, nodes, sources, held))
    shown: dict[str, Any] = {"command": list(spec.command), "args": list(spec.args), "inPod": False, "perItem": True}
    items = (stored.get(name) or {}).get("items") or {}
    values = fanout.values(spec.for_each, lambda text: renderer.text(index, text, nodes, sources))
    if isinstance(values, list):
        detail = sorted((items.get("detail") or {}).items(), key=lambda pair: int(pair[0]))[:ITEM_DETAIL_MAX]
        shown["items"] = {
            key: _shown(
                renderer.launch(
                    index, max(1, int(entry.get("attempts") or 1)), nodes, sources, held, (int(key), values[int(key)])
                )
            )
            for key, entry in detail
            if 0 <= int(key) < len(values)
        }
    return shown


def _shown(launch: Launch) -> dict[str, Any]:
    if launch.inputs is not None:
        return {"command": list(launch.inputs.command), "args": list(launch.inputs.args), "inPod": True}
    return {"command": list(launch.command), "args": list(launch.args), "inPod": False}


def _template(body: dict[str, Any]) -> Any:
    """The template snapshot a template-based Workflow runs (None for one with its own nodes)."""
    if not (body.get("spec") or {}).get("templateRef"):
        return None
    return ((body.get("status") or {}).get("template") or {}).get("spec")


class _Frozen(str):
    """The spec as JSON text with the parsed spec beside it: hashable for the cache, parsed only once."""

    value: Any


def _frozen(key: Any, spec: Any) -> _Frozen:
    import json

    text = _Frozen(json.dumps(key, sort_keys=True, separators=(",", ":")) if key is not None else "")
    text.value = spec
    return text


@lru_cache(maxsize=4)
def _compiled(
    name: str, namespace: str | None, uid: str | None, generation: str, spec: _Frozen, template: _Frozen
) -> Workflow:
    snapshot = parse_template_spec(template.value) if template.value is not None else None
    if (spec.value or {}).get("templateRef") and snapshot is None:
        raise SpecError([])  # not started yet: no snapshot to render from
    return compile_resolved(parse_spec(spec.value), snapshot, name=name, namespace=namespace, uid=uid)
