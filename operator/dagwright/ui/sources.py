"""What the web server needs from wherever workflows come from: the cluster (`cluster.py`) or a local run
(`local.py`). Every method blocks; the server calls them in worker threads.

Objects are returned as stored, with `status.nodes` expanded (never `compressedNodes`). A failure the user should
see (RBAC, no such workflow, an action the source cannot do) is a `SourceError` with the HTTP status to answer
with; the page shows its message as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

ACTIONS = ("pause", "resume", "stop", "retry", "approve", "reject")


class SourceError(Exception):
    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Source(Protocol):
    @property
    def label(self) -> str:
        """Where the workflows come from, for the page's header."""

    @property
    def actions(self) -> frozenset[str]:
        """The actions this source can carry out (a local run cannot retry once it ended)."""

    @property
    def poll_seconds(self) -> float:
        """How often the server reads a workflow again for its subscribers."""

    @property
    def namespace(self) -> str | None:
        """The namespace the list shows by default; None: all."""

    def list(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def read(self, namespace: str, name: str) -> dict[str, Any]: ...

    def act(self, namespace: str, name: str, action: str, node: str | None, message: str) -> None: ...

    def logs(self, namespace: str, name: str, node: str, attempt: int | None) -> Iterator[str]:
        """The attempt's log as it is written, ending when the attempt does; `SourceError` when there is none."""
