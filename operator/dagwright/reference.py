"""The Workflow field reference (docs/reference.md), generated from the same models as the CRD.

One table per model reachable from the spec and the status: field name as written in YAML, type, default, and
bounds, with the model's docstring. A test keeps the committed file equal to this output.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from enum import Enum
from typing import Any

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dagwright.cronspec import CronWorkflowSpec, CronWorkflowStatus
from dagwright.spec import WorkflowSpec
from dagwright.status import WorkflowStatus

# Each kind's heading, its first line, and its roots; a model already shown for an earlier kind is linked, not repeated.
KINDS: list[tuple[str, str, list[type[BaseModel]]]] = [
    (
        "Workflow reference",
        "`apiVersion: dagwright.io/v1alpha1`, `kind: Workflow`, short name `dwf`. `kind: WorkflowTemplate` (short "
        "name `dwt`) has the same `spec` (WorkflowSpec), with `nodes` required and no `templateRef`, and no status; "
        "a Workflow runs one with `spec.templateRef` (docs/concepts.md, Templates).",
        [WorkflowSpec, WorkflowStatus],
    ),
    (
        "CronWorkflow reference",
        "`kind: CronWorkflow`, short name `dwc`: `spec.workflow` is a [WorkflowSpec](#workflowspec), the spec of "
        "each run.",
        [CronWorkflowSpec, CronWorkflowStatus],
    ),
]


def render() -> str:
    lines: list[str] = []
    seen: list[type[BaseModel]] = []
    for index, (title, summary, roots) in enumerate(KINDS):
        lines += [f"# {title}", ""] if index == 0 else ["", f"# {title}", ""]
        if index == 0:
            lines.append("Generated from the models (`dagwright crd --reference`); do not edit by hand.")
        lines.append(summary)
        lines += _tables(roots, seen)
    return "\n".join(lines) + "\n"


def _tables(roots: list[type[BaseModel]], seen: list[type[BaseModel]]) -> list[str]:
    lines: list[str] = []
    for model in _models(roots, seen):
        lines += ["", f"## {model.__name__}", ""]
        if model.__doc__:
            lines += [" ".join(model.__doc__.split()), ""]
        lines += ["| field | type | default | bounds |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            alias = field.alias or name
            lines.append(f"| `{alias}` | {_type(field.annotation)} | {_default(field)} | {_bounds(field)} |")
    return lines


def _models(roots: list[type[BaseModel]], seen: list[type[BaseModel]]) -> Iterator[type[BaseModel]]:
    pending = list(roots)
    while pending:
        model = pending.pop(0)
        if model in seen:
            continue
        seen.append(model)
        yield model
        for field in model.model_fields.values():
            pending += [m for m in _nested(field.annotation) if m not in seen]


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in typing.get_args(annotation):
        found += _nested(argument)
    return found


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _type(arguments[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in arguments)
    if origin is list:
        return f"list of {_type(arguments[0])}"
    if origin is dict:
        return f"map of {_type(arguments[1])}"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation is Any:
        return "any"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "(defaults)"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if value in ([], {}, ""):
        return ""
    return f"`{value}`".replace("True", "true").replace("False", "false")


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in _constraints(field):
        if isinstance(item, Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, MinLen):
            parts.append(f"at least {item.min_length}")
        elif isinstance(item, MaxLen):
            parts.append(f"at most {item.max_length}")
        elif getattr(item, "pattern", None):
            parts.append(f"pattern `{item.pattern}`")
    return ", ".join(parts)


def _constraints(field: FieldInfo) -> list[Any]:
    found = list(field.metadata)
    stack = [field.annotation]
    while stack:
        annotation = stack.pop()
        if typing.get_origin(annotation) is typing.Annotated:
            inner, *metadata = typing.get_args(annotation)
            for item in metadata:
                found += list(item.metadata) if isinstance(item, FieldInfo) else [item]
            stack.append(inner)
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            stack += list(typing.get_args(annotation))
    return found
