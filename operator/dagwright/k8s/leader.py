"""Leader election with a coordination.k8s.io Lease, so that of several replicas exactly one acts.

Every replica watches and keeps its cache warm; only the holder of the Lease reconciles. The holder renews
every `renew_seconds`; a replica takes over once the Lease has not been renewed for `duration_seconds`. A
holder that cannot renew stops acting before its Lease can expire (`is_leader` checks the clock), so two
replicas never act at once as long as clocks tick at the same rate. A replica shutting down releases the Lease
so the next one takes over at once.

The Lease is read and written as JSON through `connection.Connection` (the operator process does not import the
kubernetes package); a replace sends back the resourceVersion read, so of two replicas racing only one wins.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from dagwright.k8s.connection import ApiError, Connection

log = logging.getLogger("dagwright.leader")

_SAFETY = 0.8  # act only within this fraction of the lease duration after the last successful renewal


class LeaseElector:
    def __init__(
        self,
        connection: Connection,
        namespace: str,
        name: str = "dagwright-operator",
        duration_seconds: int = 15,
        renew_seconds: float = 2.0,
        identity: str | None = None,
    ) -> None:
        self.connection = connection
        self.namespace = namespace
        self.name = name
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace, safe='')}/leases"
        self._path = f"{self._collection}/{quote(name, safe='')}"
        self.duration = duration_seconds
        self.renew_seconds = renew_seconds
        self.identity = identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self._renewed_at: float | None = None  # monotonic time of our last successful acquire/renew
        self._standing_down = False
        self.on_elected: Callable[[], None] = lambda: None

    def is_leader(self) -> bool:
        renewed = self._renewed_at
        return renewed is not None and time.monotonic() - renewed < self.duration * _SAFETY

    def try_acquire_or_renew(self) -> bool:
        """One round: take the Lease if free or expired, renew it if ours. True while we hold it."""
        was_leader = self.is_leader()
        started = time.monotonic()
        try:
            held = self._round()
        except ApiError as error:
            log.warning("lease %s/%s: %s", self.namespace, self.name, error.reason)
            held = False
        except Exception as error:  # the API server unreachable: keep trying, never crash
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            held = False
        if held:
            self._renewed_at = started
            if not was_leader:
                log.info("became the leader as %s", self.identity)
                self.on_elected()
        elif was_leader and not self.is_leader():
            log.warning("lost the leadership")
        return held

    def stand_down(self) -> bool:
        """Stop acting at once (is_leader turns False); True if we were the leader. The Lease is still ours
        until `release`, so nobody else acts while our last requests finish."""
        held = self._renewed_at is not None
        self._renewed_at = None
        self._standing_down = held
        return held

    def release(self) -> None:
        """Hand the Lease over (after `stand_down` and once our last passes ended), so the next replica takes
        over at once instead of waiting for it to expire."""
        if self._renewed_at is None and not self._standing_down:
            return
        self._renewed_at = None
        self._standing_down = False
        try:
            lease = self.connection.request("GET", self._path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                spec.pop("holderIdentity", None)
                spec.pop("renewTime", None)
                lease["spec"] = spec
                self.connection.request("PUT", self._path, body=lease)
        except Exception as error:  # best effort on the way out
            log.warning("could not release the lease: %s", error)

    def _round(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = self.connection.request("GET", self._path)
        except ApiError as error:
            if error.status != 404:
                raise
            return self._create(now)
        spec: dict[str, Any] = lease.get("spec") or {}
        lease["spec"] = spec
        holder = spec.get("holderIdentity")
        renewed = _time(spec.get("renewTime") or spec.get("acquireTime"))
        duration = spec.get("leaseDurationSeconds") or self.duration
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder not in (None, "", self.identity) and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = _micro_time(now)
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["renewTime"] = _micro_time(now)
        spec["leaseDurationSeconds"] = self.duration
        try:
            self.connection.request("PUT", self._path, body=lease)  # with the resourceVersion read: no races
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": 0,
            },
        }
        try:
            self.connection.request("POST", self._collection, body=body)
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return True


def _micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(value: str | None) -> datetime | None:
    """A MicroTime or Time as the API server writes it (`...Z`, with or without fractions)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
