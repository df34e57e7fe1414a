"""Small polling and lookup helpers shared by the e2e tests and the cluster benchmark.

Why: tests against a real API server wait for controllers to act; these keep the waits
bounded and their failure messages readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2) -> T:
    """Poll probe until it returns something truthy; raise TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def get_or_none(read: Callable[[], T]) -> T | None:
    """read(), or None when the object does not exist."""
    try:
        return read()
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def condition(obj: Any, kind: str) -> bool:
    """True when obj.status.conditions has a condition of this type with status True."""
    conditions = getattr(obj.status, "conditions", None) or []
    return any(c.type == kind and c.status == "True" for c in conditions)
