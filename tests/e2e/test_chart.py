"""The Helm chart, against the real API server: lint, server-side dry run, install, and what it allows.

Why: users install operators with Helm; a chart that lints but is refused by the API server, grants more than
the operator needs, or runs pods a restricted namespace rejects, fails them on day one.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from dagwright.k8s import admission, names

from .cluster import plane
from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import Operators
from .ports import free_port

pytestmark = pytest.mark.e2e

CHART = Path(__file__).resolve().parents[2] / "charts" / "dagwright"


@pytest.fixture(scope="module")
def helm() -> Path:
    return plane.install_helm()


def run_helm(helm: Path, kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": kube.kubeconfig, "HOME": str(Path.home()), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(helm), *args], env=env, capture_output=True, text=True, timeout=120)


def rendered(helm: Path, kube: Kube, namespace: str, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "dw", str(CHART), "-n", namespace]
    for value in sets:
        args += ["--set", value]
    result = run_helm(helm, kube, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def scoped_to(namespace: str) -> tuple[str, ...]:
    """An installed release's webhook sees only its own namespace: the plane is shared by the whole session."""
    selector = json.dumps({"matchLabels": {"kubernetes.io/metadata.name": namespace}})
    return ("--set-json", f"webhook.namespaceSelector={selector}")


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


TLS_REDIS = (
    "redis.url=rediss://redis.infra:6380/0",
    "redis.existingSecret=redis-auth",
    "redis.tls.caConfigMap=redis-ca",
)


@pytest.mark.parametrize("sets", [(), TLS_REDIS], ids=["defaults", "redis-tls"])
def test_helm_lint_is_clean(helm: Path, kube: Kube, sets: tuple[str, ...]) -> None:
    result = run_helm(helm, kube, "lint", str(CHART), "--strict", *(arg for value in sets for arg in ("--set", value)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("options", [False, True], ids=["defaults", "options"])
def test_rendered_chart_is_accepted_by_the_api_server(helm: Path, kube: Kube, namespace: str, options: bool) -> None:
    sets = (f"watchNamespaces={{{namespace}}}", "maxRunningNodes=50", "redis.enabled=true") if options else ()
    documents = rendered(helm, kube, namespace, *sets)
    kinds = {doc["kind"] for doc in documents}
    assert {"Deployment", "ServiceAccount", "Service", "ValidatingWebhookConfiguration", "Secret"} <= kinds
    text = yaml.safe_dump_all(documents)
    result = kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)
    assert result.returncode == 0, result.stderr


def test_redis_tls_values_hand_the_operator_the_ca_flag_mount_and_env(helm: Path, kube: Kube, namespace: str) -> None:
    documents = rendered(helm, kube, namespace, *TLS_REDIS)
    (deployment,) = of_kind(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--redis-url=rediss://redis.infra:6380/0" in container["args"]
    assert "--redis-ca-configmap=redis-ca" in container["args"]  # node pods mount it in their own namespaces
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"] == {"name": "redis-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    env = {var["name"]: var for var in container["env"]}
    assert env["DAGWRIGHT_REDIS_CA"]["value"] == f"{mount['mountPath']}/ca.crt"  # the progress feed's CA
    assert env["DAGWRIGHT_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-auth"
    text = yaml.safe_dump_all(documents)
    result = kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=text, check=False)
    assert result.returncode == 0, result.stderr

    (plain,) = of_kind(rendered(helm, kube, namespace), "Deployment")
    (container,) = plain["spec"]["template"]["spec"]["containers"]
    assert not [arg for arg in container["args"] if arg.startswith("--redis")]
    assert "DAGWRIGHT_REDIS_CA" not in {var["name"] for var in container["env"]}


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (("redis.url=redis://redis.infra:6379/0",), "redis.tls.caConfigMap needs redis.url to be rediss://"),
        (("redis.enabled=true",), "the bundled Redis (redis.enabled) serves no TLS"),
    ],
    ids=["plaintext-url", "bundled-redis"],
)
def test_a_redis_ca_without_tls_is_refused_at_render_saying_why(
    helm: Path, kube: Kube, namespace: str, sets: tuple[str, ...], expected: str
) -> None:
    args = ["template", "dw", str(CHART), "-n", namespace, "--set", "redis.tls.caConfigMap=redis-ca"]
    result = run_helm(helm, kube, *args, *(arg for value in sets for arg in ("--set", value)))
    assert result.returncode != 0 and expected in result.stderr, result.stderr


def test_install_establishes_the_crd_and_creates_the_operator(helm: Path, kube: Kube, namespace: str) -> None:
    result = run_helm(
        helm, kube, "install", "dw", str(CHART), "-n", namespace, "--set", "replicas=1", *scoped_to(namespace)
    )
    assert result.returncode == 0, result.stderr
    assert "kubectl apply -f examples/diamond.yaml" in result.stdout  # NOTES tell the next command
    for crd in ("workflows.dagwright.io", "workflowtemplates.dagwright.io"):
        established = kube.kubectl("get", "crd", crd, "-o", "json")
        conditions = {c["type"]: c["status"] for c in json.loads(established.stdout)["status"]["conditions"]}
        assert conditions.get("Established") == "True", crd
    wait_for(
        "the operator Deployment",
        lambda: kube.kubectl("get", "deployment", "dw-dagwright", "-n", namespace, check=False).returncode == 0,
        timeout=30,
    )
    run_helm(helm, kube, "uninstall", "dw", "-n", namespace)


def test_operator_pods_meet_the_restricted_pod_security_standard(helm: Path, kube: Kube, namespace: str) -> None:
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    deployment = next(d for d in rendered(helm, kube, namespace) if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"].pop("serviceAccountName")  # not installed in this test
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-pss"},
        "spec": deployment["spec"]["template"]["spec"],
    }
    accepted = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert accepted.returncode == 0, accepted.stderr
    # The same namespace refuses a pod that is not restricted: the check above is a real one.
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    refused = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    assert refused.returncode != 0 and "restricted" in refused.stderr


def test_the_operator_service_account_can_do_its_job_and_nothing_more(helm: Path, kube: Kube, namespace: str) -> None:
    result = run_helm(
        helm, kube, "install", "dw", str(CHART), "-n", namespace, "--set", "replicas=1", *scoped_to(namespace)
    )
    assert result.returncode == 0, result.stderr
    account = f"system:serviceaccount:{namespace}:dw-dagwright"

    def can(verb: str, resource: str, where: str = namespace) -> bool:
        resource, _, subresource = resource.partition("/")
        extra = [f"--subresource={subresource}"] if subresource else []
        answer = kube.kubectl("auth", "can-i", verb, resource, *extra, "-n", where, "--as", account, check=False)
        return answer.stdout.strip() == "yes"

    assert can("create", "jobs.batch") and can("delete", "jobs.batch") and can("watch", "pods")
    assert can("patch", "workflows.dagwright.io/status") and can("create", "events")
    assert can("update", "leases.coordination.k8s.io")
    assert not can("get", "secrets") and not can("list", "secrets")
    assert not can("create", "pods") and not can("delete", "pods")
    # Workflows' specs are the user's, except the runs a CronWorkflow starts: created, stopped (Replace), deleted.
    assert can("create", "workflows.dagwright.io") and can("patch", "workflows.dagwright.io")
    assert can("watch", "cronworkflows.dagwright.io") and can("patch", "cronworkflows.dagwright.io/status")
    assert not can("patch", "cronworkflows.dagwright.io") and not can("delete", "cronworkflows.dagwright.io")
    assert can("get", "workflowtemplates.dagwright.io") and can("watch", "workflowtemplates.dagwright.io")
    assert not can("patch", "workflowtemplates.dagwright.io") and not can("create", "workflowtemplates.dagwright.io")
    assert not can("update", "leases.coordination.k8s.io", "kube-system")
    assert not can("create", "deployments.apps")
    # The chart writes the webhook configuration itself: the operator may not touch any (kopf's managed mode could).
    for verb in ("create", "patch", "update", "get"):
        assert not can(verb, "validatingwebhookconfigurations.admissionregistration.k8s.io")
    run_helm(helm, kube, "uninstall", "dw", "-n", namespace)


def test_the_webhook_never_blocks_and_trusts_exactly_the_generated_ca(helm: Path, kube: Kube, namespace: str) -> None:
    documents = rendered(helm, kube, namespace)
    (config,) = of_kind(documents, "ValidatingWebhookConfiguration")
    webhook, template_webhook, cron = config["webhooks"]
    assert cron["clientConfig"]["service"]["path"] == f"/{admission.CRON_HANDLER_ID}"
    assert cron["rules"][0]["resources"] == [names.CRON_PLURAL] and cron["failurePolicy"] == "Ignore"
    for each, plural, handler in (
        (webhook, "workflows", admission.HANDLER_ID),
        (template_webhook, "workflowtemplates", admission.TEMPLATE_HANDLER_ID),
    ):
        assert each["name"] == f"validate.{plural}.dagwright.io"
        assert each["failurePolicy"] == "Ignore" and each["sideEffects"] == "None"
        assert each["timeoutSeconds"] <= 10
        (rule,) = each["rules"]
        assert rule["operations"] == ["CREATE", "UPDATE"]  # DELETE is never intercepted
        assert (rule["apiGroups"], rule["apiVersions"], rule["resources"]) == ([names.GROUP], [names.VERSION], [plural])
        assert each["clientConfig"]["service"]["path"] == f"/{handler}"  # kopf serves each handler at /<id>
        assert each["clientConfig"]["caBundle"] == webhook["clientConfig"]["caBundle"]
        assert "namespaceSelector" not in each  # all namespaces, like the operator itself
    service = webhook["clientConfig"]["service"]

    (secret,) = [doc for doc in of_kind(documents, "Secret") if doc["metadata"]["name"] == "dw-dagwright-webhook-tls"]
    assert webhook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{service['name']}.{namespace}.svc" in sans.get_values_for_type(x509.DNSName)
    assert service["name"] in {doc["metadata"]["name"] for doc in of_kind(documents, "Service")}

    (deployment,) = of_kind(documents, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert (
        "--webhook-port=9443" in container["args"] and {"name": "webhook", "containerPort": 9443} in container["ports"]
    )

    watching = of_kind(
        rendered(helm, kube, namespace, f"watchNamespaces={{{namespace}}}"), "ValidatingWebhookConfiguration"
    )
    for each in watching[0]["webhooks"]:
        (expression,) = each["namespaceSelector"]["matchExpressions"]
        assert expression["values"] == [namespace]

    disabled = rendered(helm, kube, namespace, "webhook.enabled=false")
    assert not of_kind(disabled, "ValidatingWebhookConfiguration")
    assert "dw-dagwright-webhook-tls" not in {doc["metadata"]["name"] for doc in of_kind(disabled, "Secret")}
    (container,) = of_kind(disabled, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert not [arg for arg in container["args"] if arg.startswith("--webhook")]


def test_an_upgrade_keeps_the_webhook_certificate(helm: Path, kube: Kube, namespace: str) -> None:
    def installed_ca() -> tuple[str, str]:
        secret = kube.kubectl("get", "secret", "dw-dagwright-webhook-tls", "-n", namespace, "-o", "json")
        config = kube.kubectl("get", "validatingwebhookconfiguration", "dw-dagwright", "-o", "json")
        return json.loads(secret.stdout)["data"]["ca.crt"], json.loads(config.stdout)["webhooks"][0]["clientConfig"][
            "caBundle"
        ]

    scope = scoped_to(namespace)
    try:
        assert run_helm(helm, kube, "install", "dw", str(CHART), "-n", namespace, *scope).returncode == 0
        ca, bundle = installed_ca()
        assert ca == bundle
        upgrade = run_helm(helm, kube, "upgrade", "dw", str(CHART), "-n", namespace, "--set", "workers=8", *scope)
        assert upgrade.returncode == 0, upgrade.stderr
        assert installed_ca() == (ca, ca)  # a new CA would leave running pods serving a certificate it did not sign
    finally:
        run_helm(helm, kube, "uninstall", "dw", "-n", namespace)


def test_the_operator_serves_the_charts_certificate_at_the_charts_path(
    helm: Path, kube: Kube, namespace: str, operators: Operators, tmp_path: Path
) -> None:
    """What the API server does through the Service, done from here: TLS checked against the chart's CA for the
    Service's DNS name, then an AdmissionReview POSTed to the chart's path."""
    documents = rendered(helm, kube, namespace)
    secret = next(d for d in of_kind(documents, "Secret") if d["metadata"]["name"] == "dw-dagwright-webhook-tls")
    for key, value in secret["data"].items():
        (tmp_path / key).write_bytes(base64.b64decode(value))
    webhook, template_webhook, _ = of_kind(documents, "ValidatingWebhookConfiguration")[0]["webhooks"]
    service = webhook["clientConfig"]["service"]
    port = free_port()
    operator = operators.start(
        "--webhook-port", str(port), "--webhook-addr", "127.0.0.1", "--webhook-cert-dir", str(tmp_path)
    )
    context = ssl.create_default_context(cadata=base64.b64decode(webhook["clientConfig"]["caBundle"]).decode())
    cyclic = {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": "Workflow",
        "metadata": {"name": "cyclic", "namespace": namespace},
        "spec": {"defaults": {"image": "busybox"}, "nodes": [{"name": "a", "dependsOn": ["a"]}]},
    }
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e-1",
            "kind": {"group": names.GROUP, "version": names.VERSION, "kind": "Workflow"},
            "resource": {"group": names.GROUP, "version": names.VERSION, "resource": names.PLURAL},
            "operation": "CREATE",
            "userInfo": {"username": "e2e"},
            "object": cyclic,
        },
    }

    def answer(path: str = service["path"], review: dict[str, Any] = review) -> dict[str, Any] | None:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return None
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
        connection.sock = context.wrap_socket(raw, server_hostname=f"{service['name']}.{namespace}.svc")
        connection.request("POST", path, json.dumps(review), {"Content-Type": "application/json"})
        response = connection.getresponse()
        body: dict[str, Any] = json.loads(response.read())
        connection.close()
        return body

    result = wait_for("the operator's webhook to answer", answer, timeout=60, interval=0.5)["response"]
    assert result["uid"] == "e2e-1" and result["allowed"] is False
    assert result["status"]["message"] == "invalid spec: spec.nodes[0].dependsOn[0]: node 'a' depends on itself"
    assert result["status"]["code"] == 422
    # The WorkflowTemplate handler at the chart's second path: the same checks.
    review["request"]["object"] = {**cyclic, "kind": "WorkflowTemplate"}
    review["request"]["resource"]["resource"] = names.TEMPLATE_PLURAL
    template_answer = answer(template_webhook["clientConfig"]["service"]["path"], review)
    assert template_answer is not None and template_answer["response"]["allowed"] is False
    assert "node 'a' depends on itself" in template_answer["response"]["status"]["message"]
    assert operator.alive(), operator.tail()


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "actions"])
def test_the_in_cluster_ui_reads_and_only_acts_when_told(
    helm: Path, kube: Kube, namespace: str, read_only: bool
) -> None:
    sets = ("ui.enabled=true", f"ui.readOnly={str(read_only).lower()}", f"watchNamespaces={{{namespace}}}")
    lint = run_helm(helm, kube, "lint", str(CHART), "--strict", *(a for value in sets for a in ("--set", value)))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    documents = rendered(helm, kube, namespace, *sets)
    (ui,) = [doc for doc in of_kind(documents, "Deployment") if doc["metadata"]["name"] == "dw-dagwright-ui"]
    container = ui["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["dagwright", "ui"]
    assert ("--read-only" in container["args"]) is read_only
    assert ui["spec"]["template"]["spec"]["serviceAccountName"] == "dw-dagwright-ui"
    # Only the UI's objects: the rest of the chart (its webhook configuration) would reach the whole shared plane.
    text = yaml.safe_dump_all([doc for doc in documents if doc["metadata"]["name"] == "dw-dagwright-ui"])
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", input=text, check=False)
    assert result.returncode == 0, result.stderr
    assert "role.rbac.authorization.k8s.io/dw-dagwright-ui created" in result.stdout  # namespaced, not cluster-wide
    account = f"system:serviceaccount:{namespace}:dw-dagwright-ui"

    def can(verb: str, resource: str) -> bool:
        resource, _, subresource = resource.partition("/")
        extra = [f"--subresource={subresource}"] if subresource else []
        answer = kube.kubectl("auth", "can-i", verb, resource, *extra, "-n", namespace, "--as", account, check=False)
        return answer.stdout.strip() == "yes"

    assert can("list", "workflows.dagwright.io") and can("watch", "jobs.batch") and can("get", "pods/log")
    assert can("patch", "workflows.dagwright.io") is not read_only
    assert not can("delete", "workflows.dagwright.io") and not can("create", "workflows.dagwright.io")
    assert not can("get", "secrets") and not can("patch", "workflows.dagwright.io/status")
    assert not can("create", "jobs.batch") and not can("delete", "pods")
