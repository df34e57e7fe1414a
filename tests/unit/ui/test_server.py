"""The web UI's server against an in-memory source: what the page reads, and which POSTs it refuses.

The actions change workflows with the caller's identity, so every way a request from another site could reach them
is tried: no token, a wrong token, another Origin, a form body, another Host (DNS rebinding). The streams are
followed in a real browser (tests/integration/test_ui_local.py, tests/e2e/test_ui.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from dagwright.ui import server
from dagwright.ui.sources import ACTIONS, SourceError

TOKEN = "t0ken"
BODY = {
    "apiVersion": "dagwright.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "wf", "namespace": "team", "creationTimestamp": "2026-11-29T10:00:00Z"},
    "spec": {
        "nodes": [
            {"name": "a", "command": ["sh", "-c", "echo '{\"n\": 7}' > $DAGWRIGHT_OUTPUTS"]},
            {"name": "b", "dependsOn": ["a"], "command": ["echo", "{{ nodes.a.outputs.n }}", "<b>x</b>"]},
            {"name": "gate", "dependsOn": ["b"], "approval": {"message": "ok?"}},
        ]
    },
    "status": {
        "phase": "Running",
        "nodes": {
            "a": {"phase": "Succeeded", "attempts": 1, "outputs": {"n": 7}},
            "b": {"phase": "Running", "attempts": 1},
        },
    },
}


class FakeSource:
    label = "fake"
    actions = frozenset(ACTIONS)
    poll_seconds = 0.05
    namespace = "team"

    def __init__(self) -> None:
        self.acted: list[tuple[str, str, str, str | None, str]] = []
        self.deny = False

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        return [BODY]

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        if (namespace, name) != ("team", "wf"):
            raise SourceError(f"workflow {namespace}/{name} not found", 404)
        return BODY

    def act(self, namespace: str, name: str, action: str, node: str | None, message: str) -> None:
        if self.deny:
            raise SourceError("not allowed (RBAC): Forbidden", 403)
        self.acted.append((namespace, name, action, node, message))

    def logs(self, namespace: str, name: str, node: str, attempt: int | None) -> Iterator[str]:
        yield "line 1\n"


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def http(source: FakeSource) -> TestClient:
    app = server.build(source, hosts=["127.0.0.1", "localhost", "testserver"], token=TOKEN)
    return TestClient(app, base_url="http://127.0.0.1:8765")


def _post(http: TestClient, action: str, **headers: str) -> Any:
    sent = {"X-Dagwright-Token": TOKEN, "Origin": "http://127.0.0.1:8765", "Content-Type": "application/json"}
    sent.update(headers)
    return http.post(f"/api/workflows/team/wf/actions/{action}", content=b'{"node": "gate"}', headers=sent)


def test_the_page_carries_the_token_and_a_strict_content_security_policy(http: TestClient) -> None:
    page = http.get("/")
    assert f'content="{TOKEN}"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]  # no inline script allowed
    assert http.get("/static/vendor/dagre.min.js").status_code == 200


def test_an_action_from_the_page_reaches_the_source(http: TestClient, source: FakeSource) -> None:
    answer = _post(http, "approve")
    assert answer.status_code == 200, answer.text
    assert source.acted == [("team", "wf", "approve", "gate", "")]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X-Dagwright-Token": ""}, "token"),
        ({"X-Dagwright-Token": "guess"}, "token"),
        ({"Origin": "http://evil.example"}, "cross-site"),
        ({"Origin": "http://127.0.0.1:9999"}, "cross-site"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "JSON"),
    ],
)
def test_a_request_from_another_site_is_refused(
    http: TestClient, source: FakeSource, headers: dict[str, str], why: str
) -> None:
    answer = _post(http, "stop", **headers)
    assert answer.status_code == 403
    assert why in answer.json()["error"]
    assert source.acted == []


def test_a_request_by_another_host_name_is_refused(http: TestClient) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away."""
    assert http.get("/api/info", headers={"Host": "evil.example:8765"}).status_code == 400


def test_rbac_refusals_reach_the_page_as_403(http: TestClient, source: FakeSource) -> None:
    source.deny = True
    answer = _post(http, "pause")
    assert answer.status_code == 403
    assert answer.json()["error"] == "not allowed (RBAC): Forbidden"


def test_actions_are_posts_only(http: TestClient, source: FakeSource) -> None:
    assert http.get("/api/workflows/team/wf/actions/stop").status_code == 405
    assert _post(http, "delete").status_code == 404
    assert source.acted == []


def test_the_graph_and_a_node_panel(http: TestClient) -> None:
    graph = http.get("/api/workflows/team/wf/graph").json()
    assert [(n["name"], n["deps"]) for n in graph["nodes"]] == [("a", []), ("b", ["a"]), ("gate", ["b"])]
    assert graph["nodes"][2]["approval"] is True
    detail = http.get("/api/workflows/team/wf/nodes/b").json()
    # Rendered with the planner's renderer, from a's outputs; text stays text (the page uses textContent).
    assert detail["rendered"]["command"] == ["echo", "7", "<b>x</b>"]
    assert detail["status"]["phase"] == "Running"
    assert http.get("/api/workflows/team/wf/nodes/zzz").status_code == 404
    assert http.get("/api/workflows/team/nope/graph").json() == {"error": "workflow team/nope not found"}


def test_every_static_file_ships_in_the_wheel() -> None:
    """pyproject's package-data globs must cover what the page loads, or an installed UI serves 404s."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(server.__file__).parents[1]
    pyproject = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["dagwright"]
    files = [str(path.relative_to(root)) for path in server.STATIC.rglob("*") if path.is_file()]
    assert files and [f for f in files if not any(fnmatch.fnmatch(f, glob) for glob in globs)] == []
