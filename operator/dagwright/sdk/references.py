"""Template references as Python values: `wf.params["date"]` and `extract.outputs["rows"]`.

Each renders as the manifest's own template text (`{{ params.date }}`, `{{ nodes.extract.outputs.rows }}`), so it
can be passed where a string goes (command, args, env values) or put inside an f-string; the builder finds the
output references in a node's values by their text, whichever way they were written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from dagwright import templates


@dataclass(frozen=True, slots=True)
class Reference:
    """A `{{ ... }}` reference; `str()` (and f-strings) give its template text."""

    text: str

    def __str__(self) -> str:
        return "{{ " + self.text + " }}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


@dataclass(frozen=True, slots=True)
class ParameterReference(Reference):
    """`{{ params.NAME }}`: a workflow parameter, always a string when rendered."""

    name: str = ""


@dataclass(frozen=True, slots=True)
class OutputReference(Reference):
    """`{{ nodes.NODE.outputs.KEY }}`: a key of an upstream node's outputs (strings as they are, else JSON)."""

    node: str = ""
    key: str = ""


class ItemReference(Reference):
    """`item` in a forEach node: `{{ item }}`, and `item["KEY"]` for `{{ item.KEY }}` (a field of an object item)."""

    def __getitem__(self, key: str) -> ItemReference:
        return ItemReference(f"{self.text}.{key}")


item = ItemReference("item")  # the current item of a forEach node
node_index = Reference("node.index")  # its position among the items, from 0

Value = str | Reference  # what a command, args or env entry may be given as
Seconds = int | timedelta  # whole seconds, or a timedelta (rounded up)


class Parameters:
    """`wf.params`: references to the workflow's parameters; an undefined name fails here, not at run time."""

    def __init__(self, names: frozenset[str]) -> None:
        self._names = names

    def __getitem__(self, name: str) -> ParameterReference:
        if name not in self._names:
            known = ", ".join(sorted(self._names)) or "none"
            raise KeyError(f"parameter '{name}' is not defined in Workflow(parameters=...) (defined: {known})")
        return ParameterReference(f"params.{name}", name)

    def __contains__(self, name: object) -> bool:
        return name in self._names


class Outputs:
    """`node.outputs`: references to the keys a node writes to `$DAGWRIGHT_OUTPUTS` (unknown until it runs)."""

    def __init__(self, node: str) -> None:
        self._node = node

    def __getitem__(self, key: str) -> OutputReference:
        reference = OutputReference(f"nodes.{self._node}.outputs.{key}", self._node, key)
        problem = templates.check_reference(reference.text, {})
        if problem is not None:
            raise KeyError(f"node '{self._node}': outputs[{key!r}]: {problem}")
        return reference
