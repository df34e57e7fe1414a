"""Node progress from node-runner, heard on Redis pub/sub and kept for the next reconcile pass.

node-runner publishes `{"node", "attempt", "progress"}` on `dagwright:<workflow uid>:progress`. This feed keeps
only the latest line per attempt and asks for a reconcile of that workflow at most every
`PATCH_INTERVAL` seconds, so a chatty node costs one status patch per interval, not one per line.

Over `rediss://` the feed checks Redis' certificate against `ca_file` (the operator's `--redis-ca-file`, or
`$DAGWRIGHT_REDIS_CA`), else against the system's CAs. An untrusted certificate is said once, naming the setting;
the feed keeps retrying quietly, since the mounted CA file may be corrected without a restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import redis

from dagwright import nodeio

log = logging.getLogger("dagwright.progress")

PATCH_INTERVAL = 2.0
PATTERN = "dagwright:*:progress"


class ProgressFeed:
    def __init__(
        self, url: str, password: str | None, wake: Callable[[str, float], None], *, ca_file: str | None = None
    ) -> None:
        options: dict[str, object] = {"password": password or None, "socket_timeout": None}
        if ca_file:
            options["ssl_ca_certs"] = ca_file
        self._client = redis.Redis.from_url(url, **options)
        where = self._client.connection_pool.connection_kwargs
        self._address = f"{where.get('host', '?')}:{where.get('port', '?')}"  # never the URL: it may hold a password
        self._wake = wake  # (workflow uid, delay seconds)
        self._latest: dict[tuple[str, str, int], str] = {}
        self._woken: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pubsub: redis.client.PubSub | None = None
        self._thread = threading.Thread(target=self._listen, name="progress-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the listening thread: closing its connection ends a blocked `listen`, so the feed neither outlives
        the operator's shutdown nor goes on retrying a Redis that is gone (a test's, or the chart's on uninstall)."""
        self._stopping.set()
        pubsub = self._pubsub
        if pubsub is not None:
            pubsub.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def latest(self, workflow_uid: str, node: str, attempt: int) -> str | None:
        with self._lock:
            return self._latest.get((workflow_uid, node, attempt))

    def record(self, channel: str, payload: str | bytes) -> None:
        """Keep one progress message; public so tests can feed it without Redis."""
        uid = channel.split(":")[1] if channel.count(":") == 2 else ""
        try:
            message = json.loads(payload)
            key = (uid, str(message["node"]), int(message["attempt"]))
            line = str(message["progress"])[:64]
        except (ValueError, KeyError, TypeError):
            return
        now = time.monotonic()
        with self._lock:
            self._latest[key] = line
            last = self._woken.get(uid, 0.0)
            delay = max(0.0, last + PATCH_INTERVAL - now)
            self._woken[uid] = now + delay
        self._wake(uid, delay)

    def _listen(self) -> None:
        backoff = 0.5
        untrusted_told = False
        while not self._stopping.is_set():
            try:
                pubsub = self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                if self._stopping.is_set():  # stop() came before there was a connection to close
                    return
                pubsub.psubscribe(PATTERN)
                backoff = 0.5
                if untrusted_told:
                    log.info("progress feed: Redis at %s is trusted now; node progress is back", self._address)
                    untrusted_told = False
                for message in pubsub.listen():
                    channel = message.get("channel")
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    self.record(str(channel), message.get("data") or b"")
            except (redis.RedisError, OSError, ValueError, AttributeError) as error:
                if self._stopping.is_set():
                    return  # the connection was closed under `listen` on purpose
                if not isinstance(error, redis.RedisError):
                    raise
                untrusted = nodeio.untrusted_certificate(error)
                if untrusted is None:
                    log.warning("progress feed: %s; reconnecting in %.1fs", error, backoff)
                elif not untrusted_told:
                    log.error(
                        "progress feed: the TLS certificate of Redis at %s is not trusted (%s); set --redis-ca-file "
                        "or DAGWRIGHT_REDIS_CA (chart: redis.tls.caConfigMap) to the CA that signed it; no node "
                        "progress until then",
                        self._address,
                        untrusted,
                    )
                    untrusted_told = True
                else:
                    log.debug("progress feed: %s still untrusted; retrying in %.1fs", self._address, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
