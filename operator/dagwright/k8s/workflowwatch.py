"""The Workflow watch: watch.py's lean list+watch, plus the deletions a watch gap hid.

Why not kopf's watch: most Workflow events are the echoes of the operator's own status patches, and kopf ran
each through its per-object pipeline (about 3 ms of CPU an event, a quarter of the operator's CPU per node in
bench/operator_throughput.py) only for the handler to hand the object to the cache, which mostly found nothing
new in it. Here an event costs one JSON parse and one cache call, on a thread of its own.

What it adds to watch.py: a relist (after "410 Gone", or at start-up) replays every listed Workflow as an
update, and a Workflow deleted while no watch was open would otherwise stay in the cache for good, its pass
patching an object that is gone. So a relist also reports, as DELETED, each Workflow that was cached before
the list began and is not in it: the list is one consistent read made after that, so such a Workflow is gone
(deleted, or deleted and created again under a new uid). One cached after the list began (a cron run written
through) is left alone: the list may predate it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dagwright.k8s import names, watch
from dagwright.k8s.connection import Connection

Body = dict[str, Any]


class WorkflowWatch(watch.Watch):
    """The Workflows of one namespace (or all): every event to `handle`, and on each relist a DELETED for each
    Workflow of `cached()` (the cache's Workflows of this watch's namespace) the list no longer has."""

    def __init__(
        self,
        connection: Connection,
        namespace: str | None,
        handle: watch.Handler,
        cached: Callable[[], Iterable[Body]],
    ) -> None:
        path = watch.resource_path(f"{names.GROUP}/{names.VERSION}", names.PLURAL, namespace)
        super().__init__(connection, path, "", self._take)
        self._handle_event = handle
        self._cached = cached
        self._listed: set[str] | None = None  # the uids listed so far, while a list is under way

    def list(self) -> str:
        before = {uid: body for body in self._cached() if (uid := _uid(body))}
        self._listed = set()
        try:
            version = super().list()
            listed = self._listed
        finally:
            self._listed = None
        for uid, body in before.items():
            if uid not in listed:
                self._handle("DELETED", body)
        return version

    def _take(self, kind: str, body: Body) -> None:
        if self._listed is not None:
            uid = _uid(body)
            if uid:
                self._listed.add(uid)
        self._handle_event(kind, body)


def _uid(body: Body) -> str:
    return str((body.get("metadata") or {}).get("uid") or "")
