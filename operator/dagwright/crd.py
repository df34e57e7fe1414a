"""The CustomResourceDefinitions (Workflow, WorkflowTemplate, CronWorkflow), generated from the pydantic models.

The models are the single source of truth: this module turns their JSON Schema into the structural OpenAPI v3
schema the API server requires (refs inlined, nullable unions collapsed, free-form Kubernetes structures
marked `x-kubernetes-preserve-unknown-fields`). `crds/<plural>.dagwright.io.yaml` is this output for each
entry of `KINDS`, and a test fails when a committed file differs from it. Defaults are left out on purpose:
the models apply them, and stored objects stay as small as the user wrote them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One CustomResourceDefinition dagwright installs; `KINDS` lists them, one entry per kind."""

    kind: str
    plural: str
    short_name: str
    description: str
    spec: Callable[[], dict[str, Any]]
    status: Callable[[], dict[str, Any]] | None = None
    printer_columns: list[dict[str, str]]

    @property
    def file_name(self) -> str:
        """Its file under crds/ and charts/dagwright/crds/."""
        return f"{self.plural}.{GROUP}.yaml"


def _column(name: str, json_path: str, type_: str = "string") -> dict[str, str]:
    return {"name": name, "type": type_, "jsonPath": json_path}


PRINTER_COLUMNS = [
    _column("Phase", ".status.phase"),
    _column("Progress", ".status.progress"),
    _column("Age", ".metadata.creationTimestamp", "date"),
    _column("Template", ".spec.templateRef.name"),
    _column("Message", ".status.message"),
]


def _workflow_spec() -> dict[str, Any]:
    """A Workflow's spec; the model adds the templateRef rules (`spec._template_ref_rules`)."""
    return structural(WorkflowSpec.model_json_schema(by_alias=True, mode="validation"))


def _template_spec() -> dict[str, Any]:
    """A WorkflowTemplate's spec: a Workflow spec with nodes and no templateRef (templates do not chain)."""
    schema = _workflow_spec()
    del schema["properties"]["templateRef"], schema["x-kubernetes-validations"]
    schema["required"] = ["nodes"]
    return schema


def _cron_spec() -> dict[str, Any]:
    """A CronWorkflow's spec: its own fields, and under `workflow` exactly a Workflow's spec (with its rules)."""
    schema = structural(CronWorkflowSpec.model_json_schema(by_alias=True, mode="validation"))
    schema["properties"]["workflow"] = _workflow_spec()
    return schema


def _status(model: type[BaseModel]) -> Callable[[], dict[str, Any]]:
    return lambda: structural(model.model_json_schema(by_alias=True, mode="serialization"))


KINDS = [
    Kind(
        kind="Workflow",
        plural=PLURAL,
        short_name="dwf",
        description="A DAG of nodes, each run as a Kubernetes Job by the dagwright operator.",
        spec=_workflow_spec,
        status=_status(WorkflowStatus),
        printer_columns=PRINTER_COLUMNS,
    ),
    Kind(
        kind="WorkflowTemplate",
        plural="workflowtemplates",
        short_name="dwt",
        description="A Workflow spec kept to be run by name: a Workflow's spec.templateRef, with its own parameters.",
        spec=_template_spec,
        # A printer column cannot count (only simple JSONPath): the declared parameters with their defaults.
        printer_columns=[
            _column("Parameters", ".spec.parameters"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    ),
    Kind(
        kind="CronWorkflow",
        plural="cronworkflows",
        short_name="dwc",
        description="A Workflow spec started on a cron schedule: one Workflow per scheduled time.",
        spec=_cron_spec,
        status=_status(CronWorkflowStatus),
        # A printer column cannot count (only simple JSONPath): the status keeps `activeCount` for ACTIVE.
        printer_columns=[
            _column("Schedule", ".spec.schedule"),
            _column("Suspended", ".spec.suspend", "boolean"),
            _column("Last", ".status.lastScheduleTime", "date"),
            _column("Active", ".status.activeCount", "integer"),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ],
    ),
]


def kind_of(plural: str) -> Kind:
    """The entry of KINDS for a plural (`workflows`) or kind (`Workflow`), case-insensitively; KeyError if none."""
    for kind in KINDS:
        if plural.lower() in (kind.plural, kind.kind.lower()):
            return kind
    raise KeyError(plural)


def definition(plural: str = PLURAL) -> dict[str, Any]:
    kind = kind_of(plural)
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": kind.spec(),
    }
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    if kind.status is not None:
        properties["status"] = kind.status()
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = kind.printer_columns
    version["schema"] = {
        "openAPIV3Schema": {
            "type": "object",
            "description": kind.description,
            "required": ["spec"],
            "properties": properties,
        }
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [kind.short_name],
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


def render(plural: str = PLURAL) -> str:
    command = "dagwright crd" if plural == PLURAL else f"dagwright crd {plural}"
    header = f"# Generated from the dagwright models by `{command}`; do not edit by hand.\n"
    return header + yaml.dump(definition(plural), Dumper=_PlainDumper, sort_keys=False, width=120)


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
