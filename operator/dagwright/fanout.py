"""forEach fan-out: a node's items, their compact status, and the outputs gathered from them.

The planner (rule 7 in `planner.py`) expands a forEach node once its dependencies are done and its `when`
passed, then schedules its items as it schedules nodes: each item has its own attempts, retries, timeout and
Job. What lives here is the part that is about items only, pure like the planner:

- `values`: the item list, from `forEach.items` or the JSON array `forEach.fromJSON` renders to (parsed once
  per text: the planner asks on every call that launches items);
- `Items`: a mutable working copy of `ItemsStatus` for one planner call (`states` as a bytearray, one byte per
  item, so a 10,000-item node costs a copy, not 10,000 model copies), turned back into a status by `frozen`;
- `gather`: item outputs into the node's outputs, one JSON array per key in item order (null where missing);
- `recorded` and `fresh`: the item forms of `planner.recorded` and of a retried workflow's fresh budget.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from dagwright.spec import MAX_ITEMS, ForEach
from dagwright.status import ItemsStatus, ItemStatus

PENDING = ord("P")
RUNNING = ord("R")
RETRYING = ord("B")  # waiting out a backoff before its next attempt
SUCCEEDED = ord("S")
FAILED = ord("F")
NOT_RUN = ord("X")  # stopped, or never started (failFast, the workflow's deadline)
_FINISHED = frozenset({SUCCEEDED, FAILED, NOT_RUN})
_EXCERPT = 80


def values(for_each: ForEach, render: Callable[[str], str]) -> list[Any] | str:
    """The items, or why there are none to run: `fromJSON` that does not render to a JSON array of at most
    MAX_ITEMS values fails the node with this message (never a crash)."""
    if for_each.items is not None:
        return for_each.items
    assert for_each.from_json is not None  # validation: exactly one of them
    return _parsed(render(for_each.from_json))


@lru_cache(maxsize=64)
def _parsed(text: str) -> list[Any] | str:
    try:
        value = json.loads(text)
    except ValueError:
        return f"forEach.fromJSON is not a JSON array: {_excerpt(text)}"
    if not isinstance(value, list):
        return f"forEach.fromJSON is not a JSON array (it is a JSON {type(value).__name__}): {_excerpt(text)}"
    if len(value) > MAX_ITEMS:
        return f"forEach.fromJSON has {len(value)} items; a forEach node runs at most {MAX_ITEMS}"
    return value


def _excerpt(text: str) -> str:
    return repr(text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "...")


def note(for_each: ForEach | None) -> str | None:
    """How `dagwright graph` labels a forEach node, drawn once: its item count when the manifest says it."""
    if for_each is None:
        return None
    if for_each.items is not None:
        return f"forEach: {len(for_each.items)} items"
    return "forEach"


class Items:
    """One planner call's working copy of a forEach node's items; the status it came from is left untouched."""

    __slots__ = ("detail", "launched", "outputs", "states", "total")

    def __init__(self, status: ItemsStatus) -> None:
        self.total = status.total
        self.states = bytearray(status.states, "ascii")
        self.detail = dict(status.detail)
        self.outputs = list(status.outputs) if status.outputs is not None else None
        self.launched = 0  # attempts launched or adopted in this call (the node's `attempts` counts them all)

    @classmethod
    def new(cls, total: int) -> Items:
        return cls(ItemsStatus.model_construct(total=total, states="P" * total, detail={}, outputs=None))

    def attempts(self, index: int) -> int:
        detail = self.detail.get(str(index))
        return detail.attempts if detail is not None else 0

    def count(self, state: int) -> int:
        return self.states.count(state)

    def record_outputs(self, index: int, outputs: dict[str, Any] | None) -> None:
        if outputs is None and self.outputs is None:
            return
        if self.outputs is None:
            self.outputs = [None] * self.total
        self.outputs[index] = outputs

    def progress(self) -> str:
        """ "succeeded/total" (what `status.nodes.NAME.progress` shows), as Argo's "N/M" reads: a failed node
        with 4 of 8 items succeeded reads 4/8, not 8/8 for the items that ended or never ran."""
        return f"{self.count(SUCCEEDED)}/{self.total}"

    def frozen(self) -> ItemsStatus:
        # Not validated: every value is built by the planner (as for node statuses).
        return ItemsStatus.model_construct(
            total=self.total, states=self.states.decode("ascii"), detail=self.detail, outputs=self.outputs
        )


def gather(outputs: list[dict[str, Any] | None] | None) -> dict[str, list[Any]]:
    """Each key any item produced -> the JSON array of every item's value for it, in item order."""
    if not outputs:
        return {}
    keys = dict.fromkeys(key for each in outputs if each for key in each)
    return {key: [each.get(key) if each else None for each in outputs] for key in keys}


def recorded(items: ItemsStatus | None, index: int, attempt: int) -> bool:
    """Whether the status already holds how attempt `attempt` of item `index` ended (`planner.recorded`)."""
    if items is None:
        return False
    if index >= items.total:
        return True  # no such item: nothing to learn from it
    state = ord(items.states[index])
    if state in _FINISHED:
        return True
    detail = items.detail.get(str(index))
    attempts = detail.attempts if detail is not None else 0
    return attempt < attempts or (attempt == attempts and state != RUNNING)


def running(items: ItemsStatus, index: int) -> ItemStatus | None:
    """Item `index`'s detail if it is running (the reconciler looks for its Job)."""
    return items.detail.get(str(index)) if items.states[index] == "R" else None


def fresh(items: ItemsStatus) -> ItemsStatus:
    """A retried workflow's items: the succeeded ones kept, the others pending with a fresh retry budget and
    their attempt numbers kept (Jobs are named after them, so they are never reused)."""
    states = bytearray(items.states, "ascii")
    detail: dict[str, ItemStatus] = {}
    outputs = list(items.outputs) if items.outputs is not None else None
    for index, state in enumerate(states):
        if state == SUCCEEDED:
            continue
        states[index] = PENDING
        if outputs is not None:
            outputs[index] = None
        before = items.detail.get(str(index))
        if before is not None:
            detail[str(index)] = ItemStatus(attempts=before.attempts, retry_budget_from=before.attempts + 1)
    return ItemsStatus(total=items.total, states=states.decode("ascii"), detail=detail, outputs=outputs)


__all__ = [
    "FAILED",
    "NOT_RUN",
    "PENDING",
    "RETRYING",
    "RUNNING",
    "SUCCEEDED",
    "Items",
    "fresh",
    "gather",
    "note",
    "recorded",
    "running",
    "values",
]
