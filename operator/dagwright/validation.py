"""Turning a manifest (a parsed YAML/JSON object) into a checked `Workflow`, or every problem with it.

Two layers, both reported the same way (`field: message`): the shape and bounds that pydantic checks (the
same rules the CRD schema gives the API server), and what a schema cannot see: duplicate names, unknown or
self dependencies, cycles, template references, `when` expressions (CEL that must compile and type-check, and
name only upstream nodes). The operator runs the same checks, so a cyclic workflow that
slipped past the API server ends as phase Failed with reason InvalidSpec and this message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from dagwright import conditions, templates
from dagwright.errors import Problem, SpecError
from dagwright.graph import Graph
from dagwright.spec import RENAMED_RETRY_KEYS, NodeSpec, WorkflowManifest, WorkflowSpec
from dagwright.workflows import Workflow

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def load_manifest(data: Any) -> WorkflowManifest:
    """Parse a whole object (apiVersion, kind, metadata, spec) or raise SpecError."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("(document)", "a Workflow manifest must be a mapping with apiVersion, kind, spec")])
    try:
        return WorkflowManifest.model_validate(data)
    except pydantic.ValidationError as error:
        raise SpecError(pydantic_problems(error, data)) from None


def parse_spec(data: Any) -> WorkflowSpec:
    """Parse only a spec (what the operator reads from a cluster object) or raise SpecError."""
    try:
        return WorkflowSpec.model_validate(data)
    except pydantic.ValidationError as error:
        raise SpecError(pydantic_problems(error, {"spec": data}, prefix=("spec",))) from None


def compile_manifest(data: Any, parameters: Mapping[str, str] | None = None) -> Workflow:
    """Validate a manifest and build the planner's `Workflow`; `parameters` override spec.parameters."""
    manifest = load_manifest(data)
    spec = manifest.spec
    if parameters:
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
    """Check what the schema cannot (raising SpecError) and build the planner's view of the workflow."""
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
    return problems


def _check_templates(spec: WorkflowSpec, nodes: list[NodeSpec], graph: Graph) -> list[Problem]:
    """Template references and NUL characters, named by the field the user wrote (a node's own, or defaults)."""
    problems: dict[Problem, None] = {}  # a bad value in spec.defaults is reported once, not once per node
    for i, (own, node) in enumerate(zip(spec.nodes, nodes, strict=True)):
        fields = [(f"spec.nodes[{i}].args[{j}]", value) for j, value in enumerate(own.args)]
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
            for text in templates.references(value):
                problem = templates.check_reference(text, spec.parameters, final=node.finally_)
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
