"""Write workflows in Python: a typed builder over the manifest's own models (`docs/python.md`).

    from dagwright.sdk import Workflow, node

    with Workflow("etl", parameters={"date": "2026-11-29"}) as wf:
        extract = node("extract", image="python:3.12-slim", command=["python", "-c", "..."])
        load = node("load", image="python:3.12-slim", command=["python", "-c", "..."])
        extract >> load
    wf.to_yaml()   # the manifest `kubectl apply` takes
    wf.run()       # on this machine, as `dagwright run` does; returns the final WorkflowStatus

The top layer beside the CLI: it builds the same `WorkflowManifest` a YAML file gives, checks it with
`dagwright.validation`, runs it with `dagwright.local` and submits it through `dagwright.k8s.commands` (both
imported only when `run()` or `submit()` is called). `dagwright.sdk.call` is what a `@function` node runs.

Names are loaded when first used: a function node imports its module, which imports `function` from here, and
then `dagwright.sdk.call` runs it; neither needs the models, validation or pydantic to start (about a second on
a busy machine; tests/unit/test_imports.py keeps it so).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagwright.errors import Problem, SpecError
    from dagwright.sdk.builder import Node, Workflow, node
    from dagwright.sdk.functions import Function, function
    from dagwright.sdk.references import ItemReference, OutputReference, ParameterReference, Reference, item, node_index
    from dagwright.sdk.running import ClusterError
    from dagwright.spec import (
        Approval,
        Backoff,
        EnvVar,
        ForEach,
        NodeDefaults,
        PodMetadata,
        PodTemplate,
        RetryPolicy,
        WorkflowManifest,
    )
    from dagwright.status import NodePhase, NodeStatus, WorkflowPhase, WorkflowStatus

_MODULES = {
    "dagwright.errors": ("Problem", "SpecError"),
    "dagwright.sdk.builder": ("Node", "Workflow", "node"),
    "dagwright.sdk.functions": ("Function", "function"),
    "dagwright.sdk.references": (
        "ItemReference",
        "OutputReference",
        "ParameterReference",
        "Reference",
        "item",
        "node_index",
    ),
    "dagwright.sdk.running": ("ClusterError",),
    "dagwright.spec": (
        "Approval",
        "Backoff",
        "EnvVar",
        "ForEach",
        "NodeDefaults",
        "PodMetadata",
        "PodTemplate",
        "RetryPolicy",
        "WorkflowManifest",
    ),
    "dagwright.status": ("NodePhase", "NodeStatus", "WorkflowPhase", "WorkflowStatus"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dagwright.sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "Approval",
    "Backoff",
    "ClusterError",
    "EnvVar",
    "ForEach",
    "Function",
    "ItemReference",
    "Node",
    "NodeDefaults",
    "NodePhase",
    "NodeStatus",
    "OutputReference",
    "ParameterReference",
    "PodMetadata",
    "PodTemplate",
    "Problem",
    "Reference",
    "RetryPolicy",
    "SpecError",
    "Workflow",
    "WorkflowManifest",
    "WorkflowPhase",
    "WorkflowStatus",
    "function",
    "item",
    "node",
    "node_index",
]
