"""The web UI's HTTP surface: one page, its static files, JSON reads, server-sent event streams, and the actions.

Streams (sse-starlette): the list (`/api/workflows/stream`, the rows again when one changed), a workflow
(`.../stream`: a `snapshot` once, then `update` events holding the workflow's head and only the node entries that
changed, and `graph` when the spec's shape changed), and a node's log (`.../logs`). The server reads its source
every `poll_seconds` and diffs; the browser never re-reads a whole object.

Security (the page can change workflows with the caller's identity):
- actions are POSTs that need the per-server token (in a meta tag of the page, sent back in `X-Dagwright-Token`;
  another site cannot read it) and a JSON body (a cross-site form cannot send one without a preflight), and an
  `Origin`, when the browser sends one, must be this server;
- the Host header must be one this server answers to, so a DNS-rebinding page cannot reach it by a name of its own;
- the page inserts nothing from a workflow as HTML (static/app.js uses textContent only), and holds no credential:
  the token only guards this server's own actions.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dagwright.ui import rendering, views
from dagwright.ui.sources import ACTIONS, Source, SourceError

STATIC = Path(__file__).parent / "static"
TOKEN_HEADER = "X-Dagwright-Token"
LOG_FOLLOWERS = 16  # logs followed at once; more wait for a free thread
LIST_EVERY = 2.0  # seconds between list reads: rows change slowly and a list read is the dearest call


def build(source: Source, *, hosts: list[str], token: str | None = None) -> Starlette:
    """The app for `source`; `hosts` are the Host names it answers to (with and without the port)."""
    api = _Api(source, token or secrets.token_urlsafe(32))
    routes = [
        Route("/", api.page),
        Route("/api/info", api.info),
        Route("/api/workflows/stream", api.list_stream),
        Route("/api/workflows/{namespace}/{name}/graph", api.graph),
        Route("/api/workflows/{namespace}/{name}/stream", api.workflow_stream),
        Route("/api/workflows/{namespace}/{name}/nodes/{node}", api.node),
        Route("/api/workflows/{namespace}/{name}/nodes/{node}/logs", api.logs),
        Route("/api/workflows/{namespace}/{name}/actions/{action}", api.act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])


class _Api:
    def __init__(self, source: Source, token: str) -> None:
        self.source = source
        self.token = token
        # A followed log holds a worker thread until its next line (or the pod's end), also after the browser
        # left: its own pool, so many open log panels can never starve the reads every page depends on.
        self.log_threads = anyio.CapacityLimiter(LOG_FOLLOWERS)

    async def page(self, request: Request) -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{TOKEN}}", self.token)
        headers = {
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }
        return HTMLResponse(html, headers=headers)

    async def info(self, request: Request) -> Response:
        try:
            namespace = await anyio.to_thread.run_sync(lambda: self.source.namespace)
        except SourceError as error:
            return _error(error)
        return JSONResponse(
            {"label": self.source.label, "actions": sorted(self.source.actions), "namespace": namespace}
        )

    async def list_stream(self, request: Request) -> Response:
        namespace = request.query_params.get("namespace") or None

        async def rows() -> AsyncIterator[dict[str, str]]:
            last = None
            while True:
                try:
                    items = await anyio.to_thread.run_sync(self.source.list, namespace)
                    now = datetime.now(UTC)
                    payload = json.dumps([views.summary(item, now) for item in items], separators=(",", ":"))
                    event = "list"
                except SourceError as error:
                    payload, event = json.dumps({"error": error.message, "status": error.status}), "failure"
                if payload != last:
                    yield {"event": event, "data": payload}
                    last = payload
                await asyncio.sleep(LIST_EVERY)

        return EventSourceResponse(rows(), ping=15)

    async def graph(self, request: Request) -> Response:
        try:
            body = await self._read(request)
        except SourceError as error:
            return _error(error)
        return JSONResponse(views.graph(body))

    async def workflow_stream(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]

        async def events() -> AsyncIterator[dict[str, str]]:
            nodes: dict[str, dict[str, Any]] | None = None
            key = None
            last_head = None
            failing = None
            while True:
                try:
                    body = await anyio.to_thread.run_sync(self.source.read, namespace, name)
                except SourceError as error:
                    if error.message != failing:
                        failing = error.message
                        yield {"event": "failure", "data": json.dumps({"error": error.message, "status": error.status})}
                    await asyncio.sleep(self.source.poll_seconds)
                    continue
                failing = None
                head = views.head(body)
                current = views.compact_nodes(body)
                if nodes is None or head["specKey"] != key:
                    key = head["specKey"]
                    event = "snapshot"
                    changed = current
                else:
                    event = "update"
                    changed = views.changes(nodes, current)
                nodes = current
                if event == "snapshot" or changed or _differs(head, last_head):
                    yield {"event": event, "data": json.dumps({"head": head, "nodes": changed}, separators=(",", ":"))}
                    last_head = head
                await asyncio.sleep(self.source.poll_seconds)

        return EventSourceResponse(events(), ping=15)

    async def node(self, request: Request) -> Response:
        node = request.path_params["node"]
        try:
            body = await self._read(request)
        except SourceError as error:
            return _error(error)
        command = await anyio.to_thread.run_sync(rendering.rendered, body, node)
        detail = views.node_detail(body, node, command)
        if detail is None:
            return JSONResponse({"error": f"no node {node} in this workflow"}, status_code=404)
        return JSONResponse(detail)

    async def logs(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        node = request.path_params["node"]
        attempt_text = request.query_params.get("attempt") or ""
        attempt = int(attempt_text) if attempt_text.isdigit() else None

        async def lines() -> AsyncIterator[dict[str, str]]:
            chunks: Iterator[str] = self.source.logs(namespace, name, node, attempt)
            received = 0
            while True:
                try:
                    chunk = await anyio.to_thread.run_sync(_next, chunks, limiter=self.log_threads)
                except SourceError as error:
                    yield {"event": "end", "data": json.dumps({"message": error.message})}
                    return
                if chunk is None:
                    message = "end of log" if received else "no logs: the attempt wrote nothing (or its pod has none)"
                    yield {"event": "end", "data": json.dumps({"message": message})}
                    return
                received += len(chunk)
                if chunk:
                    yield {"event": "log", "data": json.dumps(chunk)}

        return EventSourceResponse(lines(), ping=15)

    async def act(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return JSONResponse({"error": refusal}, status_code=403)
        action = request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse({"error": f"unknown action {action}"}, status_code=404)
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        node = payload.get("node") if isinstance(payload, dict) else None
        message = payload.get("message") if isinstance(payload, dict) else None
        if action in ("approve", "reject") and not isinstance(node, str):
            return JSONResponse({"error": f"{action} needs a node"}, status_code=400)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        try:
            await anyio.to_thread.run_sync(self.source.act, namespace, name, action, node, str(message or "")[:1024])
        except SourceError as error:
            return _error(error)
        return JSONResponse({"ok": True, "message": f"{action} requested"})

    def _refusal(self, request: Request) -> str | None:
        """Why a POST is not from this server's own page, or None."""
        token = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return "missing or wrong token: reload the page"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return f"cross-site request from {origin} refused"
        if not request.headers.get("content-type", "").startswith("application/json"):
            return "the body must be JSON"
        return None

    async def _read(self, request: Request) -> dict[str, Any]:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        body: dict[str, Any] = await anyio.to_thread.run_sync(self.source.read, namespace, name)
        return body


def _next(chunks: Iterator[str]) -> str | None:
    return next(chunks, None)


def _differs(head: dict[str, Any], last: dict[str, Any] | None) -> bool:
    """The head changed in what the page shows (the ETA alone moves every second: only in 5 s steps)."""
    if last is None:
        return True
    plain = {key: value for key, value in head.items() if key != "eta"}
    before = {key: value for key, value in last.items() if key != "eta"}
    if plain != before:
        return True
    a, b = head.get("eta"), last.get("eta")
    return (a is None) != (b is None) or (a is not None and b is not None and abs(a - b) >= 5)


def _error(error: SourceError) -> Response:
    return JSONResponse({"error": error.message}, status_code=error.status)
