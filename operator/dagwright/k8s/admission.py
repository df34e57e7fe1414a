"""The validating admission webhook: `kubectl apply` of a Workflow the operator would fail is refused at once.

What it checks is exactly what a reconcile pass checks (`reconcile.compile_body`: the schema's rules again, the
graph, templates, the cluster's image rule), so the webhook and the InvalidSpec status can never disagree; the
InvalidSpec path stays, for objects stored while the webhook was down or before it existed.

CREATE and UPDATE only, and an UPDATE is refused only for problems the stored object did not already have: a
Workflow stored with an invalid spec can still be stopped, paused, relabelled, freed of finalizers or fixed, and
DELETE is never intercepted. Every webhook configuration dagwright writes (the chart's, or `--webhook-manage`'s
for development) has failurePolicy Ignore: a webhook that is down or slow admits, and the operator's InvalidSpec
path catches what it would have refused.

Certificates: the chart generates a CA and a serving certificate into a Secret mounted at `--webhook-cert-dir`;
kopf reloads the files when they change. Without a directory (a developer's operator next to a local API server)
a self-signed certificate for `--webhook-host` is made at start-up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import kopf

from dagwright.errors import Problem, SpecError
from dagwright.k8s import names
from dagwright.k8s.cron import check as check_cron
from dagwright.k8s.reconcile import compile_body, compile_template_body
from dagwright.validation import parse_spec, parse_template_spec, template_field

log = logging.getLogger("dagwright.admission")

HANDLER_ID = "validate-workflow"  # kopf serves a handler at /<id>: the chart's webhook path must be this
WEBHOOK_NAME = "validate.workflows.dagwright.io"  # what kubectl prints: `admission webhook "..." denied ...`
CRON_HANDLER_ID = "validate-cronworkflow"
CRON_WEBHOOK_NAME = "validate.cronworkflows.dagwright.io"
TEMPLATE_HANDLER_ID = "validate-workflowtemplate"
TEMPLATE_WEBHOOK_NAME = "validate.workflowtemplates.dagwright.io"
TIMEOUT_SECONDS = 5
MAX_REPORTED = 20  # a 10,000-node manifest with one typo repeated must not make a megabyte error message
OPERATIONS: tuple[Literal["CREATE", "UPDATE"], ...] = ("CREATE", "UPDATE")


# -- the decision (plain functions: unit-tested without a cluster)


# (namespace, name) -> the WorkflowTemplate object, or None when there is none (the webhook reads the API server).
TemplateLookup = Callable[[str, str], Mapping[str, Any] | None]


def problems_of(body: Mapping[str, Any], templates: TemplateLookup | None = None) -> list[Problem]:
    """Every problem the operator would fail this Workflow for; empty when it would run.

    A template-based Workflow is checked against its template as it is now (an undeclared parameter, the
    template's nodes on a cluster). One whose template does not exist (yet) is admitted: templates and the
    Workflows that run them are often applied together, in any order; if the template is still missing when the
    operator first reconciles the Workflow, it ends Failed with reason InvalidSpec.
    """
    try:
        spec = parse_spec(body.get("spec"))
        template = None
        ref = spec.template_ref
        if ref is not None:
            namespace = (body.get("metadata") or {}).get("namespace") or ""
            found = templates(namespace, ref.name) if templates is not None else None
            if found is None:
                return []
            template = parse_template_spec(found.get("spec"), prefix=template_field(ref.name))
        compile_body(dict(body), spec=spec, template=template)
    except SpecError as error:
        return error.problems
    return []


def template_problems_of(body: Mapping[str, Any]) -> list[Problem]:
    """Every problem a Workflow running this WorkflowTemplate (with its default parameters) would fail for."""
    try:
        compile_template_body(dict(body))
    except SpecError as error:
        return error.problems
    return []


def cron_problems_of(body: Mapping[str, Any], templates: TemplateLookup | None = None) -> list[Problem]:
    """Every problem the operator would refuse this CronWorkflow for (`cron.check`): its own fields, and its
    `spec.workflow` checked exactly as a Workflow is (against its WorkflowTemplate, when that exists now)."""
    try:
        check_cron(dict(body), templates)
    except SpecError as error:
        return error.problems
    return []


def review(
    operation: str,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None = None,
    problems: Callable[[Mapping[str, Any]], list[Problem]] = problems_of,
) -> list[Problem]:
    """The problems to refuse this request for; empty admits it.

    On UPDATE only problems the stored object did not have count: the object's owner must be able to stop,
    pause, relabel or delete a Workflow that was stored invalid (before the webhook existed, or while it was
    down), and a partial fix is progress. Unchanged specs (metadata-only updates, finalizer removal) and objects
    being deleted are admitted without compiling anything.
    """
    if operation not in OPERATIONS or new is None:
        return []
    if (new.get("metadata") or {}).get("deletionTimestamp"):
        return []
    if operation == "CREATE" or old is None:
        return problems(new)
    if new.get("spec") == old.get("spec"):
        return []
    before = {str(problem) for problem in problems(old)}
    return [problem for problem in problems(new) if str(problem) not in before]


def refusal(problems: list[Problem]) -> str:
    """One message naming every field (up to MAX_REPORTED), worded like the InvalidSpec status message."""
    shown = "; ".join(str(problem) for problem in problems[:MAX_REPORTED])
    more = len(problems) - MAX_REPORTED
    return "invalid spec: " + shown + (f"; and {more} more" if more > 0 else "")


def register(registry: kopf.OperatorRegistry, templates: TemplateLookup | None = None) -> None:
    """Add the validating handlers; only when a webhook server is configured (kopf refuses to run otherwise).
    `templates`: how a Workflow's WorkflowTemplate is read (default: from the API server)."""
    lookup = templates or _template_reader()

    def workflow_problems(body: Mapping[str, Any]) -> list[Problem]:
        return problems_of(body, lookup)

    def cron_problems(body: Mapping[str, Any]) -> list[Problem]:
        return cron_problems_of(body, lookup)

    for plural, handler_id, kind, check in (
        (names.PLURAL, HANDLER_ID, "workflow", workflow_problems),
        (names.TEMPLATE_PLURAL, TEMPLATE_HANDLER_ID, "workflowtemplate", template_problems_of),
        (names.CRON_PLURAL, CRON_HANDLER_ID, "cronworkflow", cron_problems),
    ):
        kopf.on.validate(
            names.GROUP,
            names.VERSION,
            plural,
            id=handler_id,
            operations=list(OPERATIONS),
            ignore_failures=True,
            registry=registry,
        )(_validator(kind, check))


def _validator(kind: str, check: Callable[[Mapping[str, Any]], list[Problem]]) -> Callable[..., None]:
    def validate(*, operation: str | None = None, new: Any = None, old: Any = None, **_: Any) -> None:
        # Sync on purpose: kopf runs it in a thread, so compiling a 10,000-node spec does not stall the watches.
        try:
            problems = review(operation or "", new, old, check)
        except Exception as error:  # a bug here must not refuse every object: admit, as failurePolicy would
            log.warning("admission review failed (%s: %s); admitting", type(error).__name__, error)
            return
        if problems:
            message = refusal(problems)
            meta = (new or {}).get("metadata") or {}
            log.info(
                "refused %s of %s %s/%s: %s",
                operation,
                kind,
                meta.get("namespace", ""),
                meta.get("name", ""),
                message,
                extra={"namespace": meta.get("namespace"), "workflow": meta.get("name")},
            )
            raise kopf.AdmissionError(message, code=422)

    validate.__name__ = validate.__qualname__ = f"validate_{kind}"
    return validate


def _template_reader() -> TemplateLookup:
    """A WorkflowTemplate GET per review of a template-based Workflow, with a client made on first use."""
    api: list[Any] = []

    def read(namespace: str, name: str) -> Mapping[str, Any] | None:
        if not api:
            from dagwright.k8s.client import KubeApi, load_config

            api.append(KubeApi(load_config()))
        found: Mapping[str, Any] | None = api[0].get_workflow_template(namespace, name)
        return found

    return read


class _QuietRefusals(logging.Filter):
    """kopf logs every refusal as an ERROR ("Webhook ... failed permanently"): a user's typo is no operator error.

    The handler logs its own INFO line instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(message.startswith(f"Webhook {name!r} failed permanently") for name in _HANDLER_IDS)


_HANDLER_IDS = (HANDLER_ID, TEMPLATE_HANDLER_ID, CRON_HANDLER_ID)


def quiet_kopf_refusals() -> None:
    logging.getLogger("kopf.objects").addFilter(_QuietRefusals())


# -- serving


@dataclass(frozen=True)
class WebhookSettings:
    port: int
    addr: str = "0.0.0.0"
    host: str | None = None  # the name/IP the API server dials (URL and certificate); default: addr
    cert_dir: Path | None = None  # tls.crt, tls.key and optionally ca.crt (the chart's Secret)
    manage: str | None = None  # name of a ValidatingWebhookConfiguration to create at start and delete at exit
    namespaces: list[str] = field(default_factory=list)  # scope of a managed configuration; empty: all

    @property
    def dial_host(self) -> str:
        return self.host or ("127.0.0.1" if self.addr in ("", "0.0.0.0") else self.addr)


class WebhookServer(kopf.WebhookServer):
    """kopf's HTTPS server, telling us the address and CA it serves with once it listens (to register them)."""

    def __init__(self, *, on_listening: Callable[[kopf.WebhookClientConfig], Awaitable[None]], **kwargs: Any):
        super().__init__(**kwargs)
        self.on_listening = on_listening

    async def __call__(self, fn: Any) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            await self.on_listening(client_config)
            yield client_config


class Webhook:
    """The server's certificate files and, with `manage`, the configuration that points the API server at it."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.generated: Path | None = None
        self.registered = False

    def server(self) -> WebhookServer:
        certfile, pkeyfile, cafile = self._certificate_files()
        return WebhookServer(
            addr=self.settings.addr,
            port=self.settings.port,
            host=self.settings.dial_host,
            certfile=certfile,
            pkeyfile=pkeyfile,
            cafile=cafile,
            on_listening=self._listening,
        )

    def _certificate_files(self) -> tuple[Path, Path, Path | None]:
        directory = self.settings.cert_dir
        if directory is not None:
            ca = directory / "ca.crt"
            return directory / "tls.crt", directory / "tls.key", ca if ca.exists() else None
        self.generated = Path(tempfile.mkdtemp(prefix="dagwright-webhook-"))
        cert, key = self_signed([self.settings.dial_host])
        (self.generated / "tls.crt").write_bytes(cert)
        key_path = self.generated / "tls.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        log.info("webhook: generated a self-signed certificate for %s", self.settings.dial_host)
        return self.generated / "tls.crt", key_path, None

    async def _listening(self, client_config: kopf.WebhookClientConfig) -> None:
        url = f"{str(client_config.get('url', '')).rstrip('/')}/{HANDLER_ID}"
        log.info("webhook: serving admission reviews at %s", url)
        if self.settings.manage:
            ca_bundle = client_config.get("caBundle") or ""
            body = configuration(self.settings.manage, url, ca_bundle, self.settings.namespaces)
            await asyncio.get_running_loop().run_in_executor(None, _create_or_replace, body)
            self.registered = True

    def close(self) -> None:
        """At a clean exit: remove a managed configuration (a killed operator leaves it, harmless: Ignore)."""
        if self.registered and self.settings.manage:
            _delete(self.settings.manage)
        if self.generated is not None:
            shutil.rmtree(self.generated, ignore_errors=True)


def configuration(name: str, url: str, ca_bundle: str, namespaces: list[str]) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration `--webhook-manage` writes: the chart's, with a URL instead of a Service."""
    webhooks = [
        _webhook(WEBHOOK_NAME, url, ca_bundle, names.PLURAL, namespaces),
        _webhook(
            TEMPLATE_WEBHOOK_NAME, _sibling(url, TEMPLATE_HANDLER_ID), ca_bundle, names.TEMPLATE_PLURAL, namespaces
        ),
        _webhook(CRON_WEBHOOK_NAME, _sibling(url, CRON_HANDLER_ID), ca_bundle, names.CRON_PLURAL, namespaces),
    ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY}},
        "webhooks": webhooks,
    }


def _sibling(url: str, handler_id: str) -> str:
    """The URL of another handler of the same server (kopf serves each at /<id>)."""
    return url.rsplit("/", 1)[0] + "/" + handler_id


def _webhook(name: str, url: str, ca_bundle: str, plural: str, namespaces: list[str]) -> dict[str, Any]:
    webhook: dict[str, Any] = {
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [
            {
                "apiGroups": [names.GROUP],
                "apiVersions": [names.VERSION],
                "resources": [plural],
                "operations": list(OPERATIONS),
                "scope": "Namespaced",
            }
        ],
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "admissionReviewVersions": ["v1"],
        "matchPolicy": "Equivalent",
    }
    if namespaces:  # an operator watching some namespaces validates only those (another may own the rest)
        selector = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(namespaces)}
        webhook["namespaceSelector"] = {"matchExpressions": [selector]}
    return webhook


_WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


def _connection() -> Any:
    from dagwright.k8s.client import load_config

    return load_config()


def _create_or_replace(body: dict[str, Any]) -> None:
    from dagwright.k8s.connection import ApiError

    connection = _connection()
    name = body["metadata"]["name"]
    try:
        connection.request("POST", _WEBHOOKS, body=body)
    except ApiError as error:
        if error.status != 409:
            raise
        current = connection.request("GET", f"{_WEBHOOKS}/{name}")
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        connection.request("PUT", f"{_WEBHOOKS}/{name}", body=body)
    log.info("webhook: ValidatingWebhookConfiguration %s registered", name)


def _delete(name: str) -> None:
    from dagwright.k8s.connection import ApiError

    try:
        _connection().request("DELETE", f"{_WEBHOOKS}/{name}")
    except ApiError as error:
        if error.status != 404:
            log.warning("webhook: could not delete ValidatingWebhookConfiguration %s: %s", name, error.reason)


def self_signed(hosts: list[str], days: int = 365) -> tuple[bytes, bytes]:
    """A certificate (PEM) and its key for `hosts`, as IP or DNS subject alternative names.

    The API server checks SANs only (never the common name), and trusts this certificate through the caBundle.
    Made with `cryptography`: kopf's own self-signing needs `certbuilder`/`oscrypto`, unmaintained and broken
    with OpenSSL 3.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"dagwright webhook {hosts[0]}")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), pem_key
