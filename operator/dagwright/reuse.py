"""Running a WorkflowTemplate: what a Workflow with `spec.templateRef` runs, as a pure function of two specs.

A WorkflowTemplate's spec is exactly a Workflow spec; its `parameters` are the parameters it declares, with their
defaults. A Workflow that names one (`templateRef`) brings no nodes of its own: it may set only `parameters`
(overrides of declared ones) and the run controls below, which win over the template's. Everything that says
what runs (nodes, defaults, podTemplate, failFast) is the template's.

Callers: `validation` (the shape rules, for every spec it parses), the operator (`k8s/reconcile.py`, with the
template's spec as snapshotted in the Workflow's status when it started), its webhook, `dagwright run` and
`validate` of a file holding a template and a Workflow, and CronWorkflow's `spec.workflow` (which passes its
own `prefix`, so problems name its fields). Nothing here reads the cluster or a file.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagwright.errors import Problem, SpecError
from dagwright.spec import TEMPLATE_OWNED, WorkflowSpec

# What a template-based Workflow may set: its parameters, and how this one run goes (the run controls).
OWN_FIELDS = frozenset(WorkflowSpec.model_fields) - frozenset(TEMPLATE_OWNED)
RUN_CONTROLS = OWN_FIELDS - {"parameters", "template_ref"}


def shape_problems(spec: WorkflowSpec, *, prefix: str = "spec") -> list[Problem]:
    """A Workflow spec holds exactly one of `nodes` and `templateRef`, and with `templateRef` nothing that says
    what runs (the template does)."""
    if spec.template_ref is None:
        if not spec.nodes:
            return [Problem(f"{prefix}.nodes", "required field is missing (or set templateRef to run a template)")]
        return []
    return [
        Problem(f"{prefix}.{_alias(field)}", "not allowed with templateRef: the template says what runs")
        for field in sorted(spec.model_fields_set - OWN_FIELDS, key=list(WorkflowSpec.model_fields).index)
    ]


def template_problems(spec: WorkflowSpec, *, prefix: str = "spec") -> list[Problem]:
    """A WorkflowTemplate's spec is a Workflow spec with nodes: templates do not chain."""
    problems = []
    if spec.template_ref is not None:
        problems.append(Problem(f"{prefix}.templateRef", "a WorkflowTemplate cannot run another template"))
    if not spec.nodes:
        problems.append(Problem(f"{prefix}.nodes", "required field is missing"))
    return problems


def resolve(spec: WorkflowSpec, template: WorkflowSpec | None, *, prefix: str = "spec") -> WorkflowSpec:
    """The spec a template-based Workflow runs: the template's, with the Workflow's parameter overrides and run
    controls on top. A spec without `templateRef` is returned as it is. `template` is None when no such
    template exists. Raises SpecError naming `templateRef.name` or each undeclared `parameters.KEY`."""
    ref = spec.template_ref
    if ref is None:
        return spec
    if template is None:
        raise SpecError([Problem(f"{prefix}.templateRef.name", f"WorkflowTemplate '{ref.name}' not found")])
    problems = template_problems(template, prefix=f"WorkflowTemplate {ref.name} spec")
    problems += [
        Problem(f"{prefix}.parameters.{key}", message)
        for key, message in undeclared(spec.parameters, template, ref.name).items()
    ]
    if problems:
        raise SpecError(problems)
    update = {field: getattr(spec, field) for field in spec.model_fields_set & RUN_CONTROLS}
    update["parameters"] = {**template.parameters, **spec.parameters}
    return template.model_copy(update=update)


def undeclared(keys: Iterable[str], template: WorkflowSpec, name: str) -> dict[str, str]:
    """Each of `keys` the template does not declare -> why that is a problem (a typo would otherwise be ignored
    and the template's default used)."""
    declared = ", ".join(sorted(template.parameters)) or "none"
    return {
        key: f"WorkflowTemplate '{name}' declares no parameter '{key}' (it declares: {declared})"
        for key in keys
        if key not in template.parameters
    }


def _alias(field: str) -> str:
    return WorkflowSpec.model_fields[field].alias or field
