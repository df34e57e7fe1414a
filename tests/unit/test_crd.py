"""The committed CRD is exactly what the models generate, and the schema is one the API server accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dagwright import cli, crd

CRDS = Path(__file__).resolve().parents[2] / "crds"
CRD_FILE = CRDS / "workflows.dagwright.io.yaml"


def _version() -> dict[str, Any]:
    (version,) = crd.definition()["spec"]["versions"]
    return dict(version)


def _spec_schema() -> dict[str, Any]:
    return dict(_version()["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_committed_crd_matches_dagwright_crd_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd", "workflowtemplates"]) == 0
    assert capsys.readouterr().out == (CRDS / "workflowtemplates.dagwright.io.yaml").read_text(encoding="utf-8")


def test_dagwright_crd_prints_the_workflow_crd_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd"]) == 0
    assert capsys.readouterr().out == CRD_FILE.read_text(encoding="utf-8")


def test_workflow_template_crd_names_and_columns() -> None:
    definition = crd.definition("workflowtemplates")
    assert crd.kind_of("WorkflowTemplate") is crd.kind_of("workflowtemplates") is crd.KINDS[1]
    assert definition["metadata"]["name"] == "workflowtemplates.dagwright.io"
    assert definition["spec"]["names"]["kind"] == "WorkflowTemplate"
    assert definition["spec"]["names"]["shortNames"] == ["dwt"]
    (version,) = definition["spec"]["versions"]
    assert "subresources" not in version  # nothing writes a template's status
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {"Parameters": ".spec.parameters", "Age": ".metadata.creationTimestamp"}
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["nodes"] and "templateRef" not in spec["properties"]


def test_workflow_spec_rules_match_the_template_shape_rules() -> None:
    """The API server's rules (CEL) name the same fields `reuse.shape_problems` refuses with templateRef."""
    rules = _spec_schema()["x-kubernetes-validations"]
    refused = {rule["fieldPath"] for rule in rules[1:]}
    assert refused == {".nodes", ".defaults", ".podTemplate", ".failFast"}
    assert all(rule["rule"].startswith("!has(self.templateRef)") for rule in rules[1:])


def test_names_subresource_and_printer_columns() -> None:
    definition = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    assert definition["metadata"]["name"] == "workflows.dagwright.io"
    assert definition["spec"]["names"]["shortNames"] == ["dwf"]
    assert definition["spec"]["names"]["kind"] == "Workflow"
    (version,) = definition["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Progress"] == ".status.progress"
    assert columns["Age"] == ".metadata.creationTimestamp"
    assert columns["Template"] == ".spec.templateRef.name"


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _walk(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural() -> None:
    """What the API server refuses in a structural schema: refs, unions without a type, untyped nodes."""
    schema = _version()["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema, "$"):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "$defs", "patternProperties", "default"} & node.keys(), path
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        if node.get("type") == "object" and "properties" in node:
            assert "additionalProperties" not in node, f"{path}: properties and additionalProperties"


def test_every_spec_list_and_string_is_bounded() -> None:
    for path, node in _walk(_spec_schema(), "spec"):
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} has no maxItems"
        if node.get("type") == "string":
            assert "maxLength" in node or "enum" in node, f"{path} has no maxLength"


def test_schema_carries_the_model_bounds() -> None:
    spec = _spec_schema()
    node = spec["properties"]["nodes"]
    assert node["minItems"] == 1 and node["maxItems"] == 10_000
    fields = node["items"]["properties"]
    assert fields["name"]["maxLength"] == 63 and fields["name"]["pattern"]
    assert fields["args"]["items"]["maxLength"] == 32_768
    assert fields["retry"]["properties"]["limit"] == {"type": "integer", "minimum": 0, "maximum": 1000}
    assert fields["retry"]["properties"]["policy"]["enum"] == ["AnyFailure", "Transient"]
    assert spec["properties"]["parallelism"]["minimum"] == 1
    assert "required" not in spec  # nodes or templateRef: a CEL rule says which


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda kind: kind.plural)
def test_every_kind_has_its_committed_crd_in_both_places(kind: crd.Kind) -> None:
    root = Path(__file__).resolve().parents[2]
    for folder in ("crds", "charts/dagwright/crds"):
        committed = (root / folder / kind.file_name).read_text(encoding="utf-8")
        assert committed == crd.render(kind.plural), (
            f"{folder}/{kind.file_name} is stale: `dagwright crd {kind.plural}`"
        )


def test_cron_workflow_names_columns_and_its_workflow_schema() -> None:
    definition = crd.definition("cronworkflows")
    assert definition["metadata"]["name"] == "cronworkflows.dagwright.io"
    assert definition["spec"]["names"]["shortNames"] == ["dwc"]
    (version,) = definition["spec"]["versions"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Schedule": ".spec.schedule",
        "Suspended": ".spec.suspend",
        "Last": ".status.lastScheduleTime",
        "Active": ".status.activeCount",
        "Age": ".metadata.creationTimestamp",
    }
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["schedule", "workflow"]
    assert spec["properties"]["workflow"] == _spec_schema()  # exactly a Workflow's spec
    assert spec["properties"]["concurrencyPolicy"]["enum"] == ["Allow", "Forbid", "Replace"]
    assert crd.kind_of("CronWorkflow") is crd.kind_of("cronworkflows")
