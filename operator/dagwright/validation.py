"""Turning a manifest (a parsed YAML/JSON object) into a checked `Workflow`, or every problem with it.

Two layers, both reported the same way (`field: message`): the shape and bounds that pydantic checks (the
same rules the CRD schema gives the API server), and what a schema cannot see: duplicate names, unknown or
self dependencies, cycles, template references, `when` expressions (CEL that must compile and type-check, and
name only upstream nodes). The operator runs the same checks, so a cyclic workflow that
slipped past the API server ends as phase Failed with reason InvalidSpec and this message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from dagwright import conditions, reuse, templates
from dagwright.errors import Problem, SpecError
from dagwright.graph import Graph
from dagwright.spec import (
    RENAMED_RETRY_KEYS,
    TEMPLATE_KIND,
    NodeSpec,
    WorkflowManifest,
    WorkflowSpec,
    WorkflowTemplateManifest,
)
from dagwright.workflows import Workflow

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def load_manifest(data: Any) -> WorkflowManifest:
    """Parse a whole Workflow object (apiVersion, kind, metadata, spec) or raise SpecError."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("(document)", "a Workflow manifest must be a mapping with apiVersion, kind, spec")])
    try:
        manifest = WorkflowManifest.model_validate(data)
    except pydantic.ValidationError as error:
        raise SpecError(pydantic_problems(error, data) + _missing_nodes(data.get("spec"))) from None
    _raise_any(reuse.shape_problems(manifest.spec))
    return manifest


def load_template(data: Any) -> WorkflowTemplateManifest:
    """Parse a whole WorkflowTemplate object or raise SpecError; its spec is checked as a Workflow's would be
    when the template is run (`compile_template`)."""
    if not isinstance(data, Mapping):
        raise SpecError(
            [Problem("(document)", "a WorkflowTemplate manifest must be a mapping with apiVersion, kind, spec")]
        )
    try:
        manifest = WorkflowTemplateManifest.model_validate(data)
    except pydantic.ValidationError as error:
        raise SpecError(pydantic_problems(error, data)) from None
    _raise_any(reuse.template_problems(manifest.spec))
    return manifest


def parse_spec(data: Any) -> WorkflowSpec:
    """Parse only a Workflow's spec (what the operator reads from a cluster object) or raise SpecError."""
    try:
        spec = WorkflowSpec.model_validate(data)
    except pydantic.ValidationError as error:
        problems = pydantic_problems(error, {"spec": data}, prefix=("spec",))
        raise SpecError(problems + _missing_nodes(data)) from None
    _raise_any(reuse.shape_problems(spec))
    return spec


def parse_template_spec(data: Any, *, prefix: str = "spec") -> WorkflowSpec:
    """Parse a WorkflowTemplate's spec or raise SpecError; `prefix` names where it was read from."""
    try:
        spec = WorkflowSpec.model_validate(data)
    except pydantic.ValidationError as error:
        problems = pydantic_problems(error, {"spec": data}, prefix=("spec",))
        raise SpecError([_prefixed(problem, prefix) for problem in problems]) from None
    _raise_any(reuse.template_problems(spec, prefix=prefix))
    return spec


def parse_node(data: Any, index: int) -> NodeSpec:
    """Parse one node as if it were `spec.nodes[index]` or raise SpecError: the Python SDK checks each node where it
    is declared, with the messages a manifest would get."""
    try:
        return NodeSpec.model_validate(data)
    except pydantic.ValidationError as error:
        document = {"spec": {"nodes": [None] * index + [data]}}
        raise SpecError(pydantic_problems(error, document, prefix=("spec", "nodes", index))) from None


def compile_manifest(
    data: Any, parameters: Mapping[str, str] | None = None, *, template: WorkflowSpec | None = None
) -> Workflow:
    """Validate a Workflow manifest and build the planner's `Workflow`; `parameters` override spec.parameters.
    A template-based one runs `template` (None: there is no such template)."""
    manifest = load_manifest(data)
    spec = manifest.spec
    if parameters:
        spec = spec.model_copy(update={"parameters": {**spec.parameters, **parameters}})
    meta = manifest.metadata
    return compile_resolved(
        spec, template, name=meta.name, namespace=meta.namespace, uid=meta.uid, generation=meta.generation
    )


def compile_resolved(
    spec: WorkflowSpec,
    template: WorkflowSpec | None,
    *,
    name: str,
    namespace: str | None = None,
    uid: str | None = None,
    generation: int | None = None,
    check: Callable[[Workflow], None] | None = None,
) -> Workflow:
    """`compile_spec` of what a Workflow runs: its own spec, or its template's (`reuse.resolve`). Problems in
    the template's part name the template (`WorkflowTemplate NAME spec.nodes[0].image`), since that is where
    they are fixed; `check` adds a backend's own rules (the cluster's image rule)."""
    resolved = reuse.resolve(spec, template)
    try:
        workflow = compile_spec(resolved, name=name, namespace=namespace, uid=uid, generation=generation)
        if check is not None:
            check(workflow)
    except SpecError as error:
        if spec.template_ref is None:
            raise
        where = template_field(spec.template_ref.name)
        own = ("spec.parameters.",)
        raise SpecError([p if p.field.startswith(own) else _prefixed(p, where) for p in error.problems]) from None
    return workflow


def template_field(name: str) -> str:
    """How a problem in a WorkflowTemplate's spec is named when a Workflow runs it."""
    return f"WorkflowTemplate {name} spec"


@dataclass(frozen=True, slots=True)
class Documents:
    """A file's documents, checked: its WorkflowTemplates by name and its Workflows, in file order."""

    templates: dict[str, WorkflowTemplateManifest]
    workflows: list[WorkflowManifest]
    raw_templates: dict[str, Any]
    raw_workflows: list[Any]


def load_documents(documents: list[Any], source: str) -> Documents:
    """Each document checked as what its `kind` says (a WorkflowTemplate, else a Workflow), every problem named
    with its document when there are several."""
    templates: dict[str, WorkflowTemplateManifest] = {}
    raw_templates: dict[str, Any] = {}
    workflows: list[WorkflowManifest] = []
    raw_workflows: list[Any] = []
    problems: list[Problem] = []
    for number, data in enumerate(documents, 1):
        is_template = isinstance(data, Mapping) and data.get("kind") == TEMPLATE_KIND
        try:
            if is_template:
                template = load_template(data)
                templates[template.metadata.name] = template
                raw_templates[template.metadata.name] = data
            else:
                workflows.append(load_manifest(data))
                raw_workflows.append(data)
        except SpecError as error:
            where = f"{source} document {number}: " if len(documents) > 1 else ""
            problems += [Problem(where + problem.field, problem.message) for problem in error.problems]
    _raise_any(problems)
    return Documents(templates, workflows, raw_templates, raw_workflows)


def compile_documents(documents: list[Any], parameters: Mapping[str, str] | None = None, *, source: str) -> Workflow:
    """What `dagwright run FILE` runs: the file's one Workflow (with the file's template, if it names one), or,
    without a Workflow, its one WorkflowTemplate with `parameters` overriding the declared ones."""
    found = load_documents(documents, source)
    if not found.workflows:
        if len(found.templates) != 1:
            message = f"expected a Workflow, or one WorkflowTemplate to run, found {len(found.templates)} templates"
            raise SpecError([Problem(source, message)])
        (data,) = found.raw_templates.values()
        return compile_template(data, parameters)
    if len(found.workflows) > 1:
        raise SpecError([Problem(source, f"expected one Workflow document, found {len(found.workflows)}")])
    (manifest,) = found.workflows
    template = None
    if manifest.spec.template_ref is not None:
        name = manifest.spec.template_ref.name
        if name not in found.templates:
            message = f"WorkflowTemplate '{name}' is not in {source}: add it as another document to run it here"
            raise SpecError([Problem("spec.templateRef.name", message)])
        template = found.templates[name].spec
        wrong = reuse.undeclared(parameters or {}, template, name)
        _raise_any([Problem(f"-p {key}", message) for key, message in wrong.items()])
    return compile_manifest(found.raw_workflows[0], parameters, template=template)


def compile_template(data: Any, parameters: Mapping[str, str] | None = None) -> Workflow:
    """A WorkflowTemplate manifest run as a Workflow of its name, `parameters` overriding the declared ones
    (each must be declared: `-p` names the undeclared one)."""
    manifest = load_template(data)
    spec = manifest.spec
    if parameters:
        wrong = reuse.undeclared(parameters, spec, manifest.metadata.name)
        _raise_any([Problem(f"-p {key}", message) for key, message in wrong.items()])
        spec = spec.model_copy(update={"parameters": {**spec.parameters, **parameters}})
    meta = manifest.metadata
    return compile_spec(spec, name=meta.name, namespace=meta.namespace, uid=meta.uid, generation=meta.generation)


def compile_spec(
    spec: WorkflowSpec,
    *,
    name: str,
    namespace: str | None = None,
    uid: str | None = None,
    generation: int | None = None,
) -> Workflow:
    """Check what the schema cannot (raising SpecError) and build the planner's view of the workflow. A
    template-based spec must be resolved first (`reuse.resolve`): until then it has no nodes."""
    if spec.template_ref is not None:
        raise SpecError([Problem("spec.templateRef", "the template was not resolved (a bug: reuse.resolve first)")])
    nodes = spec.resolved_nodes()
    problems = _check_names(nodes)
    problems += _check_dependencies(nodes)
    problems += _check_finally(nodes)
    if problems:
        raise SpecError(problems)
    graph = Graph.build([n.name for n in nodes], [n.depends_on for n in nodes])
    cycle = graph.find_cycle()
    if cycle:
        raise SpecError([Problem(_closing_edge(nodes, graph, cycle), "dependency cycle: " + " -> ".join(cycle))])
    problems = _check_nodes(nodes)
    problems += _check_templates(spec, nodes, graph)
    compiled, condition_problems = _check_conditions(nodes, graph)
    problems += condition_problems
    if problems:
        raise SpecError(problems)
    return Workflow(
        name=name,
        namespace=namespace,
        uid=uid,
        generation=generation,
        spec=spec,
        nodes=nodes,
        graph=graph,
        conditions=compiled,
    )


def _missing_nodes(spec: Any) -> list[Problem]:
    """The shape problem of a spec pydantic refused for other reasons too, so that every problem is reported."""
    if isinstance(spec, Mapping) and "nodes" not in spec and "templateRef" not in spec:
        return reuse.shape_problems(WorkflowSpec())
    return []


def _raise_any(problems: list[Problem]) -> None:
    if problems:
        raise SpecError(problems)


def _prefixed(problem: Problem, prefix: str) -> Problem:
    """`spec.nodes[0].image` read from elsewhere (a template's spec) as `<prefix>.nodes[0].image`."""
    if prefix == "spec" or not (problem.field == "spec" or problem.field.startswith(("spec.", "spec["))):
        return problem
    return Problem(prefix + problem.field[4:], problem.message)


def _closing_edge(nodes: list[NodeSpec], graph: Graph, cycle: list[str]) -> str:
    """The dependsOn entry that closes the cycle (`a -> ... -> z -> a`: a's entry naming z), to point at one field."""
    first = graph.index[cycle[0]]
    return f"spec.nodes[{first}].dependsOn[{nodes[first].depends_on.index(cycle[-2])}]"


def _check_names(nodes: list[NodeSpec]) -> list[Problem]:
    seen: set[str] = set()
    problems: list[Problem] = []
    for i, node in enumerate(nodes):
        if node.name in seen:
            problems.append(Problem(f"spec.nodes[{i}].name", f"duplicate node name '{node.name}'"))
        seen.add(node.name)
    return problems


def _check_dependencies(nodes: list[NodeSpec]) -> list[Problem]:
    names = {node.name for node in nodes}
    problems: list[Problem] = []
    for i, node in enumerate(nodes):
        for j, dep in enumerate(node.depends_on):
            field = f"spec.nodes[{i}].dependsOn[{j}]"
            if dep == node.name:
                problems.append(Problem(field, f"node '{node.name}' depends on itself"))
            elif dep not in names:
                problems.append(Problem(field, f"node '{node.name}' depends on unknown node '{dep}'"))
    return problems


def _check_finally(nodes: list[NodeSpec]) -> list[Problem]:
    """Finally nodes run after every regular node has ended, so the two kinds never wait for each other."""
    final = {node.name for node in nodes if node.finally_}
    if not final:
        return []
    problems: list[Problem] = []
    for i, node in enumerate(nodes):
        for j, dep in enumerate(node.depends_on):
            field = f"spec.nodes[{i}].dependsOn[{j}]"
            if not node.finally_ and dep in final:
                message = (
                    f"node '{node.name}' depends on finally node '{dep}', which runs only after every regular node"
                )
                problems.append(Problem(field, message))
            elif node.finally_ and dep not in final and dep != node.name:
                message = (
                    f"finally node '{node.name}' already runs after every regular node, '{dep}' included: dependsOn "
                    "may name only other finally nodes (its templates and `when` may read any regular node)"
                )
                problems.append(Problem(field, message))
    return problems


def _check_nodes(nodes: list[NodeSpec]) -> list[Problem]:
    problems: list[Problem] = []
    for i, node in enumerate(nodes):
        field = f"spec.nodes[{i}]"
        if node.approval is not None:
            if node.command or node.args or node.image:
                problems.append(Problem(field, f"approval node '{node.name}' runs nothing: remove image/command/args"))
        elif not node.command and not node.image:
            problems.append(Problem(field, f"node '{node.name}' needs a command (or an image whose entrypoint runs)"))
        elif node.node_runner and not node.command:
            problems.append(Problem(field, f"node '{node.name}' uses nodeRunner, which needs an explicit command"))
        if node.for_each is not None:
            problems += _check_for_each(node, field)
    return problems


def _check_for_each(node: NodeSpec, field: str) -> list[Problem]:
    for_each = node.for_each
    assert for_each is not None
    problems = []
    if node.approval is not None:
        problems.append(Problem(f"{field}.forEach", f"approval node '{node.name}' cannot fan out: remove forEach"))
    if (for_each.items is None) == (for_each.from_json is None):
        given = "both" if for_each.items is not None else "neither"
        problems.append(Problem(f"{field}.forEach", f"give exactly one of items and fromJSON ({given} given)"))
    return problems


def _check_templates(spec: WorkflowSpec, nodes: list[NodeSpec], graph: Graph) -> list[Problem]:
    """Template references and NUL characters, named by the field the user wrote (a node's own, or defaults)."""
    problems: dict[Problem, None] = {}  # a bad value in spec.defaults is reported once, not once per node
    for i, (own, node) in enumerate(zip(spec.nodes, nodes, strict=True)):
        fields = [(f"spec.nodes[{i}].args[{j}]", value) for j, value in enumerate(own.args)]
        if own.for_each is not None and own.for_each.from_json is not None:
            fields.append((f"spec.nodes[{i}].forEach.fromJSON", own.for_each.from_json))
        fields += [(f"spec.nodes[{i}].command[{j}]", value) for j, value in enumerate(own.command)]
        fields += [(f"spec.nodes[{i}].env[{j}].value", var.value) for j, var in enumerate(own.env)]
        overridden = {var.name for var in own.env}
        fields += [
            (f"spec.defaults.env[{j}].value", var.value)
            for j, var in enumerate(spec.defaults.env)
            if var.name not in overridden
        ]
        ancestors: set[int] | None = None
        for field, value in fields:
            if "\x00" in value:
                problems[Problem(field, "contains a NUL character, which no command line or environment can hold")] = (
                    None
                )
            fanned = node.for_each is not None and not field.endswith(".fromJSON")  # items come from fromJSON
            for text in templates.references(value):
                problem = templates.check_reference(text, spec.parameters, final=node.finally_, for_each=fanned)
                upstream = templates.output_upstream(text) if problem is None else None
                source = graph.index.get(upstream) if upstream is not None else None
                if node.finally_ and source is not None and not nodes[source].finally_:
                    continue  # every regular node has ended when a finally node starts
                if upstream is not None and source not in graph.upstream[i]:  # direct parents are the usual case
                    ancestors = graph.ancestors(i) if ancestors is None else ancestors
                    if source not in ancestors:
                        problem = (
                            f"'{{{{ {text} }}}}' reads outputs of '{upstream}', "
                            f"which is not upstream of '{node.name}' (add it to dependsOn)"
                        )
                if problem:
                    problems[Problem(field, problem)] = None
    for key, value in spec.parameters.items():
        if "\x00" in value:
            problems[Problem(f"spec.parameters.{key}", "contains a NUL character")] = None
    return list(problems)


def _check_conditions(
    nodes: list[NodeSpec], graph: Graph
) -> tuple[tuple[conditions.Condition | None, ...], list[Problem]]:
    """Each `when` compiles and type-checks, and the nodes it names are upstream (so they are done when it runs).
    Returns the compiled conditions too, so a spec is compiled once however many distinct expressions it has."""
    problems: list[Problem] = []
    compiled: list[conditions.Condition | None] = [None] * len(nodes)
    for i, node in enumerate(nodes):
        if node.when is None:
            continue
        field = f"spec.nodes[{i}].when"
        try:
            condition = compiled[i] = conditions.compile_condition(node.when, final=node.finally_)
        except conditions.InvalidCondition as error:
            problems.append(Problem(field, f"invalid CEL expression: {error}"))
            continue
        ancestors: set[int] | None = None
        for name in sorted(condition.reads):
            source = graph.index.get(name)
            if source is None:
                problems.append(Problem(field, f"names node '{name}', which is not in this workflow"))
                continue
            if node.finally_ and not nodes[source].finally_:
                continue  # every regular node has ended when a finally node starts
            if source not in graph.upstream[i]:
                ancestors = graph.ancestors(i) if ancestors is None else ancestors
                if source not in ancestors:
                    message = f"reads node '{name}', which is not upstream of '{node.name}' (add it to dependsOn)"
                    problems.append(Problem(field, message))
    return tuple(compiled), problems


def pydantic_problems(
    error: pydantic.ValidationError, document: Any, prefix: tuple[str | int, ...] = ()
) -> list[Problem]:
    """pydantic's errors as Problems naming their fields; also for the other kinds' models (`cronspec.py`)."""
    problems = []
    for item in error.errors(include_url=False):
        loc = prefix + tuple(item["loc"])
        renamed = _renamed_key(loc, item)
        if renamed is not None:
            problems.append(Problem(renamed[0], renamed[1] + _node_hint(loc, document)))
            continue
        message = _MESSAGES.get(item["type"], item["msg"])
        if item["type"] not in _MESSAGES and "input" in item and not isinstance(item["input"], dict | list):
            message += f" (got {_short(item['input'])})"
        problems.append(Problem(_field_path(loc), message + _node_hint(loc, document)))
    return problems


def _renamed_key(loc: tuple[str | int, ...], item: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, message) for a `retry` key that was renamed, as a manifest may still spell it: `on`, or the
    boolean key YAML 1.1 (PyYAML's default, kubectl) makes of a bare `on:` (`true` once kubectl sends it)."""
    if len(loc) < 2 or loc[-2] != "retry":
        return None
    if item["type"] == "invalid_key" and item.get("input") is True:
        key = "true"
    elif item["type"] == "extra_forbidden" and isinstance(loc[-1], str):
        key = loc[-1]
    else:
        return None
    new = RENAMED_RETRY_KEYS.get(key)
    if new is None:
        return None
    message = f"renamed to retry.{new}"
    if key != "on":
        message += " (YAML 1.1, as kubectl reads it, turns a bare `on:` key into true)"
    return _field_path((*loc[:-1], "on")), message


def _field_path(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            path += " (key)"
        else:
            path += ("." if path else "") + str(part)
    return path or "(document)"


def _node_hint(loc: tuple[str | int, ...], document: Any) -> str:
    """Name the node an error is in, since `spec.nodes[812]` alone is hard to find in a long manifest."""
    if len(loc) >= 3 and loc[:2] == ("spec", "nodes") and isinstance(loc[2], int):
        try:
            name = document["spec"]["nodes"][loc[2]]["name"]
        except (KeyError, IndexError, TypeError):
            return ""
        if isinstance(name, str) and loc[3:] != ("name",):
            return f" (node {_short(name)})"
    return ""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
