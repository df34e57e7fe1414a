"""The smallest JSON merge patch (RFC 7386) that turns one status into another.

Sending only what changed keeps each status write small (a 10,000-node workflow changes a few nodes at a
time) and lighter on the API server and etcd than replacing the whole object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A patch that, merged into `old`, gives `new`; removed keys become None. Lists are replaced whole."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is _MISSING:
            patch[key] = value
        elif isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif value != before:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


_MISSING = object()
