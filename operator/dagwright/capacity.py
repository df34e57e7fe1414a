"""The operator-wide limit on running attempts (`--max-running-nodes`), shared by priority.

Each workflow's pass asks `Fleet.room` how many attempts it may start, hands that to `planner.plan` as its
`capacity`, carries out the launches, and records what it now holds with `Fleet.record`. The rules:

1. Attempts running across all workflows never exceed the limit: a pass gets the limit, less every attempt
   running anywhere, less what is reserved for others (rule 2). Passes that share a fleet must not interleave
   between `room` and `record`: `Fleet.turn()` serializes them (only when there is a limit).
2. Room that a higher-`spec.priority` workflow is waiting for (ready nodes its parallelism allows but capacity
   held back) is not handed to a lower-priority one, whichever pass runs first.
3. When a workflow's running count drops, every workflow that was held back is due another pass: the room it
   was refused may be free now (its own too: its room was computed with its old, higher count).

Pure bookkeeping: no clock, no I/O, nothing from Kubernetes; keys are whatever the backend names workflows by.
The counts also feed the operator's metrics (workflows by phase, nodes waiting).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """What one workflow holds after its pass (from the planner's Decision)."""

    running: int  # attempts running
    waiting: int  # ready nodes not launched, for lack of parallelism or capacity
    held_back: int  # of those, the ones capacity alone held back: room reserved for it against lower priorities
    priority: int
    phase: str


class Fleet(Generic[K]):
    """Every workflow's standing, and the room a pass may use. Not thread-safe by itself: see `turn`."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._standing: dict[K, Standing] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Hold while a pass goes from `room` to `record`, so two passes cannot both spend the same room."""
        if self.limit is None:
            yield
            return
        with self._lock:
            yield

    def room(self, key: K, priority: int) -> int | None:
        """How many attempts workflow `key` may start now; None when there is no limit."""
        if self.limit is None:
            return None
        running = sum(standing.running for standing in self._standing.values())
        reserved = sum(
            standing.held_back
            for other, standing in self._standing.items()
            if other != key and standing.priority > priority
        )
        return max(0, self.limit - running - reserved)

    def record(self, key: K, standing: Standing) -> list[K]:
        """Store `key`'s standing after its pass; returns the workflows due another pass (rule 3)."""
        before = self._standing.get(key)
        self._standing[key] = standing
        if self.limit is None or before is None or standing.running >= before.running:
            return []
        return [other for other, held in self._standing.items() if held.waiting]

    def forget(self, key: K) -> None:
        """The workflow is gone: it holds nothing any more."""
        self._standing.pop(key, None)

    def phase_counts(self) -> dict[str, int]:
        return dict(Counter(standing.phase for standing in self._standing.values()))

    def waiting_total(self) -> int:
        return sum(standing.waiting for standing in self._standing.values())
