"""Python-function nodes: `@function` turns a module-level function into something that declares a node.

Calling the decorated function inside `with Workflow(...)` does not run it: it declares a node whose command is
`python -m dagwright.sdk.call MODULE:FUNCTION` followed by its arguments (`sdk/call.py` runs it in the node). So
the function runs from an importable module of the image (or of this machine, for `run()`), and can import
anything installed there; nothing is pickled or pasted into the manifest.

Arguments travel as args, one `--json NAME=VALUE` or `--text NAME=TEMPLATE` each:
- a value known now (numbers, lists, dicts, plain strings, pydantic models, dataclasses) is sent as JSON;
- a reference (`wf.params["date"]`, `extract.outputs["rows"]`, or a string containing `{{ ... }}`) is sent as
  its template, which the planner renders before the node starts; `call.py` then reads it by the parameter's
  annotation (`str`: the text as it is; anything else: JSON first, else the text, checked by pydantic).
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypedDict, TypeVar, Unpack, overload

from dagwright import templates
from dagwright.sdk.references import Reference, Seconds, Value

if TYPE_CHECKING:
    from dagwright.sdk.builder import Node
    from dagwright.spec import ForEach, PodMetadata, RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")

ENTRY_POINT = "dagwright.sdk.call"

# Set by `dagwright.sdk.call` while it imports a function's module: a script that runs its workflow at import
# time (no `if __name__ == "__main__":`) would otherwise start the whole workflow again inside every node.
importing_for_node = False


class Function(Generic[P, R]):
    """A function that declares a node when called inside a workflow; `.fn` is the plain function."""

    def __init__(self, fn: Callable[P, R], options: Mapping[str, Any]) -> None:
        self.fn = fn
        self.options = dict(options)
        self.signature = inspect.signature(fn)
        self.target, self.pythonpath = _locate(fn)
        for parameter in self.signature.parameters.values():
            if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL):
                raise TypeError(f"{self.target}: a function node takes its arguments by name (no / or *args)")

    def __call__(self, *args: Any, **kwargs: Any) -> Node:
        """Declare the node in the current workflow, with these arguments (references or JSON values)."""
        from dagwright.sdk.builder import current, node  # not at import: a node's own start-up needs no builder

        options = dict(self.options)
        name = options.pop("name", None) or self.fn.__name__.replace("_", "-").lower()
        python = options.pop("python", "python")
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"node '{name}': {error}") from None
        arguments: list[str] = []
        for parameter, value in bound.arguments.items():
            if self.signature.parameters[parameter].kind is inspect.Parameter.VAR_KEYWORD:
                for key, item in value.items():
                    arguments += _encode(name, key, item)
            else:
                arguments += _encode(name, parameter, value)
        created = node(
            name, command=[python, "-m", ENTRY_POINT, self.target], args=arguments, workflow=current(), **options
        )
        created.function, created.pythonpath = self.target, self.pythonpath
        return created

    def with_options(self, **options: Unpack[NodeOptions]) -> Function[P, R]:
        """The same function with some node options changed (e.g. a second node of it needs another name)."""
        return Function(self.fn, {**self.options, **_given(options)})


class NodeOptions(TypedDict, total=False):
    """The options `@function(...)` and `.with_options(...)` take: `node()`'s, with `name` (default: the
    function's) and `python` (the interpreter the image runs it with). None is the same as not given."""

    name: str | None
    image: str | None
    python: str | None
    env: Mapping[str, Value] | None
    retry: int | RetryPolicy | None
    timeout: Seconds | None
    when: str | None
    resources: Mapping[str, Any] | None
    pod_metadata: PodMetadata | None
    node_runner: bool | None
    for_each: ForEach | Sequence[Any] | Value | None
    finally_: bool | None


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options set, refusing a name `NodeOptions` does not hold as a misspelt keyword argument would be."""
    for key in options:
        if key not in NodeOptions.__optional_keys__:
            raise TypeError(f"unexpected node option {key!r}")
    return {key: value for key, value in options.items() if value is not None}


@overload
def function(fn: Callable[P, R], /) -> Function[P, R]: ...


@overload
def function(**options: Unpack[NodeOptions]) -> Callable[[Callable[P, R]], Function[P, R]]: ...


def function(
    fn: Callable[P, R] | None = None, /, **options: Unpack[NodeOptions]
) -> Function[P, R] | Callable[[Callable[P, R]], Function[P, R]]:
    """Make a module-level function a node: `@function` or `@function(image=..., retry=...)` (`NodeOptions`).

    The node is named after the function (`load_rows` -> `load-rows`) unless `name` says otherwise; `python` is
    the interpreter the image runs it with (default `python`). Its return value becomes the node's outputs: a
    mapping as it is, None as no outputs, anything else as `{"result": value}`.
    """
    given = _given(options)
    if fn is not None:
        return Function(fn, given)
    return lambda decorated: Function(decorated, given)


def _encode(node_name: str, name: str, value: object) -> list[str]:
    if isinstance(value, Reference) or (isinstance(value, str) and templates.has_templates(value)):
        return ["--text", f"{name}={value}"]
    return ["--json", f"{name}={to_json(value, f'node {node_name!r}: argument {name!r}')}"]


def to_json(value: object, what: str) -> str:
    """Compact JSON of `value`; dataclasses, pydantic models, dates and the like through pydantic (loaded only
    for them). TypeError names `what` when it cannot be done."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        import pydantic_core

    try:
        plain = pydantic_core.to_jsonable_python(value)
        return json.dumps(plain, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, pydantic_core.PydanticSerializationError) as error:
        raise TypeError(f"{what} is not JSON-serialisable: {error}") from None


def _locate(fn: Callable[..., Any]) -> tuple[str, tuple[str, ...]]:
    """`MODULE:QUALNAME` to import the function by, and the directory its module imports from (for `run()`)."""
    qualname = getattr(fn, "__qualname__", "")
    module_name = getattr(fn, "__module__", None)
    if not module_name or "<" in qualname:
        raise TypeError(f"{qualname or fn!r}: a function node must be defined at the top level of a module")
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if module_name == "__main__":
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.name:
            module_name = spec.name  # run with `python -m package.module`
        elif file:
            module_name = Path(file).stem  # run as `python script.py`: importable from the script's directory
        else:
            raise TypeError(f"{qualname}: a function node must be defined in a module file, not interactively")
    if not file:
        return f"{module_name}:{qualname}", ()
    path = Path(file).resolve()
    root = path.parent if path.name != "__init__.py" else path.parent.parent
    for _ in module_name.split(".")[1:]:
        root = root.parent
    return f"{module_name}:{qualname}", (str(root),)
