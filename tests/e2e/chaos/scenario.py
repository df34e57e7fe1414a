"""One chaos run: submit the workload, toggle pauses and stops on schedule, inject faults, wait, judge.

The size comes from the environment so that `make chaos` runs the long version with the same code as the
short one in the default suite:
- DAGWRIGHT_CHAOS_WORKFLOWS (default 10), DAGWRIGHT_CHAOS_NODES (default 8) per workflow;
- DAGWRIGHT_CHAOS_KILL_EVERY, seconds between operator kills as `low-high` (default 1-5);
- DAGWRIGHT_CHAOS_SEED (default: random, printed so a failing run can be repeated).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from ..cluster.helpers import wait_for
from ..conftest import Kube
from ..operator_fixtures import (
    GROUP,
    PLURAL,
    VERSION,
    Recorder,
    get_workflow,
    hold,
    list_jobs,
    require_per_attempt_fates,
)
from .oracle import Toggle, Verdict, judge
from .workload import Planned, plan_workload

TERMINAL = ("Succeeded", "Failed", "Stopped")


@dataclass(frozen=True)
class Scale:
    workflows: int
    nodes: int
    kill_low: float
    kill_high: float
    seed: int

    @classmethod
    def from_env(cls) -> Scale:
        low, _, high = os.environ.get("DAGWRIGHT_CHAOS_KILL_EVERY", "1-5").partition("-")
        seed = os.environ.get("DAGWRIGHT_CHAOS_SEED") or str(random.SystemRandom().randrange(1 << 31))
        return cls(
            workflows=int(os.environ.get("DAGWRIGHT_CHAOS_WORKFLOWS", "10")),
            nodes=int(os.environ.get("DAGWRIGHT_CHAOS_NODES", "8")),
            kill_low=float(low),
            kill_high=float(high or low),
            seed=int(seed),
        )


class Toggler(threading.Thread):
    """Pauses, resumes and stops workflows at their planned times, recording each patch's revision."""

    def __init__(self, kube: Kube, namespace: str, plans: list[Planned]) -> None:
        super().__init__(daemon=True, name="toggler")
        self.custom = client.CustomObjectsApi(kube.api_client)
        self.namespace = namespace
        self.timeline: list[tuple[float, str, str]] = []
        for plan in plans:
            if plan.pause_at is not None and plan.resume_after is not None:
                self.timeline += [(plan.pause_at, plan.name, "pause")]
                self.timeline += [(plan.pause_at + plan.resume_after, plan.name, "resume")]
            if plan.stop_at is not None:
                self.timeline.append((plan.stop_at, plan.name, "stop"))
        self.timeline.sort()
        self.done: dict[str, list[Toggle]] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        started = time.monotonic()
        for at, name, action in self.timeline:
            time.sleep(max(0.0, started + at - time.monotonic()))
            spec = {"pause": {"paused": True}, "resume": {"paused": False}, "stop": {"stopped": True}}[action]
            body = self._patch_soon(name, spec)
            toggle = Toggle(
                action=action,
                revision=int(body["metadata"]["resourceVersion"]),
                generation=int(body["metadata"]["generation"]),
                phase_before=(body.get("status") or {}).get("phase") or "",
            )
            self.done.setdefault(name, []).append(toggle)

    def _patch(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        response = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}, _preload_content=False
        )
        body: dict[str, Any] = json.loads(response.data)
        return body

    def _patch_soon(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Patch, retrying while the API server does not answer (a fault may have it restarting)."""

        def attempt() -> dict[str, Any] | None:
            try:
                return self._patch(name, spec)
            except Exception as error:
                self.errors.append(f"{name} {spec}: {error}")
                return None

        return wait_for(f"the patch {spec} of {name}", attempt, timeout=120, interval=0.5)


def submit(kube: Kube, namespace: str, plans: list[Planned]) -> None:
    require_per_attempt_fates(kube, namespace)
    custom = client.CustomObjectsApi(kube.api_client)
    for plan in plans:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, plan.manifest)


def wait_all_ended(kube: Kube, namespace: str, plans: list[Planned], timeout: float) -> dict[str, dict[str, Any]]:
    """Every workflow's final status; fails with the unfinished ones listed after `timeout`."""
    final: dict[str, dict[str, Any]] = {}

    def probe() -> bool:
        for plan in plans:
            if plan.name in final:
                continue
            try:
                body = get_workflow(kube, namespace, plan.name) or {}
            except Exception:  # the API server may be down for a moment
                return False
            status = body.get("status") or {}
            if status.get("phase") in TERMINAL:
                final[plan.name] = status
        return len(final) == len(plans)

    try:
        wait_for("every chaos workflow to end", probe, timeout=timeout, interval=1.0)
    except TimeoutError:
        unfinished = sorted(p.name for p in plans if p.name not in final)
        details = "\n".join(_unfinished(kube, namespace, name) for name in unfinished)
        raise AssertionError(f"{len(unfinished)} workflows did not end in {timeout:.0f}s:\n{details}") from None
    return final


def _unfinished(kube: Kube, namespace: str, name: str) -> str:
    """A stuck workflow's phase and message, its nodes that had not succeeded, and their Jobs' conditions."""
    status = (get_workflow(kube, namespace, name) or {}).get("status") or {}
    nodes = {n: s.get("phase") for n, s in (status.get("nodes") or {}).items() if s.get("phase") != "Succeeded"}
    jobs = []
    for job in list_jobs(kube, namespace, name):
        conditions = [c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"]
        counts = {k: v for k, v in (job.get("status") or {}).items() if k in ("active", "ready", "failed", "succeeded")}
        jobs.append(
            f"{job['metadata']['name']} {conditions} {counts} uncounted={job['status'].get('uncountedTerminatedPods')}"
        )
    return f"{name}: {status.get('phase')} {status.get('message')!r} nodes {nodes}\n  " + "\n  ".join(jobs)


def budget(scale: Scale) -> float:
    """Generous time for the run: the plane's default Job controller completes ~3 Jobs/s."""
    return 120 + scale.workflows * scale.nodes * 1.2


def run(
    kube: Kube, namespace: str, recorder: Recorder, scale: Scale, faults: Any, recovery: float = 0.0
) -> tuple[Verdict, dict[str, Any]]:
    """Submit, toggle, let `faults` (a started injector with `.stop()`) act, and judge once all ended.

    `recovery`: extra seconds Kubernetes' own controllers may need after a fault (after an API server restart the
    Job controller's watches back off for minutes), not counted against the operator.
    """
    plans = plan_workload(scale.seed, scale.workflows, scale.nodes)
    started = time.monotonic()
    submit(kube, namespace, plans)
    toggler = Toggler(kube, namespace, plans)
    toggler.start()
    try:
        wait_all_ended(kube, namespace, plans, budget(scale) + recovery)
    except AssertionError as error:
        raise AssertionError(f"{error}\n(repeat with DAGWRIGHT_CHAOS_SEED={scale.seed})") from None
    finally:
        faults.stop()
    toggler.join(timeout=60)
    hold(3)  # a Job launched after the end (or after a stop) would show up now
    final = {plan.name: (get_workflow(kube, namespace, plan.name) or {}).get("status") or {} for plan in plans}
    with recorder.lock:
        writes = {name: list(found) for name, found in recorder.workflow_revisions.items()}
    jobs = {plan.name: recorder.jobs_of(plan.name) for plan in plans}
    verdict = judge(plans, jobs, writes, toggler.done, final)
    report = {
        "seed": scale.seed,
        "seconds": round(time.monotonic() - started, 1),
        "toggles": sum(len(t) for t in toggler.done.values()),
        **verdict.summary(),
    }
    return verdict, report
