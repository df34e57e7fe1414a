"""The web UI on a 10,000-node workflow: how fast it opens in a real browser, whether it stays responsive while 100
nodes a second change, what the server sends per node change, and the server's memory.

The workflow is `--width` chains of `--depth` nodes (node n depends on node n - width), held by an in-memory
source in a child process that serves the UI (so its memory is the server's alone); a thread there moves `--rate`
nodes a second along Pending -> Running -> Succeeded. The browser is Debian's chromium driven by Playwright
(tests/browser.py). Figures:

- open_seconds: from navigation to the DAG drawn with every node's phase (median of `--opens`);
- frame_gap_max_ms / frame_gap_p99_ms: the longest gaps between animation frames while nodes change (a frozen
  page shows as seconds here), and click_to_panel_ms: a node clicked until its panel shows it;
- bytes_per_node_change: bytes of the workflow stream divided by the node entries it carried;
- server_rss_mib (and its peak) and server_cpu_percent while it streams.

    python bench/ui_large.py [--width 100 --depth 100] [--rate 100] [--seconds 10] [--opens 3]

With `--foreach N` the workflow is one forEach node of N items between two plain nodes, its items moving `--rate`
a second (the stored form: one letter per item, detail for the running ones). Figures: open_seconds (the page),
items_open_ms (the node clicked until its items are drawn, median of `--opens`), panel_bytes (one panel fetch),
and bytes_per_item_change on the workflow stream (all N item changes reach the page as the node's progress).

    python bench/ui_large.py --foreach 5000 [--rate 100] [--seconds 10] [--opens 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import browser  # noqa: E402

NAMESPACE, NAME = "bench", "large"


class MovingSource:
    """A workflow whose nodes advance `rate` a second, in topological order."""

    label = "bench"
    actions = frozenset({"pause", "resume", "stop", "retry", "approve", "reject"})
    poll_seconds = 1.0
    namespace = NAMESPACE

    def __init__(self, width: int, depth: int, rate: int) -> None:
        count = width * depth
        self.spec = {"nodes": [_node(n, width) for n in range(count)]}
        self.nodes: dict[str, dict[str, Any]] = {f"n{n}": {"phase": "Pending", "attempts": 0} for n in range(count)}
        self.meta = {"name": NAME, "namespace": NAMESPACE, "creationTimestamp": _now()}
        self.lock = threading.Lock()
        self.rate = rate
        self.count = count

    def advance(self) -> None:
        step, cursor = 0.1, 0
        while cursor < 2 * self.count:
            time.sleep(step)
            with self.lock:
                for _ in range(max(1, round(self.rate * step))):
                    n = cursor // 2
                    if n >= self.count:
                        break
                    name, now = f"n{n}", _now()
                    if cursor % 2 == 0:
                        running = {"phase": "Running", "attempts": 1, "startedAt": now, "attemptStartedAt": now}
                        self.nodes[name] = running
                    else:
                        self.nodes[name] = {**self.nodes[name], "phase": "Succeeded", "finishedAt": now, "exitCode": 0}
                    cursor += 1

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        return [self.read(NAMESPACE, NAME)]

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            nodes = dict(self.nodes)
        return {"metadata": self.meta, "spec": self.spec, "status": {"phase": "Running", "nodes": nodes}}

    def act(self, namespace: str, name: str, action: str, node: str | None, message: str) -> None:
        pass

    def logs(self, namespace: str, name: str, node: str, attempt: int | None) -> Iterator[str]:
        yield "no logs in the bench\n"


class MovingItems(MovingSource):
    """`find` -> `work` (a forEach node of `count` items) -> `sum`; items go P -> R -> S, `rate` changes a second."""

    def __init__(self, count: int, rate: int) -> None:
        self.spec = {
            "nodes": [
                {"name": "find", "image": "busybox"},
                {
                    "name": "work",
                    "image": "busybox",
                    "dependsOn": ["find"],
                    "forEach": {"items": list(range(count))},
                    "command": ["sh", "-c", "echo shard {{ item }}"],
                },
                {"name": "sum", "image": "busybox", "dependsOn": ["work"]},
            ]
        }
        self.meta = {"name": NAME, "namespace": NAMESPACE, "creationTimestamp": _now(), "uid": "u", "generation": 1}
        self.lock = threading.Lock()
        self.rate = rate
        self.count = count
        self.states = bytearray(b"P" * count)
        self.detail: dict[str, dict[str, Any]] = {}
        started = {"phase": "Running", "attempts": 0, "startedAt": _now()}
        self.nodes = {"find": {"phase": "Succeeded", "attempts": 1}, "work": started}

    def advance(self) -> None:
        step, cursor = 0.1, 0
        while cursor < 2 * self.count:
            time.sleep(step)
            with self.lock:
                for _ in range(max(1, round(self.rate * step))):
                    n = cursor // 2
                    if n >= self.count:
                        break
                    if cursor % 2 == 0:
                        self.states[n] = ord("R")
                        self.detail[str(n)] = {"attempts": 1, "attemptStartedAt": _now()}
                    else:
                        self.states[n] = ord("S")
                        self.detail.pop(str(n), None)
                    cursor += 1
                done = self.states.count(b"S")
                items = {"total": self.count, "states": self.states.decode(), "detail": dict(self.detail)}
                self.nodes = {
                    **self.nodes,
                    "work": {**self.nodes["work"], "attempts": cursor // 2 + 1, "progress": f"{done}/{self.count}"}
                    | {"items": items},
                }


def _node(n: int, width: int) -> dict[str, Any]:
    return {"name": f"n{n}", **({"dependsOn": [f"n{n - width}"]} if n >= width else {})}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _serve(width: int, depth: int, rate: int, started: Any, port: Any, items: int = 0) -> None:
    from dagwright.ui.serving import Server

    source = MovingItems(items, rate) if items else MovingSource(width, depth, rate)
    server = Server(source, port=0)  # type: ignore[arg-type]
    port.value = server.port
    threading.Thread(target=source.advance, daemon=True).start()
    started.set()
    server.run()


def _proc(pid: int) -> tuple[float, float, float]:
    """RSS and peak RSS in MiB, and CPU seconds, of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024, cpu


def _stream_bytes(url: str, seconds: float) -> tuple[int, int]:
    """Bytes of update events on the workflow stream, and how many node entries they carried."""
    total = entries = 0
    deadline = time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=seconds + 5) as response:
        event = None
        for raw in response:
            line = raw.decode()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            if event == "update":
                total += len(raw)
                if line.startswith("data:"):
                    entries += len(json.loads(line[5:])["nodes"])
            if time.monotonic() > deadline:
                break
    return total, entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--rate", type=int, default=100, help="node changes a second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--opens", type=int, default=3)
    parser.add_argument("--foreach", type=int, default=0, metavar="N", help="one forEach node of N items instead")
    args = parser.parse_args()
    if not os.path.exists(browser.CHROMIUM):
        print(f"no browser at {browser.CHROMIUM}: apt-get install chromium", file=sys.stderr)
        return 1

    context = multiprocessing.get_context("fork")
    started, port = context.Event(), context.Value("i", 0)
    serve_args = (args.width, args.depth, args.rate, started, port, args.foreach)
    child = context.Process(target=_serve, args=serve_args, daemon=True)
    child.start()
    started.wait(60)
    time.sleep(0.5)
    base = f"http://127.0.0.1:{port.value}/"
    page_url = f"{base}#/wf/{NAMESPACE}/{NAME}"
    if args.foreach:
        try:
            return _foreach(args, base, page_url)
        finally:
            child.terminate()
            child.join(5)
    print(f"nodes: {args.width * args.depth}")
    print(f"rate_node_changes_per_second: {args.rate}")
    try:
        with browser.browser() as chromium:
            context_ = chromium.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
            opens = []
            for _ in range(args.opens):
                page = context_.new_page()
                page.goto("about:blank")
                begin = time.monotonic()
                page.goto(page_url)
                page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                opens.append(time.monotonic() - begin)
                drawn = page.evaluate("() => window.dagwright.wf.positions.size")
                page.close()
            print(f"open_seconds: {statistics.median(opens):.2f} (runs: {', '.join(f'{o:.2f}' for o in opens)})")
            print(f"nodes_drawn: {drawn}")

            page = context_.new_page()
            page.goto(page_url)
            page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
            rss0, _, cpu0 = _proc(child.pid)
            page.evaluate(
                """() => { window.gaps = []; let last = performance.now();
                   const tick = (t) => {
                     window.gaps.push(t - last); last = t; if (!window.stopGaps) requestAnimationFrame(tick); };
                   requestAnimationFrame(tick); }"""
            )
            stream_result: dict[str, tuple[int, int]] = {}
            stream = threading.Thread(
                target=lambda: stream_result.update(
                    bytes=_stream_bytes(f"{base}api/workflows/{NAMESPACE}/{NAME}/stream", args.seconds)
                )
            )
            stream.start()
            clicks = []
            began = time.monotonic()
            i = 0
            while time.monotonic() - began < args.seconds:
                name = f"n{(i * 37) % 300}"
                start = time.monotonic()
                spot = page.evaluate("(name) => window.dagwright.screenOf(name)", name)
                page.mouse.click(spot["x"], spot["y"])
                page.wait_for_selector(f"#p-name:text-is('{name}')", timeout=10_000)
                page.wait_for_selector("#p-facts dd", timeout=10_000)
                clicks.append(time.monotonic() - start)
                i += 1
                time.sleep(0.5)
            gaps = page.evaluate("() => { window.stopGaps = true; return window.gaps; }")
            stream.join()
            rss, peak, cpu = _proc(child.pid)
            changed = page.evaluate(
                "() => [...window.dagwright.wf.nodes.values()].filter(n => n.phase !== 'Pending').length"
            )
        gaps = sorted(gaps[1:])
        print(f"frame_gap_max_ms: {gaps[-1]:.0f}")
        print(f"frame_gap_p99_ms: {gaps[int(len(gaps) * 0.99) - 1]:.0f}")
        print(f"frames_seen: {len(gaps)} in {args.seconds:.0f} s")
        print(f"click_to_panel_ms: median {1000 * statistics.median(clicks):.0f}, max {1000 * max(clicks):.0f}")
        print(f"nodes_not_pending_in_page: {changed}")
        sent, entries = stream_result.get("bytes", (0, 0))
        print(f"bytes_per_node_change: {sent / max(1, entries):.0f} ({sent} bytes, {entries} node entries)")
        print(f"server_rss_mib: {rss:.0f} (at start of streaming {rss0:.0f}, peak {peak:.0f})")
        print(f"server_cpu_percent: {100 * (cpu - cpu0) / (time.monotonic() - began):.0f}")
    finally:
        child.terminate()
        child.join(5)
    return 0


def _foreach(args: argparse.Namespace, base: str, page_url: str) -> int:
    print(f"items: {args.foreach}")
    print(f"rate_item_changes_per_second: {args.rate}")
    with urllib.request.urlopen(f"{base}api/workflows/{NAMESPACE}/{NAME}/nodes/work", timeout=30) as response:
        print(f"panel_bytes: {len(response.read())}")
    stream_result: dict[str, tuple[int, int]] = {}
    url = f"{base}api/workflows/{NAMESPACE}/{NAME}/stream"
    stream = threading.Thread(target=lambda: stream_result.update(bytes=_stream_bytes(url, args.seconds)))
    stream.start()
    began = time.monotonic()
    with browser.browser() as chromium:
        context = chromium.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        opens, items_open = [], []
        for _ in range(args.opens):
            page = context.new_page()
            page.goto("about:blank")
            begin = time.monotonic()
            page.goto(page_url)
            page.wait_for_selector('body[data-ready="1"]', timeout=60_000)
            opens.append(time.monotonic() - begin)
            spot = page.evaluate("() => window.dagwright.screenOf('work')")
            begin = time.monotonic()
            page.mouse.click(spot["x"], spot["y"])
            page.wait_for_selector("#p-items-count:text('done')", timeout=10_000)
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            items_open.append(time.monotonic() - begin)
            page.close()
    stream.join()
    print(f"open_seconds: {statistics.median(opens):.2f} (runs: {', '.join(f'{o:.2f}' for o in opens)})")
    runs = ", ".join(f"{1000 * o:.0f}" for o in items_open)
    print(f"items_open_ms: {1000 * statistics.median(items_open):.0f} (runs: {runs})")
    sent, _ = stream_result.get("bytes", (0, 0))
    changes = args.rate * min(args.seconds, time.monotonic() - began)  # the stream was read for args.seconds
    print(f"bytes_per_item_change: {sent / max(1.0, changes):.1f} ({sent} bytes for ~{changes:.0f} item changes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
