"""`when` conditions: a node's CEL expression, compiled once and evaluated by the planner.

`nodes[].when` is written in CEL, the language Kubernetes uses for CRD validation rules, over typed variables:

    params   map(string, string)            the workflow's parameters (`-p` overrides included)
    nodes    map(string, map(string, dyn))  nodes['NAME'].phase (the NodePhase, a string) and
                                            nodes['NAME'].outputs (the node's outputs, JSON values as they are)
    workflow map(string, dyn)               finally nodes only: workflow.status ("Succeeded" or "Failed": what
                                            the regular nodes reached) and workflow.failedNodes (their names)

Values travel as CEL values in the activation, never pasted into the expression text, so a parameter holding
quotes or `|| true` is compared as data, never run as logic. `nodes` holds the node's dependencies and every
other upstream node the expression names literally (`nodes.NAME` or `nodes['NAME']`; a name with a hyphen
needs the second form); validation (`validation.py`) refuses a name that is not upstream.

Who calls it: `validation.compile_spec` compiles every expression (a syntax or type error is a Problem naming
`spec.nodes[i].when`, so `dagwright validate`/`run`, the operator's InvalidSpec and the webhook agree), and
`Workflow` holds the compiled form for the planner, which evaluates it when the node's turn to launch comes
(rule 7 in `planner.py`). Compiling is cached by expression text, so a spec is compiled once, however many
planner calls read it. A failure at run time (a missing key, a wrong type) is `ConditionFailed`, never a crash.

The library is cel-expr-python, Google's own Python binding of cel-cpp (the C++ implementation of the CEL
spec; Kubernetes runs cel-go, its sibling). Chosen over the two other maintained ones because it type-checks
at compile time against the declared variables: `params.retries > 2` (a string against an int), `workflow.x`
or a misspelt variable are validation errors, where common-expression-language (Rust bindings) and cel-python
(pure Python) only fail at run time. It also evaluates in ~15 us (cel-python: ~1 ms, and ~0.7 ms to compile,
which 10,000 conditions would feel), has no dependencies (common-expression-language pulls typer and
prompt-toolkit for its REPL; cel-python pendulum, google-re2, lark, jmespath), and ships wheels for Linux
x86_64 and aarch64, macOS and Windows, CPython 3.11 to 3.14 (common-expression-language: no Linux aarch64).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cel_expr_python import cel

from dagwright.status import NodeStatus

MAX_MESSAGE = 512  # a CEL error can quote the whole activation (an out-of-range integer): keep status small


class ConditionReason(StrEnum):
    """The reasons a `when` gives a node. The first two are skips the node's dependents pass through."""

    CONDITION_FALSE = "ConditionFalse"  # its `when` was false: never launched
    UPSTREAM_SKIPPED = "UpstreamSkipped"  # it reads (in a template) outputs of a node skipped that way
    CONDITION_ERROR = "ConditionError"  # its `when` failed to evaluate: the node Failed


# NodeStatus.reason is a plain string once read back from the cluster: compare values, not members.
PASSABLE = frozenset({ConditionReason.CONDITION_FALSE.value, ConditionReason.UPSTREAM_SKIPPED.value})


class InvalidCondition(ValueError):
    """The expression does not compile (syntax, an undeclared variable, a type error) or is not a boolean."""


class ConditionFailed(RuntimeError):
    """The expression compiled but failed on these values (a missing key, a wrong type): the node fails."""


@dataclass(frozen=True, slots=True, eq=False)
class Condition:
    """A compiled `when`: the program and the node names it reads literally."""

    expression: str
    program: Any  # cel.Expression (cel-expr-python ships stubs but no py.typed marker)
    reads: frozenset[str]


@functools.cache
def _environment(final: bool) -> Any:
    dyn_map = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    variables = {
        "params": cel.Type.Map(cel.Type.STRING, cel.Type.STRING),
        "nodes": cel.Type.Map(cel.Type.STRING, dyn_map),
    }
    if final:  # only a finally node runs once the outcome of the regular nodes is known
        variables["workflow"] = dyn_map
    return cel.NewEnv(variables=variables)


@functools.lru_cache(maxsize=4096)
def compile_condition(expression: str, final: bool = False) -> Condition:
    """Compile and type-check `expression` (with `workflow` declared for a finally node's), or raise
    InvalidCondition with the checker's message."""
    try:
        program = _environment(final).compile(expression)
    except Exception as error:  # cel-expr-python raises RuntimeError("INVALID_ARGUMENT: ERROR: <input>:1:5: ...")
        message = _cel_message(str(error))
        if _HYPHENATED.search(expression):
            message += " (a node name with '-' is written nodes['my-node'], not nodes.my-node)"
        if not final and re.search(r"(?<![\w.])workflow\b", expression):
            message += " (workflow.status and workflow.failedNodes are for finally nodes only)"
        raise InvalidCondition(message) from None
    result = program.return_type()
    if result != cel.Type.BOOL and result != cel.Type.DYN:
        raise InvalidCondition(f"must be a boolean expression, but it gives {result.name().lower()}")
    return Condition(expression=expression, program=program, reads=references(expression))


def evaluate(
    condition: Condition,
    params: Mapping[str, str],
    nodes: Mapping[str, NodeStatus],
    workflow: Mapping[str, Any] | None = None,
) -> bool:
    """The condition's value over `params` and `nodes` (the statuses of the upstream nodes it may read), and for
    a finally node `workflow`, or ConditionFailed with CEL's message."""
    data: dict[str, Any] = {
        "params": dict(params),
        "nodes": {name: {"phase": node.phase.value, "outputs": node.outputs or {}} for name, node in nodes.items()},
    }
    if workflow is not None:
        data["workflow"] = dict(workflow)
    try:
        value = condition.program.eval(data=data)
        kind = value.type()
        result = value.value()
    except Exception as error:  # a value the binding cannot convert (cel-expr-python raises for few)
        raise ConditionFailed(_fitted(f"{type(error).__name__}: {error}")) from None
    if kind == cel.Type.ERROR:
        held = sorted(name for name, node in nodes.items() if node.outputs is None and node.outputs_ref is not None)
        hint = ""
        if held:  # node-runner stored them in Redis only; the planner reads status, never Redis
            hint = f" (outputs of {', '.join(held)} are too large for status, so `when` cannot read them)"
        raise ConditionFailed(_fitted(_cel_message(str(result)) + hint))
    if not isinstance(result, bool):
        raise ConditionFailed(_fitted(f"gave {_short(result)} ({kind.name().lower()}), not a boolean"))
    return result


# A string literal (skipped, so a quoted 'nodes.x' names nothing) or a literal reference to a node.
_TOKENS = re.compile(
    r"""
      (?P<string>[rRbB]{0,2}(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"))
    | (?<![\w.])nodes\s*
      (?:\.\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*) | \[\s*(?:'(?P<single>[^'\\]*)'|"(?P<double>[^"\\]*)")\s*\])
    """,
    re.DOTALL | re.VERBOSE,
)


def references(expression: str) -> frozenset[str]:
    """The node names `expression` reads literally: `nodes.NAME` and `nodes['NAME']` outside string literals."""
    found = set()
    for match in _TOKENS.finditer(expression):
        name = match.group("field") or match.group("single") or match.group("double")
        if name:
            found.add(name)
    return frozenset(found)


_HYPHENATED = re.compile(r"(?<![\w.])nodes\.[A-Za-z0-9_]+-")


def _cel_message(text: str) -> str:
    """cel-cpp's message on one line: each error's first line (cel-cpp adds the expression and a caret under
    it), without the status code and the `<input>` tag. 'INVALID_ARGUMENT: ERROR: <input>:1:9: x' -> '1:9: x'."""
    text = re.sub(r"^[A-Z_]+: ", "", text.strip())
    text = re.sub(r"\s*\[[A-Z_]+\]$", "", text)
    errors = [line.removeprefix("ERROR: ").replace("<input>:", "") for line in text.splitlines()]
    return "; ".join(line for line in errors if line and not line.startswith(" | "))


def _fitted(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
