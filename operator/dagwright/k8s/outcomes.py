"""Reading an attempt's outcome from its Job and pod: pure functions from Kubernetes objects to Observations.

The Job says whether the attempt ended (conditions Complete / Failed); the pod says why (exit code, OOMKilled,
eviction, termination message). The pod also says it first: the Job controller batches pod updates for about a
second before it writes the Job's condition, so an attempt whose pod has ended on its own (`pod_ended`) is read
from the pod at once, with the same reading the Job's condition would give (its outcome does not depend on which
came first). The Job stays the authority for everything the pod cannot say: its deadline, a vanished or stuck pod.
Reasons are mapped onto the core's vocabulary (`failures.py`), which decides what is transient. A pod stuck Pending
(unschedulable, image pull failing) past a threshold is reported as a failure here, because Kubernetes itself
would wait forever.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from dagwright import nodeio
from dagwright.k8s import names
from dagwright.planner import AttemptState, Observation

STUCK_AFTER = timedelta(minutes=5)
MAX_MESSAGE = 1024
_IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
# The kubelet cannot build the container: a Secret or ConfigMap (key) it references is missing, for example.
_CONTAINER_CONFIG = frozenset({"CreateContainerConfigError", "CreateContainerError"})
# Job conditions that end it, with success or failure (SuccessCriteriaMet and FailureTarget come first).
_SUCCEEDED = ("SuccessCriteriaMet", "Complete")
_FAILED = ("FailureTarget", "Failed")
# Stuck pods whose Job is deleted once the attempt is failed: the pod would otherwise wait forever.
_ABANDONED = frozenset({"ImagePullFailed", "Unschedulable"})
_ENDED = frozenset(_SUCCEEDED + _FAILED)
# Pod reasons that end a pod without its container's own exit (node pressure, preemption, node shutdown).
_EVICTED = frozenset({"Evicted", "Preempted", "NodeLost", "Shutdown", "Terminated"})
# What a pod-read failure passes as its Job's condition: never read (a pod that ends on its own has a terminated
# container or an eviction reason, both read before the condition's), but the same shape as the Job path's.
_POD_FAILED = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}

Body = Mapping[str, Any]


def item_of(job: Body) -> int | None:
    """The forEach item a Job runs (label `dagwright.io/item`), if any."""
    value = (job.get("metadata", {}).get("labels") or {}).get(names.LABEL_ITEM)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def attempt_of(job: Body) -> tuple[str, int] | None:
    labels = job.get("metadata", {}).get("labels") or {}
    try:
        return labels[names.LABEL_NODE], int(labels[names.LABEL_ATTEMPT])
    except (KeyError, ValueError):
        return None


def job_finished(job: Body) -> bool:
    """Whether the Job has ended, either way: the one reading of its conditions every caller shares."""
    return any(
        c.get("type") in _ENDED and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or []
    )


def abandoned(seen: Observation) -> bool:
    """Whether this failed attempt's Job should be deleted: its pod is stuck for good and would wait forever."""
    return seen.state is AttemptState.FAILED and seen.reason in _ABANDONED


def observe(job: Body, pod: Body | None, now: datetime, stuck_after: timedelta = STUCK_AFTER) -> Observation | None:
    seen = _observe(job, pod, now, stuck_after)
    item = item_of(job)
    return seen if seen is None or item is None else dataclasses.replace(seen, item=item)


def _observe(job: Body, pod: Body | None, now: datetime, stuck_after: timedelta) -> Observation | None:
    key = attempt_of(job)
    if key is None:
        return None
    node, attempt = key
    conditions = {c.get("type"): c for c in job.get("status", {}).get("conditions") or [] if c.get("status") == "True"}
    if any(kind in conditions for kind in _SUCCEEDED):
        return _success(node, attempt, pod, _time(conditions, now))
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is not None:
        return _failure(node, attempt, failed, pod, _time(conditions, now))
    if pod is not None and pod_ended(job, pod):
        at = _ended_at(pod, now)
        if pod["status"]["phase"] == "Succeeded":
            return _success(node, attempt, pod, at)
        return _failure(node, attempt, _POD_FAILED, pod, at)
    stuck = _stuck(pod, now, stuck_after)
    if stuck is not None:
        reason, message = stuck
        return Observation(node, attempt, AttemptState.FAILED, reason=reason, message=message, finished_at=now)
    return Observation(node, attempt, AttemptState.RUNNING)


def pod_ended(job: Body, pod: Body) -> bool:
    """Whether `pod` says, on its own, that the attempt of `job` has ended: its phase is final and nothing but
    the pod's own run ended it.

    - The Job is built with `backoffLimit: 0` (jobs.py), so once its one pod is final the Job starts no other: the
      attempt has ended, whatever the Job's condition will say a second later.
    - Not when the pod is being deleted (a deletionTimestamp): a suspended Job's pods (pauseMode Suspend), a stopped
      attempt's or a Job past its deadline are deleted, and a pod killed that way is not an outcome; the Job's
      condition (its deadline: Timeout) or the planner's own record (stopped, suspended) says what happened.
    - Not when the Job is suspended or being deleted, for the same reason, whatever state its pod reached.
    - Only the Job's own pod (its owner reference names the Job's uid): a pod left from an earlier Job of the same
      name is not this attempt's.
    - Failed only with a terminated container or an eviction reason: what `_failure` reads. A pod that failed
      before its container ran (rejected at admission by the node) leaves it to the Job's condition.
    """
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase not in ("Succeeded", "Failed"):
        return False
    job_meta = job.get("metadata") or {}
    job_spec = job.get("spec") or {}
    pod_meta = pod.get("metadata") or {}
    if job_spec.get("backoffLimit") != 0 or job_spec.get("suspend") or job_meta.get("deletionTimestamp"):
        return False
    if pod_meta.get("deletionTimestamp"):
        return False
    uid = job_meta.get("uid")
    if not uid or not any(ref.get("uid") == uid for ref in pod_meta.get("ownerReferences") or []):
        return False
    return phase == "Succeeded" or _terminated(pod) is not None or status.get("reason") in _EVICTED


def _ended_at(pod: Body, default: datetime) -> datetime:
    """When a pod's container ended (finishedAt), as the Job's condition time would say it a moment later."""
    return _parse((_terminated(pod) or {}).get("finishedAt")) or default


def _failure(node: str, attempt: int, condition: Body, pod: Body | None, at: datetime) -> Observation:
    job_reason = condition.get("reason") or "Failed"
    if job_reason == "DeadlineExceeded":  # the Job's activeDeadlineSeconds is the node's timeoutSeconds
        message = "attempt exceeded timeoutSeconds (Job activeDeadlineSeconds)"
        # The planner's reason for the same timeout ("Timeout", as `dagwright run` says): whichever clock ends
        # the attempt first, a user reads one reason, and DeadlineExceeded stays the workflow deadline's.
        return Observation(node, attempt, AttemptState.FAILED, reason="Timeout", message=message, finished_at=at)
    terminated = _terminated(pod)
    pod_reason = (pod or {}).get("status", {}).get("reason")
    if pod_reason in _EVICTED:
        message = _clip((pod or {}).get("status", {}).get("message") or pod_reason)
        reason = "Evicted" if pod_reason in ("Evicted", "Shutdown", "Terminated") else pod_reason
        return Observation(node, attempt, AttemptState.FAILED, reason=reason, message=message, finished_at=at)
    if terminated is None:
        message = _clip(condition.get("message") or f"Job failed ({job_reason})")
        return Observation(node, attempt, AttemptState.FAILED, reason=job_reason, message=message, finished_at=at)
    code = terminated.get("exitCode")
    reason = "OOMKilled" if terminated.get("reason") == "OOMKilled" else "Error"
    # The kubelet's reason for any non-zero exit is just "Error": the exit code says more.
    why = terminated.get("reason") if terminated.get("reason") not in (None, "", "Error") else None
    message = _clip(terminated.get("message") or (f"{why} (exit code {code})" if why else f"exit code {code}"))
    carried = nodeio.read_termination(terminated.get("message"), succeeded=False)
    if carried.error_reason:  # node-runner's own failure (Redis unreachable, invalid outputs)
        reason, message = carried.error_reason, _clip(carried.error_message or carried.error_reason)
    return Observation(
        node, attempt, AttemptState.FAILED, exit_code=code, reason=reason, message=message, finished_at=at
    )


def _success(node: str, attempt: int, pod: Body | None, at: datetime) -> Observation:
    """A completed Job; its outputs (if any) come from the container's termination message."""
    terminated = _terminated(pod) or {}
    carried = nodeio.read_termination(terminated.get("message"), succeeded=True)
    if carried.error_reason:
        message = _clip(carried.error_message or carried.error_reason)
        return Observation(
            node,
            attempt,
            AttemptState.FAILED,
            exit_code=0,
            reason=carried.error_reason,
            message=message,
            finished_at=at,
        )
    return Observation(
        node,
        attempt,
        AttemptState.SUCCEEDED,
        exit_code=0,
        finished_at=at,
        outputs=carried.outputs,
        outputs_ref=carried.reference,
    )


def _terminated(pod: Body | None) -> Body | None:
    for status in (pod or {}).get("status", {}).get("containerStatuses") or []:
        if status.get("name") == names.CONTAINER:
            terminated: Body | None = (status.get("state") or {}).get("terminated")
            return terminated
    return None


def _stuck(pod: Body | None, now: datetime, stuck_after: timedelta) -> tuple[str, str] | None:
    """(reason, message) when the pod has been unable to start for longer than `stuck_after`."""
    if pod is None or pod.get("status", {}).get("phase") != "Pending":
        return None
    created = _parse(pod.get("metadata", {}).get("creationTimestamp"))
    if created is None or now - created < stuck_after:
        return None
    for status in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _IMAGE_PULL:
            return "ImagePullFailed", _clip(f"{waiting.get('reason')}: {waiting.get('message', '')}")
        if waiting.get("reason") in _CONTAINER_CONFIG:
            return "ContainerConfigError", _clip(f"{waiting.get('reason')}: {waiting.get('message', '')}")
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return "Unschedulable", _clip(condition.get("message") or "pod cannot be scheduled")
    return None


def start_due(job: Body, stuck_after: timedelta) -> datetime | None:
    """When a running attempt's pod, if it has not started by then, counts as stuck: its Job's creation plus
    `stuck_after`. None when that cannot happen: the Job ended, is suspended, or has its pod ready.

    Why the Job: the operator's pod watch brings only pods that ended (a pod's Pending and Running updates are
    half of its events and change no decision), so whether a pod still waits to start is read from its Job's
    `ready` count, and the pod itself is asked for only once this time has come."""
    status = job.get("status") or {}
    if status.get("ready") or (job.get("spec") or {}).get("suspend") or job_finished(job):
        return None
    created = _parse((job.get("metadata") or {}).get("creationTimestamp"))
    return created + stuck_after if created is not None else None


def _time(conditions: Mapping[str, Body], default: datetime) -> datetime:
    """When the Job ended: the time of its terminal condition (not of e.g. a Suspended one it still has)."""
    for kind in _SUCCEEDED + _FAILED:  # the earlier of each pair first
        condition = conditions.get(kind)
        if condition is None:
            continue
        parsed = _parse(condition.get("lastTransitionTime"))
        if parsed is not None:
            return parsed
    return default


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
