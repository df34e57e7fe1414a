"""How long a running workflow has left, estimated from the nodes that already finished.

Used by the web UI, `dagwright get`/`watch` and the local live view, all of which hold the status as it is stored
(camelCase JSON: `startedAt`, `finishedAt`, `phase` per node), so this reads that form and needs no model. Pure.

The estimate: the mean duration of the finished nodes that ran (succeeded or failed; skipped ones took no time),
times the nodes still to finish, divided by the parallelism seen so far (finished node-seconds over the wall time
they took, at least 1). Nodes running now count as having done part of their mean. It knows nothing of the DAG's
shape, so a long tail of one-at-a-time nodes makes it optimistic; it is a hint, not a promise, and is None until a
node has finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

_RAN = frozenset({"Succeeded", "Failed"})
_FINISHED = frozenset({"Succeeded", "Failed", "Skipped", "Stopped"})


def estimate(nodes: Iterable[Mapping[str, Any]], total: int, now: datetime) -> float | None:
    """Seconds left, or None when nothing has finished yet (or everything has). `total` counts every node of the
    spec, also those without a status entry yet."""
    durations: list[float] = []
    first: datetime | None = None
    last: datetime | None = None
    finished = 0
    running_elapsed: list[float] = []
    for node in nodes:
        phase = node.get("phase")
        started = _time(node.get("startedAt"))
        if phase in _FINISHED:
            finished += 1
            ended = _time(node.get("finishedAt"))
            if phase in _RAN and started is not None and ended is not None:
                durations.append(max(0.0, (ended - started).total_seconds()))
                first = started if first is None or started < first else first
                last = ended if last is None or ended > last else last
        elif started is not None:
            running_elapsed.append(max(0.0, (now - started).total_seconds()))
    left = total - finished
    if not durations or left <= 0 or first is None or last is None:
        return None
    mean = sum(durations) / len(durations)
    wall = max((last - first).total_seconds(), 1e-3)
    parallelism = max(1.0, sum(durations) / wall)
    work = (left - len(running_elapsed)) * mean + sum(max(0.0, mean - elapsed) for elapsed in running_elapsed)
    return max(0.0, work / parallelism)


def text(seconds: float | None) -> str:
    """`~2m10s left`, or "" without an estimate."""
    if seconds is None:
        return ""
    whole = round(seconds)
    if whole >= 3600:
        return f"~{whole // 3600}h{whole % 3600 // 60:02d}m left"
    if whole >= 60:
        return f"~{whole // 60}m{whole % 60:02d}s left"
    return f"~{whole}s left"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
