"""The validating admission webhook, through the real API server: `kubectl apply` of a Workflow the operator would
fail is refused at once, naming the field; a webhook that is down blocks nothing.

Each test runs `dagwright operator --webhook-port P --webhook-manage NAME`, which serves on 127.0.0.1 with a
self-signed certificate and registers a ValidatingWebhookConfiguration scoped (namespaceSelector) to the test's
namespace: the configuration is cluster-wide and the control plane is shared by the whole session, so other
tests never see it. The fixture deletes it at teardown, whatever happened to the operator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import yaml

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    OperatorProcess,
    Operators,
    apply,
    dagwright,
    get_workflow,
    list_jobs,
    node,
    wait_phase,
    workflow,
)
from .ports import free_port
from .test_bad_input import FAILED_AS_INVALID_SPEC, manifest

pytestmark = pytest.mark.e2e

CYCLE = "spec.nodes[0].dependsOn[0]: dependency cycle: a -> b -> c -> a"
StartWebhook = Callable[..., OperatorProcess]


def cyclic(name: str = "cyclic") -> dict[str, object]:
    return workflow(name, [node("a", "c"), node("b", "a"), node("c", "b")])


def kubectl_apply(kube: Kube, namespace: str, body: dict[str, object], *extra: str) -> tuple[int, str, float]:
    """`kubectl apply` as a user types it: exit code, stderr, and how long it took."""
    started = time.monotonic()
    result = kube.kubectl("apply", "-n", namespace, *extra, "-f", "-", input=yaml.safe_dump(body), check=False)
    return result.returncode, result.stderr, time.monotonic() - started


def stored_names(kube: Kube, namespace: str) -> set[str]:
    listed = kube.kubectl("get", "workflows", "-n", namespace, "-o", "name").stdout.split()
    return {item.split("/", 1)[1] for item in listed}


@pytest.fixture
def webhook(kube: Kube, namespace: str, operators: Operators) -> Iterator[StartWebhook]:
    """Starts an operator serving the webhook and waits until the API server consults it."""
    configuration = f"dagwright-{namespace}"

    def start(*extra: str, manage: bool = True, leader_election: bool = False) -> OperatorProcess:
        flags = ["--webhook-port", str(free_port()), "--webhook-addr", "127.0.0.1"]
        flags += ["--webhook-manage", configuration] if manage else []
        process = operators.start(*flags, *extra, leader_election=leader_election)
        if manage:
            # The API server reads webhook configurations from an informer: poll with a dry run until it refuses.
            wait_for(
                "the API server to consult the webhook",
                lambda: kubectl_apply(kube, namespace, cyclic("probe"), "--dry-run=server")[0] != 0,
                timeout=60,
                interval=0.5,
            )
        return process

    try:
        yield start
    finally:
        kube.kubectl("delete", "validatingwebhookconfiguration", configuration, "--ignore-not-found", check=False)


def test_a_cyclic_dag_is_refused_at_once_naming_the_field_and_the_cycle(
    kube: Kube, namespace: str, webhook: StartWebhook
) -> None:
    process = webhook()
    code, stderr, seconds = kubectl_apply(kube, namespace, cyclic())
    assert code != 0
    assert 'admission webhook "validate.workflows.dagwright.io" denied the request' in stderr, stderr
    assert f"invalid spec: {CYCLE}" in stderr, stderr
    assert seconds < 3, f"the refusal took {seconds:.2f}s"
    assert stored_names(kube, namespace) == set()
    assert f"refused CREATE of workflow {namespace}/cyclic: invalid spec: {CYCLE}" in process.log(), process.tail()
    assert "Traceback" not in process.log() and " ERROR " not in process.log(), process.tail()
    process.stop()  # SIGTERM: a clean exit removes the configuration it registered
    gone = kube.kubectl("get", "validatingwebhookconfiguration", f"dagwright-{namespace}", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout


def test_every_problem_the_schema_cannot_see_is_refused_with_its_field(
    kube: Kube, namespace: str, webhook: StartWebhook
) -> None:
    # One operator for the whole table (a loop, not parametrize): the fixtures start one per test.
    webhook()
    wrong = []
    for name, fields, text, field in FAILED_AS_INVALID_SPEC:
        code, stderr, _ = kubectl_apply(kube, namespace, manifest(name, **fields))
        if code == 0 or f"{field}: " not in stderr or text not in stderr:
            wrong.append((name, code, stderr))
    assert wrong == []
    assert stored_names(kube, namespace) == set()


def test_a_valid_workflow_is_admitted_and_runs_and_an_update_that_breaks_it_is_refused(
    kube: Kube, namespace: str, webhook: StartWebhook
) -> None:
    webhook()
    apply(kube, namespace, workflow("pair", [node("a"), node("b", "a")]))
    assert wait_phase(kube, namespace, "pair", "Succeeded", "Failed", timeout=120)["phase"] == "Succeeded"

    code, stderr, _ = kubectl_apply(kube, namespace, workflow("pair", [node("a", "b"), node("b", "a")]))
    assert code != 0 and "spec.nodes[0].dependsOn[0]: dependency cycle: a -> b -> a" in stderr, stderr
    stored = get_workflow(kube, namespace, "pair")
    assert stored is not None and "dependsOn" not in stored["spec"]["nodes"][0]


def test_a_webhook_that_is_down_blocks_nothing_and_invalid_specs_are_still_caught(
    kube: Kube, namespace: str, webhook: StartWebhook
) -> None:
    first = webhook()
    first.kill()  # SIGKILL: its configuration stays registered, pointing at a closed port

    valid = workflow("valid", [node("a")])
    code, stderr, seconds = kubectl_apply(kube, namespace, valid)
    assert code == 0, stderr
    assert seconds < 3, f"admission with the webhook down took {seconds:.2f}s"
    code, stderr, _ = kubectl_apply(kube, namespace, cyclic())
    assert code == 0, stderr  # failurePolicy Ignore: stored, for the operator to judge
    kube.kubectl("delete", "workflow", "valid", "-n", namespace, "--timeout=30s")
    assert stored_names(kube, namespace) == {"cyclic"}

    webhook()  # back up: it reconciles the stored cyclic workflow the old way
    status = wait_phase(kube, namespace, "cyclic", "Failed", timeout=30)
    assert CYCLE in status["message"]
    assert next(c for c in status["conditions"] if c["type"] == "Succeeded")["reason"] == "InvalidSpec"
    assert list_jobs(kube, namespace, "cyclic") == []

    # A stored invalid workflow stays under its owner's control: stop (a spec update) and delete go through...
    dagwright(kube, "stop", "cyclic", "-n", namespace)
    stored = get_workflow(kube, namespace, "cyclic")
    assert stored is not None and stored["spec"]["stopped"] is True
    # ...but an update that adds a problem it did not have is refused.
    duplicate = '[{"op": "add", "path": "/spec/nodes/-", "value": {"name": "a", "command": ["true"]}}]'
    refused = kube.kubectl("patch", "workflow", "cyclic", "-n", namespace, "--type=json", "-p", duplicate, check=False)
    assert refused.returncode != 0 and "spec.nodes[3].name: duplicate node name 'a'" in refused.stderr
    kube.kubectl("delete", "workflow", "cyclic", "-n", namespace, "--timeout=30s")
    assert stored_names(kube, namespace) == set()


def test_a_standby_replica_serves_the_webhook_too(kube: Kube, namespace: str, webhook: StartWebhook) -> None:
    leader = webhook(manage=False, leader_election=True)
    wait_for("the first replica to lead", lambda: "became the leader" in leader.log(), timeout=30)
    standby = webhook(leader_election=True)  # only the standby's address is registered
    code, stderr, _ = kubectl_apply(kube, namespace, cyclic())
    assert code != 0 and CYCLE in stderr, stderr
    assert "became the leader" not in standby.log(), standby.tail()


def test_a_cron_workflow_with_a_bad_schedule_or_workflow_is_refused_naming_the_fields(
    kube: Kube, namespace: str, webhook: StartWebhook
) -> None:
    webhook()
    bad = {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "30 2 * *",
            "timezone": "Europe/Berln",
            "workflow": cyclic()["spec"],
        },
    }
    code, stderr, _ = kubectl_apply(kube, namespace, bad)
    assert code != 0
    assert 'admission webhook "validate.cronworkflows.dagwright.io" denied the request' in stderr
    assert "spec.schedule: '30 2 * *' has 4 fields" in stderr
    assert "spec.timezone: unknown time zone 'Europe/Berln'" in stderr
    assert "spec.workflow." + CYCLE.removeprefix("spec.") in stderr
    assert kube.kubectl("get", "dwc", "-n", namespace, "-o", "name").stdout.strip() == ""
    fixed = {**bad, "spec": {**bad["spec"], "schedule": "30 2 * * *", "timezone": "Europe/Berlin"}}
    fixed["spec"]["workflow"] = workflow("x", [node("a")])["spec"]
    assert kubectl_apply(kube, namespace, fixed)[0] == 0


def test_templates_are_checked_and_a_run_naming_an_undeclared_parameter_is_refused(
    kube: Kube, namespace: str, webhook: StartWebhook
) -> None:
    webhook()
    template = workflow("etl", [node("extract", args=["{{ params.date }}"])], parameters={"date": "today"})
    template["kind"] = "WorkflowTemplate"
    broken = {**template, "metadata": {"name": "broken"}}
    broken["spec"] = {**template["spec"], "nodes": [node("a", "b"), node("b", "a")]}
    code, stderr, _ = kubectl_apply(kube, namespace, broken)
    assert code != 0 and 'admission webhook "validate.workflowtemplates.dagwright.io" denied' in stderr, stderr
    assert "spec.nodes[0].dependsOn[0]: dependency cycle: a -> b -> a" in stderr, stderr
    assert kubectl_apply(kube, namespace, template)[0] == 0

    def run(name: str, template_name: str, **parameters: str) -> dict[str, object]:
        spec = {"templateRef": {"name": template_name}, "parameters": parameters}
        return {"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec}

    code, stderr, _ = kubectl_apply(kube, namespace, run("typo", "etl", dat="2026-11-29"))
    assert code != 0 and 'admission webhook "validate.workflows.dagwright.io" denied' in stderr, stderr
    assert "spec.parameters.dat: WorkflowTemplate 'etl' declares no parameter 'dat' (it declares: date)" in stderr
    # A template may come after the Workflows that run it: admitted, and InvalidSpec only if still missing later.
    assert kubectl_apply(kube, namespace, run("early", "later", x="1"))[0] == 0
    assert kubectl_apply(kube, namespace, run("fine", "etl", date="2026-11-29"))[0] == 0
    assert stored_names(kube, namespace) == {"early", "fine"}

    cron = {"apiVersion": "dagwright.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "nightly-etl"}}
    cron["spec"] = {"schedule": "30 2 * * *", "workflow": run("x", "etl", dat="today")["spec"]}
    code, stderr, _ = kubectl_apply(kube, namespace, cron)
    assert code != 0 and 'admission webhook "validate.cronworkflows.dagwright.io" denied' in stderr, stderr
    assert "spec.workflow.parameters.dat: WorkflowTemplate 'etl' declares no parameter 'dat'" in stderr, stderr
    cron["spec"]["workflow"] = run("x", "etl", date="today")["spec"]
    assert kubectl_apply(kube, namespace, cron)[0] == 0
