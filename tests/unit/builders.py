"""Small builders shared by the unit tests: manifests as dicts, compiled workflows, and a planner driver."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from dagwright.planner import AttemptState, Decision, Observation, plan
from dagwright.status import NodePhase, WorkflowStatus
from dagwright.validation import compile_manifest, compile_spec
from dagwright.workflows import Workflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def node(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "command": ["true"]}
    if deps:
        body["dependsOn"] = list(deps)
    body.update(fields)
    return body


def manifest(nodes: list[dict[str, Any]], name: str = "wf", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "default", "uid": "uid-1", "generation": 1},
        "spec": {"nodes": nodes, **spec},
    }


def workflow(nodes: list[dict[str, Any]], **spec: Any) -> Workflow:
    return compile_manifest(manifest(nodes, **spec))


def ok(name: str, attempt: int = 1, **extra: Any) -> Observation:
    return Observation(name, attempt, AttemptState.SUCCEEDED, exit_code=0, **extra)


def fail(name: str, attempt: int = 1, code: int | None = 1, reason: str | None = None) -> Observation:
    return Observation(name, attempt, AttemptState.FAILED, exit_code=code, reason=reason)


def running(name: str, attempt: int = 1, progress: str | None = None) -> Observation:
    return Observation(name, attempt, AttemptState.RUNNING, progress=progress)


class Driver:
    """Calls the planner the way a backend does: status in, status out, with a clock the test moves."""

    def __init__(self, wf: Workflow, status: WorkflowStatus | None = None, now: datetime = T0) -> None:
        self.workflow = wf
        self.status = status
        self.now = now
        self.last: Decision | None = None

    def step(self, *observations: Observation, after: float = 0.0, capacity: int | None = None) -> Decision:
        self.now += timedelta(seconds=after)
        decision = plan(self.workflow, self.status, list(observations), self.now, capacity=capacity)
        self.status = decision.status
        self.last = decision
        return decision

    def respec(self, **update: Any) -> None:
        """Change spec fields the way `kubectl patch` would (a new generation)."""
        wf = self.workflow
        spec = wf.spec.model_copy(update=update)
        self.workflow = compile_spec(
            spec, name=wf.name, namespace=wf.namespace, uid=wf.uid, generation=(wf.generation or 0) + 1
        )

    @property
    def current(self) -> WorkflowStatus:
        assert self.status is not None, "call step() first"
        return self.status

    def phase(self, name: str) -> NodePhase:
        assert self.status is not None
        return self.status.nodes[name].phase

    def phases(self) -> dict[str, str]:
        assert self.status is not None
        return {name: n.phase.value for name, n in self.status.nodes.items()}


def launched(decision: Decision) -> list[tuple[str, int]]:
    return [(launch.node, launch.attempt) for launch in decision.launches]


def stopped(decision: Decision) -> list[tuple[str, int, str]]:
    return [(stop.node, stop.attempt, stop.reason) for stop in decision.stops]


def names(items: Iterable[tuple[str, int]]) -> list[str]:
    return [name for name, _ in items]
