"""The operator runs Workflows as Jobs, in dependency order, and looks right to `kubectl`.

Why: these are the promises every user relies on first: a DAG runs each node once, a node starts only after
its dependencies finished, large fan-outs complete, invalid graphs are refused with a reason, deleting or
expiring a Workflow cleans up, and the operator's metrics are served. Each check is made on the Jobs and
objects the API server holds, not on the operator's word.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from .cluster.helpers import wait_for
from .conftest import CRDS_DIR, Kube, apply_crds
from .operator_fixtures import (
    OperatorProcess,
    Operators,
    Recorder,
    apply,
    condition,
    dagwright,
    events_of,
    get_workflow,
    hold,
    list_jobs,
    node,
    node_status,
    wait_phase,
    workflow,
)
from .ports import free_port

pytestmark = pytest.mark.e2e


def assert_after_dependencies(recorder: Recorder, name: str, edges: list[tuple[str, str]]) -> None:
    """Each dependent's Job was created after (in etcd order and by timestamps) its dependency succeeded (its pod
    ended, or its Job completed, whichever the recorder saw first)."""
    jobs = {record.node: record for record in recorder.jobs_of(name)}
    for parent, child in edges:
        before, after = jobs[parent], jobs[child]
        assert before.outcome == "Succeeded", f"{parent}: {before.outcome}"
        assert before.finished_before(after), f"Job of {child} was created before {parent} ended"
        assert before.finish_time is not None and after.created >= before.finish_time


def test_diamond_runs_each_node_once_in_dependency_order(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [
        node("extract", duration="300ms"),
        node("transform-a", "extract", duration="300ms"),
        node("transform-b", "extract", duration="600ms"),
        node("load", "transform-a", "transform-b"),
    ]
    apply(kube, namespace, workflow("diamond", nodes))

    status = wait_phase(kube, namespace, "diamond", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "4/4"
    assert condition(status, "Succeeded")["status"] == "True"
    jobs = list_jobs(kube, namespace, "diamond")
    assert sorted(j["metadata"]["labels"]["dagwright.io/node"] for j in jobs) == sorted(n["name"] for n in nodes)
    assert {j["metadata"]["labels"]["dagwright.io/attempt"] for j in jobs} == {"1"}
    assert len(recorder.jobs_of("diamond")) == 4  # no Job came and went unseen in the listing
    edges = [("extract", "transform-a"), ("extract", "transform-b"), ("transform-a", "load"), ("transform-b", "load")]
    assert_after_dependencies(recorder, "diamond", edges)
    # Only the status is the operator's to write: no annotations or finalizers of kopf's on the Workflow.
    meta = get_workflow(kube, namespace, "diamond")["metadata"]  # type: ignore[index]
    assert not meta.get("finalizers")
    assert not [key for key in meta.get("annotations") or {} if "kopf" in key], meta.get("annotations")
    finished = wait_for(
        "the Succeeded event", lambda: [e for e in events_of(kube, namespace, "diamond") if e["reason"] == "Succeeded"]
    )
    assert finished[0]["type"] == "Normal" and finished[0]["source"]["component"] == "dagwright"
    # Jobs are owned by the Workflow (so the garbage collector can remove them with it).
    uid = get_workflow(kube, namespace, "diamond")["metadata"]["uid"]  # type: ignore[index]
    for job in jobs:
        owners = job["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [("Workflow", uid, True)]


@pytest.mark.slow
def test_fan_out_of_fifty_then_fan_in(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    leaves = [f"shard-{i:02d}" for i in range(50)]
    nodes = [node("split"), *(node(leaf, "split") for leaf in leaves), node("merge", *leaves)]
    apply(kube, namespace, workflow("fan", nodes))

    status = wait_phase(kube, namespace, "fan", "Succeeded", "Failed", timeout=120)

    assert status["phase"] == "Succeeded", status["message"]
    assert status["progress"] == "52/52"
    records = recorder.jobs_of("fan")
    assert sorted(r.node for r in records) == sorted(n["name"] for n in nodes)
    recorder.assert_one_job_per_attempt("fan")
    assert_after_dependencies(
        recorder, "fan", [("split", leaf) for leaf in leaves] + [(leaf, "merge") for leaf in leaves]
    )
    assert max(r.added_seq for r in records if r.node.startswith("shard")) < records[-1].added_seq
    # Each status patch wrote a few nodes of the map and kept the others; and the API server's record of who
    # wrote what names the map once, not every field of its 52 nodes again (the map is atomic for it).
    body = get_workflow(kube, namespace, "fan")
    assert body is not None
    stored = body["status"]["nodes"]
    assert {name for name, state in stored.items() if state["phase"] == "Succeeded"} == {n["name"] for n in nodes}
    status_writes = [entry for entry in body["metadata"]["managedFields"] if entry.get("subresource") == "status"]
    assert status_writes, body["metadata"]["managedFields"]
    assert all(json.dumps(entry["fieldsV1"]).count("f:phase") <= 1 for entry in status_writes), status_writes


def _status_fields_per_node(kube: Kube, namespace: str, name: str) -> bool:
    """Whether the API server's record of the status writes lists node `a`'s own fields (a granular node map)."""
    body = get_workflow(kube, namespace, name) or {}
    entries = (body.get("metadata") or {}).get("managedFields") or []
    written = [json.dumps(entry.get("fieldsV1")) for entry in entries if entry.get("subresource") == "status"]
    return any('"f:a"' in fields for fields in written)  # the key itself, not a prefix of f:attempts


def test_a_workflow_running_when_the_crd_is_upgraded_finishes(
    kube: Kube, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """The CRD of the release before `status.nodes` became atomic, then this one applied mid-run (what an upgrade
    does): the running Workflow's status writes go on and it ends with every node recorded."""
    current = CRDS_DIR / "workflows.dagwright.io.yaml"
    previous = yaml.safe_load(current.read_text())
    for version in previous["spec"]["versions"]:
        del version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["nodes"]["x-kubernetes-map-type"]
    old = tmp_path / "workflows.dagwright.io.yaml"
    old.write_text(yaml.safe_dump(previous))
    apply_crds(kube, [old])
    try:
        apply(kube, namespace, workflow("upgraded", [node("a"), node("b", "a", duration="3s"), node("c", "b")]))
        wait_for("node b running", lambda: node_status(kube, namespace, "upgraded", "b").get("phase") == "Running")
        assert _status_fields_per_node(kube, namespace, "upgraded")
    finally:
        apply_crds(kube, [current])

    status = wait_phase(kube, namespace, "upgraded", "Succeeded", "Failed", timeout=60)

    assert status["phase"] == "Succeeded", status["message"]
    assert {name: state["phase"] for name, state in status["nodes"].items()} == dict.fromkeys("abc", "Succeeded")
    assert not _status_fields_per_node(kube, namespace, "upgraded")


def test_kubectl_get_shows_phase_and_progress(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    apply(kube, namespace, workflow("hello", [node("a"), node("b", "a")]))
    wait_phase(kube, namespace, "hello", "Succeeded")

    out = kube.kubectl("get", "workflows", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "PROGRESS", "AGE", "TEMPLATE", "MESSAGE"]
    assert out[1].split()[:3] == ["hello", "Succeeded", "2/2"]
    assert "all 2 nodes succeeded" in out[1]
    short = kube.kubectl("get", "dwf", "hello", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert short[0].split() == ["NAME", "PHASE", "PROGRESS", "AGE", "TEMPLATE", "MESSAGE"]
    assert "all 2 nodes succeeded" in short[1]


def test_a_cycle_fails_the_workflow_with_invalid_spec(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("loop", [node("start"), node("a", "start", "c"), node("b", "a"), node("c", "b")]))

    status = wait_phase(kube, namespace, "loop", "Failed")

    assert re.search(r"dependency cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)", status["message"])
    succeeded = condition(status, "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("False", "InvalidSpec")
    events = wait_for(
        "an InvalidSpec event",
        lambda: [e for e in events_of(kube, namespace, "loop") if e["reason"] == "InvalidSpec"],
        timeout=30,
    )
    assert events[0]["type"] == "Warning" and "dependency cycle" in events[0]["message"]
    assert not list_jobs(kube, namespace, "loop")
    assert not recorder.jobs_of("loop")  # not even the node before the cycle ran


def test_a_node_without_an_image_is_an_invalid_spec(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    manifest = workflow("no-image", [node("a", command=["true"])])
    del manifest["spec"]["defaults"]
    apply(kube, namespace, manifest)

    status = wait_phase(kube, namespace, "no-image", "Failed")

    assert condition(status, "Succeeded")["reason"] == "InvalidSpec"
    assert "needs an image on Kubernetes" in status["message"]


def test_a_false_when_skips_the_node_without_a_job_and_its_dependents_still_run(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    check = node("check")  # kwok plays the pod; its termination message is what $DAGWRIGHT_OUTPUTS would hold
    check["podMetadata"] = {"annotations": {"kwok.dagwright.io/message": json.dumps({"changed": 12})}}
    nodes = [
        check,
        node("rebuild", "check", when="nodes.check.outputs.changed > 1000"),
        node("patch", "check", when="nodes.check.outputs.changed > 0", args=["{{ nodes.check.outputs.changed }}"]),
        node("report", "rebuild", args=["{{ nodes.rebuild.outputs.url }}"]),  # reads the skipped node's outputs
        node("publish", "rebuild", "patch"),
    ]
    apply(kube, namespace, workflow("conditional", nodes))

    status = wait_phase(kube, namespace, "conditional", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "3/5"
    skipped = {name: status["nodes"][name] for name in ("rebuild", "report")}
    assert (skipped["rebuild"]["phase"], skipped["rebuild"]["reason"]) == ("Skipped", "ConditionFalse")
    assert skipped["rebuild"]["message"] == "when is false: nodes.check.outputs.changed > 1000"
    assert (skipped["report"]["phase"], skipped["report"]["reason"]) == ("Skipped", "UpstreamSkipped")
    jobs = list_jobs(kube, namespace, "conditional")
    assert sorted(j["metadata"]["labels"]["dagwright.io/node"] for j in jobs) == ["check", "patch", "publish"]
    assert not [
        r for r in recorder.jobs_of("conditional") if r.node in ("rebuild", "report")
    ]  # never, not even briefly
    (patch,) = [j for j in jobs if j["metadata"]["labels"]["dagwright.io/node"] == "patch"]
    assert patch["spec"]["template"]["spec"]["containers"][0]["args"] == ["12"]


def test_finally_nodes_run_after_a_failure_read_the_outcome_and_the_workflow_stays_failed(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [
        node("load", duration="1s", exit_code=2),
        node("after-load", "load"),
        node("notify", when="workflow.status == 'Failed'", args=["{{ workflow.failedNodes }}"], **{"finally": True}),
        node("on-success", when="workflow.status == 'Succeeded'", **{"finally": True}),
        node("cleanup", "notify", **{"finally": True}),
    ]
    apply(kube, namespace, workflow("finally", nodes))

    status = wait_phase(kube, namespace, "finally", "Succeeded", "Failed")

    assert status["phase"] == "Failed", status
    assert status["message"].startswith("node load failed")
    phases = {name: (entry["phase"], entry.get("reason")) for name, entry in status["nodes"].items()}
    assert phases["notify"] == ("Succeeded", None) and phases["cleanup"] == ("Succeeded", None)
    assert phases["on-success"] == ("Skipped", "ConditionFalse")
    assert phases["after-load"] == ("Skipped", "UpstreamFailed")
    jobs = {j["metadata"]["labels"]["dagwright.io/node"]: j for j in list_jobs(kube, namespace, "finally")}
    assert sorted(jobs) == ["cleanup", "load", "notify"]
    assert jobs["notify"]["spec"]["template"]["spec"]["containers"][0]["args"] == ['["load"]']
    load_ended = status["nodes"]["load"]["finishedAt"]
    assert jobs["notify"]["metadata"]["creationTimestamp"] >= load_ended  # both RFC 3339, seconds, UTC
    recorder.assert_one_job_per_attempt("finally")


def test_finally_nodes_run_after_the_deadline_but_not_after_stop(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [node("forever", never_finish=True), node("cleanup", duration="1s", **{"finally": True})]
    apply(kube, namespace, workflow("deadline", nodes, activeDeadlineSeconds=3))
    apply(kube, namespace, workflow("stopped", nodes))
    wait_for("stopped's node to start", lambda: list_jobs(kube, namespace, "stopped"), timeout=60)
    dagwright(kube, "stop", "stopped", "-n", namespace)

    deadline = wait_phase(kube, namespace, "deadline", "Succeeded", "Failed")
    stopped = wait_phase(kube, namespace, "stopped", "Stopped", "Succeeded", "Failed")

    assert (deadline["phase"], condition(deadline, "Succeeded")["reason"]) == ("Failed", "DeadlineExceeded")
    assert deadline["nodes"]["forever"]["reason"] == "DeadlineExceeded"
    assert deadline["nodes"]["cleanup"]["phase"] == "Succeeded"
    assert stopped["phase"] == "Stopped"
    assert stopped["nodes"]["cleanup"]["phase"] == "Stopped"
    assert [r.node for r in recorder.jobs_of("stopped")] == ["forever"]  # cleanup's Job never existed


def test_a_when_that_does_not_compile_is_an_invalid_spec(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    apply(kube, namespace, workflow("bad-when", [node("a", when="nodes.a.outputs.n >")]))

    status = wait_phase(kube, namespace, "bad-when", "Failed")

    assert condition(status, "Succeeded")["reason"] == "InvalidSpec"
    assert "spec.nodes[0].when: invalid CEL expression: 1:20: Syntax error" in status["message"]
    assert not list_jobs(kube, namespace, "bad-when")


def test_deleting_a_workflow_deletes_its_jobs(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("doomed", [node("a", never_finish=True), node("b", never_finish=True)]))
    wait_for("both Jobs", lambda: len(list_jobs(kube, namespace, "doomed")) == 2, timeout=30)

    kube.kubectl("delete", "workflow", "doomed", "-n", namespace, "--wait=false")

    wait_for("the Jobs to be garbage-collected", lambda: not list_jobs(kube, namespace, "doomed"), timeout=60)
    wait_for("the Workflow to be gone", lambda: get_workflow(kube, namespace, "doomed") is None, timeout=30)
    assert len(recorder.jobs_of("doomed")) == 2  # the operator did not recreate them


def test_ttl_seconds_after_finished_deletes_the_finished_workflow(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("short-lived", [node("a")], ttlSecondsAfterFinished=2))
    wait_phase(kube, namespace, "short-lived", "Succeeded")
    succeeded_at = recorder.workflow_phases["short-lived"][-1][1]

    wait_for("the Workflow to be deleted", lambda: get_workflow(kube, namespace, "short-lived") is None, timeout=30)

    deleted_at = recorder.workflow_phases["short-lived"][-1][1]
    assert recorder.phases("short-lived")[-1] == "<deleted>"
    assert deleted_at - succeeded_at >= 1.0  # 2 s after finishedAt (a whole-second timestamp)
    wait_for("its Job to be garbage-collected", lambda: not list_jobs(kube, namespace, "short-lived"), timeout=60)


def test_metrics_endpoint_serves_dagwright_metrics(kube: Kube, namespace: str, operators: Operators) -> None:
    port = free_port()
    operators.start(metrics_port=port)
    apply(kube, namespace, workflow("measured", [node("a"), node("b", "a")]))
    wait_phase(kube, namespace, "measured", "Succeeded")

    def scrape() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text: str = response.read().decode()
        except OSError:
            return None
        return text if 'dagwright_workflows{phase="Succeeded"} 1.0' in text else None

    text = wait_for("the metrics to show the finished workflow", scrape, timeout=30)
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples["dagwright_attempts_started_total"]) == 2
    assert float(samples['dagwright_attempts_finished_total{reason="",result="succeeded"}']) == 2
    assert "dagwright_reconcile_duration_seconds_count" in samples
    assert "dagwright_launch_latency_seconds_count" in samples


def test_long_names_give_valid_jobs(kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess) -> None:
    name = "a-workflow-name-that-is-long-" + "x" * 50  # 79 characters: longer than a label value may be
    first, second = "n" * 63, "m" * 63  # node names at their 63-character limit
    apply(kube, namespace, workflow(name, [node(first), node(second, first)]))

    status = wait_phase(kube, namespace, name, "Succeeded", "Failed")

    assert status["phase"] == "Succeeded", status["message"]
    records = recorder.jobs_of()
    assert sorted(r.node for r in records) == sorted([first, second])
    assert all(len(r.name) <= 63 for r in records)
    assert len({r.name for r in records}) == 2
    assert len({r.workflow for r in records}) == 1  # one label value for the workflow, shortened


def test_a_workflow_deleted_and_recreated_under_the_same_name_runs_afresh(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("again", [node("a", never_finish=True)]))
    old = wait_for("the first Workflow's Job", lambda: recorder.jobs_of("again"), timeout=30)[0]
    old_uid = get_workflow(kube, namespace, "again")["metadata"]["uid"]  # type: ignore[index]

    # The old Workflow's Job outlives it for a while (here: held by a finalizer, as another controller may
    # do; usually: until the garbage collector gets to it) while the new Workflow wants a Job of that name.
    hold_job = {"metadata": {"finalizers": ["e2e.dagwright.io/hold"]}}
    kube.kubectl("patch", "job", old.name, "-n", namespace, "--type=merge", "-p", json.dumps(hold_job))
    manifest = yaml.safe_dump(workflow("again", [node("a", duration="200ms")]))
    kube.kubectl("replace", "--force", "-n", namespace, "-f", "-", input=manifest, timeout=60)
    wait_for("the old Job to be marked for deletion", lambda: old.last["metadata"].get("deletionTimestamp"))
    hold(2)
    assert node_status(kube, namespace, "again", "a").get("phase") != "Failed", "adopted the old Workflow's Job"
    kube.kubectl("patch", "job", old.name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')

    status = wait_phase(kube, namespace, "again", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status
    new_uid = get_workflow(kube, namespace, "again")["metadata"]["uid"]  # type: ignore[index]
    assert new_uid != old_uid
    new = [r for r in recorder.jobs_of("again") if r.uid != old.uid]
    assert len(new) == 1 and new[0].outcome == "Succeeded"
    assert new[0].last["metadata"]["ownerReferences"][0]["uid"] == new_uid
    assert new[0].added_seq > recorder.jobs_of("again")[0].deleted_seq  # type: ignore[operator]


def test_parallelism_caps_the_workflows_running_jobs(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("narrow", [node(f"n{i}", duration="500ms") for i in range(6)], parallelism=2))

    status = wait_phase(kube, namespace, "narrow", "Succeeded", "Failed", timeout=60)

    assert status["phase"] == "Succeeded"
    assert recorder.max_running() == 2
    order = [r.node for r in recorder.jobs_of("narrow")]
    assert sorted(order) == [f"n{i}" for i in range(6)]
    assert set(order[:2]) == {"n0", "n1"}  # ready nodes launch in declaration order


def test_the_operator_leaves_other_namespaces_alone(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    core = client.CoreV1Api(kube.api_client)
    other = namespace + "-x"
    core.create_namespace({"metadata": {"name": other, "labels": {"dagwright.io/e2e": "true"}}})
    try:
        wait_for("the other namespace's service account", lambda: core.list_namespaced_service_account(other).items)
        apply(kube, other, workflow("elsewhere", [node("a")]))
        apply(kube, namespace, workflow("here", [node("a")]))
        wait_phase(kube, namespace, "here", "Succeeded")
        hold(1)
        assert not list_jobs(kube, other)
        assert not (get_workflow(kube, other, "elsewhere") or {}).get("status")
    finally:
        core.delete_namespace(other, propagation_policy="Background")


def test_an_invalid_workflow_fixed_and_retried_runs(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    apply(kube, namespace, workflow("fixable", [node("a", "b"), node("b", "a")]))
    wait_phase(kube, namespace, "fixable", "Failed")

    apply(kube, namespace, workflow("fixable", [node("a"), node("b", "a")]))
    dagwright(kube, "retry", "fixable", "-n", namespace)

    status = wait_phase(kube, namespace, "fixable", "Succeeded", timeout=60)
    assert status["progress"] == "2/2"
    assert condition(status, "Succeeded")["reason"] == "Succeeded"
    assert [r.node for r in recorder.jobs_of("fixable")] == ["a", "b"]


@pytest.mark.slow
def test_many_workflows_at_once_all_complete(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    names = [f"batch-{i:02d}" for i in range(20)]
    manifests = [workflow(name, [node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c")]) for name in names]
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(manifests))

    for name in names:
        status = wait_phase(kube, namespace, name, "Succeeded", "Failed", timeout=120)
        assert status["phase"] == "Succeeded", (name, status["message"])
    assert len(recorder.jobs_of()) == 80
    for name in names:
        recorder.assert_one_job_per_attempt(name)


def test_control_commands_report_a_missing_workflow(kube: Kube, namespace: str) -> None:
    env = {**os.environ, "KUBECONFIG": kube.kubeconfig}
    command = [sys.executable, "-c", "import sys; from dagwright.cli import main; sys.exit(main())"]
    proc = subprocess.run(
        [*command, "pause", "nowhere", "-n", namespace], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: workflow {namespace}/nowhere not found"
