"""Where node-runner puts outputs and progress when Redis is configured.

Every Redis call is retried with backoff, because a Redis restart mid-run should cost a delay, not a failed
node; when Redis stays unreachable, `StoreUnavailable` tells node-runner to exit with its transient code.
Outputs are written with a TTL and Redis' own persistence (AOF/RDB, as the chart configures it) keeps them
across restarts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from dagwright import nodeio
from dagwright_node_runner.errors import StoreUnavailable

T = TypeVar("T")


class RedisStore:
    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        ca_file: str | None = None,
        attempts: int = 5,
        first_delay: float = 0.2,
    ) -> None:
        options: dict[str, object] = {"socket_timeout": 5, "socket_connect_timeout": 5}
        if password:
            options["password"] = password
        if ca_file:
            options["ssl_ca_certs"] = ca_file
        self.client = redis.Redis.from_url(url, **options)
        self.attempts = attempts
        self.has_password = bool(password)
        self.first_delay = first_delay

    def _auth_problem(self) -> str:
        if self.has_password:
            return "Redis refused the password in DAGWRIGHT_REDIS_PASSWORD"
        return "Redis requires a password, and none was given (set DAGWRIGHT_REDIS_PASSWORD)"

    def check(self) -> None:
        self._retry(self.client.ping)

    def put_outputs(self, key: str, value: str, ttl_seconds: int) -> None:
        def write() -> object:
            return self.client.set(key, value, ex=ttl_seconds)

        self._retry(write)

    def get_outputs(self, key: str) -> str | None:
        def read() -> object:
            return self.client.get(key)

        value = self._retry(read)
        return value.decode() if isinstance(value, bytes) else None

    def publish(self, channel: str, message: str) -> None:
        """Best effort: one try, since a later progress line replaces this one anyway."""
        with contextlib.suppress(redis.RedisError):
            self.client.publish(channel, message)

    def _retry(self, call: Callable[[], T]) -> T:
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except (redis.AuthenticationError, redis.ResponseError) as error:
                text = str(error)
                if (
                    not isinstance(error, redis.AuthenticationError)
                    and "NOAUTH" not in text
                    and "WRONGPASS" not in text
                ):
                    raise
                raise StoreUnavailable(self._auth_problem()) from None
            except redis.RedisError as error:
                untrusted = nodeio.untrusted_certificate(error)
                if untrusted is not None:
                    raise StoreUnavailable(
                        f"Redis' TLS certificate is not trusted ({untrusted}); "
                        "set DAGWRIGHT_REDIS_CA to the certificate of the CA that signed it"
                    ) from None
                if attempt == self.attempts:
                    raise StoreUnavailable(f"Redis unreachable after {attempt} tries: {error}") from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")
