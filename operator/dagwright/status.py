"""The Workflow status: what dagwright reports back, in the cluster and from `dagwright run --output json`.

Only the planner writes these values; backends persist them (a status patch, a state file). The shape follows
the Kubernetes API conventions: a `phase` for `kubectl get`, `conditions` with CamelCase reasons, and
`observedGeneration`. `progress` is "succeeded/total", the idea Argo users know.

Node status is keyed by node name. `attempts` only ever grows, so every attempt has a unique number (Jobs are
named after it); `retryBudgetFrom` is the attempt number where the current retry budget began, which is how a
retried workflow gets a fresh budget without reusing attempt numbers.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer, model_validator

from dagwright.spec import Model


class WorkflowPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        return self in _FINISHED_WORKFLOW


class NodePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    AWAITING_APPROVAL = "AwaitingApproval"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        return self in _FINISHED_NODE


_FINISHED_WORKFLOW = frozenset({WorkflowPhase.SUCCEEDED, WorkflowPhase.FAILED, WorkflowPhase.STOPPED})
_FINISHED_NODE = frozenset({NodePhase.SUCCEEDED, NodePhase.FAILED, NodePhase.SKIPPED, NodePhase.STOPPED})


class ItemStatus(Model):
    """One forEach item's attempt detail, kept only while it matters: running, retrying, failed or stopped
    (its attempt numbers must never be reused), or waiting to run again after a retry of the workflow."""

    attempts: Annotated[int, Field(ge=0)] = 0
    retry_budget_from: Annotated[int, Field(ge=1)] = 1
    attempt_started_at: datetime | None = None
    next_attempt_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None


class ItemsStatus(Model):
    """A forEach node's items, stored compactly so 10,000 of them fit in a Workflow object: one character per
    item in `states` (P pending, R running, B retrying after a backoff, S succeeded, F failed, X not run), the
    detail of the few that need more (`detail`, by index), and each item's outputs while the node runs
    (`outputs`, in item order; gathered into the node's `outputs` as one array per key once it ends)."""

    total: Annotated[int, Field(ge=0)] = 0
    states: str = ""
    detail: dict[str, ItemStatus] = {}
    outputs: list[dict[str, Any] | None] | None = None


class NodeStatus(Model):
    """One node's state under `status.nodes.<name>`; `attempts` counts launches and only ever grows.
    `attemptStartedAt` is left out while it equals `startedAt` (the first attempt), `retryBudgetFrom` while 1."""

    phase: NodePhase = NodePhase.PENDING
    attempts: Annotated[int, Field(ge=0)] = 0
    retry_budget_from: Annotated[int, Field(ge=1)] = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt_started_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    next_attempt_at: datetime | None = None
    progress: str | None = None
    outputs: dict[str, Any] | None = None
    # The Redis key of outputs node-runner stored; without `outputs` beside it they were too large to mirror here,
    # and nodes reading them need nodeRunner (node-runner renders their templates in the pod).
    outputs_ref: str | None = None
    # forEach nodes only, once expanded: their items' states (`progress` is "succeeded/total" of them).
    items: ItemsStatus | None = None

    @model_validator(mode="before")
    @classmethod
    def _attempt_started_at_from_started_at(cls, data: Any) -> Any:
        """The wire leaves out `attemptStartedAt` when it equals `startedAt` (`_wire`): a node that has launched
        an attempt and records no attempt start of its own started that attempt when the node started."""
        if not isinstance(data, dict) or "attemptStartedAt" in data or "attempt_started_at" in data:
            return data
        started = data.get("startedAt", data.get("started_at"))
        launched = (data.get("attempts") or 0) >= 1
        return {**data, "attemptStartedAt": started} if started is not None and launched else data

    # No return annotation, on purpose: pydantic then keeps the model's own schema for the CRD (an annotated
    # wrap serializer would make `status.nodes.<name>` an untyped object).
    @model_serializer(mode="wrap")
    def _wire(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):  # type: ignore[no-untyped-def]
        """On the wire, leave out what a reader can tell without it: `retryBudgetFrom` at its default (the
        workflow was never retried) and `attemptStartedAt` when it is `startedAt` (the node's first attempt).
        Why: the API server's CPU per status PATCH follows the number of fields in the object (it decodes,
        checks and re-encodes each), and these are two of a finished node's seven (bench/apiserver_status_patch.py:
        ~62 -> ~51 ms per patch of a 50-node workflow, when managedFields still listed each field again)."""
        data: dict[str, Any] = handler(self)
        if not info.mode_is_json():
            return data
        if self.retry_budget_from == 1:
            data.pop("retryBudgetFrom", None)
            data.pop("retry_budget_from", None)
        if self.attempt_started_at is not None and self.attempt_started_at == self.started_at:
            data.pop("attemptStartedAt", None)
            data.pop("attempt_started_at", None)
        return data


class Condition(Model):
    """Kubernetes-style conditions: `Succeeded` (True, False or Unknown while running) and `Paused`."""

    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class TemplateSnapshot(Model):
    """The WorkflowTemplate a template-based Workflow runs, copied when the Workflow started: an edit (or the
    deletion) of the template later does not change a run that has begun."""

    name: str
    resource_version: str | None = None
    spec: dict[str, Any]


class WorkflowStatus(Model):
    """Written only by dagwright: what `kubectl get workflow -o yaml` and `dagwright run --output json` show."""

    phase: WorkflowPhase = WorkflowPhase.PENDING
    progress: str = ""
    percent: Annotated[int, Field(ge=0, le=100)] | None = (
        None  # finer than progress: counts running nodes' own progress
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str = ""
    conditions: list[Condition] = []
    observed_generation: int | None = None
    retry_token: str = ""
    # Atomic for the API server's field manager: it records the whole map as one field the operator owns,
    # instead of every field of every node again in metadata.managedFields. Merge patches still write one
    # node at a time; only server-side apply would treat the map whole, and only the operator writes it.
    # A status patch of a 50-node workflow costs the API server ~28 ms of CPU instead of ~43
    # (bench/apiserver_status_patch.py).
    nodes: Annotated[dict[str, NodeStatus], Field(json_schema_extra={"x-kubernetes-map-type": "atomic"})] = {}
    template: TemplateSnapshot | None = None
    # Large workflows only (the operator's storage form; see dagwright.k8s.statuswire): gzip+base64 of `nodes`.
    compressed_nodes: str | None = None


def to_wire(status: WorkflowStatus) -> dict[str, Any]:
    """The JSON-ready status as stored in the cluster: camelCase, unset optional fields left out."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
