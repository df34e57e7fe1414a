"""The local verbs of the CLI: run (a Workflow as processes on this machine), validate, graph, crd.

Exit codes of `run`: 0 when the workflow Succeeded, 1 when it Failed or the manifest is invalid, 130 when it was
stopped with Ctrl-C. `graph` of a name that is not a file asks the cluster (`cli/cluster.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from dagwright import crd, cronspec, graph, manifests, reference
from dagwright.cli import cluster, web
from dagwright.cli.arguments import parameters
from dagwright.errors import Problem, SpecError
from dagwright.local import display
from dagwright.local.runner import RunOptions, run
from dagwright.planner import retry_failed
from dagwright.spec import API_VERSION, KIND, TEMPLATE_KIND
from dagwright.status import WorkflowPhase, WorkflowStatus, to_wire
from dagwright.validation import compile_documents, compile_manifest, compile_template, load_documents
from dagwright.workflows import Workflow

EXIT_CODES = {WorkflowPhase.SUCCEEDED: 0, WorkflowPhase.STOPPED: 130}


def add_run(commands: Any) -> None:
    runner = commands.add_parser("run", help="run a Workflow manifest on this machine, no cluster needed")
    runner.add_argument(
        "file", help="a Workflow manifest (YAML or JSON), a WorkflowTemplate, or a template and a Workflow running it"
    )
    runner.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="set a parameter")
    runner.add_argument("--output", choices=["text", "json"], default="text", help="json: print the final object")
    runner.add_argument("--state", type=Path, help="save status here (within 0.5 s of a change); resume from it")
    runner.add_argument("--logs-dir", type=Path, help="write each attempt's output to DIR/NODE.ATTEMPT.log")
    runner.add_argument("--approve-all", action="store_true", help="approve every approval node without asking")
    runner.add_argument("--ui", action="store_true", help="serve the web UI of this run until it ends")
    web.add_flags(runner, default_port=0)
    runner.set_defaults(handler=_run)


def add_validate(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check a manifest and report every problem")
    validate.add_argument("file")
    validate.set_defaults(handler=_validate)


def add_graph(commands: Any) -> None:
    drawing = commands.add_parser("graph", help="draw the DAG of a manifest")
    drawing.add_argument("file", help="a manifest file, or the name of a Workflow in the cluster")
    drawing.add_argument("-n", "--namespace", default=None, help="for a Workflow in the cluster")
    drawing.add_argument("--format", choices=["text", "mermaid"], default="text")
    drawing.set_defaults(handler=_graph)


def add_crd(commands: Any) -> None:
    definition = commands.add_parser("crd", help="print a CustomResourceDefinition (default: Workflow's)")
    kinds = [kind.plural for kind in crd.KINDS]
    definition.add_argument("plural", nargs="?", default=crd.PLURAL, choices=kinds, help="which one")
    definition.add_argument("--reference", action="store_true", help="the field reference in Markdown instead")
    definition.set_defaults(
        handler=lambda args: _print((reference.render() if args.reference else crd.render(args.plural)), end="")
    )


def _print(text: str, end: str = "\n") -> int:
    sys.stdout.write(text + end)
    return 0


def _validate(args: argparse.Namespace) -> int:
    """Every document of the file: templates as a run with their defaults would see them, a Workflow with the
    file's template when it names one there (else only its own part: the cluster's template is checked then), a
    CronWorkflow's own fields and then its workflow."""
    written = manifests.load_all(args.file)
    labels = [_kind_of(doc) for doc in written if _kind_of(doc) != TEMPLATE_KIND]
    found = load_documents([cronspec.as_workflow(doc) for doc in written], args.file)
    if not found.workflows and not found.templates:
        raise SpecError([Problem(args.file, "no document: expected a Workflow or a WorkflowTemplate")])
    for name, data in found.raw_templates.items():
        workflow = compile_template(data)
        _print(f"{args.file}: valid WorkflowTemplate '{name}' with {len(workflow.nodes)} nodes")
    for label, manifest, data in zip(labels, found.workflows, found.raw_workflows, strict=True):
        ref = manifest.spec.template_ref
        if ref is None:
            workflow = compile_manifest(data)
            _print(f"{args.file}: valid {label} '{workflow.name}' with {len(workflow.nodes)} nodes")
        elif ref.name in found.templates:
            workflow = compile_manifest(data, template=found.templates[ref.name].spec)
            _print(f"{args.file}: valid {label} running WorkflowTemplate '{ref.name}' with {len(workflow.nodes)} nodes")
        else:
            _print(f"{args.file}: valid {label} running WorkflowTemplate '{ref.name}' (not in this file: not checked)")
    return 0


def _kind_of(document: Any) -> str:
    kind = document.get("kind") if isinstance(document, dict) else None
    return kind if kind in (TEMPLATE_KIND, cronspec.KIND) else KIND


def _graph(args: argparse.Namespace) -> int:
    if not os.path.exists(args.file):
        return cluster.graph_of(args)
    documents = [cronspec.as_workflow(doc) for doc in manifests.load_all(args.file)]
    workflow = compile_documents(documents, source=args.file)
    notes = workflow.notes()
    return _print(
        graph.render_mermaid(workflow.graph, notes)
        if args.format == "mermaid"
        else graph.render_text(workflow.graph, notes, set(workflow.finals))
    )


def _run(args: argparse.Namespace) -> int:
    # A CronWorkflow runs its workflow once, now; a WorkflowTemplate runs with its defaults and -p.
    documents = [cronspec.as_workflow(doc) for doc in manifests.load_all(args.file)]
    workflow = compile_documents(documents, parameters(args.param), source=args.file)
    data = _as_workflow(documents, workflow)
    status = _resume(args.state, workflow) if args.state else None
    _check_writable(args.logs_dir, args.state)
    json_output = args.output == "json"
    stream = sys.stderr if json_output else sys.stdout
    _notice_images(workflow)
    live = stream.isatty() and os.environ.get("TERM") != "dumb"
    report: Any = display.LiveReport(Console(file=stream), len(workflow.nodes)) if live else display.PlainReport(stream)
    options = RunOptions(
        logs_dir=args.logs_dir,
        approve=_approver(args.approve_all, report if live else None),
        report=report,
        save=(lambda s: _save(args.state, data, workflow, s)) if args.state else None,
    )
    page = None
    if args.ui:
        # The page answers approvals (unless --approve-all), so no terminal prompt holds the run meanwhile.
        options.logs_dir = options.logs_dir or Path(tempfile.mkdtemp(prefix=f"dagwright-{workflow.name}-"))
        page, server = web.start_for_run(args, data, workflow, options.logs_dir)
        options.inbox = page
        options.approve = _approver(True, None) if args.approve_all else None
        options.report = _both(report, page.report)
    try:
        final = run(workflow, status, options)
    finally:
        if live:
            report.close()
        if page is not None:
            web.stop_after_run(server, page)
    if json_output:
        _print(json.dumps(_object(data, workflow, final), indent=2))
    elif live:
        stream.write(f"workflow {final.phase.value} ({final.progress}) {final.message}\n")
    return EXIT_CODES.get(final.phase, 1)


def _both(first: Any, second: Any) -> Any:
    def report(decision: Any, observations: Any) -> None:
        first(decision, observations)
        second(decision, observations)

    return report


def _as_workflow(documents: list[Any], workflow: Workflow) -> dict[str, Any]:
    """The identity of the object the run reports (`--output json`, `--state`): the file's Workflow with the name
    it runs under (one made from generateName, too), or a Workflow named after the template it runs."""
    written: dict[str, Any] = next((doc for doc in documents if doc.get("kind") != TEMPLATE_KIND), {})
    metadata = {key: value for key, value in (written.get("metadata") or {}).items() if key != "generateName"}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {**metadata, "name": workflow.name}}


def _check_writable(logs_dir: Path | None, state: Path | None) -> None:
    """Refuse paths the run could not write to before it starts anything, instead of failing halfway."""
    try:
        if logs_dir is not None:
            logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpecError([Problem("--logs-dir", f"cannot create {logs_dir}: {error.strerror or error}")]) from None
    if state is not None and not state.parent.is_dir():
        raise SpecError([Problem("--state", f"directory {state.parent} does not exist")])


def _resume(path: Path, workflow: Workflow) -> WorkflowStatus | None:
    """Status saved by an earlier run: succeeded nodes are kept, the rest run again with a fresh budget."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        name = saved["metadata"]["name"]
        status = WorkflowStatus.model_validate(saved.get("status") or {})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SpecError([Problem(str(path), f"not a dagwright state file: {error}")]) from None
    if name != workflow.name:
        message = f"holds workflow '{name}', not '{workflow.name}'; use another --state file"
        raise SpecError([Problem(str(path), message)])
    return status if status.phase is WorkflowPhase.SUCCEEDED else retry_failed(status)


def _save(path: Path, data: Any, workflow: Workflow, status: WorkflowStatus) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(_object(data, workflow, status)), encoding="utf-8")
    os.replace(temporary, path)


def _object(data: Any, workflow: Workflow, status: WorkflowStatus) -> dict[str, Any]:
    """The Workflow as the cluster would show it: the manifest as written, with status."""
    spec = workflow.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return {
        "apiVersion": data["apiVersion"],
        "kind": data["kind"],
        "metadata": data["metadata"],
        "spec": spec,
        "status": to_wire(status),
    }


def _notice_images(workflow: Workflow) -> None:
    count = sum(1 for node in workflow.nodes if node.image)
    if count:
        print(
            f"note: the local runner ignores `image` ({count} of {len(workflow.nodes)} nodes set one); "
            "commands run on this machine",
            file=sys.stderr,
        )


def _approver(approve_all: bool, live: Any) -> Any:
    if approve_all:
        return lambda node, message: True
    if not sys.stdin.isatty():
        return None

    def ask(node: str, message: str) -> bool:
        if live is not None:
            live.live.stop()
        try:
            prompt = f"approve node {node}{': ' + message if message else ''}? [y/N] "
            return input(prompt).strip().lower() in ("y", "yes")
        except EOFError:
            return False
        finally:
            if live is not None:
                live.live.start()

    return ask
