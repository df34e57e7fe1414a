"""A lean list+watch of the operator's Jobs and pods, on threads of its own, feeding the watch cache.

Why not kopf's watch, as for CronWorkflows: every node brings about ten Job and pod events (created, scheduled,
running, the Job controller's status updates, ended, its finalizer removed), and kopf runs each through its whole
per-object pipeline (a worker task, per-object memory, three loggers, error throttling, cause detection, handler
invocation with its outcome bookkeeping, an empty patch applied) only for our handler to hand the object to the
cache, which mostly finds nothing new in it. That pipeline was most of the operator's CPU per node
(bench/OPERATOR_RESULTS.md). Here an event costs one JSON parse and one cache call, and the parse happens off the
event loop.

What it keeps of kopf's behaviour: list first, then watch from the list's resourceVersion; on "410 Gone" (the
version expired) list again; any other error or a closed stream reconnects from the last version seen (bookmarks
keep it fresh), with backoff while the API server keeps failing (not after a stream that opened and broke).
Like kopf, a relist replays every object as an update and synthesizes no deletions. Requests go through
`connection.Connection`'s pool, TLS and credentials, as `client.KubeApi`'s do.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import urllib3

from dagwright.k8s.connection import ApiError, Connection, error_of

log = logging.getLogger("dagwright.watch")

Body = dict[str, Any]
Handler = Callable[[str, Body], None]  # (event type: ADDED, MODIFIED or DELETED, the object)

WATCH_SECONDS = 300  # the API server ends each watch after this long; it is then resumed from its version
_READ_TIMEOUT = WATCH_SECONDS + 30.0  # a stream silent for longer than that (bookmarks included) is dead
_LIST_PAGE = 500
_BACKOFF_MAX = 30.0


class Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def resource_path(group_version: str, plural: str, namespace: str | None) -> str:
    """The collection's URL path, in one namespace or (None) in all."""
    root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{root}/namespaces/{quote(namespace, safe='')}/{plural}" if namespace else f"{root}/{plural}"


class Watch:
    """One collection (a resource in one namespace or all, with a label selector and optionally a field
    selector), listed then watched on a thread; `handle(type, object)` is called on that thread for every
    object listed and every event. With a field selector, an object that stops matching arrives as DELETED
    (the API server's rule) and one that starts matching as ADDED."""

    def __init__(self, connection: Connection, path: str, selector: str, handle: Handler, fields: str = "") -> None:
        self.connection = connection
        self.path = path
        self.selector = selector
        self.fields = fields
        self.handle = handle
        self.lists = 0
        self.version = ""  # the last resourceVersion seen: where the next watch resumes
        self._opened = False  # the current watch's stream opened (the API server answered it)
        self._stopping = threading.Event()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            # Wakes the thread blocked reading it (urllib3 >= 2.3); else it ends at its next event or timeout.
            with contextlib.suppress(Exception):  # already closed: nothing to wake
                getattr(response, "shutdown", response.close)()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._opened = False
            try:
                if not self.version:
                    self.version = self.list()
                self.watch(self.version)
                failures = 0
            except Expired:
                self.version = ""
            except Exception as error:  # the API server restarting, a network hiccup: retry
                if self._stopping.is_set():
                    return
                # A stream that opened and then broke (a load balancer or proxy dropping the connection) is
                # resumed at once; backing off from it too let ~30 s pass between events on a flaky network.
                failures = 1 if self._opened else failures + 1
                delay = min(_BACKOFF_MAX, 0.25 * 2**failures)
                log.warning(
                    "watch of %s failed (%s: %s); again in %.1fs", self.path, type(error).__name__, error, delay
                )
                self._stopping.wait(delay)

    def list(self) -> str:
        """Every object, as updates; the list's resourceVersion, to watch from."""
        token = ""
        while True:
            query = {**self._selectors(), "limit": str(_LIST_PAGE)}
            if token:
                query["continue"] = token
            response = self._get(query, stream=False)
            listed = orjson.loads(response.data)
            for item in listed.get("items") or []:
                self._handle("ADDED", item)
            meta = listed.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                self.lists += 1
                version: str = meta.get("resourceVersion") or ""
                return version

    def watch(self, version: str) -> str:
        """Events from `version` until the API server ends the stream; the last version seen."""
        query = {
            **self._selectors(),
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        response = self._get(query, stream=True)
        self._response = response
        self._opened = True
        try:
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        version = self.version = self._event(orjson.loads(line), version)
                if self._stopping.is_set():
                    break
        finally:
            self._response = None
            response.release_conn()
        return version

    def _selectors(self) -> dict[str, str]:
        return {"labelSelector": self.selector, **({"fieldSelector": self.fields} if self.fields else {})}

    def _event(self, event: Body, version: str) -> str:
        kind = event.get("type")
        body = event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == 410:
                raise Expired(body.get("message") or "resourceVersion expired")
            self._opened = False  # the API server refused the watch: back off as from any failed request
            raise ApiError(body.get("code"), body.get("message"))
        seen = (body.get("metadata") or {}).get("resourceVersion") or version
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._handle(kind, body)
        return str(seen)

    def _handle(self, kind: str, body: Body) -> None:
        """One object to the handler; an object it cannot take is logged and skipped, never replayed forever."""
        try:
            self.handle(kind, body)
        except Exception:
            meta = body.get("metadata") or {}
            log.exception("could not take %s %s/%s", kind, meta.get("namespace"), meta.get("name"))

    def _get(self, query: dict[str, str], *, stream: bool) -> urllib3.BaseHTTPResponse:
        timeout = urllib3.Timeout(connect=10.0, read=_READ_TIMEOUT if stream else 60.0)
        response = self.connection.send("GET", self.path, query=query, stream=stream, timeout=timeout)
        if response.status == 410:
            response.release_conn()
            raise Expired("resourceVersion expired")
        if not 200 <= response.status <= 299:
            error = error_of(response, read_body=not stream)
            response.release_conn()
            raise error
        return response
