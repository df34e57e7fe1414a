"""`dagwright ui` (the web UI for Workflows in the cluster) and the `--ui` part of `dagwright run`.

The UI package (and starlette, uvicorn) load only when one of these runs: they come with the `ui` extra, and a
missing extra is one line saying how to install it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from dagwright.errors import Problem, SpecError


def register(commands: Any) -> None:
    ui = commands.add_parser("ui", help="serve the web UI for Workflows in the cluster (as your kubeconfig identity)")
    ui.add_argument("-n", "--namespace", default=None, help="default: the kubeconfig's namespace")
    ui.add_argument("-A", "--all-namespaces", action="store_true")
    add_flags(ui, default_port=8765)
    ui.add_argument("--read-only", action="store_true", help="offer no actions (the chart's in-cluster UI)")
    ui.set_defaults(handler=_ui)


def add_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--port", type=int, default=default_port, help=f"default: {default_port} (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1: this machine)")


def _ui(args: argparse.Namespace) -> int:
    serving = _serving()
    from dagwright.ui.cluster import ClusterSource
    from dagwright.ui.sources import SourceError

    source = ClusterSource(args.namespace, args.all_namespaces, read_only=args.read_only)
    try:
        source.connect()
    except SourceError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    server = _bind(serving, source, args.host, args.port)
    print(f"dagwright UI on {server.url} (Ctrl-C to stop)", flush=True)
    server.run()
    return 0


def start_for_run(args: argparse.Namespace, data: dict[str, Any], workflow: Any, logs_dir: Any) -> Any:
    """The UI of a local run, serving on a thread; returns (the run's UI source, the server)."""
    serving = _serving()
    from dagwright.ui.local import LocalRun

    source = LocalRun(data, workflow, logs_dir)
    server = _bind(serving, source, args.host, args.port)
    server.start()
    print(f"dagwright UI on {server.url}", file=sys.stderr, flush=True)
    return source, server


def stop_after_run(server: Any, source: Any) -> None:
    """Keep the page up long enough for it to hear the end of the run, then stop."""
    time.sleep(source.poll_seconds * 3)
    server.stop()


def _serving() -> Any:
    try:
        from dagwright.ui import serving
    except ImportError as error:
        text = f"the web UI needs the ui extra: pip install 'dagwright[ui]' ({error})"
        raise SpecError([Problem("--ui", text)]) from None
    return serving


def _bind(serving: Any, source: Any, host: str, port: int) -> Any:
    try:
        return serving.Server(source, host=host, port=port)
    except OSError as error:
        raise SpecError([Problem("--port", f"cannot listen on {host}:{port}: {error.strerror or error}")]) from None
