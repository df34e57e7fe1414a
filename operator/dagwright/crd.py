"""The CustomResourceDefinitions (Workflow, CronWorkflow), generated from the pydantic models.

The models are the single source of truth: this module turns their JSON Schema into the structural OpenAPI v3
schema the API server requires (refs inlined, nullable unions collapsed, free-form Kubernetes structures
marked `x-kubernetes-preserve-unknown-fields`). `crds/<plural>.dagwright.io.yaml` is this output, one file
per entry of `KINDS`, and a test fails when a committed file differs from it. Defaults are left out on purpose:
the models apply them, and stored objects stay as small as the user wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from dagwright.cronspec import CronWorkflowSpec, CronWorkflowStatus
from dagwright.spec import WorkflowSpec
from dagwright.status import WorkflowStatus

GROUP = "dagwright.io"
VERSION = "v1alpha1"
PLURAL = "workflows"

_DROPPED = {"title", "default", "description", "propertyNames", "$defs"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One custom resource of the group: its names, models and the columns `kubectl get` prints."""

    kind: str
    plural: str
    short_names: list[str]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: list[dict[str, str]]
    required: list[str] = field(default_factory=lambda: ["spec"])

    @property
    def file_name(self) -> str:
        """Where the generated CRD is committed, under crds/ and charts/dagwright/crds/."""
        return f"{self.plural}.{GROUP}.yaml"


# One entry per kind; `dagwright crd --kind KIND` prints each (default: Workflow).
KINDS = [
    Kind(
        kind="Workflow",
        plural=PLURAL,
        short_names=["dwf"],
        description="A DAG of nodes, each run as a Kubernetes Job by the dagwright operator.",
        spec=WorkflowSpec,
        status=WorkflowStatus,
        printer_columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Message", "type": "string", "jsonPath": ".status.message"},
        ],
    ),
    Kind(
        kind="CronWorkflow",
        plural="cronworkflows",
        short_names=["dwc"],
        description="A Workflow spec started on a cron schedule: one Workflow per scheduled time.",
        spec=CronWorkflowSpec,
        status=CronWorkflowStatus,
        printer_columns=[
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
            {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
            {"name": "Last", "type": "date", "jsonPath": ".status.lastScheduleTime"},
            {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    ),
]
PRINTER_COLUMNS = KINDS[0].printer_columns


def kind_named(name: str) -> Kind:
    """The entry for a kind, by its kind, plural or short name (any case)."""
    for entry in KINDS:
        if name.lower() in (entry.kind.lower(), entry.plural, *entry.short_names):
            return entry
    raise KeyError(name)


def definition(kind: str = "Workflow") -> dict[str, Any]:
    entry = kind_named(kind)
    spec_schema = structural(entry.spec.model_json_schema(by_alias=True, mode="validation"))
    status_schema = structural(entry.status.model_json_schema(by_alias=True, mode="serialization"))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{entry.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": entry.kind,
                "listKind": f"{entry.kind}List",
                "plural": entry.plural,
                "singular": entry.kind.lower(),
                "shortNames": entry.short_names,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": entry.printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": entry.description,
                            "required": entry.required,
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: str = "Workflow") -> str:
    entry = kind_named(kind)
    command = "dagwright crd" + ("" if entry is KINDS[0] else f" --kind {entry.kind}")
    header = f"# Generated from the dagwright models by `{command}`; do not edit by hand.\n"
    return header + yaml.dump(definition(kind), Dumper=_PlainDumper, sort_keys=False, width=120)


class _PlainDumper(yaml.SafeDumper):
    """No `&id` anchors: shared enum lists must print in full, as kubectl users read them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Turn pydantic's JSON Schema into the structural subset Kubernetes accepts."""
    return _convert(schema, schema.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _convert(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        choices = [choice for choice in node["anyOf"] if choice.get("type") != "null"]
        if len(choices) == 1:
            return _convert(choices[0], defs)
        return {"x-kubernetes-preserve-unknown-fields": True}
    if "const" in node:
        return {"type": "string", "enum": [node["const"]]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: _convert(child, defs) for name, child in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "patternProperties":  # constrained map keys: no such keyword in Kubernetes, so a CEL rule
            ((pattern, value_schema),) = value.items()
            out["additionalProperties"] = _convert(value_schema, defs)
            rule = {"rule": f"self.all(k, k.matches('{pattern}'))", "message": f"keys must match {pattern}"}
            out["x-kubernetes-validations"] = [rule]
        elif key == "additionalProperties":
            if value is False:  # extra="forbid": the API server prunes unknown fields, kubectl rejects them
                continue
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out[key] = _convert(value, defs)
        else:
            out[key] = value
    if (not out.get("type") and "enum" not in out) or (
        out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out
