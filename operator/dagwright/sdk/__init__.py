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
"""

from dagwright.errors import Problem, SpecError
from dagwright.sdk.builder import Node, Workflow, node
from dagwright.sdk.functions import Function, function
from dagwright.sdk.references import OutputReference, ParameterReference, Reference
from dagwright.sdk.running import ClusterError
from dagwright.spec import (
    Approval,
    Backoff,
    EnvVar,
    NodeDefaults,
    PodMetadata,
    PodTemplate,
    RetryPolicy,
    WorkflowManifest,
)
from dagwright.status import NodePhase, NodeStatus, WorkflowPhase, WorkflowStatus

__all__ = [
    "Approval",
    "Backoff",
    "ClusterError",
    "EnvVar",
    "Function",
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
    "node",
]
