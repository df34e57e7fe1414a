"""The cluster half of the CLI (also `kubectl dagwright ...`): submit, list, get, watch, logs, graph, and the
control verbs pause, resume, stop, retry, approve, reject; plus `dagwright operator`.

Control verbs are merge patches of the Workflow's spec (see `control.py`); everything else reads. Each failure a
user can cause (no cluster, no such workflow, RBAC) ends as one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dagwright import graph, manifests
from dagwright.k8s import names

if TYPE_CHECKING:
    from dagwright.k8s.jobs import RedisSettings

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
    submit = commands.add_parser("submit", help="create a Workflow in the cluster from a manifest")
    submit.add_argument("file")
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

    operator = commands.add_parser("operator", help="run the Kubernetes operator (watches Workflows)")
    operator.add_argument("--namespace", action="append", default=[], help="watch only these (repeatable)")
    operator.add_argument("--max-running-nodes", type=int, default=None, help="operator-wide running attempts cap")
    operator.add_argument("--workers", type=int, default=4, help="reconciles running at once")
    operator.add_argument("--lease-namespace", default=None, help="namespace of the leader-election Lease")
    operator.add_argument("--no-leader-election", action="store_true", help="act without holding the Lease")
    operator.add_argument("--metrics-port", type=int, default=8000, help="0 disables /metrics")
    operator.add_argument("--health-port", type=int, default=8080, help="0 disables /healthz")
    operator.add_argument("--log-format", choices=["text", "json"], default="text")
    operator.add_argument(
        "--redis-url", default=os.environ.get("DAGWRIGHT_REDIS_URL"), help="node-runner outputs and progress"
    )
    operator.add_argument("--redis-password-secret", default=None, help="Secret (key `password`) for node pods")
    operator.add_argument(
        "--redis-ca-configmap",
        default=None,
        metavar="NAME",
        help="ConfigMap (key `ca.crt`) node pods mount to trust a rediss:// Redis; needed in each workflow namespace",
    )
    operator.add_argument(
        "--redis-ca-file",
        default=os.environ.get("DAGWRIGHT_REDIS_CA"),
        metavar="FILE",
        help="CA certificate the operator trusts a rediss:// Redis with (default: $DAGWRIGHT_REDIS_CA)",
    )
    operator.add_argument("--webhook-port", type=int, default=0, help="serve the validating webhook (0: off)")
    operator.add_argument("--webhook-addr", default="0.0.0.0", help="address the webhook listens on")
    operator.add_argument("--webhook-host", default=None, help="name/IP the API server dials (default: the addr)")
    operator.add_argument(
        "--webhook-cert-dir", default=None, help="tls.crt, tls.key (, ca.crt); default: a self-signed certificate"
    )
    operator.add_argument(
        "--webhook-manage", default=None, metavar="NAME", help="create this ValidatingWebhookConfiguration (dev)"
    )
    operator.set_defaults(handler=_operator)


def _namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None, help="default: the kubeconfig's namespace")


class CommandError(Exception):
    pass


def _guard(handler: Handler) -> Handler:
    """Turn every cluster failure into one line: no traceback for a missing workflow or a denied request."""

    def guarded(args: argparse.Namespace) -> int:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException

        try:
            return handler(args)
        except CommandError as error:
            print(f"error: {error}", file=sys.stderr)
        except ConfigException as error:
            print(f"error: no cluster access: {error}", file=sys.stderr)
        except ApiException as error:
            print(f"error: {_api_problem(args, error)}", file=sys.stderr)
        except OSError as error:
            print(f"error: cannot reach the cluster: {error}", file=sys.stderr)
        except KeyboardInterrupt:
            return 130
        return 1

    return guarded


def _api_problem(args: argparse.Namespace, error: Any) -> str:
    what = f"workflow {getattr(args, 'namespace', '') or ''}/{getattr(args, 'name', '')}".replace(" /", " ")
    if error.status == 404:
        return f"{what} not found"
    if error.status == 403:
        return f"not allowed (RBAC): {error.reason}"
    if error.status == 409:
        return f"{what} already exists"
    return f"the API server refused: {error.status} {error.reason}"


def _client() -> tuple[Any, str]:
    from kubernetes import client, config

    config.load_kube_config()
    _, context = config.list_kube_config_contexts()
    namespace = (context or {}).get("context", {}).get("namespace") or "default"
    return client.ApiClient(), str(namespace)


def _read(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api_client)
    response = custom.get_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, name, _preload_content=False
    )
    body: dict[str, Any] = json.loads(response.data)
    return body


# -- commands


def _submit(args: argparse.Namespace) -> int:
    from kubernetes import client

    from dagwright.cli import parameters
    from dagwright.validation import compile_manifest

    data = manifests.load(args.file)
    extra = parameters(args.param)
    compile_manifest(data, extra)  # every problem reported here, before anything is sent
    if extra:
        data.setdefault("spec", {}).setdefault("parameters", {}).update(extra)
    api_client, default_namespace = _client()
    namespace = args.namespace or data.get("metadata", {}).get("namespace") or default_namespace
    args.name = data["metadata"]["name"]
    args.namespace = namespace
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.PLURAL, data, _preload_content=False
    )
    print(f"workflow {namespace}/{args.name} submitted")
    return _watch(args) if args.watch else 0


def _list(args: argparse.Namespace) -> int:
    from kubernetes import client

    api_client, default_namespace = _client()
    custom: Any = client.CustomObjectsApi(api_client)
    if args.all_namespaces:
        response = custom.list_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL, _preload_content=False)
    else:
        namespace = args.namespace or default_namespace
        response = custom.list_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.PLURAL, _preload_content=False
        )
    rows: list[tuple[str, ...]] = [("NAMESPACE", "NAME", "PHASE", "PROGRESS", "AGE", "MESSAGE")]
    for item in json.loads(response.data).get("items") or []:
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
                (status.get("message") or "")[:60],
            )
        )
    _table(rows)
    return 0


def _get(args: argparse.Namespace) -> int:
    api_client, default_namespace = _client()
    body = _read(api_client, args.namespace or default_namespace, args.name)
    print("\n".join(_describe(body)))
    return 0


def _describe(body: dict[str, Any]) -> Iterator[str]:
    from dagwright.k8s import statuswire

    status = statuswire.expanded(body.get("status") or {})
    yield f"{body['metadata']['name']}: {status.get('phase', 'Pending')} {status.get('progress', '')}".rstrip()
    if status.get("message"):
        yield f"  {status['message']}"
    nodes = status.get("nodes") or {}
    spec_nodes = (body.get("spec") or {}).get("nodes") or []
    depth = _depths(spec_nodes)
    rows: list[tuple[str, ...]] = [("NODE", "PHASE", "ATTEMPTS", "DURATION", "REASON")]
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
                _duration(node.get("startedAt"), node.get("finishedAt")),
                reason,
            )
        )
    yield from _table_lines(rows)


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


def _watch(args: argparse.Namespace) -> int:
    """Poll the Workflow and redraw; on a terminal a live view, elsewhere a line per change."""
    api_client, default_namespace = _client()
    namespace = args.namespace or default_namespace
    last = None
    while True:
        body = _read(api_client, namespace, args.name)
        status = body.get("status") or {}
        summary = (status.get("phase"), status.get("progress"), status.get("message"))
        if sys.stdout.isatty():
            print("\033[2J\033[H" + "\n".join(_describe(body)), flush=True)
        elif summary != last:
            print(
                f"{datetime.now(UTC):%H:%M:%S} {summary[0] or 'Pending'} {summary[1] or ''} {summary[2] or ''}",
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
    api_client, default_namespace = _client()
    body = _read(api_client, args.namespace or default_namespace, args.name)
    workflow = compile_spec(parse_spec(body.get("spec")), name=args.name)
    render = graph.render_mermaid if args.format == "mermaid" else graph.render_text
    print(render(workflow.graph))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from kubernetes import client

    api_client, default_namespace = _client()
    namespace = args.namespace or default_namespace
    body = _read(api_client, namespace, args.name)
    from dagwright.k8s import statuswire

    node = (statuswire.expanded(body.get("status") or {}).get("nodes") or {}).get(args.node)
    if node is None or not node.get("attempts"):
        raise CommandError(f"node {args.node} of workflow {namespace}/{args.name} has not run")
    attempt = args.attempt or node["attempts"]
    job = names.job_name(args.name, args.node, attempt)
    core: Any = client.CoreV1Api(api_client)
    pods = core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items
    if not pods:
        raise CommandError(f"no pod left for {args.node} attempt {attempt} (Job {job})")
    pod = sorted(pods, key=lambda p: p.metadata.creation_timestamp)[-1]
    if args.follow:
        stream = core.read_namespaced_pod_log(
            pod.metadata.name, namespace, container=names.CONTAINER, follow=True, _preload_content=False
        )
        for chunk in stream.stream():
            sys.stdout.write(chunk.decode(errors="replace"))
        return 0
    print(core.read_namespaced_pod_log(pod.metadata.name, namespace, container=names.CONTAINER), end="")
    return 0


def _control(args: argparse.Namespace) -> int:
    from dagwright.k8s import control

    api_client, default_namespace = _client()
    args.namespace = args.namespace or default_namespace
    patch = control.patch_for(args.action, getattr(args, "node", None), getattr(args, "message", ""))
    control.apply(api_client, args.name, args.namespace, patch)
    print(f"workflow {args.namespace}/{args.name}: {args.action} requested")
    return 0


def _operator(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dagwright.k8s import operator
    from dagwright.k8s.admission import WebhookSettings
    from dagwright.k8s.reconcile import Settings

    namespaces = args.namespace or [n for n in os.environ.get("DAGWRIGHT_NAMESPACES", "").split(",") if n]
    try:
        redis = redis_settings(args.redis_url, args.redis_password_secret, args.redis_ca_configmap, args.redis_ca_file)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = Settings(
        namespaces=namespaces,
        max_running_nodes=args.max_running_nodes,
        workers=args.workers,
        redis=redis,
        redis_ca_file=args.redis_ca_file or None,
    )
    lease = "" if args.no_leader_election else (args.lease_namespace or os.environ.get("POD_NAMESPACE") or "default")
    webhook = None
    cert_dir = Path(args.webhook_cert_dir) if args.webhook_cert_dir else None
    if cert_dir is not None and not all((cert_dir / name).is_file() for name in ("tls.crt", "tls.key")):
        print(f"error: --webhook-cert-dir {cert_dir}: needs tls.crt and tls.key", file=sys.stderr)
        return 2
    if args.webhook_port:
        busy = _cannot_listen(args.webhook_addr, args.webhook_port)
        if busy:
            print(
                f"error: --webhook-port {args.webhook_port}: cannot listen on {args.webhook_addr}: {busy}",
                file=sys.stderr,
            )
            return 2
        webhook = WebhookSettings(
            port=args.webhook_port,
            addr=args.webhook_addr,
            host=args.webhook_host,
            cert_dir=cert_dir,
            manage=args.webhook_manage,
            namespaces=namespaces,
        )
    elif args.webhook_manage or args.webhook_cert_dir:
        print("error: --webhook-manage and --webhook-cert-dir need --webhook-port", file=sys.stderr)
        return 2
    operator.run(
        settings,
        lease_namespace=lease,
        metrics_port=args.metrics_port or None,
        health_port=args.health_port or None,
        json_logs=args.log_format == "json",
        webhook=webhook,
    )
    return 0


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def redis_settings(
    url: str | None, password_secret: str | None, ca_configmap: str | None, ca_file: str | None
) -> RedisSettings | None:
    """The Redis flags, checked before start-up, because each mistake would otherwise surface late and far away:
    a CA with a plaintext URL makes redis-py raise in the progress feed and in every node-runner, an invalid
    ConfigMap name makes the API server refuse every Job, and an unreadable CA file fails every connection."""
    from dagwright.k8s.jobs import RedisSettings

    flag = "--redis-ca-configmap" if ca_configmap else "--redis-ca-file (DAGWRIGHT_REDIS_CA)" if ca_file else None
    if not url:
        if flag:
            raise CommandError(f"{flag} needs --redis-url rediss://...")
        return None
    scheme = url.partition("://")[0]  # never the rest: a URL may carry the password
    if flag and scheme != "rediss":
        raise CommandError(f"{flag} is for TLS, but --redis-url is {scheme}://...: use rediss://")
    if ca_configmap and (len(ca_configmap) > 253 or not _DNS_SUBDOMAIN.fullmatch(ca_configmap)):
        raise CommandError(f"--redis-ca-configmap {ca_configmap!r}: not a valid ConfigMap name")
    if ca_file:
        _check_ca_file(ca_file)
    return RedisSettings(url, password_secret, ca_configmap=ca_configmap or None)


def _check_ca_file(path: str) -> None:
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise CommandError(f"--redis-ca-file (DAGWRIGHT_REDIS_CA) {path}: no PEM certificate in it") from None
    except OSError as error:
        raise CommandError(f"--redis-ca-file (DAGWRIGHT_REDIS_CA) {path}: {error.strerror or error}") from None


def _cannot_listen(addr: str, port: int) -> str | None:
    """Why the webhook could not listen there, said before kopf starts (it would stop with a traceback)."""
    import socket

    try:
        with socket.create_server((addr, port)):
            return None
    except OSError as error:
        return error.strerror or str(error)


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
