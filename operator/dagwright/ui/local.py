"""`dagwright run FILE --ui`: the run in progress as a UI source, and the inbox through which the page steers it.

The runner reports each planner decision here (`report`, from the runner's thread) and takes the page's requests
at the top of its loop (`take`): pause, resume and stop change the spec as the cluster's merge patches do, approve
and reject are answers as `spec.approvals` gives them. Retry is not offered: a local run ends when its workflow
does (run it again with `--state` to retry). Logs are the attempt's log file, followed while the attempt runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dagwright.planner import Decision, Observation, answered
from dagwright.status import WorkflowStatus, to_wire
from dagwright.ui.sources import SourceError
from dagwright.workflows import Workflow

NAMESPACE = "local"
_UPDATES = {"pause": {"paused": True}, "resume": {"paused": False}, "stop": {"stopped": True}}


class LocalRun:
    poll_seconds = 0.5

    def __init__(self, data: dict[str, Any], workflow: Workflow, logs_dir: Path) -> None:
        self._data = data
        self._workflow = workflow
        self._logs_dir = logs_dir
        self._lock = threading.Lock()
        self._status: WorkflowStatus | None = None
        self._body: dict[str, Any] | None = None
        self._flags: dict[str, Any] = {}
        self._updates: dict[str, Any] = {}
        self._answers: list[Observation] = []
        self._wake: Callable[[], None] = lambda: None
        self._created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    # -- the runner's side

    def report(self, decision: Decision, observations: list[Observation]) -> None:
        with self._lock:
            self._status = decision.status
            self._body = None

    def attach(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def take(self) -> tuple[dict[str, Any], list[Observation]]:
        with self._lock:
            updates, answers = self._updates, self._answers
            self._updates, self._answers = {}, []
            return updates, answers

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._status is not None and self._status.phase.finished

    # -- the UI's side

    label = "local run"
    actions = frozenset({"pause", "resume", "stop", "approve", "reject"})
    namespace: str | None = NAMESPACE

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        return [self.read(NAMESPACE, self._workflow.name)] if namespace in (None, NAMESPACE) else []

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        if namespace != NAMESPACE or name != self._workflow.name:
            raise SourceError(f"workflow {namespace}/{name} not found", 404)
        with self._lock:
            if self._body is None:
                self._body = self._make_body()
            return self._body

    def act(self, namespace: str, name: str, action: str, node: str | None, message: str) -> None:
        self.read(namespace, name)
        if action not in self.actions:
            raise SourceError(f"{action} is not available for a local run", 403)
        with self._lock:
            if action in _UPDATES:
                self._updates.update(_UPDATES[action])
                self._flags.update(_UPDATES[action])
            elif node:
                self._answers.append(answered(node, action == "approve", message or None))
            else:
                raise SourceError(f"{action} needs a node", 400)
            self._body = None
        self._wake()

    def logs(self, namespace: str, name: str, node: str, attempt: int | None) -> Iterator[str]:
        body = self.read(namespace, name)
        entry = ((body.get("status") or {}).get("nodes") or {}).get(node) or {}
        number = attempt or entry.get("attempts") or 0
        path = self._logs_dir / f"{node}.{number}.log"
        if not number or not path.exists():
            raise SourceError(f"node {node} has not run", 404)
        with open(path, encoding="utf-8", errors="replace") as log:
            while True:
                text = log.read(65536)
                if text:
                    yield text
                    continue
                if not self._running(node, number):
                    yield log.read()
                    return
                time.sleep(0.2)

    def _running(self, node: str, attempt: int) -> bool:
        with self._lock:
            status = self._status
        if status is None or status.phase.finished:
            return False
        entry = status.nodes.get(node)
        return entry is not None and entry.attempts == attempt and not entry.phase.finished

    def _make_body(self) -> dict[str, Any]:
        spec = self._workflow.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        spec.update({_camel(key): value for key, value in self._flags.items()})
        meta = dict(self._data.get("metadata") or {})
        meta["namespace"] = NAMESPACE
        meta.setdefault("creationTimestamp", self._created)
        status = to_wire(self._status) if self._status is not None else {"phase": "Pending"}
        return {"apiVersion": self._data.get("apiVersion"), "kind": "Workflow", "metadata": meta, "spec": spec} | {
            "status": status
        }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
