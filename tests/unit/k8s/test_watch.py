"""The operator's own list+watch of Jobs and pods, against a fake of the connection pool it reads from.

What matters to a user: no event is lost or misread across pages, chunk boundaries, bookmarks and an expired
resourceVersion, and a watch resumes from the last version it saw. The e2e suites run it against a real API
server (every operator test's Jobs and pods come through it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from dagwright.k8s import watch
from dagwright.k8s.connection import Connection, Credentials


class FakeResponse:
    def __init__(self, status: int, body: bytes = b"", chunks: list[bytes | Exception] | None = None) -> None:
        self.status = status
        self.reason = "reason"
        self.data = body
        self.chunks = chunks or []
        self.released = False
        self.headers: dict[str, str] = {}

    def stream(self, amount: int) -> Iterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    def release_conn(self) -> None:
        self.released = True


class FakePool:
    def __init__(self, responses: list[FakeResponse | Exception]) -> None:
        self.responses = responses
        self.queries: list[dict[str, list[str]]] = []

    def request(self, method: str, url: str, **_: Any) -> FakeResponse:
        self.queries.append(parse_qs(urlsplit(url).query))
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def _client(pool: FakePool) -> Connection:
    connection = Connection(Credentials(server="https://api"))
    connection.pool = pool  # type: ignore[assignment]
    return connection


def _pod(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


def _line(kind: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": body}).encode() + b"\n"


def test_lists_every_page_then_watches_from_the_lists_version_across_chunk_boundaries() -> None:
    first = {"items": [_pod("a", "5")], "metadata": {"continue": "next", "resourceVersion": "9"}}
    second = {"items": [_pod("b", "7")], "metadata": {"resourceVersion": "9"}}
    events = _line("MODIFIED", _pod("a", "10")) + _line("BOOKMARK", _pod("", "12")) + _line("DELETED", _pod("b", "13"))
    pool = FakePool(
        [
            FakeResponse(200, json.dumps(first).encode()),
            FakeResponse(200, json.dumps(second).encode()),
            FakeResponse(200, chunks=[events[:17], events[17:60], events[60:]]),
        ]
    )
    seen: list[tuple[str, str, str]] = []
    watched = watch.Watch(_client(pool), "/api/v1/pods", "app=x", lambda k, b: seen.append((k, *_id(b))))

    version = watched.list()
    assert version == "9" and pool.queries[1]["continue"] == ["next"]
    assert watched.watch(version) == "13"  # the bookmark moved it too, the last event's version ends it
    assert pool.queries[2]["resourceVersion"] == ["9"] and pool.queries[2]["labelSelector"] == ["app=x"]
    assert seen == [("ADDED", "a", "5"), ("ADDED", "b", "7"), ("MODIFIED", "a", "10"), ("DELETED", "b", "13")]


def test_a_field_selector_goes_with_the_list_and_the_watch() -> None:
    listed = {"items": [], "metadata": {"resourceVersion": "4"}}
    pool = FakePool([FakeResponse(200, json.dumps(listed).encode()), FakeResponse(200, chunks=[])])
    ended = "status.phase!=Pending,status.phase!=Running"
    watched = watch.Watch(_client(pool), "/api/v1/pods", "app=x", lambda k, b: None, ended)

    watched.watch(watched.list())
    assert [query["fieldSelector"] for query in pool.queries] == [[ended], [ended]]

    plain = FakePool([FakeResponse(200, json.dumps(listed).encode())])
    watch.Watch(_client(plain), "/apis/batch/v1/jobs", "app=x", lambda k, b: None).list()
    assert "fieldSelector" not in plain.queries[0]


def test_an_expired_version_asks_for_a_new_list() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    pool = FakePool([FakeResponse(200, chunks=[json.dumps(gone).encode() + b"\n"]), FakeResponse(410)])
    watched = watch.Watch(_client(pool), "/apis/batch/v1/jobs", "app=x", lambda k, b: None)
    with pytest.raises(watch.Expired):
        watched.watch("3")
    with pytest.raises(watch.Expired):
        watched.watch("3")


def test_collection_paths() -> None:
    assert watch.resource_path("v1", "pods", "ns") == "/api/v1/namespaces/ns/pods"
    assert watch.resource_path("batch/v1", "jobs", None) == "/apis/batch/v1/jobs"


def _id(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["name"], body["metadata"]["resourceVersion"]


def test_an_object_the_handler_cannot_take_is_skipped_and_the_watch_goes_on() -> None:
    events = _line("MODIFIED", _pod("bad", "4")) + _line("MODIFIED", _pod("good", "5"))
    pool = FakePool([FakeResponse(200, chunks=[events])])
    seen: list[str] = []

    def handle(kind: str, body: dict[str, Any]) -> None:
        if body["metadata"]["name"] == "bad":
            raise KeyError("namespace")
        seen.append(body["metadata"]["name"])

    assert watch.Watch(_client(pool), "/api/v1/pods", "app=x", handle).watch("3") == "5"
    assert seen == ["good"]


class Waits:
    """Stands in for a watch's stop event: records each backoff and stops the watch after `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.delays: list[float] = []
        self.limit = limit

    def is_set(self) -> bool:
        return len(self.delays) >= self.limit

    def wait(self, delay: float) -> None:
        self.delays.append(delay)


def test_a_stream_cut_after_it_opened_resumes_at_once_from_the_last_event_seen() -> None:
    """A proxy or load balancer cutting the watch every few seconds: each reconnect is prompt (the backoff is
    for an API server that does not answer), and resumes after the last event taken, replaying nothing."""
    cut = urllib3.exceptions.ProtocolError("Response ended prematurely")
    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    listed = {"items": [], "metadata": {"resourceVersion": "9"}}
    pool = FakePool(
        [
            FakeResponse(200, json.dumps(listed).encode()),
            FakeResponse(200, chunks=[_line("MODIFIED", _pod("a", "10")), cut]),
            refused,
            refused,
            FakeResponse(200, chunks=[_line("MODIFIED", _pod("a", "11")), cut]),
            FakeResponse(200, chunks=[cut]),
        ]
    )
    seen: list[str] = []
    watched = watch.Watch(_client(pool), "/api/v1/pods", "app=x", lambda k, b: seen.append(b["metadata"]["name"]))
    waits = Waits(limit=5)
    watched._stopping = waits  # type: ignore[assignment]
    watched._run()
    assert waits.delays == [0.5, 1.0, 2.0, 0.5, 0.5]
    assert [query["resourceVersion"] for query in pool.queries[1:]] == [["9"], ["10"], ["10"], ["10"], ["11"]]
    assert seen == ["a", "a"]
