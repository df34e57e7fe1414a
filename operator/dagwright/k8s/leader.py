"""Leader election with a coordination.k8s.io Lease, so that of several replicas exactly one acts.

Every replica watches and keeps its cache warm; only the holder of the Lease reconciles. The holder renews
every `renew_seconds`; a replica takes over once the Lease has not been renewed for `duration_seconds`. A
holder that cannot renew stops acting before its Lease can expire (`is_leader` checks the clock), so two
replicas never act at once as long as clocks tick at the same rate. A replica shutting down releases the Lease
so the next one takes over at once.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import kubernetes
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("dagwright.leader")

_SAFETY = 0.8  # act only within this fraction of the lease duration after the last successful renewal


class LeaseElector:
    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        namespace: str,
        name: str = "dagwright-operator",
        duration_seconds: int = 15,
        renew_seconds: float = 2.0,
        identity: str | None = None,
    ) -> None:
        self.api = kubernetes.client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
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
        except ApiException as error:
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
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except Exception as error:  # best effort on the way out
            log.warning("could not release the lease: %s", error)

    def _round(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            return self._create(now)
        spec = lease.spec
        if spec is None:
            spec = lease.spec = kubernetes.client.V1LeaseSpec()
        holder = spec.holder_identity
        renewed = spec.renew_time or spec.acquire_time
        expired = renewed is None or (now - renewed).total_seconds() > (spec.lease_duration_seconds or self.duration)
        if holder not in (None, "", self.identity) and not expired:
            return False
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.duration
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)  # resourceVersion: no races
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def _create(self, now: datetime) -> bool:
        body = kubernetes.client.V1Lease(
            metadata=kubernetes.client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=kubernetes.client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self.duration,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self.api.create_namespaced_lease(self.namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True
