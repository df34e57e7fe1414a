"""The admission webhook's decisions: what `kubectl apply` is refused for, and what must always get through."""

from __future__ import annotations

import copy
import logging
import ssl
from pathlib import Path
from typing import Any

import kopf
import pytest
from builders import manifest, node
from cryptography import x509

from dagwright.k8s import admission
from dagwright.k8s.admission import refusal, review

IMAGE = {"image": "busybox:1.36"}


def valid() -> dict[str, Any]:
    return manifest([node("a", **IMAGE), node("b", "a", **IMAGE), node("c", "b", **IMAGE)])


def cyclic() -> dict[str, Any]:
    return manifest([node("a", "c", **IMAGE), node("b", "a", **IMAGE), node("c", "b", **IMAGE)])


def texts(problems: list[Any]) -> list[str]:
    return [str(problem) for problem in problems]


def test_a_valid_workflow_is_admitted() -> None:
    assert review("CREATE", valid()) == []


def test_a_cycle_is_refused_naming_the_field_and_the_cycle() -> None:
    problems = review("CREATE", cyclic())
    assert texts(problems) == ["spec.nodes[0].dependsOn[0]: dependency cycle: a -> b -> c -> a"]
    assert refusal(problems) == "invalid spec: spec.nodes[0].dependsOn[0]: dependency cycle: a -> b -> c -> a"


def test_the_cluster_rule_applies_too_a_node_without_image() -> None:
    assert texts(review("CREATE", manifest([node("a")]))) == [
        "spec.nodes[0].image: node 'a' needs an image on Kubernetes (or spec.defaults.image)"
    ]


def test_the_old_retry_key_as_kubectl_sends_it_is_refused_naming_the_new_one() -> None:
    """kubectl's YAML 1.1 turns `retry: {on: Transient}` into the key "true"; the CRD keeps it for this check."""
    body = manifest([node("a", **IMAGE), node("b", **IMAGE), node("c", retry={"true": "Transient"}, **IMAGE)])
    (problem,) = texts(review("CREATE", body))
    assert problem.startswith("spec.nodes[2].retry.on: renamed to retry.policy")


def test_every_problem_is_reported_not_just_the_first() -> None:
    body = manifest([node("a", "ghost", **IMAGE), node("b", "b", **IMAGE), node("a", **IMAGE)])
    assert texts(review("CREATE", body)) == [
        "spec.nodes[2].name: duplicate node name 'a'",
        "spec.nodes[0].dependsOn[0]: node 'a' depends on unknown node 'ghost'",
        "spec.nodes[1].dependsOn[0]: node 'b' depends on itself",
    ]


def test_an_update_that_breaks_a_valid_workflow_is_refused() -> None:
    assert texts(review("UPDATE", cyclic(), valid())) == [
        "spec.nodes[0].dependsOn[0]: dependency cycle: a -> b -> c -> a"
    ]


def test_a_stored_invalid_workflow_can_still_be_stopped_paused_and_relabelled() -> None:
    stored = cyclic()
    for change in ({"stopped": True}, {"paused": True}):
        updated = copy.deepcopy(stored)
        updated["spec"].update(change)
        assert review("UPDATE", updated, stored) == [], change
    relabelled = copy.deepcopy(stored)
    relabelled["metadata"]["labels"] = {"team": "data"}
    assert review("UPDATE", relabelled, stored) == []


def test_an_update_of_an_invalid_workflow_is_refused_only_for_what_it_adds() -> None:
    stored = cyclic()
    worse = copy.deepcopy(stored)
    worse["spec"]["nodes"][1]["args"] = ["{{ params.missing }}"]
    # the cycle is found first and hides template problems: fixing it reveals the new one
    assert review("UPDATE", worse, stored) == []
    fixed_but_worse = copy.deepcopy(worse)
    fixed_but_worse["spec"]["nodes"][0]["dependsOn"] = []
    (problem,) = review("UPDATE", fixed_but_worse, stored)
    assert str(problem).startswith("spec.nodes[1].args[0]: ")


def test_objects_being_deleted_and_deletes_are_never_refused() -> None:
    finalizing = cyclic()
    finalizing["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    assert review("UPDATE", finalizing, valid()) == []
    assert review("DELETE", None, cyclic()) == []
    assert review("CONNECT", cyclic()) == []


def test_a_long_refusal_is_cut_with_a_count() -> None:
    nodes = [node(f"n{i}", "ghost", **IMAGE) for i in range(admission.MAX_REPORTED + 5)]
    message = refusal(review("CREATE", manifest(nodes)))
    assert message.count("unknown node 'ghost'") == admission.MAX_REPORTED
    assert message.endswith("; and 5 more")


def _handler(handler_id: str = admission.HANDLER_ID, templates: Any = None) -> Any:
    registry = kopf.OperatorRegistry()
    admission.register(registry, templates or (lambda namespace, name: None))
    (handler,) = [handler for handler in registry._webhooks.get_all_handlers() if handler.id == handler_id]
    return handler


def test_the_kopf_handler_refuses_with_422_on_create_and_update_only() -> None:
    handler = _handler()
    assert handler.id == admission.HANDLER_ID
    assert set(handler.operations) == {"CREATE", "UPDATE"} and handler.ignore_failures
    with pytest.raises(kopf.AdmissionError) as refused:
        handler.fn(operation="CREATE", new=cyclic(), old=None)
    assert refused.value.code == 422 and "dependency cycle: a -> b -> c -> a" in str(refused.value)
    assert handler.fn(operation="CREATE", new=valid(), old=None) is None


def test_a_bug_in_the_review_admits_instead_of_refusing_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> list[Any]:
        raise KeyError("oops")

    monkeypatch.setattr(admission, "review", broken)
    assert _handler().fn(operation="CREATE", new=cyclic(), old=None) is None


def test_a_managed_configuration_never_blocks_and_is_scoped_to_the_watched_namespaces() -> None:
    body = admission.configuration("dagwright-dev", "https://127.0.0.1:9443/validate-workflow", "Q0E=", ["b", "a"])
    webhook, template_webhook, cron = body["webhooks"]
    for each in (webhook, template_webhook, cron):
        assert each["failurePolicy"] == "Ignore" and each["sideEffects"] == "None"
        assert each["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert each["namespaceSelector"]["matchExpressions"][0]["values"] == ["a", "b"]
    assert webhook["rules"][0]["resources"] == ["workflows"]
    assert template_webhook["rules"][0]["resources"] == ["workflowtemplates"]
    assert template_webhook["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-workflowtemplate"
    assert cron["rules"][0]["resources"] == ["cronworkflows"]
    assert cron["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-cronworkflow"
    assert "namespaceSelector" not in admission.configuration("x", "https://h/p", "", [])["webhooks"][0]


def test_the_self_signed_certificate_names_the_host_the_api_server_dials(tmp_path: Path) -> None:
    cert, key = admission.self_signed(["127.0.0.1", "dagwright.local"])
    sans = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.value.get_values_for_type(x509.DNSName) == ["dagwright.local"]
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")


def test_a_refusal_is_logged_once_as_info_not_as_a_kopf_error(caplog: pytest.LogCaptureFixture) -> None:
    admission.quiet_kopf_refusals()
    with caplog.at_level(logging.INFO), pytest.raises(kopf.AdmissionError):
        _handler().fn(operation="CREATE", new=cyclic(), old=None)
    logging.getLogger("kopf.objects").error("Webhook 'validate-workflow' failed permanently: invalid spec: ...")
    logging.getLogger("kopf.objects").error("Handler 'other' failed permanently: a real problem")
    assert [(r.levelname, r.getMessage()[:40]) for r in caplog.records] == [
        ("INFO", "refused CREATE of workflow default/wf: i"),
        ("ERROR", "Handler 'other' failed permanently: a re"),
    ]


# -- WorkflowTemplates and the Workflows that run them


def template(**spec: Any) -> dict[str, Any]:
    body = manifest([node("extract", **IMAGE), node("load", "extract", args=["{{ params.date }}"], **IMAGE)], **spec)
    body["kind"] = "WorkflowTemplate"
    body["metadata"] = {"name": "etl", "namespace": "default"}
    body["spec"].setdefault("parameters", {"date": "today"})
    return body


def run_of(name: str = "etl", **spec: Any) -> dict[str, Any]:
    body = manifest([], name="etl-x")
    body["spec"] = {"templateRef": {"name": name}, **spec}
    return body


def lookup(*templates: dict[str, Any]) -> Any:
    found = {(t["metadata"]["namespace"], t["metadata"]["name"]): t for t in templates}
    return lambda namespace, name: found.get((namespace, name))


def test_an_undeclared_parameter_is_refused_when_the_template_exists() -> None:
    check = lambda body: admission.problems_of(body, lookup(template()))  # noqa: E731
    assert review("CREATE", run_of(parameters={"date": "2026-11-29"}), problems=check) == []
    assert texts(review("CREATE", run_of(parameters={"dat": "2026-11-29"}), problems=check)) == [
        "spec.parameters.dat: WorkflowTemplate 'etl' declares no parameter 'dat' (it declares: date)"
    ]


def test_a_workflow_whose_template_does_not_exist_yet_is_admitted() -> None:
    """Templates and their runs are applied together in any order; the operator fails it if still missing."""
    assert admission.problems_of(run_of("later", parameters={"x": "1"}), lookup(template())) == []


def test_node_fields_beside_a_template_ref_are_refused_naming_them() -> None:
    body = run_of(nodes=[node("a", **IMAGE)], defaults=IMAGE)
    assert texts(admission.problems_of(body, lookup(template()))) == [
        "spec.defaults: not allowed with templateRef: the template says what runs",
        "spec.nodes: not allowed with templateRef: the template says what runs",
    ]


def test_the_templates_own_problems_name_the_template() -> None:
    broken = template()
    broken["spec"]["nodes"][0].pop("image")
    assert texts(admission.problems_of(run_of(), lookup(broken))) == [
        "WorkflowTemplate etl spec.nodes[0].image: node 'extract' needs an image on Kubernetes (or spec.defaults.image)"
    ]


def test_a_workflow_template_is_validated_like_a_workflow() -> None:
    check = admission.template_problems_of
    assert review("CREATE", template(), problems=check) == []
    cyclic_template = template()
    cyclic_template["spec"]["nodes"][0]["dependsOn"] = ["load"]
    assert texts(review("CREATE", cyclic_template, problems=check)) == [
        "spec.nodes[0].dependsOn[0]: dependency cycle: extract -> load -> extract"
    ]
    chained = template(templateRef={"name": "other"})
    assert texts(review("CREATE", chained, problems=check)) == [
        "spec.templateRef: a WorkflowTemplate cannot run another template"
    ]


def test_the_kopf_handlers_refuse_a_bad_template_and_an_undeclared_parameter() -> None:
    bad = template()
    bad["spec"]["nodes"][1]["args"] = ["{{ params.missing }}"]
    with pytest.raises(kopf.AdmissionError) as refused:
        _handler(admission.TEMPLATE_HANDLER_ID).fn(operation="CREATE", new=bad, old=None)
    assert "spec.nodes[1].args[0]" in str(refused.value)
    handler = _handler(templates=lookup(template()))
    with pytest.raises(kopf.AdmissionError) as refused:
        handler.fn(operation="CREATE", new=run_of(parameters={"typo": "1"}), old=None)
    assert "spec.parameters.typo" in str(refused.value)
