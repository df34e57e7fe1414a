"""`python -m dagwright.sdk.call MODULE:FUNCTION [--json NAME=VALUE | --text NAME=VALUE]...`: a function node.

What a node declared with `@function` runs (`sdk/functions.py` writes the command): import the function, read its
arguments, call it, and write what it returns to `$DAGWRIGHT_OUTPUTS` (the node I/O contract, `nodeio.py`), or
print it when that is not set (a run by hand).

Arguments: `--json` values are JSON written when the workflow was built; `--text` values are templates the planner
rendered (a parameter, an upstream output: strings as they are, other values as JSON). Each is read by the
parameter's annotation with pydantic: `str` takes the text as it is, any other annotation JSON first, else the
text (so `int` gets 42 from `42`, `datetime` a date from `2026-11-29`); no annotation: JSON if it parses, else the
text. A value that does not fit exits with 65 (EX_DATAERR, as node-runner does for bad inputs), naming the
argument; an exception in the function fails the node with its traceback in the log.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagwright import nodeio
from dagwright.sdk import functions


class CallError(Exception):
    """A problem with the call itself (not in the function): one line, exit code `code`."""

    def __init__(self, message: str, code: int = nodeio.EXIT_INVALID_INPUTS) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        target, arguments = _parse(list(sys.argv[1:] if argv is None else argv))
        fn = _load(target)
        kwargs = _decode(fn, arguments)
        result = fn(**kwargs)
        _write(_outputs(result))
    except CallError as error:
        print(f"dagwright.sdk.call: {error}", file=sys.stderr)
        return error.code
    return 0


def _parse(argv: list[str]) -> tuple[str, list[tuple[str, str, str]]]:
    """(MODULE:FUNCTION, [(kind, name, value)])."""
    if not argv or ":" not in argv[0]:
        raise CallError("usage: python -m dagwright.sdk.call MODULE:FUNCTION [--json|--text NAME=VALUE]...", 64)
    target, rest = argv[0], argv[1:]
    arguments = []
    for i in range(0, len(rest), 2):
        kind, pair = rest[i], rest[i + 1] if i + 1 < len(rest) else ""
        name, equals, value = pair.partition("=")
        if kind not in ("--json", "--text") or not equals or not name:
            raise CallError(f"expected --json NAME=VALUE or --text NAME=VALUE, got {kind!r} {pair!r}", 64)
        arguments.append((kind[2:], name, value))
    return target, arguments


def _load(target: str) -> Callable[..., Any]:
    module_name, _, qualname = target.partition(":")
    functions.importing_for_node = True  # a module that runs its workflow on import must not do it here
    try:
        found: Any = importlib.import_module(module_name)
    finally:
        functions.importing_for_node = False
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise CallError(f"module '{module_name}' has no '{qualname}'", 1)
    fn = found.fn if isinstance(found, functions.Function) else found  # the @function wrapper, or a plain function
    if not callable(fn):
        raise CallError(f"{target} is not a function", 1)
    return typing.cast(Callable[..., Any], fn)


def _decode(fn: Callable[..., Any], arguments: list[tuple[str, str, str]]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve here: read values without it
        hints = {}
    accepted = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs: dict[str, Any] = {}
    for kind, name, text in arguments:
        if name not in accepted and not takes_any:
            raise CallError(f"argument '{name}': the function has no such parameter")
        try:
            kwargs[name] = _value(kind, text, hints.get(name, Any))
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            raise CallError(f"argument '{name}': {_one_line(error)} (got {text[:80]!r})") from None
    return kwargs


_MISSING = object()


def _value(kind: str, text: str, annotation: Any) -> Any:
    if kind == "text" and annotation is str:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        if kind == "json":
            raise
        value = _MISSING
    if value is not _MISSING:
        fits, plain = _plain(value, annotation)
        if fits:
            return plain
    elif annotation is Any:
        return text
    import pydantic  # only for annotations that need it: most nodes start without loading pydantic

    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
    if kind == "json":
        return adapter.validate_python(value)
    try:
        return adapter.validate_json(text)
    except pydantic.ValidationError:
        return adapter.validate_python(text)


def _plain(value: Any, annotation: Any) -> tuple[bool, Any]:
    """(True, value) when a JSON value already is what a plain annotation asks for, as pydantic would give it."""
    if annotation is Any or annotation is object:
        return True, value
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return True, float(value)
    if annotation in (int, str, bool, list, dict) and type(value) is annotation:
        return True, value
    return False, None


def _outputs(result: object) -> dict[str, Any]:
    """A mapping (or a pydantic model or dataclass) as it is, None as no outputs, anything else as
    `{"result": value}`; all as JSON values."""
    if result is None:
        return {}
    try:
        value = json.loads(functions.to_json(result, "the return value"))
    except TypeError as error:
        raise CallError(str(error), nodeio.EXIT_INVALID_OUTPUTS) from None
    structured = isinstance(result, Mapping) or dataclasses.is_dataclass(result) or hasattr(result, "model_dump")
    if structured and isinstance(value, dict):
        return value
    return {"result": value}


def _write(outputs: dict[str, Any]) -> None:
    text = json.dumps(outputs, separators=(",", ":"), ensure_ascii=False)
    path = os.environ.get("DAGWRIGHT_OUTPUTS")
    if not path:
        print(text)
    elif outputs:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


def _one_line(error: Exception) -> str:
    errors = getattr(error, "errors", None)  # pydantic's ValidationError: its first problem
    if callable(errors):
        return str(errors(include_url=False)[0]["msg"])
    return str(error).splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
