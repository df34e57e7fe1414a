"""WorkflowTemplates run by name: what a template-based Workflow runs, and every way to get it wrong, by field."""

from __future__ import annotations

from typing import Any

import pytest
from builders import manifest, node

from dagwright import reuse
from dagwright.errors import SpecError
from dagwright.spec import WorkflowSpec
from dagwright.validation import compile_manifest, compile_template, load_template, parse_spec


def template(**spec: Any) -> dict[str, Any]:
    nodes = [node("extract", args=["{{ params.date }}", "{{ params.region }}"]), node("load", "extract")]
    return {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "etl"},
        "spec": {"parameters": {"date": "today", "region": "eu"}, "nodes": nodes, **spec},
    }


def run_of(**spec: Any) -> dict[str, Any]:
    body = manifest([])
    body["spec"] = {"templateRef": {"name": "etl"}, **spec}
    return body


def problems(error: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [str(problem) for problem in error.value.problems]


ETL = load_template(template()).spec


def test_the_template_runs_with_the_workflows_overrides_and_its_own_defaults() -> None:
    workflow = compile_manifest(run_of(parameters={"date": "2026-11-29"}), template=ETL)
    assert [n.name for n in workflow.nodes] == ["extract", "load"]
    assert workflow.spec.parameters == {"date": "2026-11-29", "region": "eu"}
    assert workflow.spec.template_ref is None  # what the planner sees is the template's spec


def test_run_controls_set_by_the_workflow_win_and_unset_ones_keep_the_templates() -> None:
    etl = load_template(template(priority=3, activeDeadlineSeconds=600, parallelism=4)).spec
    spec = reuse.resolve(parse_spec({"templateRef": {"name": "etl"}, "paused": True, "priority": -1}), etl)
    assert (spec.paused, spec.priority, spec.active_deadline_seconds, spec.parallelism) == (True, -1, 600, 4)


def test_a_missing_template_and_undeclared_parameters_are_named() -> None:
    with pytest.raises(SpecError) as missing:
        compile_manifest(run_of(), template=None)
    assert problems(missing) == ["spec.templateRef.name: WorkflowTemplate 'etl' not found"]
    with pytest.raises(SpecError) as undeclared:
        compile_manifest(run_of(parameters={"dat": "x", "zone": "y"}), template=ETL)
    assert problems(undeclared) == [
        "spec.parameters.dat: WorkflowTemplate 'etl' declares no parameter 'dat' (it declares: date, region)",
        "spec.parameters.zone: WorkflowTemplate 'etl' declares no parameter 'zone' (it declares: date, region)",
    ]


def test_cron_workflows_name_their_own_fields_through_prefix() -> None:
    with pytest.raises(SpecError) as error:
        reuse.resolve(
            parse_spec({"templateRef": {"name": "etl"}, "parameters": {"x": "1"}}), ETL, prefix="spec.workflow"
        )
    assert problems(error)[0].startswith("spec.workflow.parameters.x: ")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ["spec.nodes: required field is missing (or set templateRef to run a template)"]),
        (
            {"templateRef": {"name": "etl"}, "nodes": [node("a")], "failFast": False},
            [
                "spec.failFast: not allowed with templateRef: the template says what runs",
                "spec.nodes: not allowed with templateRef: the template says what runs",
            ],
        ),
        (
            {"templateRef": {"name": "etl"}, "podTemplate": {}, "defaults": {"image": "x"}},
            [
                "spec.defaults: not allowed with templateRef: the template says what runs",
                "spec.podTemplate: not allowed with templateRef: the template says what runs",
            ],
        ),
        ({"templateRef": {"name": "Not_A_Name"}}, ["spec.templateRef.name: String should match pattern"]),
        ({"templateRef": {}}, ["spec.templateRef.name: required field is missing"]),
    ],
    ids=["neither", "nodes-and-failfast", "defaults-and-podtemplate", "bad-name", "no-name"],
)
def test_the_shape_of_a_workflow_spec_is_checked_naming_each_field(spec: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec)
    assert [text[: len(want)] for text, want in zip(problems(error), expected, strict=True)] == expected


def test_every_spec_field_is_either_the_templates_or_the_workflows() -> None:
    """A new spec field must be sorted into one or the other (and the CRD's rules follow)."""
    owned = {"nodes", "defaults", "pod_template", "fail_fast"}
    assert set(WorkflowSpec.model_fields) == owned | reuse.OWN_FIELDS
    assert not owned & reuse.OWN_FIELDS


def test_a_template_must_have_nodes_and_cannot_chain() -> None:
    with pytest.raises(SpecError) as error:
        load_template({**template(), "spec": {"templateRef": {"name": "other"}}})
    assert problems(error) == [
        "spec.templateRef: a WorkflowTemplate cannot run another template",
        "spec.nodes: required field is missing",
    ]


def test_a_template_run_on_its_own_takes_declared_parameters_only() -> None:
    workflow = compile_template(template(), {"region": "us"})
    assert workflow.name == "etl" and workflow.spec.parameters == {"date": "today", "region": "us"}
    with pytest.raises(SpecError) as error:
        compile_template(template(), {"regoin": "us"})
    assert problems(error) == [
        "-p regoin: WorkflowTemplate 'etl' declares no parameter 'regoin' (it declares: date, region)"
    ]


def test_a_problem_in_the_templates_nodes_names_the_template() -> None:
    broken = load_template(template(nodes=[node("a", args=["{{ params.nope }}"])])).spec
    with pytest.raises(SpecError) as error:
        compile_manifest(run_of(), template=broken)
    (problem,) = problems(error)
    assert problem.startswith("WorkflowTemplate etl spec.nodes[0].args[0]: ")


def test_generate_name_gives_a_local_run_a_name() -> None:
    body = run_of()
    body["metadata"] = {"generateName": "etl-"}
    workflow = compile_manifest(body, template=ETL)
    assert workflow.name.startswith("etl-") and len(workflow.name) == len("etl-") + 5
