"""The Python builder: `Workflow`, `node()` and `>>`, producing the same `WorkflowManifest` a YAML file gives.

A `Workflow` collects nodes (declared inside `with Workflow(...)`, or with `workflow=`) and their edges; it holds
no rules of its own. Each node is checked where it is declared (`validation.parse_node`: bounds, names), and the
whole manifest when the `with` block ends and again before it is written, run or submitted, by the same
`validation.load_manifest` and `validation.compile_spec` that `dagwright validate` runs. Problems keep the
manifest's messages; their field names the node instead of its index (`spec.nodes['load'].dependsOn[0]`).

The models, validation and CEL are imported when first needed, not with this module: a function node's process
imports the module that declares the workflow, and should not pay for building it (`dagwright/sdk/__init__.py`).

One thing the builder does that YAML does not: a node whose command, args, env values, `when` or
`forEach.fromJSON` read another node's outputs depends on that node, unless it already does, directly or through
others (`dependsOn` gets the name appended). In YAML the same reference without the edge is a validation error
that says "add it to dependsOn"; in Python the reference says it already. A finally node reading a regular node
is the exception: it runs after every regular node anyway, and may depend only on other finally nodes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, overload

from dagwright import templates
from dagwright.errors import Problem, SpecError
from dagwright.sdk.references import Outputs, Parameters, Reference, Seconds, Value

if TYPE_CHECKING:
    from pathlib import Path

    from dagwright import workflows
    from dagwright.local.runner import Approver
    from dagwright.sdk.running import Progress
    from dagwright.spec import (
        Approval,
        ForEach,
        NodeDefaults,
        PodMetadata,
        PodTemplate,
        RetryPolicy,
        WorkflowManifest,
    )
    from dagwright.status import WorkflowStatus

T = TypeVar("T")

_ACTIVE: ContextVar[tuple[Workflow, ...]] = ContextVar("dagwright_sdk_workflows", default=())
_NODE_INDEX = re.compile(r"^spec\.nodes\[(\d+)\]")


class Node:
    """A node of a `Workflow`: `a >> b` makes b depend on a; `a.outputs["key"]` reads what a wrote."""

    def __init__(self, workflow: Workflow, name: str, fields: dict[str, Any]) -> None:
        self.workflow = workflow
        self.name = name
        self.fields = fields  # NodeSpec's fields as the user gave them, without dependsOn
        self.depends_on: list[str] = []
        self.outputs = Outputs(name)
        self.function: str | None = None  # a function node's MODULE:FUNCTION (set by `@function`)
        self.pythonpath: tuple[str, ...] = ()  # where a function node's module imports from, for run()

    def after(self, *upstream: Node | str) -> Node:
        """Depend on `upstream` (nodes or names); returns this node."""
        for other in upstream:
            if isinstance(other, Node) and other.workflow is not self.workflow:
                raise ValueError(
                    f"node '{self.name}' cannot depend on '{other.name}' of workflow '{other.workflow.name}'"
                )
            name = other.name if isinstance(other, Node) else other
            if name not in self.depends_on:
                self.depends_on.append(name)
        return self

    @overload
    def __rshift__(self, other: Node) -> Node: ...

    @overload
    def __rshift__(self, other: Sequence[Node]) -> list[Node]: ...

    def __rshift__(self, other: Node | Sequence[Node]) -> Node | list[Node]:
        if isinstance(other, Node):
            return other.after(self)
        return [downstream.after(self) for downstream in other]

    def __rrshift__(self, other: Sequence[Node]) -> Node:
        """`[a, b] >> c`: c depends on a and b."""
        return self.after(*other)

    def __repr__(self) -> str:
        return f"Node({self.name!r})"

    def data(self, depends_on: Sequence[str]) -> dict[str, Any]:
        """This node as a manifest entry (pydantic field names; models as given)."""
        entry: dict[str, Any] = {"name": self.name, **self.fields}
        if depends_on:
            entry["depends_on"] = list(depends_on)
        return entry


class Workflow:
    """A Workflow under construction; `with Workflow(...) as wf:` makes `node()` add to it.

    Leaving the `with` block checks the whole workflow (cycles, unknown dependencies, templates, `when`), as
    `dagwright validate` would, and raises `SpecError` with every problem.
    """

    def __init__(
        self,
        name: str,
        *,
        parameters: Mapping[str, str] | None = None,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        parallelism: int | None = None,
        fail_fast: bool | None = None,
        active_deadline: Seconds | None = None,
        ttl_after_finished: Seconds | None = None,
        priority: int | None = None,
        defaults: NodeDefaults | None = None,
        pod_template: PodTemplate | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.metadata: dict[str, Any] = {"name": name}
        for key, value in (("namespace", namespace), ("labels", labels), ("annotations", annotations)):
            if value is not None:
                self.metadata[key] = dict(value) if isinstance(value, Mapping) else value
        given = {
            "parameters": dict(parameters) if parameters is not None else None,
            "parallelism": parallelism,
            "fail_fast": fail_fast,
            "active_deadline_seconds": _seconds(active_deadline),
            "ttl_seconds_after_finished": _seconds(ttl_after_finished, allow_zero=True),
            "priority": priority,
            "defaults": defaults,
            "pod_template": pod_template,
        }
        self.spec_fields = {key: value for key, value in given.items() if value is not None}
        self.params = Parameters(frozenset(parameters or {}))
        self._nodes: list[Node] = []

    # -- building

    def __enter__(self) -> Workflow:
        _ACTIVE.set((*_ACTIVE.get(), self))
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        active = _ACTIVE.get()
        _ACTIVE.set(tuple(workflow for workflow in active if workflow is not self))
        if kind is None:
            self.manifest()  # every problem now, at the end of the block that caused it

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self._nodes)

    def add(self, name: str, fields: dict[str, Any]) -> Node:
        """Declare a node (what `node()` calls): its own fields are checked here."""
        from dagwright import validation

        created = Node(self, name, fields)
        self._raise_for_nodes(lambda: validation.parse_node(created.data(()), len(self._nodes)), extra=created)
        self._nodes.append(created)
        return created

    def __getitem__(self, name: str) -> Node:
        for declared in self._nodes:
            if declared.name == name:
                return declared
        raise KeyError(f"workflow '{self.name}' has no node '{name}'")

    # -- the manifest

    def manifest(self) -> WorkflowManifest:
        """The checked manifest, the same model `dagwright validate` makes of a YAML file; SpecError if invalid."""
        from dagwright import validation

        data = self._data()
        parsed = self._raise_for_nodes(lambda: validation.load_manifest(data))
        self._raise_for_nodes(lambda: validation.compile_spec(parsed.spec, name=self.name, namespace=self.namespace))
        return parsed

    def compile(self, parameters: Mapping[str, str] | None = None) -> workflows.Workflow:
        """The planner's checked workflow (what the local runner takes), with `parameters` overriding."""
        from dagwright import validation

        data = self._data()
        return self._raise_for_nodes(lambda: validation.compile_manifest(data, parameters))

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain data (camelCase keys, only what was set), as `kubectl apply` takes it."""
        dumped: dict[str, Any] = self.manifest().model_dump(mode="json", by_alias=True, exclude_unset=True)
        return dumped

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=120)

    # -- running

    def run(
        self,
        *,
        parameters: Mapping[str, str] | None = None,
        logs_dir: Path | None = None,
        approve: Approver | bool | None = None,
        progress: Progress | None = None,
    ) -> WorkflowStatus:
        """Run on this machine with the local runner (`dagwright run`); returns the final status."""
        from dagwright.sdk import running

        return running.run_locally(self, parameters, logs_dir=logs_dir, approve=approve, progress=progress)

    def submit(
        self,
        namespace: str | None = None,
        *,
        parameters: Mapping[str, str] | None = None,
        watch: bool = False,
        progress: Progress | None = None,
        kubeconfig: str | None = None,
    ) -> WorkflowStatus:
        """Create the Workflow in the cluster of `kubeconfig` (default: `$KUBECONFIG`, else ~/.kube/config), as
        `dagwright submit` does, in `namespace` (default: the workflow's, else the kubeconfig's).

        Returns its status: the final one with `watch=True` (waits until it finishes), else as just created."""
        from dagwright.sdk import running

        return running.submit(self, namespace, parameters, watch=watch, progress=progress, kubeconfig=kubeconfig)

    # -- helpers

    def _data(self) -> dict[str, Any]:
        from dagwright.spec import API_VERSION, KIND

        depends_on = _with_inferred_dependencies(self._nodes)
        spec = {**self.spec_fields, "nodes": [n.data(depends_on[n.name]) for n in self._nodes]}
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": dict(self.metadata), "spec": spec}

    def _raise_for_nodes(self, check: Callable[[], T], extra: Node | None = None) -> T:
        """Run a check, naming nodes by name in the fields of its problems."""
        try:
            return check()
        except SpecError as error:
            names = [n.name for n in self._nodes] + ([extra.name] if extra else [])
            raise SpecError([_named(problem, names) for problem in error.problems]) from None


def node(
    name: str,
    *,
    image: str | None = None,
    command: Sequence[Value] = (),
    args: Sequence[Value] = (),
    env: Mapping[str, Value] | None = None,
    depends_on: Iterable[Node | str] = (),
    retry: int | RetryPolicy | None = None,
    timeout: Seconds | None = None,
    when: str | None = None,
    approval: str | Approval | None = None,
    pod_metadata: PodMetadata | None = None,
    resources: Mapping[str, Any] | None = None,
    node_runner: bool | None = None,
    for_each: ForEach | Sequence[Any] | Value | None = None,
    finally_: bool = False,
    workflow: Workflow | None = None,
) -> Node:
    """Declare a node in `workflow`, or in the innermost `with Workflow(...)` block.

    `retry=3` is `retry: {limit: 3}`; `timeout` is whole seconds (or a timedelta, rounded up); `approval="text"`
    makes an approval node; `when` is a CEL expression as in the manifest; `finally_=True` is `finally: true` (a
    node that runs once every regular node has ended, whatever happened). `for_each` runs the node once per item:
    a list is `forEach.items`, a string or reference (`extract.outputs["files"]`) `forEach.fromJSON`, and a
    `ForEach(...)` says everything, `max_parallel` included; its templates read `item`, `item["KEY"]`, `node_index`.
    """
    fields: dict[str, Any] = {
        "image": image,
        "command": [str(value) for value in command] or None,
        "args": [str(value) for value in args] or None,
        "env": [{"name": key, "value": str(value)} for key, value in env.items()] if env else None,
        "retry": {"limit": retry} if isinstance(retry, int) else retry,
        "timeout_seconds": _seconds(timeout),
        "when": when,
        "approval": {"message": approval} if isinstance(approval, str) else approval,
        "pod_metadata": pod_metadata,
        "resources": dict(resources) if resources is not None else None,
        "node_runner": node_runner,
        "for_each": _for_each(for_each),
        "finally_": finally_ or None,
    }
    created = current(workflow).add(name, {key: value for key, value in fields.items() if value is not None})
    return created.after(*depends_on)


def current(workflow: Workflow | None = None) -> Workflow:
    """`workflow`, or the innermost `with Workflow(...)` block's."""
    if workflow is not None:
        return workflow
    active = _ACTIVE.get()
    if not active:
        raise RuntimeError("a node needs a workflow: declare it inside `with Workflow(...):` or pass workflow=")
    return active[-1]


def _seconds(value: Seconds | None, allow_zero: bool = False) -> int | None:
    """Whole seconds from an int or a timedelta (rounded up, so a timeout is never shorter than asked)."""
    if value is None or isinstance(value, int):
        return value
    seconds = math.ceil(value.total_seconds())
    return seconds if seconds or allow_zero else max(seconds, 1)


def _for_each(value: ForEach | Sequence[Any] | Value | None) -> Any:
    """`forEach` as the manifest has it: a literal list is `items`, a template (text or reference) `fromJSON`."""
    if value is None or hasattr(value, "model_fields_set"):  # None, or a ForEach model as given
        return value
    if isinstance(value, str | Reference):
        return {"from_json": str(value)}
    return {"items": list(value)}


def _with_inferred_dependencies(nodes: Sequence[Node]) -> dict[str, list[str]]:
    """Each node's dependsOn: its own, then every node whose outputs it reads and is not already upstream of it.
    Only between nodes of one kind: a finally node reads regular nodes without depending on them (they have all
    ended when it starts), and may depend only on other finally nodes."""
    depends_on = {n.name: list(n.depends_on) for n in nodes}
    final = {n.name: bool(n.fields.get("finally_")) for n in nodes}
    for declared in nodes:
        own = depends_on[declared.name]
        for source in _outputs_read(declared):
            if source == declared.name or final.get(source) is not final[declared.name]:
                continue  # unknown; or a finally node reading a regular one (it ends first), or the reverse (invalid)
            if source not in _ancestors(declared.name, depends_on):
                own.append(source)
    return depends_on


def _outputs_read(declared: Node) -> Iterator[str]:
    fields = declared.fields
    values = [*fields.get("command", ()), *fields.get("args", ()), *(var["value"] for var in fields.get("env", ()))]
    for_each = fields.get("for_each")
    from_json = for_each.get("from_json") if isinstance(for_each, dict) else getattr(for_each, "from_json", None)
    if from_json:
        values.append(from_json)
    for value in values:
        for text in templates.references(value):
            upstream = templates.output_upstream(text)
            if upstream is not None:
                yield upstream
    if fields.get("when"):
        from dagwright import conditions

        try:
            yield from sorted(conditions.compile_condition(fields["when"], final=bool(fields.get("finally_"))).reads)
        except conditions.InvalidCondition:
            return  # validation reports it, with the manifest's message


def _ancestors(name: str, depends_on: Mapping[str, Sequence[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(depends_on.get(name, ()))
    while todo:
        current_name = todo.pop()
        if current_name not in seen:
            seen.add(current_name)
            todo.extend(depends_on.get(current_name, ()))
    return seen


def _named(problem: Problem, names: Sequence[str]) -> Problem:
    """`spec.nodes[3].retry` -> `spec.nodes['load'].retry`: a Python author never counted the nodes."""
    match = _NODE_INDEX.match(problem.field)
    index = int(match.group(1)) if match else -1
    if match is None or index >= len(names):
        return problem
    return Problem(f"spec.nodes[{names[index]!r}]" + problem.field[match.end() :], problem.message)
