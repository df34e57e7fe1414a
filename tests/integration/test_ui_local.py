"""`dagwright run FILE --ui` watched in a real browser from start to end: the DAG follows the run, the node panel
shows the rendered command and the logs, pause and resume from the page hold the run, approve from the page lets
it finish, and the page works at phone width. With DAGWRIGHT_UI_SCREENSHOTS=DIR it also saves the screenshots of
docs/ui.md there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import browser

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MANIFEST = """
apiVersion: dagwright.io/v1alpha1
kind: Workflow
metadata:
  name: release
spec:
  nodes:
    - name: fetch
      command: [sh, -c, 'echo "fetching sources"; sleep 1; echo "{\\"n\\": 42}" > "$DAGWRIGHT_OUTPUTS"']
    - name: build
      dependsOn: [fetch]
      command: [sh, -c, 'echo "building {{ nodes.fetch.outputs.n }}"; sleep 2']
    - name: test
      dependsOn: [fetch]
      command: [sh, -c, 'for i in 1 2 3; do echo "test $i/3"; echo "$i/3" > "$DAGWRIGHT_PROGRESS"; sleep 1; done']
    - name: gate
      dependsOn: [build, test]
      approval: {message: ship it?}
    - name: deploy
      dependsOn: [gate]
      command: [sh, -c, 'echo deployed']
"""


FOREACH = """
apiVersion: dagwright.io/v1alpha1
kind: Workflow
metadata:
  name: shards
spec:
  nodes:
    - name: work
      forEach: {items: [1, 2, 3, 4, 5, 6, 7, 8], maxParallel: 2}
      command: [sh, -c, 'sleep 1; [ {{ item }} != 3 ] || exit 3; echo "shard {{ item }}"']
    - name: tidy
      finally: true
      command: [sh, -c, 'sleep 10']
"""


def _start(tmp_path: Path, text: str = MANIFEST) -> tuple[subprocess.Popen[str], str]:
    manifest = tmp_path / "run.yaml"
    manifest.write_text(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "dagwright.cli", "run", str(manifest), "--ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"dagwright UI on (http://\S+)", line)
        if found:
            return process, found.group(1)
    process.kill()
    raise AssertionError(f"no UI address printed: {process.communicate()}")


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect

    return expect(locator)


def _node(page: Any, name: str) -> Any:
    return page.locator(f'#nodes .node[data-name="{name}"]')


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def test_a_foreach_node_is_one_node_with_a_badge_and_its_items_in_the_panel(tmp_path: Path) -> None:
    browser.require()
    shots = os.environ.get("DAGWRIGHT_UI_SCREENSHOTS")
    with browser.browser() as chromium:  # started first: the run lasts ~12 s, the page lives as long
        page = chromium.new_page(viewport={"width": 1280, "height": 760})
        process, url = _start(tmp_path, FOREACH)
        try:
            page.goto(url + "#/wf/local/shards")
            page.wait_for_selector('body[data-ready="1"]')
            assert page.locator("#nodes .node").count() == 2  # 8 items, one node
            assert "finally" in (_node(page, "tidy").get_attribute("class") or "")
            # Item 3 (index 2) fails; failFast lets no new item start; the finally node runs for 10 s after.
            page.wait_for_selector('#nodes .node[data-name="work"][data-phase="Failed"]', timeout=20_000)
            expect(_node(page, "work").locator("text.badge")).to_have_text(re.compile(r"^[0-9]/8$"))
            _node(page, "work").click()
            page.wait_for_selector("#p-items:not([hidden])")
            expect(page.locator("#p-command")).to_contain_text("{{ item }}")
            failed = page.locator('#p-items-detail li[data-item="2"]')
            expect(failed).to_contain_text("item 2 · Failed · attempt 1 · exit 3")
            expect(failed.locator("code")).to_contain_text("[ 3 != 3 ]")
            expect(page.locator("#p-items-count")).to_contain_text("1 failed")
            if shots:
                page.screenshot(path=f"{shots}/ui-foreach-items.png")
            assert process.wait(timeout=30) == 1
        finally:
            _stop(process)


def test_a_local_run_watched_to_the_end_in_a_browser(tmp_path: Path) -> None:
    browser.require()
    shots = os.environ.get("DAGWRIGHT_UI_SCREENSHOTS")
    process, url = _start(tmp_path)
    try:
        with browser.browser() as chromium:
            page = chromium.new_page(viewport={"width": 1280, "height": 760})
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
            page.goto(url)
            row = page.locator('#workflows tbody tr[data-name="release"]')
            row.wait_for()
            assert row.locator("td").nth(1).text_content() == "local"

            row.locator("a").click()
            page.wait_for_selector('body[data-ready="1"]')
            assert page.locator("#nodes .node").count() == 5
            # The DAG follows the run: fetch finishes, build and test start.
            page.wait_for_selector('#nodes .node[data-name="fetch"][data-phase="Succeeded"]', timeout=20_000)

            # Pause from the page: the page says Paused, nothing new starts; resume lets it go on.
            page.click('#wf-actions button[data-action="pause"]')
            page.wait_for_selector("#wf-phase:text('Paused')")
            assert dialogs[-1] == "pause workflow local/release?"
            page.click('#wf-actions button[data-action="resume"]')
            expect(page.locator("#wf-phase")).not_to_have_text("Paused")

            # The node panel: the command as rendered, and the attempt's log.
            _node(page, "build").click()
            page.wait_for_selector("#p-command:text('building 42')")
            page.wait_for_selector("#p-logs:text('building 42')", timeout=20_000)
            if shots:
                page.screenshot(path=f"{shots}/ui-node-panel.png")
            _node(page, "fetch").click()
            page.wait_for_selector("#p-logs:text('fetching sources')")
            page.wait_for_selector("#p-outputs:text('42')")
            assert page.locator("#p-facts dd").first.text_content() == "Succeeded"

            # At phone width nothing sticks out sideways, and the panel is a sheet over the graph.
            page.set_viewport_size({"width": 390, "height": 800})
            if shots:
                page.screenshot(path=f"{shots}/ui-phone.png")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert page.locator("#panel").bounding_box()["width"] <= 390
            page.click("#p-close")
            page.set_viewport_size({"width": 1280, "height": 760})

            # Approve from the page lets the workflow finish.
            page.wait_for_selector('#nodes .node[data-name="gate"][data-phase="AwaitingApproval"]', timeout=30_000)
            _node(page, "gate").click()
            page.wait_for_selector("#p-approval:not([hidden])")
            page.fill("#p-message", "looks good")
            page.click('#p-approval button[data-action="approve"]')
            page.wait_for_selector('#nodes .node[data-name="deploy"][data-phase="Succeeded"]', timeout=20_000)
            page.wait_for_selector("#wf-phase:text('Succeeded')")
            assert "approve node gate of workflow local/release?" in dialogs
            assert page.locator("#wf-progress").text_content() == "5/5"

            # The timeline has a bar per node that ran.
            page.click('#tabs button[data-tab="timeline"]')
            page.wait_for_selector(".tl-row")
            assert page.locator(".tl-row").count() == 5
            if shots:
                page.screenshot(path=f"{shots}/ui-timeline.png")
        assert process.wait(timeout=30) == 0
        assert process.stdout is not None and "workflow Succeeded (5/5)" in process.stdout.read()
    finally:
        _stop(process)
