"""What the web UI sends the browser, made from a Workflow object as stored (spec + status with `nodes` expanded).

Pure functions, called by `server.py` for either source (cluster or local run). The browser lays the DAG out once
per spec (`graph`, keyed by `spec_key`), then only hears the node entries that changed (`changes` of two
`compact_nodes` maps): a 10,000-node workflow where 100 nodes change a second sends those 100 small entries,
never the whole object. The node panel asks for one node's whole story on its own (`node_detail`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from dagwright import eta

# What the DAG and the timeline need of a node, streamed on every change; the rest is fetched with the panel.
COMPACT_FIELDS = ("phase", "attempts", "startedAt", "finishedAt", "attemptStartedAt", "progress", "reason")
CRON_LABEL = "dagwright.io/cron-workflow"
# Items whose detail the node panel lists (running, retrying, failed): a few; the rest are one letter each.
ITEM_DETAIL_MAX = 200


def run_spec(body: dict[str, Any]) -> dict[str, Any]:
    """The spec whose nodes a Workflow runs: its own, or, for a template-based one (`spec.templateRef`), the
    template's as the operator copied it when the run started (`status.template.spec`; empty until then)."""
    spec: dict[str, Any] = body.get("spec") or {}
    if spec.get("templateRef"):
        snapshot: dict[str, Any] = ((body.get("status") or {}).get("template") or {}).get("spec") or {}
        return snapshot
    return spec


def spec_nodes(body: dict[str, Any]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = run_spec(body).get("nodes") or []
    return nodes


def status_nodes(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = (body.get("status") or {}).get("nodes") or {}
    return nodes


def summary(body: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """One row of the workflow list."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    nodes = status_nodes(body)
    total = len(spec_nodes(body))
    done = sum(1 for node in nodes.values() if node.get("phase") == "Succeeded")
    labels = meta.get("labels") or {}
    template = (spec.get("templateRef") or {}).get("name") or ""
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "phase": status.get("phase") or "Pending",
        "progress": status.get("progress") or f"{done}/{total}",
        "percent": status.get("percent"),
        "done": done,
        "total": total,
        "created": meta.get("creationTimestamp"),
        "labels": labels,
        "template": template,
        "cron": labels.get(CRON_LABEL, ""),
        "message": (status.get("message") or "")[:200],
        "paused": bool(spec.get("paused")),
        "eta": _eta(body, now),
    }


def head(body: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The workflow-level part of the stream: phase, progress, message, ETA, and what the actions depend on."""
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    row = summary(body, now)
    return {
        **row,
        "message": status.get("message") or "",
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "stopped": bool(spec.get("stopped")),
        "specKey": spec_key(body),
    }


def spec_key(body: dict[str, Any]) -> str:
    """Changes when the graph would: node names and dependencies (not a pause or an approval).

    Asked on every read of every stream; hashing 10,000 nodes each time is avoidable, so the key is remembered for
    the spec's uid and generation (the cluster's names for one version of a spec) or for the very list object (a
    local run's spec), whichever there is."""
    meta = body.get("metadata") or {}
    nodes = spec_nodes(body)
    # A template-based run's nodes appear once the snapshot is taken: the generation alone would not say so.
    version = (meta.get("uid"), meta.get("generation"), bool(nodes))
    remembered = _last_key.get("key")
    if remembered is not None and (
        _last_key.get("nodes") is nodes or (all(version) and _last_key["version"] == version)
    ):
        return str(remembered)
    shape = [
        (node.get("name"), node.get("dependsOn") or [], bool(node.get("finally")), bool(node.get("forEach")))
        for node in nodes
    ]
    key = hashlib.sha256(json.dumps(shape, separators=(",", ":")).encode()).hexdigest()[:16]
    _last_key.update(nodes=nodes, version=version, key=key)
    return key


_last_key: dict[str, Any] = {}


def graph(body: dict[str, Any]) -> dict[str, Any]:
    """The DAG to lay out: each node with its dependencies and what marks it (approval, finally, when)."""
    nodes = []
    for node in spec_nodes(body):
        entry: dict[str, Any] = {"name": node.get("name", ""), "deps": node.get("dependsOn") or []}
        if node.get("approval") is not None:
            entry["approval"] = True
        if node.get("finally"):
            entry["finally"] = True
        if node.get("when"):
            entry["when"] = node["when"]
        if node.get("forEach"):  # drawn once, badged with its `progress` (succeeded/total); items open in the panel
            items = node["forEach"].get("items")
            entry["forEach"] = len(items) if isinstance(items, list) else True
        nodes.append(entry)
    return {"key": spec_key(body), "nodes": nodes}


def compact_nodes(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {key: node[key] for key in COMPACT_FIELDS if node.get(key) is not None}
        for name, node in status_nodes(body).items()
    }


def changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The entries of `after` that differ from `before` (a node that lost its entry, after a retry, reads {})."""
    changed = {name: node for name, node in after.items() if before.get(name) != node}
    changed.update({name: {} for name in before if name not in after})
    return changed


def node_detail(body: dict[str, Any], name: str, command: dict[str, Any] | None) -> dict[str, Any] | None:
    """Everything the node panel shows: its status entry whole, what the spec says it runs, and the command as
    rendered for its latest attempt (`command`, from the source), or None when the spec has no such node."""
    spec = next((node for node in spec_nodes(body) if node.get("name") == name), None)
    if spec is None:
        return None
    status = dict(status_nodes(body).get(name) or {"phase": "Pending", "attempts": 0})
    items = status.pop("items", None)
    keys = ("image", "command", "args", "dependsOn", "timeoutSeconds", "retry", "approval", "when", "forEach")
    detail: dict[str, Any] = {
        "name": name,
        "status": status,
        "spec": {key: spec[key] for key in keys if spec.get(key) not in (None, [], {})}
        | ({"env": [var.get("name") for var in spec.get("env") or []]} if spec.get("env") else {}),
        "rendered": command,
    }
    if spec.get("forEach"):
        detail["items"] = item_states(items)
        if isinstance(detail["spec"]["forEach"].get("items"), list):  # 10,000 values are the manifest's, not news
            detail["spec"]["forEach"] = {**spec["forEach"], "items": len(spec["forEach"]["items"])}
    return detail


def item_states(items: dict[str, Any] | None) -> dict[str, Any]:
    """A forEach node's items for the panel: the one-letter-per-item `states` as stored (5,000 items: 5 kB) and the
    detail of the running, retrying and failed ones (at most ITEM_DETAIL_MAX, the lowest indices first); the items'
    outputs are left out (the node's gathered `outputs` show them once it ends)."""
    if not items:
        return {"total": 0, "states": "", "detail": {}}
    detail = items.get("detail") or {}
    shown = sorted(detail, key=lambda key: int(key) if str(key).isdigit() else 0)[:ITEM_DETAIL_MAX]
    return {
        "total": items.get("total") or len(items.get("states") or ""),
        "states": items.get("states") or "",
        "detail": {key: detail[key] for key in shown},
        "more": max(0, len(detail) - len(shown)),
    }


def _eta(body: dict[str, Any], now: datetime | None) -> float | None:
    status = body.get("status") or {}
    if status.get("phase") not in ("Running", "Paused"):
        return None
    return eta.estimate(status_nodes(body).values(), len(spec_nodes(body)), now or datetime.now(UTC))
