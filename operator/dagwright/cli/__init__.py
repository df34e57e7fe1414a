"""The `dagwright` command line (also `kubectl dagwright ...`): one parser over both backends.

The top layer: it imports the core and the backends, and nothing imports it (tests/unit/test_imports.py).
- `local.py`: run, validate, graph, crd, with the local runner (`dagwright.local`);
- `cluster.py`: submit, list, get, watch, logs, graph NAME, and pause, resume, stop, retry, approve, reject,
  through `dagwright.k8s.commands`;
- `cron.py`: cron list, suspend, resume, trigger (CronWorkflows), through `dagwright.k8s.croncommands`;
- `operator.py`: `dagwright operator`, its flags checked, then the kopf operator;
- `web.py`: `dagwright ui` and the web UI of `dagwright run --ui` (`dagwright.ui`);
- `arguments.py`: `-p KEY=VALUE`, shared by run and submit.

Starting the CLI loads neither kubernetes nor kopf: only a cluster verb, when it runs, does. Every user error ends
as one clear message and exit code 1 (2 for a bad `operator` flag), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dagwright.cli import cluster, cron, local, operator, web
from dagwright.errors import SpecError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except SpecError as error:
        source = getattr(args, "file", None) or getattr(args, "source", None) or "input"
        print(f"error: {source} is not a valid Workflow:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagwright", description="Run workflow DAGs locally or on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local.add_run(commands)
    local.add_validate(commands)
    local.add_graph(commands)
    cluster.register(commands)
    cron.register(commands)
    operator.register(commands)
    web.register(commands)
    local.add_crd(commands)
    return parser
