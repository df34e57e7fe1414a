"""`{{ ... }}` templates in a node's args and env values.

Templates are substituted as literal strings: the result is never given to a shell or parsed again, so a
parameter value such as `$(rm -rf /)` or `{{ params.other }}` arrives in the command verbatim. References are
checked at validation time, so a typo fails before anything runs.

Known references: `params.NAME`, `workflow.name`, `workflow.namespace`, `workflow.uid`, `node.name`,
`node.attempt`, and `nodes.UPSTREAM.outputs.KEY` (values produced by an upstream node); in finally nodes also
`workflow.status` and `workflow.failedNodes`; in forEach nodes also `item`, `item.KEY` (a field of an object
item, `item.a.b` nested) and `node.index` (the item's position).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_REFERENCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
_FIXED = frozenset({"workflow.name", "workflow.namespace", "workflow.uid", "node.name", "node.attempt"})
# Known once every regular node has ended: finally nodes only. failedNodes renders as a JSON array.
OUTCOME = frozenset({"workflow.status", "workflow.failedNodes"})


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed `{{ ... }}`: its text, and for output references the upstream node they read."""

    text: str
    upstream: str | None = None


def references(value: str) -> Iterator[str]:
    """The reference texts inside `value`, in order."""
    for match in TEMPLATE.finditer(value):
        yield match.group(1)


def has_templates(value: str) -> bool:
    return "{{" in value and TEMPLATE.search(value) is not None


def check_reference(
    text: str, parameters: Mapping[str, str], final: bool = False, for_each: bool = False
) -> str | None:
    """Why `text` is not a valid reference, or None when it is; `final`: in a finally node's templates,
    `for_each`: in a forEach node's."""
    if not _REFERENCE.match(text):
        return f"'{{{{ {text} }}}}' is not a valid template reference"
    if text in _FIXED:
        return None
    if text in OUTCOME:
        return None if final else f"'{{{{ {text} }}}}' is known only to finally nodes (finally: true)"
    parts = text.split(".")
    if text == "node.index" or parts[0] == "item":
        if for_each:
            return None
        return f"'{{{{ {text} }}}}' is only known in a forEach node (add forEach to this node)"
    if parts[0] == "params":
        if len(parts) != 2:
            return f"'{{{{ {text} }}}}' should be params.NAME"
        if parts[1] not in parameters:
            return f"'{{{{ {text} }}}}' names parameter '{parts[1]}', which spec.parameters does not define"
        return None
    if parts[0] == "nodes":
        if len(parts) != 4 or parts[2] != "outputs":
            return f"'{{{{ {text} }}}}' should be nodes.NODE.outputs.KEY"
        return None
    return (
        f"'{{{{ {text} }}}}' is not a known reference "
        "(params.NAME, workflow.name, workflow.namespace, workflow.uid, node.name, node.attempt, "
        "nodes.NODE.outputs.KEY; in forEach nodes item, item.KEY, node.index)"
    )


def output_upstream(text: str) -> str | None:
    """The node an output reference reads from, if `text` is one."""
    parts = text.split(".")
    if len(parts) == 4 and parts[0] == "nodes" and parts[2] == "outputs":
        return parts[1]
    return None


def render(value: str, context: Mapping[str, str]) -> str:
    """Substitute every reference from `context`; an unresolved one is left as written.

    Validation has already rejected unknown references; the only ones that can be missing here are outputs an
    upstream node did not produce, and leaving those visible is clearer for the user than an empty string.
    """
    if "{{" not in value:
        return value
    pieces = _pieces(value)
    # Even positions are literal text, odd ones (reference, as written) pairs: split once per distinct value,
    # since a forEach node renders the same templates for thousands of items.
    out = []
    for index, piece in enumerate(pieces):
        if index % 2:
            text, written = piece
            out.append(context.get(text, written))
        else:
            out.append(piece)
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _pieces(value: str) -> tuple[Any, ...]:
    pieces: list[Any] = []
    last = 0
    for match in TEMPLATE.finditer(value):
        pieces.append(value[last : match.start()])
        pieces.append((match.group(1), match.group(0)))
        last = match.end()
    pieces.append(value[last:])
    return tuple(pieces)


def outputs_context(node: str, outputs: Mapping[str, Any]) -> dict[str, str]:
    """The references `nodes.NODE.outputs.KEY` an upstream's outputs provide: strings as they are, anything else
    as JSON. Shared by the planner and node-runner so a value renders the same wherever it is rendered."""
    return {f"nodes.{node}.outputs.{key}": _as_text(value) for key, value in outputs.items()}


def item_context(item: Any, index: int, texts: Iterator[str] | list[str]) -> dict[str, str]:
    """The references one forEach item provides among `texts` (those a node's templates use): `item` (a string
    as is, anything else as JSON), `item.KEY` for fields of an object item, and `node.index`. A field the item
    does not have is left out, so the reference stays visible as written (like a missing upstream output)."""
    context = {"node.index": str(index), "item": _as_text(item)}
    for text in texts:
        if text.startswith("item."):
            value: Any = item
            for key in text.split(".")[1:]:
                if not isinstance(value, dict) or key not in value:
                    break
                value = value[key]
            else:
                context[text] = _as_text(value)
    return context


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return str(value) if type(value) is int else json.dumps(value)  # the same text, without the encoder's cost
