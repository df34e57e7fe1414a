"""The workflows a chaos run submits, and what each must end as.

Why seeded random: every run differs in shape (fan-in, depth, which nodes fail, when pauses and stops land),
but a failing run is reproduced from the seed it prints. Each workflow has a `kind` that fixes its expected
ending, so the oracle can judge the phase without trusting the operator's own account:
- plain: every node succeeds -> Succeeded;
- retrying: some nodes fail their first one or two attempts, with retries to spare -> Succeeded, and those
  nodes show exactly that many extra attempts;
- failing: one node fails for good -> Failed, its descendants Skipped; with failFast off the rest Succeeded,
  with it on (the default) the nodes not yet started are Skipped too;
- paused: paused and later resumed by the test -> Succeeded;
- stopped: stopped by the test while running -> Stopped (or whatever it had already ended as).
About half the workflows have one forEach node (0-6 items, sometimes `maxParallel`): each item is judged as a
node is (one Job per item attempt, the same extra attempts when the node is flaky), and its dependents must wait
for every item.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..operator_fixtures import node, retry, workflow

KINDS = ("plain", "retrying", "failing", "paused", "stopped")


@dataclass
class Planned:
    """One workflow of the run: its manifest, and the test's plans and expectations for it."""

    name: str
    kind: str
    manifest: dict[str, Any]
    deps: dict[str, list[str]]
    failing_node: str | None = None
    fail_fast: bool = True
    extra_attempts: dict[str, int] = field(default_factory=dict)  # node -> attempts failed before succeeding
    pause_at: float | None = None  # seconds after submission
    resume_after: float | None = None
    stop_at: float | None = None
    items: dict[str, int] = field(default_factory=dict)  # forEach node -> its item count
    max_parallel: dict[str, int] = field(default_factory=dict)  # forEach node -> its maxParallel

    def units(self, name: str) -> list[str]:
        """What runs as Jobs for a node: the node, or each of its items (`work[3]`, as `JobRecord.unit`)."""
        if name not in self.items:
            return [name]
        return [f"{name}[{index}]" for index in range(self.items[name])]

    def descendants(self, start: str) -> set[str]:
        below: set[str] = set()
        frontier = [start]
        while frontier:
            current = frontier.pop()
            for name, ups in self.deps.items():
                if current in ups and name not in below:
                    below.add(name)
                    frontier.append(name)
        return below


def _shape(rng: random.Random, size: int) -> dict[str, list[str]]:
    """A random DAG in declaration order: each node depends on up to two of the few nodes before it."""
    deps: dict[str, list[str]] = {}
    names = [f"n{i:02d}" for i in range(size)]
    for index, name in enumerate(names):
        window = names[max(0, index - 4) : index]
        count = 0 if not window or rng.random() < 0.15 else rng.randint(1, min(2, len(window)))
        deps[name] = sorted(rng.sample(window, count))
    return deps


def _fan_out(
    rng: random.Random, plan: Planned, name: str, ups: list[str], duration: str, flaky: bool
) -> dict[str, Any]:
    """A forEach node of 0-6 items, sometimes with maxParallel; when flaky, each item fails its first attempts."""
    count = rng.randint(0, 6)
    for_each: dict[str, Any] = {"items": [f"item-{index}" for index in range(count)]}
    plan.items[name] = count
    if rng.random() < 0.5:
        for_each["maxParallel"] = plan.max_parallel[name] = rng.randint(1, 3)
    if not flaky:
        return node(name, *ups, duration=duration, forEach=for_each, args=["{{ item }}"])
    failures = rng.randint(1, 2)
    plan.extra_attempts[name] = failures
    body = node(name, *ups, duration=duration, fail_attempts=failures, fail_exit_code=3)
    return {**body, "forEach": for_each, "args": ["{{ item }}"], "retry": retry(3, initial=0.5)}


def plan_workload(seed: int, workflows: int, nodes: int) -> list[Planned]:
    rng = random.Random(seed)
    planned: list[Planned] = []
    for index in range(workflows):
        kind = KINDS[index % len(KINDS)]
        name = f"chaos-{index:03d}-{kind}"
        deps = _shape(rng, nodes)
        plan = Planned(name=name, kind=kind, manifest={}, deps=deps)
        bodies: list[dict[str, Any]] = []
        failing = rng.choice(list(deps)[nodes // 3 :]) if kind == "failing" else None
        flaky = set(rng.sample(list(deps), min(3, nodes))) if kind == "retrying" else set()
        fanned = rng.choice([name_ for name_ in deps if name_ != failing]) if rng.random() < 0.5 else None
        for name_, ups in deps.items():
            duration = f"{rng.randint(2, 12) * 100}ms"
            if name_ == fanned:
                bodies.append(_fan_out(rng, plan, name_, ups, duration, name_ in flaky))
                continue
            if name_ == failing:
                bodies.append(node(name_, *ups, duration=duration, exit_code=1))
                plan.failing_node = name_
            elif name_ in flaky:
                failures = rng.randint(1, 2)
                plan.extra_attempts[name_] = failures
                body = node(name_, *ups, duration=duration, fail_attempts=failures, fail_exit_code=3)
                bodies.append({**body, "retry": retry(3, initial=0.5)})
            else:
                bodies.append(node(name_, *ups, duration=duration))
        spec: dict[str, Any] = {}
        if rng.random() < 0.3:
            spec["parallelism"] = rng.randint(2, 4)
        if kind == "failing" and rng.random() < 0.5:
            spec["failFast"] = plan.fail_fast = False
        plan.manifest = workflow(name, bodies, **spec)
        if kind == "paused":
            plan.pause_at, plan.resume_after = rng.uniform(1, 5), rng.uniform(2, 6)
        if kind == "stopped":
            plan.stop_at = rng.uniform(2, 6)
        planned.append(plan)
    return planned
