"""The Job an attempt becomes, and the names that keep attempts unique across restarts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dagwright import nodeio
from dagwright.k8s import names
from dagwright.k8s.jobs import RESTRICTED_CONTAINER, RESTRICTED_POD, RedisSettings, build_job
from dagwright.planner import AttemptState, Observation, plan
from dagwright.validation import compile_manifest

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def _workflow(name: str = "etl", **spec: object) -> object:
    manifest = {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "team-a", "uid": "uid-1", "generation": 1},
        "spec": {
            "parameters": {"date": "2026-11-25"},
            "nodes": [
                {
                    "name": "extract",
                    "image": "python:3.12-slim",
                    "command": ["python", "-c"],
                    "args": ["print('{{ params.date }}')"],
                    "env": [{"name": "DAY", "value": "{{ params.date }}"}],
                    "timeoutSeconds": 600,
                    "podMetadata": {"annotations": {"team": "data"}},
                }
            ],
            **spec,
        },
    }
    return compile_manifest(manifest)


def test_job_for_first_attempt_is_owned_labelled_and_never_retries_itself() -> None:
    workflow = _workflow()
    launch = plan(workflow, None, [], NOW).launches[0]  # type: ignore[arg-type]
    job = build_job(workflow, launch)  # type: ignore[arg-type]

    assert job["metadata"]["name"] == "etl-extract-1"
    assert job["metadata"]["labels"][names.LABEL_NODE] == "extract"
    assert job["metadata"]["labels"][names.LABEL_ATTEMPT] == "1"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Workflow", "etl", "uid-1", True)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["args"] == ["print('2026-11-25')"]
    assert {"name": "DAY", "value": "2026-11-25"} in container["env"]
    # Outputs written to $DAGWRIGHT_OUTPUTS come back in the termination message.
    assert {"name": "DAGWRIGHT_OUTPUTS", "value": "/dev/termination-log"} in container["env"]
    assert job["spec"]["template"]["metadata"]["annotations"] == {"team": "data"}


@pytest.mark.parametrize("node_runner", [False, True])
def test_the_kubelet_cannot_expand_variables_inside_rendered_values(node_runner: bool) -> None:
    """A parameter `$(DAGWRIGHT_REDIS_PASSWORD)` would otherwise put the password on the command line."""
    hostile = "$(DAGWRIGHT_REDIS_PASSWORD) $$ $"
    node = {
        "name": "extract",
        "image": "busybox",
        "nodeRunner": node_runner,
        "command": ["sh", "-c", "echo {{ params.p }}"],
        "args": ["{{ params.p }}"],
        "env": [{"name": "P", "value": "{{ params.p }}"}],
    }
    workflow = _workflow(parameters={"p": hostile}, nodes=[node])
    launch = plan(workflow, None, [], NOW).launches[0]  # type: ignore[arg-type]
    container = build_job(workflow, launch)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[arg-type]
    escaped = "$$(DAGWRIGHT_REDIS_PASSWORD) $$$$ $$"  # the kubelet turns each $$ back into one $
    assert container["command"][-1] == f"echo {escaped}"
    assert container["args"] == [escaped]
    assert {"name": "P", "value": escaped} in container["env"]


def test_pods_default_to_the_restricted_standard_unless_the_user_says_otherwise() -> None:
    default = _workflow()
    launch = plan(default, None, [], NOW).launches[0]  # type: ignore[arg-type]
    pod = build_job(default, launch)["spec"]["template"]["spec"]  # type: ignore[arg-type]
    assert pod["securityContext"] == RESTRICTED_POD
    assert pod["containers"][0]["securityContext"] == RESTRICTED_CONTAINER

    custom = _workflow(podTemplate={"securityContext": {"runAsUser": 0}, "serviceAccountName": "runner"})
    launch = plan(custom, None, [], NOW).launches[0]  # type: ignore[arg-type]
    pod = build_job(custom, launch)["spec"]["template"]["spec"]  # type: ignore[arg-type]
    assert pod["securityContext"] == {"runAsUser": 0}
    assert pod["serviceAccountName"] == "runner"


def test_a_node_reading_outputs_only_redis_holds_runs_node_runner_with_its_templates_in_one_env_var() -> None:
    load = {
        "name": "load",
        "image": "python:3.12-slim",
        "dependsOn": ["extract"],
        "nodeRunner": True,
        "command": ["load", "--day={{ params.date }}"],
        "args": ["{{ nodes.extract.outputs.rows }}"],
        "env": [{"name": "ROWS", "value": "{{ nodes.extract.outputs.rows }}"}, {"name": "DAY", "value": "$(HOME)"}],
    }
    workflow = _workflow(parameters={"date": "$(HOME) {{ x }}", "unused": "u" * 10_000}, nodes=[_EXTRACT, load])
    status = plan(workflow, None, [], NOW).status  # type: ignore[arg-type]
    done = Observation("extract", 1, AttemptState.SUCCEEDED, outputs_ref=nodeio.outputs_key("uid-1", "extract"))
    (launch,) = plan(workflow, status, [done], NOW).launches  # type: ignore[arg-type]

    redis = RedisSettings("redis://redis:6379/0", password_secret="redis-auth")
    container = build_job(workflow, launch, redis=redis)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[arg-type]
    assert container["command"] == ["dagwright-node-runner", "--render-inputs"]
    assert "args" not in container
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["DAGWRIGHT_REDIS_URL"] == "redis://redis:6379/0"
    assert env["DAY"] == "$$(HOME)" and "ROWS" not in env  # ROWS is node-runner's to render; $$ is a literal $
    encoded = env["DAGWRIGHT_INPUTS"]
    assert "$" not in encoded  # the kubelet would expand $(HOME) in an env value
    assert len(encoded) < 1024  # only what the templates use: not the 10 KB parameter they do not read
    inputs = nodeio.Inputs.from_json(encoded)
    assert inputs == launch.inputs
    assert dict(inputs.values)["params.date"] == "$(HOME) {{ x }}"
    assert dict(inputs.env) == {"ROWS": "{{ nodes.extract.outputs.rows }}"}


def test_node_runner_pods_mount_the_redis_ca_configmap_read_only_and_plain_nodes_get_nothing() -> None:
    report = {"name": "report", "image": "busybox", "command": ["report"]}  # no nodeRunner: no Redis at all
    workflow = _workflow(nodes=[_EXTRACT, report])
    launches = {launch.node: launch for launch in plan(workflow, None, [], NOW).launches}  # type: ignore[arg-type]
    redis = RedisSettings("rediss://redis.infra:6380/0", password_secret="redis-auth", ca_configmap="redis-ca")

    pod = build_job(workflow, launches["extract"], redis=redis)["spec"]["template"]["spec"]  # type: ignore[arg-type]
    (volume,) = pod["volumes"]
    assert volume["configMap"] == {"name": "redis-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    (container,) = pod["containers"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == volume["name"] and mount["readOnly"] is True
    env = {var["name"]: var for var in container["env"]}
    assert env["DAGWRIGHT_REDIS_CA"]["value"] == f"{mount['mountPath']}/ca.crt"  # the file node-runner opens
    assert env["DAGWRIGHT_REDIS_URL"]["value"] == "rediss://redis.infra:6380/0"
    assert env["DAGWRIGHT_REDIS_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "redis-auth", "key": "password"}}

    plain = build_job(workflow, launches["report"], redis=redis)["spec"]["template"]["spec"]  # type: ignore[arg-type]
    assert "volumes" not in plain and "volumeMounts" not in plain["containers"][0]
    assert not [var for var in plain["containers"][0]["env"] if var["name"].startswith("DAGWRIGHT_REDIS")]

    without_ca = RedisSettings("rediss://redis.infra:6380/0")  # a publicly trusted certificate needs no ConfigMap
    pod = build_job(workflow, launches["extract"], redis=without_ca)["spec"]["template"]["spec"]  # type: ignore[arg-type]
    assert "volumes" not in pod and "DAGWRIGHT_REDIS_CA" not in {var["name"] for var in pod["containers"][0]["env"]}


_EXTRACT = {"name": "extract", "image": "python:3.12-slim", "nodeRunner": True, "command": ["extract"]}


@pytest.mark.parametrize("workflow", ["w", "a" * 60, "x" * 253])
@pytest.mark.parametrize("attempt", [1, 12, 1000])
def test_job_names_fit_63_characters_and_differ_per_attempt(workflow: str, attempt: int) -> None:
    name = names.job_name(workflow, "n" * 63, attempt)
    assert len(name) <= 63
    assert name.endswith(f"-{attempt}")
    assert name != names.job_name(workflow, "n" * 63, attempt + 1)
    assert names.job_name(workflow, "n" * 63, attempt) == name  # deterministic


def test_shortened_names_of_different_nodes_do_not_collide() -> None:
    first = names.job_name("w" * 60, "node-a" + "x" * 50, 1)
    second = names.job_name("w" * 60, "node-b" + "x" * 50, 1)
    assert first != second


def test_long_workflow_names_become_valid_label_values() -> None:
    value = names.label_value("a." * 100)
    assert len(value) <= 63
    assert value[0].isalnum() and value[-1].isalnum()


@pytest.mark.parametrize("workflow", ["w", "x" * 253])
def test_item_job_names_fit_63_characters_and_are_never_a_plain_attempts_name(workflow: str) -> None:
    name = names.job_name(workflow, "n" * 63, 1001, item=9999)
    assert len(name) <= 63 and name.endswith("-i9999a1001")
    # A plain attempt's name ends in digits after its last dash: node `work-3` attempt 1 is not item 3 of `work`.
    assert names.job_name("w", "work", 1, item=3) == "w-work-i3a1"
    assert names.job_name("w", "work-3", 1) == "w-work-3-1"
    assert len({names.job_name("w", "work", a, item=i) for i in range(20) for a in range(1, 20)}) == 19 * 20


def test_each_item_attempt_is_its_own_job_labelled_with_its_item_and_rendered_with_its_value() -> None:
    workflow = _workflow(
        nodes=[
            {
                "name": "shard",
                "image": "busybox",
                "forEach": {"items": ["eu", {"region": "us"}]},
                "command": ["run", "{{ item }}", "{{ node.index }}"],
            }
        ]
    )
    launches = plan(workflow, None, [], NOW).launches  # type: ignore[arg-type]
    jobs = [build_job(workflow, launch) for launch in launches]  # type: ignore[arg-type]
    assert [job["metadata"]["name"] for job in jobs] == ["etl-shard-i0a1", "etl-shard-i1a1"]
    assert [job["metadata"]["labels"][names.LABEL_ITEM] for job in jobs] == ["0", "1"]
    assert [job["spec"]["template"]["metadata"]["labels"][names.LABEL_ITEM] for job in jobs] == ["0", "1"]
    commands = [job["spec"]["template"]["spec"]["containers"][0]["command"] for job in jobs]
    assert commands == [["run", "eu", "0"], ["run", '{"region": "us"}', "1"]]
