"""forEach on the cluster: one Job per item attempt, labelled with its item, gathered outputs reaching the
downstream Job, `maxParallel` held, failed items retried alone, and no item attempt run twice when the
operator is killed mid-run.

Why: a fan-out is where a missed or doubled launch costs the most (thousands of Jobs), and the only proof is
what the API server holds: the Jobs, their labels and their timestamps, recorded by a watch.
"""

from __future__ import annotations

import json

import pytest

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    OperatorProcess,
    Operators,
    Recorder,
    apply,
    list_jobs,
    node,
    retry,
    wait_phase,
    workflow,
)

pytestmark = pytest.mark.e2e


def _with_message(body: dict[str, object], message: str) -> dict[str, object]:
    """kwok ends the pod with this termination message: where `$DAGWRIGHT_OUTPUTS` lands in a real container."""
    metadata = body.setdefault("podMetadata", {"annotations": {}})
    assert isinstance(metadata, dict)
    metadata.setdefault("annotations", {})["kwok.dagwright.io/message"] = message
    return body


def _args(job: dict[str, object]) -> list[str]:
    spec = job["spec"]
    assert isinstance(spec, dict)
    container = spec["template"]["spec"]["containers"][0]
    return list(container.get("args") or [])


def test_map_reduce_runs_one_job_per_item_within_max_parallel_and_gathers_outputs(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [
        _with_message(node("find", duration="200ms", command=["find"]), json.dumps({"shards": [10, 20, 30, 40, 50]})),
        _with_message(
            node(
                "work",
                "find",
                duration="1s",
                forEach={"fromJSON": "{{ nodes.find.outputs.shards }}", "maxParallel": 2},
                command=["work"],
                args=["{{ item }}", "{{ node.index }}"],
            ),
            json.dumps({"n": 7}),
        ),
        node("sum", "work", command=["sum"], args=["{{ nodes.work.outputs.n }}"]),
    ]
    apply(kube, namespace, workflow("map", nodes))

    status = wait_phase(kube, namespace, "map", "Succeeded", "Failed", timeout=90)

    assert status["phase"] == "Succeeded", status["message"]
    work = status["nodes"]["work"]
    assert (work["progress"], work["items"]["states"], work["outputs"]) == ("5/5", "SSSSS", {"n": [7] * 5})
    jobs = {job["metadata"]["name"]: job for job in list_jobs(kube, namespace, "map")}
    items = sorted(
        (int(job["metadata"]["labels"]["dagwright.io/item"]), _args(job))
        for job in jobs.values()
        if job["metadata"]["labels"]["dagwright.io/node"] == "work"
    )
    assert items == [(i, [str(shard), str(i)]) for i, shard in enumerate([10, 20, 30, 40, 50])]
    assert {f"map-work-i{i}a1" for i in range(5)} <= jobs.keys()
    assert _args(jobs["map-sum-1"]) == ["[7, 7, 7, 7, 7]"]
    recorder.assert_one_job_per_attempt("map")
    work_jobs = {"map"}
    assert recorder.max_running(work_jobs) == 2  # maxParallel: never 3, and the 5 items did overlap


def test_a_failed_item_is_retried_as_a_new_job_and_only_that_item(
    kube: Kube, namespace: str, recorder: Recorder, operator: OperatorProcess
) -> None:
    nodes = [
        node("each", duration="100ms", forEach={"items": ["a", "b"]}, command=["x"], retry=retry(1, initial=0.5)),
        node("flaky", duration="100ms", forEach={"items": ["c"]}, command=["x"], retry=retry(1, initial=0.5)),
    ]
    nodes[1]["podMetadata"]["annotations"]["kwok.dagwright.io/fail-attempts"] = "1"
    apply(kube, namespace, workflow("retries", nodes))

    status = wait_phase(kube, namespace, "retries", "Succeeded", "Failed", timeout=90)

    assert status["phase"] == "Succeeded", status["message"]
    names = sorted(job["metadata"]["name"] for job in list_jobs(kube, namespace, "retries"))
    assert names == ["retries-each-i0a1", "retries-each-i1a1", "retries-flaky-i0a1", "retries-flaky-i0a2"]
    assert status["nodes"]["flaky"]["attempts"] == 2
    recorder.assert_one_job_per_attempt("retries")


@pytest.mark.slow
def test_operator_killed_mid_fan_out_runs_no_item_attempt_twice(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    nodes = [node("fan", duration="700ms", forEach={"items": list(range(30)), "maxParallel": 6}, command=["x"])]
    apply(kube, namespace, workflow("survivor", nodes))
    first = operators.start()
    wait_for("the first item Jobs", lambda: len(recorder.jobs_of("survivor")) >= 4, timeout=60)
    first.kill()
    second = operators.start()
    wait_for("more item Jobs", lambda: len(recorder.jobs_of("survivor")) >= 14, timeout=60)
    second.kill()
    operators.start()

    status = wait_phase(kube, namespace, "survivor", "Succeeded", "Failed", timeout=120)

    assert status["phase"] == "Succeeded", status["message"]
    records = recorder.jobs_of("survivor")
    assert sorted(r.item for r in records if r.item is not None) == list(range(30))
    assert {r.attempt for r in records} == {1}, "an item was started again after a restart"
    recorder.assert_one_job_per_attempt("survivor")
    assert status["nodes"]["fan"]["attempts"] == 30
    assert recorder.max_running({"survivor"}) <= 6
