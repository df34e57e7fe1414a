"""The Workflow spec: what a user writes in a manifest.

These pydantic models are the single source of truth for the manifest's shape: the local runner validates
with them, the operator parses cluster objects with them, and `crd.py` generates the CRD's OpenAPI schema
from them. Field names (camelCase in YAML) are part of the public contract. Bounds live here too, so the API
server rejects absurd values with the same limits the local runner enforces.

Defaults from `spec.defaults` are merged into nodes in one place: `WorkflowSpec.resolved_nodes()`.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

API_VERSION = "dagwright.io/v1alpha1"
KIND = "Workflow"
TEMPLATE_KIND = "WorkflowTemplate"

# RFC 1123 label: Kubernetes uses node names in Job names and labels, so the local runner enforces the same.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
PARAM_NAME = r"^[a-zA-Z_][a-zA-Z0-9_-]*$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"  # a Kubernetes object name

MAX_NODES = 10_000
MAX_ITEMS = 10_000  # items of one forEach node: each is a unit of work like a node, so the same cap
MAX_STRING = 32_768  # one arg or env value; etcd keeps whole objects under ~1.5 MiB
MAX_LIST = 256  # command, args, env entries
MAX_SECONDS = 31_536_000  # one year: anything longer is a typo, not a plan
MAX_CONDITION = 4096  # one `when` expression: a condition, not a program
TRANSIENT_EXIT_CODE = 75  # EX_TEMPFAIL from sysexits.h

NodeName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
Text = Annotated[str, Field(max_length=MAX_STRING)]
ShortText = Annotated[str, Field(max_length=1024)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[int, Field(ge=1, le=MAX_SECONDS)]
StringMap = dict[Annotated[str, Field(max_length=253)], Annotated[str, Field(max_length=MAX_STRING)]]


class Model(BaseModel):
    """Base for every manifest model: camelCase on the wire, unknown fields are errors, values immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        serialize_by_alias=True,
    )


class Backoff(Model):
    """Exponential backoff between attempts: initial * factor^(retry-1), capped, then jittered."""

    initial_seconds: Seconds = 1.0
    factor: Annotated[float, Field(ge=1, le=100)] = 2.0
    max_seconds: Seconds = 300.0
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.1


def _keep_renamed_keys(schema: dict[str, Any]) -> None:
    """Declare the renamed keys in the CRD (as anything), so the API server keeps them instead of pruning them
    silently, and the operator and its webhook can say what they were renamed to (`validation.py`)."""
    for key in RENAMED_RETRY_KEYS:
        schema["properties"][key] = {"x-kubernetes-preserve-unknown-fields": True}


# Keys of `retry` that were renamed, as a manifest may still spell them -> their new name. `on` became `policy`
# because YAML 1.1 (kubectl's parser) reads a bare `on:` key as the boolean true (sent to the API as "true").
RENAMED_RETRY_KEYS = {"on": "policy", "true": "policy"}


class RetryPolicy(Model):
    """How a node is retried after a failed attempt. `policy: Transient` retries only transient failures."""

    model_config = ConfigDict(json_schema_extra=_keep_renamed_keys)

    limit: Annotated[int, Field(ge=0, le=1000)] = 0
    backoff: Backoff = Backoff()
    policy: Literal["AnyFailure", "Transient"] = "AnyFailure"
    transient_exit_codes: Annotated[list[Annotated[int, Field(ge=1, le=255)]], Field(max_length=255)] = [
        TRANSIENT_EXIT_CODE
    ]


class EnvVar(Model):
    """An environment variable of a node's command; `value` may use templates."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=ENV_NAME)]
    value: Text = ""


class PodMetadata(Model):
    """Labels and annotations added to a node's pods (operator only)."""

    labels: StringMap = {}
    annotations: StringMap = {}


class PodTemplate(Model):
    """Pod settings applied to every node's Job (operator only; the local runner ignores them).

    Kubernetes' own structures (tolerations, resources, securityContext) are passed through as given: the API
    server validates them when the Job is created.
    """

    metadata: PodMetadata = PodMetadata()
    service_account_name: Annotated[str | None, Field(max_length=253)] = None
    node_selector: StringMap = {}
    tolerations: Annotated[list[dict[str, Any]], Field(max_length=MAX_LIST)] = []
    image_pull_secrets: Annotated[list[dict[str, Any]], Field(max_length=MAX_LIST)] = []
    priority_class_name: Annotated[str | None, Field(max_length=253)] = None
    resources: dict[str, Any] | None = None
    security_context: dict[str, Any] | None = None
    container_security_context: dict[str, Any] | None = None


class Approval(Model):
    """Marks a node that runs nothing and waits for a person's approve or reject."""

    message: ShortText = ""


class ApprovalDecision(Model):
    """A person's answer for an approval node, written by `dagwright approve|reject`."""

    approved: bool
    message: ShortText = ""


class ForEach(Model):
    """Fan-out: the node runs once per item (`{{ item }}`, `{{ item.KEY }}`, `{{ node.index }}` in its templates),
    each item with its own attempts, retries, timeout and Job. Exactly one of `items` (a literal list) and
    `fromJSON` (a template that renders to a JSON array, e.g. an upstream's output or a parameter) is given.
    Downstream, `{{ nodes.NAME.outputs.KEY }}` is the JSON array of every item's KEY, in item order."""

    items: Annotated[list[Any], Field(max_length=MAX_ITEMS)] | None = None
    from_json: Annotated[str | None, Field(alias="fromJSON", min_length=1, max_length=MAX_STRING)] = None
    max_parallel: Annotated[int, Field(ge=1, le=MAX_ITEMS)] | None = None


class NodeDefaults(Model):
    """Merged into every node: a node's own value wins, env lists are merged by name."""

    image: Annotated[str | None, Field(max_length=1024)] = None
    retry: RetryPolicy | None = None
    timeout_seconds: PositiveSeconds | None = None
    env: Annotated[list[EnvVar], Field(max_length=MAX_LIST)] = []
    node_runner: bool | None = None


class NodeSpec(Model):
    """One step of the DAG. On a cluster each attempt is one Job; locally, one process group."""

    name: NodeName
    image: Annotated[str | None, Field(max_length=1024)] = None
    command: Annotated[list[Text], Field(max_length=MAX_LIST)] = []
    args: Annotated[list[Text], Field(max_length=MAX_LIST)] = []
    env: Annotated[list[EnvVar], Field(max_length=MAX_LIST)] = []
    depends_on: Annotated[list[NodeName], Field(max_length=MAX_NODES)] = []
    timeout_seconds: PositiveSeconds | None = None
    retry: RetryPolicy | None = None
    pod_metadata: PodMetadata | None = None
    resources: dict[str, Any] | None = None
    approval: Approval | None = None
    # A CEL expression (`conditions.py`): false skips the node (reason ConditionFalse) instead of running it.
    when: Annotated[str, Field(min_length=1, max_length=MAX_CONDITION)] | None = None
    for_each: ForEach | None = None
    # Wrap the command in dagwright-node-runner (the image must contain it): progress and outputs via Redis.
    node_runner: bool | None = None
    # Runs once every regular node has ended, whatever happened (cleanup, notify); `finally` is a Python keyword.
    finally_: Annotated[bool, Field(alias="finally")] = False


class TemplateRef(Model):
    """Runs a WorkflowTemplate of the same namespace: its nodes, with this Workflow's parameters as overrides."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]


# What a template-based Workflow may not set: what runs is its template's (the rest are parameters and run controls).
TEMPLATE_OWNED = ("nodes", "defaults", "pod_template", "fail_fast")


def _template_ref_rules(schema: dict[str, Any]) -> None:
    """The rules `required` cannot say, for the API server (CEL, naming the field): nodes or a templateRef, and
    with templateRef nothing that says what runs. `reuse.shape_problems` is the same rule for everyone else."""
    rules = [{"rule": "has(self.nodes) || has(self.templateRef)", "message": "required unless templateRef is set"}]
    rules[0]["fieldPath"] = ".nodes"
    for name in TEMPLATE_OWNED:
        alias = to_camel(name)
        rule = {"rule": f"!has(self.templateRef) || !has(self.{alias})", "fieldPath": f".{alias}"}
        rules.append({**rule, "message": "not allowed with templateRef: the template says what runs"})
    schema["x-kubernetes-validations"] = rules


class WorkflowSpec(Model):
    """What a user writes under `spec:`: `nodes`, or a `templateRef` plus parameters and run controls."""

    model_config = ConfigDict(json_schema_extra=_template_ref_rules)

    parameters: Annotated[
        dict[Annotated[str, Field(max_length=63, pattern=PARAM_NAME)], Text], Field(max_length=MAX_LIST)
    ] = {}
    parallelism: Annotated[int, Field(ge=1, le=MAX_NODES)] | None = None
    paused: bool = False
    pause_mode: Literal["Wait", "Suspend"] = "Wait"
    stopped: bool = False
    fail_fast: bool = True
    active_deadline_seconds: PositiveSeconds | None = None
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=MAX_SECONDS)] | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    retry_token: Annotated[str, Field(max_length=63)] = ""
    approvals: Annotated[dict[Annotated[str, Field(max_length=63)], ApprovalDecision], Field(max_length=MAX_NODES)] = {}
    defaults: NodeDefaults = NodeDefaults()
    pod_template: PodTemplate | None = None
    # Required unless templateRef is set (validation.py says so, naming the field): the default is never stored.
    nodes: Annotated[list[NodeSpec], Field(min_length=1, max_length=MAX_NODES)] = []
    template_ref: TemplateRef | None = None

    def resolved_nodes(self) -> list[NodeSpec]:
        """Nodes with `defaults` merged in: the only place defaults are applied."""
        return [_merge_defaults(node, self.defaults) for node in self.nodes]


class ObjectMeta(Model):
    """The part of Kubernetes metadata dagwright reads; the rest is kept by the API server, not by us."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1, max_length=253)]
    generate_name: Annotated[str, Field(max_length=253)] | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    creation_timestamp: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _generated_name(cls, data: Any) -> Any:
        """`generateName` without `name`: a name made as the API server makes one (prefix + 5 characters), so
        `dagwright run` of a manifest written for `kubectl create` works too."""
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("generateName"), str):
            suffix = "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            return {**data, "name": data["generateName"] + suffix}
        return data


class WorkflowManifest(Model):
    """A whole Workflow object as a user writes it (status, if present, is read separately)."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["dagwright.io/v1alpha1"]
    kind: Literal["Workflow"]
    metadata: ObjectMeta
    spec: WorkflowSpec


class WorkflowTemplateManifest(Model):
    """A whole WorkflowTemplate object: a Workflow spec kept to be run by name (`spec.templateRef`)."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["dagwright.io/v1alpha1"]
    kind: Literal["WorkflowTemplate"]
    metadata: ObjectMeta
    spec: WorkflowSpec


def _merge_defaults(node: NodeSpec, defaults: NodeDefaults) -> NodeSpec:
    updates: dict[str, Any] = {}
    if node.image is None and defaults.image is not None and node.approval is None:  # approval nodes run nothing
        updates["image"] = defaults.image
    if node.retry is None and defaults.retry is not None:
        updates["retry"] = defaults.retry
    if node.timeout_seconds is None and defaults.timeout_seconds is not None:
        updates["timeout_seconds"] = defaults.timeout_seconds
    if node.node_runner is None and defaults.node_runner is not None and node.approval is None:
        updates["node_runner"] = defaults.node_runner
    if defaults.env:
        own = {var.name for var in node.env}
        updates["env"] = [var for var in defaults.env if var.name not in own] + list(node.env)
    return node.model_copy(update=updates) if updates else node
