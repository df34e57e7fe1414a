"""The Workflow watch's relist: a Workflow deleted while no watch was open is forgotten, never kept (its pass
would patch an object that is gone); one created since the list began, or still there, is kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dagwright.k8s.workflowwatch import WorkflowWatch

from .test_watch import FakePool, FakeResponse, _client


def _workflow(name: str, uid: str, version: str = "1") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid, "resourceVersion": version}}


def _page(*items: dict[str, Any], token: str = "") -> FakeResponse:
    return FakeResponse(
        200, json.dumps({"items": list(items), "metadata": {"continue": token, "resourceVersion": "9"}}).encode()
    )


def test_a_relist_reports_workflows_deleted_meanwhile_and_keeps_the_rest() -> None:
    kept, deleted, replaced = _workflow("kept", "u1"), _workflow("deleted", "u2"), _workflow("replaced", "u3")
    again = _workflow("replaced", "u4", "8")  # deleted and created again under the same name
    pool = FakePool([_page(kept, token="next"), _page(again)])
    cache = [kept, deleted, replaced]
    seen: list[tuple[str, str, str]] = []
    watched = WorkflowWatch(
        _client(pool),
        "ns",
        lambda kind, body: seen.append((kind, body["metadata"]["name"], body["metadata"]["uid"])),
        lambda: cache,
    )

    assert watched.list() == "9"
    assert seen == [
        ("ADDED", "kept", "u1"),
        ("ADDED", "replaced", "u4"),
        ("DELETED", "deleted", "u2"),
        ("DELETED", "replaced", "u3"),
    ]


def test_a_workflow_cached_after_the_list_began_is_not_forgotten() -> None:
    """A cron run written through to the cache while the list was read: the list may predate it."""
    listed = _workflow("listed", "u1")
    late = _workflow("late", "u2")
    cache: list[dict[str, Any]] = []

    def handle(kind: str, body: dict[str, Any]) -> None:
        cache.extend([body, late])  # the cron loop's write-through lands during the list

    seen: list[str] = []
    watched = WorkflowWatch(
        _client(FakePool([_page(listed)])), "ns", lambda k, b: (handle(k, b), seen.append(k)), lambda: list(cache)
    )
    watched.list()
    assert seen == ["ADDED"]


def test_a_list_that_fails_midway_forgets_nothing() -> None:
    pool = FakePool([_page(_workflow("a", "u1"), token="next"), FakeResponse(500)])
    seen: list[str] = []
    watched = WorkflowWatch(_client(pool), None, lambda k, b: seen.append(k), lambda: [_workflow("b", "u2")])
    with pytest.raises(Exception, match="500"):
        watched.list()
    assert seen == ["ADDED"]
    assert watched.path == "/apis/dagwright.io/v1alpha1/workflows"
