"""Who held the operator's Lease when, and whether any replica acted without holding it.

Why from etcd revisions: every Lease write and every Job creation gets the next revision of the one etcd, so
"the holder at the moment this Job was created" is the holder named by the last Lease write before the Job's
creation revision. Each Job carries the identity of the replica that created it (annotation
dagwright.io/created-by); a Job created by anyone but the holder of the moment means two replicas acted at once.
"""

from __future__ import annotations

import bisect
import json
import threading
from typing import Any

from kubernetes import client

from ..conftest import Kube
from ..operator_fixtures import JobRecord, _Watch

CREATED_BY = "dagwright.io/created-by"
LEASE = "dagwright-operator"


class LeaseHistory:
    """Every write to the operator's Lease in one namespace, from before the operators start."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.lock = threading.Lock()
        self.writes: list[tuple[int, str]] = []  # (revision, holder or "")
        self.coordination = client.CoordinationV1Api(kube.api_client)
        self.namespace = namespace
        self.watch = _Watch(self.coordination.list_namespaced_lease, namespace, self._event)
        self.watch.start()

    def _event(self, kind: str, lease: dict[str, Any]) -> None:
        meta = lease.get("metadata") or {}
        if meta.get("name") != LEASE:
            return
        holder = (lease.get("spec") or {}).get("holderIdentity") or ""
        with self.lock:
            self.writes.append((int(meta.get("resourceVersion") or 0), holder if kind != "DELETED" else ""))

    def holder(self) -> str:
        """The holder the API server names now."""
        response = self.coordination.read_namespaced_lease(LEASE, self.namespace, _preload_content=False)
        holder: str = (json.loads(response.data).get("spec") or {}).get("holderIdentity") or ""
        return holder

    def holders(self) -> list[str]:
        """Distinct holders in the order they took the Lease."""
        with self.lock:
            writes = sorted(self.writes)
        order: list[str] = []
        for _, holder in writes:
            if holder and (not order or order[-1] != holder):
                order.append(holder)
        return order

    def stop(self) -> None:
        self.watch.stopping.set()
        self.watch.join(timeout=5)


def acted_without_lease(jobs: list[JobRecord], lease_writes: list[tuple[int, str]]) -> list[str]:
    """Jobs whose creator did not hold the Lease at their creation revision."""
    writes = sorted(lease_writes)
    revisions = [revision for revision, _ in writes]
    problems = []
    for job in jobs:
        creator = ((job.last.get("metadata") or {}).get("annotations") or {}).get(CREATED_BY)
        if creator is None:
            problems.append(f"Job {job.name} does not say which replica created it")
            continue
        if not job.created_rv_exact:
            continue
        index = bisect.bisect_left(revisions, job.created_rv) - 1
        holder = writes[index][1] if index >= 0 else ""
        if holder != creator:
            problems.append(f"Job {job.name} was created by {creator} while the Lease named {holder or 'nobody'}")
    return problems
