"""`dagwright operator`: its flags, checked before start-up, then the kopf operator of `dagwright.k8s.operator`.

A flag mistake (a Redis CA without TLS, a webhook port taken, a certificate directory without its files) is one
line on stderr and exit code 2 here, not a traceback once kopf has started. kopf and the kubernetes client are
imported only when the verb runs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagwright.k8s.commands import CommandError

if TYPE_CHECKING:
    from dagwright.k8s.jobs import RedisSettings


def register(commands: Any) -> None:
    """Add `operator` to the `dagwright` parser."""
    operator = commands.add_parser("operator", help="run the Kubernetes operator (watches Workflows)")
    operator.add_argument("--namespace", action="append", default=[], help="watch only these (repeatable)")
    operator.add_argument("--max-running-nodes", type=int, default=None, help="operator-wide running attempts cap")
    operator.add_argument("--workers", type=int, default=4, help="reconciles running at once")
    operator.add_argument(
        "--status-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="one workflow's status writes at least this far apart (0: at once); a workflow's end is written at once",
    )
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


def _operator(args: argparse.Namespace) -> int:
    from dagwright.k8s import connection

    connection.keep_client_library_out()  # before kopf is imported: the operator has no use for the package
    from dagwright.k8s import collector, operator
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
        status_interval=max(0.0, args.status_interval),
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
    collector.tune()
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
