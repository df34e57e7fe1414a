"""`dagwright ui` in a real browser against the real API server and operator (kwok plays the pods).

What a user watching and steering a workflow from the page sees: the list shows it running, the DAG follows as
nodes finish, Pause and Resume on the page set and clear `spec.paused`, Approve on the page lets it finish, and a
kwok pod's log panel says there are no logs (kwok pods write none; the local run's test reads real ones). With
DAGWRIGHT_UI_SCREENSHOTS=DIR it saves the list and DAG screenshots of docs/ui.md there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import browser

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import OperatorProcess, apply, get_workflow, node, wait_phase, workflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@contextmanager
def ui_server(kube: Kube, namespace: str, kubeconfig: str | None = None) -> Iterator[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig or kube.kubeconfig, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "dagwright.cli", "ui", "-n", namespace, "--port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            found = re.search(r"dagwright UI on (http://\S+)", line)
            if found:
                yield found.group(1)
                return
        raise AssertionError(f"dagwright ui printed no address (exit {process.wait()})")
    finally:
        process.terminate()
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


def _spec(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body = get_workflow(kube, namespace, name)
    assert body is not None
    spec: dict[str, Any] = body["spec"]
    return spec


def test_watch_pause_resume_and_approve_from_the_page(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    browser.require()
    shots = os.environ.get("DAGWRIGHT_UI_SCREENSHOTS")
    nodes = [
        node("extract", duration="2s"),
        *(node(f"transform-{i}", "extract", duration=f"{1 + i % 3}s") for i in range(4)),
        node("load", *(f"transform-{i}" for i in range(4)), duration="1s"),
        node("gate", "load", approval={"message": "publish the report?"}),
        node("publish", "gate", duration="1s"),
    ]
    apply(kube, namespace, workflow("etl", nodes))
    with ui_server(kube, namespace) as url, browser.browser() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 760})
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(url)
        row = page.locator('#workflows tbody tr[data-name="etl"]')
        row.locator(".phase:text('Running')").wait_for(timeout=30_000)
        if shots:
            page.screenshot(path=f"{shots}/ui-list.png")

        row.locator("a").click()
        page.wait_for_selector('body[data-ready="1"]')
        assert page.locator("#nodes .node").count() == 8
        page.wait_for_selector('#nodes .node[data-name="extract"][data-phase="Succeeded"]', timeout=30_000)

        page.click('#wf-actions button[data-action="pause"]')
        wait_for("spec.paused set from the page", lambda: _spec(kube, namespace, "etl").get("paused") is True)
        page.wait_for_selector("#wf-phase:text('Paused')", timeout=15_000)
        page.click('#wf-actions button[data-action="resume"]')
        wait_for("spec.paused cleared from the page", lambda: _spec(kube, namespace, "etl").get("paused") is False)

        # A kwok pod has no log: the panel says so instead of staying blank.
        page.locator('#nodes .node[data-name="extract"]').click()
        page.wait_for_selector("#p-logs-end:text('no logs')", timeout=30_000)

        gate = '#nodes .node[data-name="gate"]'
        page.wait_for_selector(f'{gate}[data-phase="AwaitingApproval"]', timeout=60_000)
        if shots:
            page.screenshot(path=f"{shots}/ui-dag.png")
        page.locator(gate).click()
        page.fill("#p-message", "numbers look right")
        page.click('#p-approval button[data-action="approve"]')
        status = wait_phase(kube, namespace, "etl", "Succeeded", "Failed", timeout=60)
        assert status["phase"] == "Succeeded"
        assert _spec(kube, namespace, "etl")["approvals"]["gate"] == {"approved": True, "message": "numbers look right"}
        page.wait_for_selector("#wf-phase:text('Succeeded')", timeout=15_000)
        page.wait_for_selector('#nodes .node[data-name="publish"][data-phase="Succeeded"]')


def _viewer_kubeconfig(kube: Kube, namespace: str, directory: Path) -> str:
    """A kubeconfig for a ServiceAccount that may only read Workflows in `namespace`."""
    rules = [{"apiGroups": ["dagwright.io"], "resources": ["workflows"], "verbs": ["get", "list", "watch"]}]
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "viewer"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "viewer"}, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
        },
    ]
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))
    token = kube.kubectl("create", "token", "viewer", "-n", namespace).stdout.strip()
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    config["users"] = [{"name": "viewer", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "viewer"
    path = directory / "viewer.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_an_action_rbac_refuses_is_shown_as_refused_and_changes_nothing(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """No operator needed: the UI acts as the caller, and this caller may read but not patch."""
    browser.require()
    apply(kube, namespace, workflow("report", [node("only", duration="1s")]))
    kubeconfig = _viewer_kubeconfig(kube, namespace, tmp_path)
    with ui_server(kube, namespace, kubeconfig) as url, browser.browser() as chromium:
        page = chromium.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{url}#/wf/{namespace}/report")
        page.wait_for_selector('body[data-ready="1"]', timeout=30_000)
        page.click('#wf-actions button[data-action="pause"]')
        page.wait_for_selector("#banner:text('not allowed (RBAC)')", timeout=15_000)
    assert not _spec(kube, namespace, "report").get("paused")


def test_a_template_based_run_with_a_foreach_node_in_the_page(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    """The run is drawn from the template its status copied, tagged and filtered by its template, and its forEach
    node is one node whose badge and items follow the items."""
    browser.require()
    from .test_templates import kubectl_apply, run_of, template

    nodes = [
        node("prep", duration="1s"),
        # Running for ~12 s (three rounds of two 4 s items): a loaded machine may take several seconds to open
        # the page, and with 1 s items the node had sometimes finished by then.
        node("work", "prep", duration="4s", forEach={"items": [1, 2, 3, 4, 5, 6], "maxParallel": 2}),
        node("tidy", duration="1s", **{"finally": True}),
    ]
    kubectl_apply(kube, namespace, template("fan", nodes), run_of("fan-run", "fan"))
    with ui_server(kube, namespace) as url, browser.browser() as chromium:
        page = chromium.new_page(viewport={"width": 1280, "height": 760})
        page.goto(url)
        row = page.locator('#workflows tbody tr[data-name="fan-run"]')
        row.locator(".tag-template:text('template fan')").wait_for(timeout=30_000)
        page.fill("#f-template", "other")
        row.wait_for(state="detached")
        page.fill("#f-template", "fan")
        row.locator("a").click()
        page.wait_for_selector('body[data-ready="1"]')
        page.wait_for_selector("#nodes .node >> nth=2", timeout=30_000)  # drawn once the snapshot is taken
        assert page.locator("#nodes .node").count() == 3
        assert "finally" in (page.locator('#nodes .node[data-name="tidy"]').get_attribute("class") or "")
        work = page.locator('#nodes .node[data-name="work"]')
        page.wait_for_selector('#nodes .node[data-name="work"][data-phase="Running"]', timeout=30_000)
        work.click()
        page.wait_for_selector("#p-items:not([hidden])")
        page.wait_for_selector('#nodes .node[data-name="work"][data-phase="Succeeded"]', timeout=60_000)
        page.wait_for_selector("#p-items-count:text('6/6 done')", timeout=15_000)
        assert work.locator("text.badge").text_content() == "6/6"
        assert wait_phase(kube, namespace, "fan-run", "Succeeded", "Failed", timeout=60)["phase"] == "Succeeded"
