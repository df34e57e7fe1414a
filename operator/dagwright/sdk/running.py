"""`Workflow.run()` and `Workflow.submit()`: the existing backends, called with a built manifest.

`run_locally` is `dagwright run` without the CLI: the checked workflow goes to the local runner, which returns the
final status. Function nodes import their module in a child process, so the run gives nodes this interpreter
first on PATH (`python` is the one running the script, as in an activated virtualenv) and the directories the
functions' modules import from on PYTHONPATH; shell nodes see the environment unchanged.

`submit` is `dagwright submit`: validated here first, created through `dagwright.k8s.commands` (which loads the
kubernetes client only now), then, with `watch=True`, read every second until it finishes. A failure a user can
cause (no kubeconfig, RBAC, already exists) is a `ClusterError` with the CLI's one-line explanation.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dagwright.status import WorkflowStatus

if TYPE_CHECKING:
    from dagwright.local.runner import Approver
    from dagwright.sdk.builder import Workflow

Progress = TextIO  # where run() and submit() print a line per change, when given
POLL_SECONDS = 1.0


class ClusterError(RuntimeError):
    """A cluster request failed in a way the user can fix (no cluster access, RBAC, a name already taken)."""


def run_locally(
    workflow: Workflow,
    parameters: Mapping[str, str] | None,
    *,
    logs_dir: Path | None,
    approve: Approver | bool | None,
    progress: Progress | None,
) -> WorkflowStatus:
    from dagwright.local import display, runner

    _refuse_inside_a_node(workflow)
    checked = workflow.compile(parameters)
    approver: Approver | None = (lambda node, message: approve) if isinstance(approve, bool) else approve
    report = display.PlainReport(progress) if progress is not None else None
    options = runner.RunOptions(logs_dir=logs_dir, approve=approver, report=report, environ=_environment(workflow))
    return runner.run(checked, None, options)


def submit(
    workflow: Workflow,
    namespace: str | None,
    parameters: Mapping[str, str] | None,
    *,
    watch: bool,
    progress: Progress | None,
    kubeconfig: str | None,
) -> WorkflowStatus:
    from dagwright.k8s import commands

    _refuse_inside_a_node(workflow)
    workflow.compile(parameters)  # every problem before anything is sent, with these parameters
    data = workflow.to_dict()
    if parameters:
        data["spec"]["parameters"] = {**data["spec"].get("parameters", {}), **parameters}
    name = workflow.name
    target = namespace or workflow.namespace
    try:
        api_client, default_namespace = commands.connect(kubeconfig)
        target = target or default_namespace
        data["metadata"]["namespace"] = target
        commands.create(api_client, target, data)
        status = _status(commands.read(api_client, target, name))
        last: tuple[str, ...] | None = None
        while watch and not status.phase.finished:
            last = _tell(progress, status, last)
            time.sleep(POLL_SECONDS)
            status = _status(commands.read(api_client, target, name))
        _tell(progress, status, last)
        return status
    except Exception as error:
        line = commands.explain(error, f"workflow {target or ''}/{name}".replace(" /", " "))
        if line is None:
            raise
        raise ClusterError(line) from error


def _status(body: dict[str, Any]) -> WorkflowStatus:
    from dagwright.k8s import statuswire

    return WorkflowStatus.model_validate(statuswire.expanded(body.get("status") or {}))


def _tell(progress: Progress | None, status: WorkflowStatus, last: tuple[str, ...] | None) -> tuple[str, ...]:
    summary = (status.phase.value, status.progress, status.message)
    if progress is not None and summary != last:
        print(f"{datetime.now(UTC):%H:%M:%S} {' '.join(part for part in summary if part)}", file=progress, flush=True)
    return summary


def _environment(workflow: Workflow) -> dict[str, str]:
    environ = dict(os.environ)
    if not any(node.function for node in workflow.nodes):
        return environ
    roots = list(dict.fromkeys(root for node in workflow.nodes for root in node.pythonpath))
    environ["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), environ.get("PATH")]))
    if roots:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [*roots, environ.get("PYTHONPATH")]))
    return environ


def _refuse_inside_a_node(workflow: Workflow) -> None:
    from dagwright.sdk import functions

    if functions.importing_for_node:
        raise RuntimeError(
            f"workflow '{workflow.name}' was started while a function node imported its module: "
            'start it under `if __name__ == "__main__":`'
        )
