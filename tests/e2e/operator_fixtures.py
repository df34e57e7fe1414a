"""The dagwright operator as a real process, and what the e2e tests see of its work through the API server.

Why a process: the tests must exercise what users run (`dagwright operator`), including how it dies (SIGKILL)
and comes back, and two replicas electing a leader. Why a recorder: the operator's own status is its word;
the facts are the Jobs the API server holds. `Recorder` watches Jobs and Workflows in the test namespace from
before the first Workflow is applied, so a Job that lived only briefly, or a second Job for an attempt that
already had one, is seen too; events of one kind arrive in etcd order (`seq`), which is what the ordering
assertions use.

The fixtures built on these are registered once, in tests/e2e/conftest.py, for every e2e test:
- `operators`: a factory, `operators.start(*args, ...)`, that runs operators for the test's namespace, logs
  each to a file under the test's tmp_path, and stops them all at teardown (SIGTERM, then SIGKILL). The log
  tails are printed at teardown, which pytest shows for failing tests only.
- `operator`: one operator with default flags (no leader election, no metrics or health ports).
- `recorder`: the Job and Workflow watcher for the test's namespace.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .cluster.helpers import get_or_none, wait_for

if TYPE_CHECKING:
    from .conftest import Kube  # conftest imports this module for its fixtures

GROUP, VERSION, PLURAL = "dagwright.io", "v1alpha1", "workflows"
LABEL_WORKFLOW = "dagwright.io/workflow"
LABEL_NODE = "dagwright.io/node"
LABEL_ITEM = "dagwright.io/item"
LABEL_ATTEMPT = "dagwright.io/attempt"
IMAGE = "busybox:1.36"
_MAIN = "import sys; from dagwright.cli import main; sys.exit(main())"


# --------------------------------------------------------------------------- the operator process


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str]
    name: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no cleanup, no Lease release, exactly like a node dying."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15, *, signalled: bool = False) -> None:
        if self.alive() and not signalled:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


class Operators:
    """Starts `dagwright operator` processes watching one namespace; stops them all at teardown."""

    def __init__(self, kube: Kube, namespace: str, log_dir: Path) -> None:
        self.kube = kube
        self.namespace = namespace
        self.log_dir = log_dir
        self.started: list[OperatorProcess] = []

    def start(
        self,
        *extra: str,
        leader_election: bool = False,
        metrics_port: int = 0,
        max_running_nodes: int | None = None,
    ) -> OperatorProcess:
        args = ["operator", "--namespace", self.namespace, "--metrics-port", str(metrics_port), "--health-port", "0"]
        args += ["--lease-namespace", self.namespace] if leader_election else ["--no-leader-election"]
        if max_running_nodes is not None:
            args += ["--max-running-nodes", str(max_running_nodes)]
        args += list(extra)
        name = f"operator-{len(self.started) + 1}"
        log_path = self.log_dir / f"{name}.log"
        env = {**os.environ, "KUBECONFIG": self.kube.kubeconfig, "PYTHONUNBUFFERED": "1"}
        env.setdefault("DAGWRIGHT_LOG_LEVEL", "INFO")
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", _MAIN, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        started = OperatorProcess(proc, log_path, args, name)
        self.started.append(started)
        return started

    def leader_and_standby(self) -> tuple[OperatorProcess, OperatorProcess, str]:
        """Two replicas with leader election, once one holds the Lease and has logged it: (leader, standby,
        the leader's identity in the Lease)."""
        replicas = [self.start(leader_election=True), self.start(leader_election=True)]
        holder = wait_for("a lease holder", lambda: lease_holder(self.kube, self.namespace), timeout=60)
        leader = wait_for(
            "the leader's log line",
            lambda: next((p for p in replicas if leader_identity(p) == holder), None),
            timeout=30,
        )
        standby = next(p for p in replicas if p is not leader)
        return leader, standby, holder

    def stop_all(self) -> None:
        for process in self.started:
            if process.alive():
                process.proc.send_signal(signal.SIGTERM)
        for process in self.started:
            process.stop(signalled=True)

    def report(self) -> None:
        for process in self.started:
            code = process.proc.returncode
            print(f"\n----- {process.name} (pid {process.pid}, exit {code}) {' '.join(process.args)}")
            print(process.tail())


def leader_identity(process: OperatorProcess) -> str | None:
    """The identity the operator last logged leading as, if it ever did."""
    found = re.findall(r"became the leader as (\S+)", process.log())
    return found[-1] if found else None


def lease_holder(kube: Kube, namespace: str) -> str | None:
    lease = get_or_none(
        lambda: client.CoordinationV1Api(kube.api_client).read_namespaced_lease("dagwright-operator", namespace)
    )
    return lease.spec.holder_identity if lease is not None and lease.spec is not None else None


# --------------------------------------------------------------------------- what the API server holds


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class JobRecord:
    """One Job (by uid) as the watch saw it over its life."""

    uid: str
    name: str
    workflow: str
    node: str
    attempt: int
    created: datetime
    added_seq: int
    added_at: float  # monotonic time the recorder first saw it
    last: dict[str, Any]
    # The first event showing it finished: its pod ended on its own (phase Succeeded or Failed, not being
    # deleted), which the operator acts on, or the Job's condition (Complete/Failed or their targets).
    finished_seq: int | None = None
    finished_at: float | None = None
    outcome: str | None = None  # "Succeeded" or "Failed": the ended pod's phase, or the Job's condition
    finish_reason: str | None = None
    finish_time: datetime | None = None  # the pod container's finishedAt, else the condition's lastTransitionTime
    deleted_seq: int | None = None
    deleted_at: float | None = None
    suspend_seen: list[bool] = field(default_factory=list)
    # etcd revisions (a single etcd orders every write): of the first event seen, and of the one showing it
    # finished. `created_rv` is the creation's own revision unless the Job was first seen in a relist.
    created_rv: int = 0
    finished_rv: int | None = None
    deleted_rv: int | None = None
    created_rv_exact: bool = True
    item: int | None = None  # a forEach node's item (label dagwright.io/item)

    @property
    def unit(self) -> str:
        """The node, or the forEach item it runs: `work[3]`."""
        return self.node if self.item is None else f"{self.node}[{self.item}]"

    @property
    def ended_seq(self) -> int | None:
        """When it stopped counting as running: finished, or deleted (whichever came first)."""
        ends = [s for s in (self.finished_seq, self.deleted_seq) if s is not None]
        return min(ends) if ends else None

    @property
    def ended_rv(self) -> int | None:
        """The etcd revision at which it stopped counting as running: its pod's or its own events come on
        separate watch streams, so only revisions order them."""
        ends = [rv for rv in (self.finished_rv, self.deleted_rv) if rv is not None]
        return min(ends) if ends else None

    def finished_before(self, other: JobRecord) -> bool:
        """Whether this one had finished when `other` was created, in etcd order."""
        return self.finished_rv is not None and self.finished_rv < other.created_rv


_SUCCESS = ("Complete", "SuccessCriteriaMet")
_FAILURE = ("Failed", "FailureTarget")


def _finished(job: dict[str, Any]) -> tuple[str, str | None, datetime | None] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in _SUCCESS:
            return "Succeeded", cond.get("reason"), parse_time(cond.get("lastTransitionTime"))
        if cond.get("type") in _FAILURE:
            return "Failed", cond.get("reason"), parse_time(cond.get("lastTransitionTime"))
    return None


class _Watch(threading.Thread):
    """One resumable watch of a namespaced collection, feeding raw events to a callback."""

    def __init__(self, list_call: Callable[..., Any], namespace: str, on_event: Callable[[str, dict[str, Any]], None]):
        super().__init__(daemon=True)
        self.list_call = list_call
        self.namespace = namespace
        self.on_event = on_event
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.relisted = False  # True once the watch had to start over from a list (its history lost)

    def run(self) -> None:
        resource_version: str | None = None
        while not self.stopping.is_set():
            watcher = watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": 1, "_request_timeout": 10}
            if resource_version:
                kwargs["resource_version"] = resource_version
            try:
                for event in watcher.stream(self.list_call, self.namespace, **kwargs):
                    raw = event["raw_object"]
                    resource_version = raw.get("metadata", {}).get("resourceVersion") or resource_version
                    self.on_event(event["type"], raw)
                    if self.stopping.is_set():
                        watcher.stop()
            except ApiException as error:
                if error.status == 410:
                    resource_version = None  # replay from a fresh list; records are keyed by uid
                    self.relisted = True
                else:
                    time.sleep(0.2)
            except Exception as error:  # connection trouble: retry, but remember it for the report
                self.error = error
                time.sleep(0.2)


class Recorder:
    """Every Job and Workflow event in one namespace, from the start of a test."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.namespace = namespace
        self.lock = threading.Lock()
        self.jobs: dict[str, JobRecord] = {}
        self.seq = 0
        self.workflow_phases: dict[str, list[tuple[str, float]]] = {}
        # (resourceVersion, metadata.generation, status.observedGeneration, status.phase) per Workflow event
        self.workflow_revisions: dict[str, list[tuple[int, int, int, str]]] = {}
        batch = client.BatchV1Api(kube.api_client)
        core = client.CoreV1Api(kube.api_client)
        custom = client.CustomObjectsApi(kube.api_client)
        # by Job uid, for a pod end seen before its Job: (seq, monotonic time, revision, finishedAt, outcome)
        self._pod_ends: dict[str, tuple[int, float, int, datetime | None, str]] = {}

        def list_workflows(namespace: str, **kwargs: Any) -> Any:
            return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kwargs)

        self.watches = [
            _Watch(batch.list_namespaced_job, namespace, self._job_event),
            _Watch(list_workflows, namespace, self._workflow_event),
            _Watch(core.list_namespaced_pod, namespace, self._pod_event),
        ]
        for thread in self.watches:
            thread.start()

    def stop(self) -> None:
        for thread in self.watches:
            thread.stopping.set()
        for thread in self.watches:
            thread.join(timeout=5)

    # -- events

    def _job_event(self, kind: str, job: dict[str, Any]) -> None:
        meta = job.get("metadata") or {}
        labels = meta.get("labels") or {}
        uid = meta.get("uid")
        if not uid or LABEL_NODE not in labels:
            return
        now = time.monotonic()
        revision = int(meta.get("resourceVersion") or 0)
        with self.lock:
            self.seq += 1
            record = self.jobs.get(uid)
            if record is None:
                record = JobRecord(
                    uid=uid,
                    name=meta["name"],
                    workflow=labels.get(LABEL_WORKFLOW, ""),
                    node=labels[LABEL_NODE],
                    attempt=int(labels.get(LABEL_ATTEMPT, "0")),
                    created=parse_time(meta.get("creationTimestamp")) or datetime.now(UTC),
                    added_seq=self.seq,
                    added_at=now,
                    last=job,
                    created_rv=revision,
                    created_rv_exact=kind == "ADDED" and not self.watches[0].relisted,
                    item=int(labels[LABEL_ITEM]) if LABEL_ITEM in labels else None,
                )
                self.jobs[uid] = record
                if uid in self._pod_ends:
                    seq, at, rv, ended_at, outcome = self._pod_ends.pop(uid)
                    record.finished_seq, record.finished_at, record.finished_rv = seq, at, rv
                    record.finish_time, record.outcome = ended_at, outcome
            record.last = job
            suspend = bool((job.get("spec") or {}).get("suspend"))
            if not record.suspend_seen or record.suspend_seen[-1] != suspend:
                record.suspend_seen.append(suspend)
            finished = _finished(job)
            if finished is not None and record.finish_reason is None:
                outcome, record.finish_reason, condition_time = finished
                if record.finished_seq is None:
                    record.finished_seq, record.finished_at, record.finished_rv = self.seq, now, revision
                    record.finish_time, record.outcome = condition_time, outcome
            if kind == "DELETED" and record.deleted_seq is None:
                record.deleted_seq, record.deleted_at, record.deleted_rv = self.seq, now, revision

    def _pod_event(self, kind: str, pod: dict[str, Any]) -> None:
        """A Job's pod that ended on its own: the attempt ended there, as the operator reads it."""
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if kind == "DELETED" or meta.get("deletionTimestamp") or status.get("phase") not in ("Succeeded", "Failed"):
            return
        owners = [ref.get("uid") for ref in meta.get("ownerReferences") or [] if ref.get("kind") == "Job"]
        if not owners:
            return
        ended_at = None
        for container in status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            ended_at = ended_at or parse_time(terminated.get("finishedAt"))
        now = time.monotonic()
        revision = int(meta.get("resourceVersion") or 0)
        outcome = "Succeeded" if status["phase"] == "Succeeded" else "Failed"
        with self.lock:
            self.seq += 1
            record = self.jobs.get(owners[0])
            if record is None:
                self._pod_ends.setdefault(owners[0], (self.seq, now, revision, ended_at, outcome))
            elif record.finished_seq is None:
                record.finished_seq, record.finished_at, record.finished_rv = self.seq, now, revision
                record.finish_time, record.outcome = ended_at, outcome

    def _workflow_event(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = meta.get("name", "")
        status = body.get("status") or {}
        phase = status.get("phase") or "" if kind != "DELETED" else "<deleted>"
        revision = (int(meta.get("resourceVersion") or 0), meta.get("generation") or 0)
        with self.lock:
            observed = status.get("observedGeneration") or 0
            self.workflow_revisions.setdefault(name, []).append((*revision, observed, phase))
            phases = self.workflow_phases.setdefault(name, [])
            if not phases or phases[-1][0] != phase:
                phases.append((phase, time.monotonic()))

    # -- questions

    def jobs_of(self, workflow: str | None = None, node: str | None = None) -> list[JobRecord]:
        with self.lock:
            records = list(self.jobs.values())
        return sorted(
            (r for r in records if (workflow is None or r.workflow == workflow) and (node is None or r.node == node)),
            key=lambda r: r.added_seq,
        )

    def by_attempt(self, workflow: str) -> dict[tuple[str, int], list[JobRecord]]:
        table: dict[tuple[str, int], list[JobRecord]] = {}
        for record in self.jobs_of(workflow):
            table.setdefault((record.unit, record.attempt), []).append(record)
        return table

    def assert_one_job_per_attempt(self, workflow: str) -> None:
        doubled = {
            key: [r.uid for r in records] for key, records in self.by_attempt(workflow).items() if len(records) > 1
        }
        assert not doubled, f"(node, attempt) with more than one Job: {doubled}"

    def phases(self, workflow: str) -> list[str]:
        with self.lock:
            return [phase for phase, _ in self.workflow_phases.get(workflow, [])]

    def max_running(self, workflows: set[str] | None = None) -> int:
        """The most Jobs ever running at once (created, not yet finished or deleted), in etcd order."""
        changes: list[tuple[int, int]] = []
        for record in self.jobs_of():
            if workflows is not None and record.workflow not in workflows:
                continue
            changes.append((record.created_rv, 1))
            if record.ended_rv is not None:
                changes.append((record.ended_rv, -1))
        running = most = 0
        for _, delta in sorted(changes):
            running += delta
            most = max(most, running)
        return most


# --------------------------------------------------------------------------- manifests


def node(
    name: str,
    *deps: str,
    duration: str | None = None,
    exit_code: int | None = None,
    fail_attempts: int | None = None,
    fail_reason: str | None = None,
    fail_exit_code: int | None = None,
    never_finish: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """A node whose pod fate kwok plays out from annotations (see tests/e2e/cluster/stages)."""
    annotations: dict[str, str] = {}
    if duration is not None:
        annotations["kwok.dagwright.io/duration"] = duration
    if exit_code is not None:
        annotations["kwok.dagwright.io/exit-code"] = str(exit_code)
    if fail_attempts is not None:
        annotations["kwok.dagwright.io/fail-attempts"] = str(fail_attempts)
    if fail_reason is not None:
        annotations["kwok.dagwright.io/fail-reason"] = fail_reason
    if fail_exit_code is not None:
        annotations["kwok.dagwright.io/fail-exit-code"] = str(fail_exit_code)
    if never_finish:
        annotations["kwok.dagwright.io/never-finish"] = "true"
    body: dict[str, Any] = {"name": name, **fields}
    if deps:
        body["dependsOn"] = list(deps)
    if annotations:
        body["podMetadata"] = {"annotations": annotations}
    return body


def retry(limit: int, initial: float = 1, factor: float = 1, policy: str = "AnyFailure") -> dict[str, Any]:
    """A retry policy without jitter, so the backoff is exact."""
    backoff = {"initialSeconds": initial, "factor": factor, "jitter": 0, "maxSeconds": 60}
    return {"limit": limit, "policy": policy, "backoff": backoff}


def workflow(name: str, nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"defaults": {"image": IMAGE}, **spec, "nodes": nodes},
    }


# --------------------------------------------------------------------------- acting and reading like a user


def apply(kube: Kube, namespace: str, manifest: dict[str, Any]) -> None:
    if any(FAIL_ATTEMPTS in ((n.get("podMetadata") or {}).get("annotations") or {}) for n in manifest["spec"]["nodes"]):
        require_per_attempt_fates(kube, namespace)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


FAIL_ATTEMPTS = "kwok.dagwright.io/fail-attempts"
_STAGE_CHECKED: set[str] = set()


def require_per_attempt_fates(kube: Kube, namespace: str) -> None:
    """Fail clearly if kwok runs without stages/pod-fail-attempts.yaml (a plane started before it existed).

    A probe pod that the Stage fails and that would otherwise succeed after 100 ms; checked once per cluster.
    """
    if kube.kubeconfig in _STAGE_CHECKED:
        return
    core = client.CoreV1Api(kube.api_client)
    probe = {
        "metadata": {
            "name": "kwok-stage-probe",
            "labels": {LABEL_ATTEMPT: "1"},
            "annotations": {FAIL_ATTEMPTS: "1", "kwok.dagwright.io/duration": "100ms"},
        },
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": IMAGE}]},
    }
    core.create_namespaced_pod(namespace, probe)
    try:
        phase = wait_for(
            "the kwok stage probe pod to finish",
            lambda: (
                core.read_namespaced_pod("kwok-stage-probe", namespace).status.phase in ("Succeeded", "Failed")
                and core.read_namespaced_pod("kwok-stage-probe", namespace).status.phase
            ),
            timeout=30,
        )
    finally:
        core.delete_namespaced_pod("kwok-stage-probe", namespace, grace_period_seconds=0)
    if phase != "Failed":
        pytest.fail(
            "kwok does not have the Stage tests/e2e/cluster/stages/pod-fail-attempts.yaml loaded (the plane was "
            "started before it existed): restart it with `make cluster-down cluster-up` (or kwok-detach/attach)"
        )
    _STAGE_CHECKED.add(kube.kubeconfig)


def dagwright(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    """The dagwright CLI, as a user runs it (pause, resume, stop, retry, approve, reject)."""
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    proc = subprocess.run([sys.executable, "-c", _MAIN, *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"dagwright {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


def get_workflow(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    custom = client.CustomObjectsApi(kube.api_client)
    try:
        body: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return body


def status_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body = get_workflow(kube, namespace, name)
    assert body is not None, f"workflow {namespace}/{name} is gone"
    status: dict[str, Any] = body.get("status") or {}
    return status


def node_status(kube: Kube, namespace: str, name: str, node_name: str) -> dict[str, Any]:
    nodes: dict[str, Any] = status_of(kube, namespace, name).get("nodes") or {}
    return nodes.get(node_name) or {}


def wait_phase(kube: Kube, namespace: str, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
    """Poll until the Workflow's phase is one of `phases`; returns its status."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = status_of(kube, namespace, name)
        return last if last.get("phase") in phases else None

    try:
        return wait_for(f"workflow {name} phase in {phases}", probe, timeout=timeout)
    except TimeoutError as error:
        raise AssertionError(f"{error}; last status:\n{json.dumps(last, indent=1)}") from None


def wait_node(
    kube: Kube, namespace: str, name: str, node_name: str, *phases: str, timeout: float = 60
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = node_status(kube, namespace, name, node_name)
        return found if found.get("phase") in phases else None

    return wait_for(f"node {name}/{node_name} phase in {phases}", probe, timeout=timeout)


def list_jobs(kube: Kube, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
    """The Jobs the API server holds now (of one workflow, or all dagwright's in the namespace)."""
    batch = client.BatchV1Api(kube.api_client)
    selector = f"{LABEL_WORKFLOW}={name}" if name else LABEL_NODE
    response = batch.list_namespaced_job(namespace, label_selector=selector, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def events_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    core = client.CoreV1Api(kube.api_client)
    selector = f"involvedObject.kind=Workflow,involvedObject.name={name}"
    response = core.list_namespaced_event(namespace, field_selector=selector, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            found: dict[str, Any] = cond
            return found
    raise AssertionError(f"no {kind} condition in {status.get('conditions')}")


def hold(seconds: float) -> None:
    """Let time pass for a negative check (nothing may happen meanwhile); not a wait for a condition."""
    time.sleep(seconds)
