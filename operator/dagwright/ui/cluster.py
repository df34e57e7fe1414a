"""Workflows in the cluster as a UI source, with the identity of the caller's kubeconfig (or the pod's
ServiceAccount when the UI runs in the cluster): the UI may do exactly what that identity's RBAC allows, and a
403 reaches the page as "not allowed (RBAC)".

Everything goes through `dagwright.k8s.commands`, the functions the CLI verbs use, so an action from the page is
the same merge patch as `dagwright pause` and friends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from dagwright.k8s import commands
from dagwright.ui.sources import ACTIONS, SourceError

T = TypeVar("T")


class ClusterSource:
    def __init__(self, namespace: str | None, all_namespaces: bool, read_only: bool = False) -> None:
        self._api: Any = None
        self._lock = threading.Lock()
        self._asked_namespace = namespace
        self._all = all_namespaces
        self._default = "default"
        self._read_only = read_only
        self.poll_seconds = 1.0

    @property
    def label(self) -> str:
        return "cluster" + (" (read-only)" if self._read_only else "")

    @property
    def actions(self) -> frozenset[str]:
        return frozenset() if self._read_only else frozenset(ACTIONS)

    @property
    def namespace(self) -> str | None:
        if self._all:
            return None
        self._client()
        return self._asked_namespace or self._default

    def connect(self) -> None:
        """Fail early (no kubeconfig, no cluster) with the CLI's one-line message."""
        self._guarded("the cluster", lambda: self._client())

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        return self._guarded("workflows", lambda: commands.list_workflows(self._client(), namespace))

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        from dagwright.k8s import statuswire

        body = self._guarded(f"workflow {namespace}/{name}", lambda: commands.read(self._client(), namespace, name))
        body["status"] = statuswire.expanded(body.get("status") or {})
        return body

    def act(self, namespace: str, name: str, action: str, node: str | None, message: str) -> None:
        if action not in self.actions:
            raise SourceError(f"{action} is not available here", 403)
        self._guarded(
            f"workflow {namespace}/{name}",
            lambda: commands.request(self._client(), namespace, name, action, node, message),
        )

    def logs(self, namespace: str, name: str, node: str, attempt: int | None) -> Iterator[str]:
        pod = self._guarded(
            f"workflow {namespace}/{name}", lambda: commands.node_pod(self._client(), namespace, name, node, attempt)
        )
        try:
            yield from commands.follow_pod_log(self._client(), namespace, pod)
        except Exception as error:
            raise SourceError(f"no logs from pod {pod}: {_line(error)}", 404) from None

    def _client(self) -> Any:
        with self._lock:
            if self._api is None:
                self._api, self._default = commands.connect()
            return self._api

    def _guarded(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except SourceError:
            raise
        except Exception as error:
            line = commands.explain(error, what)
            if line is None:
                raise
            status = getattr(error, "status", None)
            raise SourceError(line, status if isinstance(status, int) and 400 <= status < 600 else 502) from None


def _line(error: Exception) -> str:
    """The API server's own message (a kwok pod's node serves no logs: "dial tcp ...: connection refused")."""
    import json

    reason = str(getattr(error, "reason", None) or error)
    try:
        message = json.loads(getattr(error, "body", None) or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{reason}: {message}"[:300] if message else reason[:300]
