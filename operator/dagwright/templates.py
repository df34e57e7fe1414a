"""`{{ ... }}` templates in a node's args and env values.

Templates are substituted as literal strings: the result is never given to a shell or parsed again, so a
parameter value such as `$(rm -rf /)` or `{{ params.other }}` arrives in the command verbatim. References are
checked at validation time, so a typo fails before anything runs.

Known references: `params.NAME`, `workflow.name`, `workflow.namespace`, `workflow.uid`, `node.name`,
`node.attempt`, and `nodes.UPSTREAM.outputs.KEY` (values produced by an upstream node); in finally nodes also
`workflow.status` and `workflow.failedNodes`.
"""

from __future__ import annotations

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


def check_reference(text: str, parameters: Mapping[str, str], final: bool = False) -> str | None:
    """Why `text` is not a valid reference (in a finally node's templates if `final`), or None when it is."""
    if not _REFERENCE.match(text):
        return f"'{{{{ {text} }}}}' is not a valid template reference"
    if text in _FIXED:
        return None
    if text in OUTCOME:
        return None if final else f"'{{{{ {text} }}}}' is known only to finally nodes (finally: true)"
    parts = text.split(".")
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
        "nodes.NODE.outputs.KEY)"
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
    return TEMPLATE.sub(lambda m: context.get(m.group(1), m.group(0)), value)


def outputs_context(node: str, outputs: Mapping[str, Any]) -> dict[str, str]:
    """The references `nodes.NODE.outputs.KEY` an upstream's outputs provide: strings as they are, anything else
    as JSON. Shared by the planner and node-runner so a value renders the same wherever it is rendered."""
    return {
        f"nodes.{node}.outputs.{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in outputs.items()
    }
