"""What the operator has seen of Workflows, their Jobs and pods, fed by kopf's watch streams.

Reconciles read from here instead of listing from the API server on every pass. Two rules keep it honest:
- an object is replaced only by a newer resourceVersion, so a late watch event cannot undo a newer object
  that came back from our own write (write-through after creating a Job or patching status);
- a Job that disappears without a final condition is remembered as gone, which the planner hears as a Lost
  attempt (reason JobDeleted).
The cache is shared between the event loop (watch events) and reconcile worker threads, hence the lock.

It keeps only what passes read (see `slim_workflow`, `slim_job`, `slim_pod`), and once a Workflow's stored
status records how a Job ended, the Job is cut down to its attempt and final condition and its pod is dropped
(`settle_job`): with a thousand workflows in flight, finished Jobs and pods were most of the operator's memory.
Anything dropped is read from the API server again if a pass ever needs it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagwright.k8s import names, outcomes

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, workflow name)


@dataclass
class Jobs:
    """The Jobs owned by one Workflow (by uid), and the ones that vanished; `settled`: the names of live Jobs
    whose outcome a status write already recorded (`Cache.settle_jobs`), cut down to that outcome."""

    live: dict[str, Body] = field(default_factory=dict)
    gone: dict[str, Body] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)


class Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workflows: dict[Key, Body] = {}
        self._jobs: dict[str, Jobs] = {}  # by owner uid
        self._pods: dict[tuple[str, str], Body] = {}  # by (namespace, job name)
        self._owners: dict[str, Key] = {}  # workflow uid -> key
        self._job_owners: dict[tuple[str, str], str] = {}  # (namespace, job name) -> workflow uid
        self._finished_seen: dict[tuple[str, str], datetime] = {}  # (namespace, job name) -> first seen finished
        self._settled: set[tuple[str, str]] = set()  # (namespace, job name): outcome in the status, pod dropped
        # (namespace, job name): outcome in the status, read from the pod before the Job's own condition came;
        # its pod is dropped, and the Job is settled when that condition arrives, without a pass of its own.
        self._ended_early: set[tuple[str, str]] = set()
        # (namespace, job name): Jobs a pass is creating; their first watch event (which often comes before the
        # create's response) queues no pass of its own: the pass creating them already acts on them.
        self._expected: set[tuple[str, str]] = set()

    # -- workflows

    def put_workflow(self, body: Body) -> bool:
        """Store a Workflow if it is newer than what we have; True when it was stored."""
        key = key_of(body)
        with self._lock:
            if not _newer(body, self._workflows.get(key)):
                return False
            self._workflows[key] = slim_workflow(body)
            uid = body["metadata"].get("uid")
            if uid:
                self._owners[uid] = key
            return True

    def drop_workflow(self, body: Body) -> None:
        key = key_of(body)
        uid = body["metadata"].get("uid")
        with self._lock:
            current = self._workflows.get(key)
            if current is not None and current["metadata"].get("uid") == uid:
                del self._workflows[key]
            if uid:
                self._owners.pop(uid, None)
                jobs = self._jobs.pop(uid, Jobs())
                for name in [*jobs.live, *jobs.gone]:
                    self._pods.pop((key[0], name), None)
                    self._job_owners.pop((key[0], name), None)
                    self._finished_seen.pop((key[0], name), None)
                    self._settled.discard((key[0], name))
                    self._ended_early.discard((key[0], name))

    def workflow(self, key: Key) -> Body | None:
        with self._lock:
            return self._workflows.get(key)

    def key_of_uid(self, uid: str) -> Key | None:
        with self._lock:
            return self._owners.get(uid)

    def workflow_keys(self) -> list[Key]:
        with self._lock:
            return list(self._workflows)

    def workflows_labelled(self, namespace: str, label: str, value: str) -> list[Body]:
        """The Workflows of `namespace` whose `label` is `value`: a CronWorkflow's runs, read from the watch
        instead of LISTed from the API server on every cron pass. A scan: a few thousand dicts, microseconds."""
        with self._lock:
            return [
                body
                for (space, _), body in self._workflows.items()
                if space == namespace and (body["metadata"].get("labels") or {}).get(label) == value
            ]

    # -- jobs and pods

    def put_job(self, body: Body) -> Key | None:
        """Store a Job; returns its workflow's key so the caller can enqueue it, unless nothing is new (the
        watch echo of a Job we created ourselves, a relist) or nothing new changes a decision (`job_may_matter`)."""
        uid = owner_uid(body)
        if uid is None:
            return None
        name = body["metadata"]["name"]
        namespace = body["metadata"]["namespace"]
        finished = outcomes.job_finished(body)
        body = slim_job(body)
        with self._lock:
            jobs = self._jobs.setdefault(uid, Jobs())
            before = jobs.live.get(name)
            stored = _newer(body, before)
            if stored and finished and name in jobs.settled and _same_job(before, body):
                # A settled Job's later conditions (Complete after SuccessCriteriaMet, Failed after
                # FailureTarget) add nothing to the outcome its status records: it stays settled, no pass.
                jobs.live[name] = settled_job(body)
                return None
            if stored:
                jobs.live[name] = body
                self._settled.discard((namespace, name))  # a new version: whole again until a pass settles it
                jobs.settled.discard(name)
            self._job_owners[(namespace, name)] = uid
            if finished and (namespace, name) not in self._finished_seen:
                self._finished_seen[(namespace, name)] = datetime.now(UTC)
            if (namespace, name) in self._expected:
                self._expected.discard((namespace, name))
                if before is None and not _decisive(body)[1]:
                    return None
            if stored and finished and (namespace, name) in self._ended_early:
                # The status already records this attempt's end (read from its pod): the Job's own condition
                # changes no decision, so it is settled here instead of costing a pass.
                self._ended_early.discard((namespace, name))
                jobs.live[name] = settled_job(body)
                self._settled.add((namespace, name))
                jobs.settled.add(name)
                return None
            if stored and finished and self._pod_ended(namespace, name, before):
                # Its pod's end (which queued a pass of its own) already told the pass what this condition
                # says; the Job is kept for the pass to read, but it costs no pass of its own.
                return None
            return self._owners.get(uid) if stored and job_may_matter(before, body) else None

    def _pod_ended(self, namespace: str, name: str, before: Body | None) -> bool:
        """Whether the cached pod of the Job as it was before its update already says its attempt ended."""
        if before is None or outcomes.job_finished(before):
            return False
        pod = self._pods.get((namespace, name))
        return pod is not None and outcomes.pod_ended(before, pod)

    def expect_job(self, namespace: str, name: str, expected: bool = True) -> None:
        """A pass is about to create this Job (True), or its create failed (False)."""
        with self._lock:
            if expected:
                self._expected.add((namespace, name))
            else:
                self._expected.discard((namespace, name))

    def drop_job(self, body: Body) -> Key | None:
        uid = owner_uid(body)
        if uid is None:
            return None
        name = body["metadata"]["name"]
        with self._lock:
            self._ended_early.discard((body["metadata"]["namespace"], name))
            jobs = self._jobs.setdefault(uid, Jobs())
            last = jobs.live.pop(name, None) or slim_job(body)
            jobs.settled.discard(name)
            jobs.gone[name] = last
            return self._owners.get(uid)

    def settle_jobs(self, uid: str, namespace: str, names: list[str]) -> None:
        """The Workflow's stored status records how these Jobs' attempts ended: keep only each finished Job's
        identity, labels and final conditions (what says which attempt it was and how it ended, for the planner
        and for later watch events), and drop its pod. Passes skip recorded attempts without reading their
        pods; if a pass ever needs one again (its status lost), it lists the pod from the API server. A Job whose
        end was read from its pod before its own condition came is settled when that condition arrives."""
        if not names:
            return
        with self._lock:
            jobs = self._jobs.get(uid)
            if jobs is None:
                return
            for name in names:
                key = (namespace, name)
                job = jobs.live.get(name)
                if key in self._settled or job is None:
                    continue
                self._pods.pop(key, None)
                if outcomes.job_finished(job):
                    jobs.live[name] = settled_job(job)
                    self._settled.add(key)
                    jobs.settled.add(name)
                else:  # recorded from its pod: settled when the Job's own condition arrives (`put_job`)
                    self._ended_early.add(key)

    def jobs(self, uid: str, *, settled: bool = True) -> Jobs:
        """A copy of the Workflow's Jobs. `settled=False` leaves the settled ones out of `live` (their names stay
        in `settled`): a pass has nothing to learn from them, and on a workflow of thousands of finished
        nodes they are nearly all of its Jobs."""
        with self._lock:
            jobs = self._jobs.get(uid, Jobs())
            if settled or not jobs.settled:
                live = dict(jobs.live)
            else:
                live = {name: job for name, job in jobs.live.items() if name not in jobs.settled}
            return Jobs(live, dict(jobs.gone), set(jobs.settled))

    def put_pod(self, body: Body) -> Key | None:
        """Store a pod; returns its workflow's key when the pod is newer than what we had."""
        job = (body["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")
        if job is None:
            return None
        namespace = body["metadata"]["namespace"]
        with self._lock:
            if (namespace, job) in self._settled or (namespace, job) in self._ended_early:
                return None  # its Job's outcome is recorded: nothing this pod says changes a decision
            stored = _newer(body, self._pods.get((namespace, job)))
            if stored:
                body = slim_pod(body)
                self._pods[(namespace, job)] = body
                if _pod_final(body) and (namespace, job) not in self._finished_seen:
                    self._finished_seen[(namespace, job)] = datetime.now(UTC)
            uid = self._job_owners.get((namespace, job))
            return self._owners.get(uid) if uid and stored else None

    def drop_pod(self, body: Body) -> None:
        job = (body["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")
        with self._lock:
            current = self._pods.get((body["metadata"]["namespace"], job or ""))
            if current is not None and current["metadata"].get("uid") == body["metadata"].get("uid"):
                del self._pods[(body["metadata"]["namespace"], job or "")]

    def pod(self, namespace: str, job: str) -> Body | None:
        with self._lock:
            return self._pods.get((namespace, job))

    def finished_seen(self, namespace: str, job: str) -> datetime | None:
        """When this process first saw the Job's pod end, or the Job with a final condition if that came first
        (finer than the condition's 1 s time)."""
        with self._lock:
            return self._finished_seen.get((namespace, job))


_JOB_META = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "ownerReferences")
_POD_META = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "ownerReferences")
_TIMES = ("creationTimestamp", "deletionTimestamp")
_JOB_SPEC = ("suspend", "activeDeadlineSeconds", "backoffLimit", "completions", "parallelism")
_POD_STATUS = ("phase", "reason", "message", "conditions", "containerStatuses", "startTime")


_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim_workflow(body: Mapping[str, Any]) -> Body:
    """A Workflow without metadata.managedFields (the API server's record of who set which field: it names
    every spec field the user wrote, and every status field the operator wrote outside the atomic node map)
    and without kubectl apply's copy of the whole manifest. Nothing here reads either; the rest is kept as it
    came. Shallow: the watch event's own dicts are not changed."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations")
    if "managedFields" not in meta and not (annotations and any(a in annotations for a in _DROPPED_ANNOTATIONS)):
        return body if isinstance(body, dict) else dict(body)
    slim_meta = {key: value for key, value in meta.items() if key != "managedFields"}
    if annotations:
        slim_meta["annotations"] = {k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS}
    return {**body, "metadata": slim_meta}


def settled_job(job: Mapping[str, Any]) -> Body:
    """What stays of a finished Job once the status records its outcome: identity, labels (node and attempt)
    and its final conditions. Enough for `outcomes.observe` to read the same outcome, for `_newer` to ignore
    older watch events, and for a pass to know the attempt's Job exists. Thousands of these stay cached, so
    the strings many of them repeat (label keys and values, condition types, reasons and messages, the
    namespace) are shared instead of kept once per Job as the JSON parser made them."""
    meta = job.get("metadata") or {}
    conditions = [
        {key: _shared(c[key]) for key in _CONDITION_KEYS if key in c}
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True" and c.get("type")
    ]
    kept: Body = {key: meta[key] for key in ("name", "uid", "resourceVersion") if key in meta}
    kept["namespace"] = _shared(meta.get("namespace") or "")
    kept["labels"] = {sys.intern(key): _shared(value) for key, value in (meta.get("labels") or {}).items()}
    return {"metadata": kept, "status": {"conditions": conditions}}


_CONDITION_KEYS = ("type", "status", "reason", "message", "lastTransitionTime")


def _shared(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def slim_job(body: Mapping[str, Any]) -> Body:
    """The parts of a Job the reconciler reads (identity, labels, owner, the scalar spec fields, status), not
    the pod template: with thousands of Jobs cached, the template is most of the operator's memory."""
    spec = body.get("spec") or {}
    return {
        "metadata": _pick(body.get("metadata") or {}, _JOB_META + _TIMES),
        "spec": _pick(spec, _JOB_SPEC),
        "status": body.get("status") or {},
    }


def slim_pod(body: Mapping[str, Any]) -> Body:
    """The parts of a pod that say how its container ended or why it cannot start; not its spec."""
    status = body.get("status") or {}
    containers = [
        {key: value for key, value in container.items() if key in ("name", "state", "lastState")}
        for container in status.get("containerStatuses") or []
    ]
    slim_status = _pick(status, _POD_STATUS)
    if containers:
        slim_status["containerStatuses"] = containers
    return {"metadata": _pick(body.get("metadata") or {}, _POD_META + _TIMES), "status": slim_status}


def _pick(source: Mapping[str, Any], keys: tuple[str, ...]) -> Body:
    return {key: source[key] for key in keys if key in source}


def _pod_final(pod: Mapping[str, Any]) -> bool:
    """A pod that ended on its own (not one being deleted): when its dependents became ready to launch."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def pod_may_matter(pod: Mapping[str, Any]) -> bool:
    """Whether a pod update says something a pass may act on: the pod ended, or it cannot start. A pod being
    scheduled or starting changes no decision, and its Job's own events bring the outcome."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or status.get("reason"):
        return True
    if any((c.get("state") or {}).get("waiting", {}).get("reason") for c in status.get("containerStatuses") or []):
        return True
    return any(c.get("type") == "PodScheduled" and c.get("status") == "False" for c in status.get("conditions") or [])


def job_may_matter(before: Mapping[str, Any] | None, job: Mapping[str, Any]) -> bool:
    """Whether a Job update may change a pass's decision: a Job not seen before, or one whose ending conditions
    or `suspend` changed. The Job controller updates a running Job's status several times (active, ready,
    startTime, uncounted pods) without changing what `outcomes.observe` reads; a pass per such update cost one
    no-op pass per update, and on a workflow whose passes are quick (a forEach node's small status) that was
    most of its passes. Pods that cannot start have their own events (`pod_may_matter`)."""
    if before is None or not _same_job(before, job):
        return True
    return _decisive(before) != _decisive(job)


def _decisive(job: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a Job `outcomes.observe` and the reconciler's suspend check read: its true conditions, `suspend`."""
    conditions = (job.get("status") or {}).get("conditions") or []
    true = sorted((str(c.get("type")), str(c.get("reason"))) for c in conditions if c.get("status") == "True")
    return bool((job.get("spec") or {}).get("suspend")), tuple(true)


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return meta.get("namespace") or "", meta["name"]


def owner_uid(body: Mapping[str, Any]) -> str | None:
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Workflow" and ref.get("apiVersion", "").startswith(names.GROUP + "/"):
            uid: str | None = ref.get("uid")
            return uid
    return None


def _same_job(before: Mapping[str, Any] | None, body: Mapping[str, Any]) -> bool:
    return before is not None and before["metadata"].get("uid") == body["metadata"].get("uid")


def _newer(body: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether `body` supersedes `current` (the same version again does not). resourceVersions are etcd
    revisions: integers in practice."""
    if current is None:
        return True
    if body["metadata"].get("uid") != current["metadata"].get("uid"):
        return True
    try:
        return int(body["metadata"]["resourceVersion"]) > int(current["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return True
