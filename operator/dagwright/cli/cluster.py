"""The cluster verbs of the CLI (also `kubectl dagwright ...`): submit, list, get, watch, logs, graph of a
Workflow in the cluster, and the control verbs pause, resume, stop, retry, approve, reject.

Control verbs are merge patches of the Workflow's spec (see `k8s/control.py`); everything else reads. The cluster
work is done by `dagwright.k8s.commands`, which loads the kubernetes client only when a verb runs; this module owns
the flags and what is printed. Each failure a user can cause (no cluster, no such workflow, RBAC) ends as one line
on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dagwright import eta, graph, manifests
from dagwright.cli.arguments import parameters
from dagwright.k8s import commands

if TYPE_CHECKING:
    from dagwright.spec import WorkflowSpec

Handler = Callable[[argparse.Namespace], int]

_CONTROL = {
    "pause": "pause a Workflow in the cluster: nothing new launches",
    "resume": "resume a paused Workflow",
    "stop": "stop a Workflow: running nodes are stopped, nothing more launches",
    "retry": "run a failed or stopped Workflow's failed, skipped and stopped nodes again",
    "approve": "approve an approval node",
    "reject": "reject an approval node",
}


def register(commands: Any) -> None:
    """Add the cluster subcommands to the `dagwright` parser."""
    submit = commands.add_parser("submit", help="create a Workflow in the cluster from a manifest or a template")
    submit.add_argument("file", nargs="?", help="a Workflow manifest (or use --from)")
    submit.add_argument("--from", dest="source", metavar="template/NAME", help="run the WorkflowTemplate NAME")
    submit.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--watch", action="store_true", help="follow it until it finishes")
    _namespace(submit)
    submit.set_defaults(handler=_guard(_submit))

    listing = commands.add_parser("list", help="list Workflows with phase and progress")
    _namespace(listing)
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    listing.set_defaults(handler=_guard(_list))

    for verb, text in (("get", "show a Workflow's nodes"), ("watch", "follow a Workflow live")):
        parser = commands.add_parser(verb, help=text)
        parser.add_argument("name")
        _namespace(parser)
        parser.set_defaults(handler=_guard({"get": _get, "watch": _watch}[verb]))

    logs = commands.add_parser("logs", help="print a node's pod logs")
    logs.add_argument("name")
    logs.add_argument("node")
    logs.add_argument("--attempt", type=int, default=None, help="default: the latest")
    logs.add_argument("-f", "--follow", action="store_true")
    _namespace(logs)
    logs.set_defaults(handler=_guard(_logs))

    for action, text in _CONTROL.items():
        control = commands.add_parser(action, help=text)
        control.add_argument("name", help="the Workflow's name")
        if action in ("approve", "reject"):
            control.add_argument("node", help="the approval node")
        if action == "reject":
            control.add_argument("--message", default="", help="why it was rejected")
        _namespace(control)
        control.set_defaults(handler=_guard(_control), action=action)


def _namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None, help="default: the kubeconfig's namespace")


def _guard(handler: Handler, kind: str = "workflow") -> Handler:
    """Turn every cluster failure into one line: no traceback for a missing `kind` object or a denied request."""

    def guarded(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except KeyboardInterrupt:
            return 130
        except Exception as error:
            # Read after the handler ran: it fills in the namespace and name it worked on.
            what = f"{kind} {getattr(args, 'namespace', '') or ''}/{getattr(args, 'name', '')}".replace(" /", " ")
            line = commands.explain(error, what)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
        return 1

    return guarded


# -- commands


def _submit(args: argparse.Namespace) -> int:
    from dagwright.validation import compile_manifest, load_manifest

    if (args.file is None) == (args.source is None):
        raise commands.CommandError("submit needs a manifest file or --from template/NAME (one of them)")
    if args.source is not None:
        return _submit_template(args, _template_name(args.source))
    data = manifests.load(args.file)
    extra = parameters(args.param)
    manifest = load_manifest(data)
    if manifest.spec.template_ref is None:
        compile_manifest(data, extra)  # every problem reported here, before anything is sent
    api_client, default_namespace = commands.connect()
    namespace = args.namespace or manifest.metadata.namespace or default_namespace
    if manifest.spec.template_ref is not None:  # checked against the template the cluster holds
        compile_manifest(
            data, extra, template=_cluster_template(api_client, namespace, manifest.spec.template_ref.name)
        )
    if extra:
        data.setdefault("spec", {}).setdefault("parameters", {}).update(extra)
    args.namespace = namespace
    args.name = commands.create(api_client, namespace, data)["metadata"]["name"]
    print(f"workflow {namespace}/{args.name} submitted")
    return _watch(args) if args.watch else 0


def _cluster_template(api_client: Any, namespace: str, name: str) -> WorkflowSpec:
    from dagwright.validation import parse_template_spec, template_field

    body = commands.read_template(api_client, namespace, name)
    return parse_template_spec(body.get("spec"), prefix=template_field(name))


def _template_name(source: str) -> str:
    kind, _, name = source.partition("/")
    if kind.lower() not in ("template", "workflowtemplate", "workflowtemplates", "dwt") or not name:
        raise commands.CommandError(f"--from: expected template/NAME, got {source!r}")
    return name


def _submit_template(args: argparse.Namespace, name: str) -> int:
    """A Workflow named `<NAME>-<random>` that runs the WorkflowTemplate NAME with `-p` as its parameters; a
    parameter the template does not declare is refused before anything is created."""
    from dagwright import reuse
    from dagwright.errors import Problem, SpecError
    from dagwright.spec import API_VERSION, KIND
    from dagwright.validation import compile_manifest

    extra = parameters(args.param)
    api_client, default_namespace = commands.connect()
    args.namespace = namespace = args.namespace or default_namespace
    template = _cluster_template(api_client, namespace, name)
    wrong = reuse.undeclared(extra, template, name)
    if wrong:
        raise SpecError([Problem(f"-p {key}", message) for key, message in wrong.items()])
    spec: dict[str, Any] = {"templateRef": {"name": name}}
    if extra:
        spec["parameters"] = extra
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"generateName": f"{name}-"}, "spec": spec}
    compile_manifest(body, template=template)  # what the operator would refuse, said here
    args.name = commands.create(api_client, namespace, body)["metadata"]["name"]
    print(f"workflow {namespace}/{args.name} submitted (WorkflowTemplate {name})")
    return _watch(args) if args.watch else 0


def _list(args: argparse.Namespace) -> int:
    api_client, default_namespace = commands.connect()
    items = commands.list_workflows(api_client, None if args.all_namespaces else args.namespace or default_namespace)
    rows: list[tuple[str, ...]] = [("NAMESPACE", "NAME", "PHASE", "PROGRESS", "AGE", "TEMPLATE", "MESSAGE")]
    for item in items:
        status = item.get("status") or {}
        meta = item["metadata"]
        age = _age(meta.get("creationTimestamp"))
        rows.append(
            (
                meta["namespace"],
                meta["name"],
                status.get("phase", ""),
                status.get("progress", ""),
                age,
                ((item.get("spec") or {}).get("templateRef") or {}).get("name") or "",  # as kubectl get's column
                (status.get("message") or "")[:60],
            )
        )
    _table(rows)
    return 0


def _get(args: argparse.Namespace) -> int:
    api_client, default_namespace = commands.connect()
    body = commands.read(api_client, args.namespace or default_namespace, args.name)
    print("\n".join(_describe(body)))
    return 0


def _describe(body: dict[str, Any]) -> Iterator[str]:
    from dagwright.k8s import statuswire

    status = statuswire.expanded(body.get("status") or {})
    left = _eta(status, len(_spec(body, status).get("nodes") or []))
    yield f"{body['metadata']['name']}: {status.get('phase', 'Pending')} {status.get('progress', '')} {left}".rstrip()
    if status.get("message"):
        yield f"  {status['message']}"
    nodes = status.get("nodes") or {}
    spec_nodes = _spec(body, status).get("nodes") or []
    depth = _depths(spec_nodes)
    rows: list[tuple[str, ...]] = [("NODE", "PHASE", "ATTEMPTS", "PROGRESS", "DURATION", "REASON")]
    for entry in spec_nodes:
        name = entry.get("name", "?")
        node = nodes.get(name) or {}
        indent = "  " * depth.get(name, 0) + ("└─ " if depth.get(name, 0) else "")
        reason = node.get("reason") or ""
        if node.get("message") and node.get("phase") in ("Failed", "Retrying", "Skipped"):
            reason = f"{reason}: {node['message']}"[:80]
        rows.append(
            (
                indent + name,
                node.get("phase", "Pending"),
                str(node.get("attempts", 0)),
                node.get("progress") or "",  # a forEach node's succeeded/total items, or node-runner's line
                _duration(node.get("startedAt"), node.get("finishedAt")),
                reason,
            )
        )
    yield from _table_lines(rows)


def _spec(body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The spec whose nodes a Workflow runs: its own, or the template's it started with (its status keeps it)."""
    spec: dict[str, Any] = body.get("spec") or {}
    if "templateRef" in spec:
        snapshot: dict[str, Any] = (status.get("template") or {}).get("spec") or {}
        return snapshot
    return spec


def _depths(spec_nodes: list[dict[str, Any]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    pending = list(spec_nodes)
    for _ in range(len(spec_nodes) + 1):
        rest = []
        for entry in pending:
            deps = entry.get("dependsOn") or []
            if all(dep in depth for dep in deps):
                depth[entry.get("name", "?")] = 1 + max((depth[dep] for dep in deps), default=-1)
            else:
                rest.append(entry)
        pending = rest
    return depth


def _eta(status: dict[str, Any], total: int) -> str:
    """`~1m20s left` while it runs (see dagwright.eta), else ""."""
    if status.get("phase") not in ("Running", "Paused"):
        return ""
    return eta.text(eta.estimate((status.get("nodes") or {}).values(), total, datetime.now(UTC)))


def _watch(args: argparse.Namespace) -> int:
    """Poll the Workflow and redraw; on a terminal a live view, elsewhere a line per change."""
    from dagwright.k8s import statuswire

    api_client, default_namespace = commands.connect()
    namespace = args.namespace or default_namespace
    last = None
    while True:
        body = commands.read(api_client, namespace, args.name)
        status = body.get("status") or {}
        summary = (status.get("phase"), status.get("progress"), status.get("message"))
        left = _eta(statuswire.expanded(status), len(_spec(body, status).get("nodes") or []))
        if sys.stdout.isatty():
            print("\033[2J\033[H" + "\n".join(_describe(body)), flush=True)
        elif summary != last:
            print(
                f"{datetime.now(UTC):%H:%M:%S} {summary[0] or 'Pending'} {summary[1] or ''} {summary[2] or ''}"
                + (f" ({left})" if left else ""),
                flush=True,
            )
        last = summary
        if status.get("phase") in ("Succeeded", "Failed", "Stopped"):
            return 0 if status["phase"] == "Succeeded" else 1
        time.sleep(1)


def graph_of(args: argparse.Namespace) -> int:
    """`dagwright graph NAME` when NAME is not a file: the DAG of a Workflow in the cluster."""
    return _guard(_graph)(args)


def _graph(args: argparse.Namespace) -> int:
    from dagwright.validation import compile_spec, parse_spec

    args.name = args.file
    api_client, default_namespace = commands.connect()
    body = commands.read(api_client, args.namespace or default_namespace, args.name)
    spec = _spec(body, body.get("status") or {})
    if not spec:
        raise commands.CommandError(f"workflow {args.name} has not started its template yet: no nodes to draw")
    workflow = compile_spec(parse_spec(spec), name=args.name)
    notes = workflow.notes()
    print(
        graph.render_mermaid(workflow.graph, notes)
        if args.format == "mermaid"
        else graph.render_text(workflow.graph, notes, set(workflow.finals))
    )
    return 0


def _logs(args: argparse.Namespace) -> int:
    api_client, default_namespace = commands.connect()
    namespace = args.namespace or default_namespace
    pod = commands.node_pod(api_client, namespace, args.name, args.node, args.attempt)
    if args.follow:
        for text in commands.follow_pod_log(api_client, namespace, pod):
            sys.stdout.write(text)
        return 0
    print(commands.pod_log(api_client, namespace, pod), end="")
    return 0


def _control(args: argparse.Namespace) -> int:
    api_client, default_namespace = commands.connect()
    args.namespace = args.namespace or default_namespace
    commands.request(
        api_client, args.namespace, args.name, args.action, getattr(args, "node", None), getattr(args, "message", "")
    )
    print(f"workflow {args.namespace}/{args.name}: {args.action} requested")
    return 0


# -- formatting


def _table(rows: list[tuple[str, ...]]) -> None:
    print("\n".join(_table_lines(rows)))


def _table_lines(rows: list[tuple[str, ...]]) -> Iterator[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return ""
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _duration(started: str | None, finished: str | None) -> str:
    if not started:
        return ""
    start = datetime.fromisoformat(started.replace("Z", "+00:00"))
    end = datetime.fromisoformat(finished.replace("Z", "+00:00")) if finished else datetime.now(UTC)
    return f"{(end - start).total_seconds():.1f}s"
