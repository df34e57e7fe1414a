"""The Python SDK's builder: the manifest it writes, the problems it reports, and function nodes' command lines."""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagwright import manifests, validation
from dagwright.errors import SpecError
from dagwright.sdk import ForEach, NodeDefaults, RetryPolicy, Workflow, function, item, node, node_index

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def load_example(name: str) -> ModuleType:
    path = EXAMPLES / "python" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: @function looks its module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("python", "manifest"),
    [
        ("diamond", "diamond.yaml"),
        ("fan_out_fan_in", "fan-out-fan-in.yaml"),
        ("notify_on_failure", "notify-on-failure.yaml"),
        ("map_reduce", "map-reduce.yaml"),
    ],
)
def test_python_examples_write_the_yaml_examples_manifest(python: str, manifest: str) -> None:
    workflow = load_example(python).build()
    written = manifests.load(EXAMPLES / manifest)
    assert workflow.manifest() == validation.load_manifest(written)  # the same model ...
    assert workflow.to_dict() == written  # ... and the same data, key for key
    assert manifests.parse(workflow.to_yaml()) == written  # which is what to_yaml writes


def test_every_python_example_is_a_valid_workflow() -> None:
    for path in sorted((EXAMPLES / "python").glob("*.py")):
        workflow = load_example(path.stem).build()
        assert validation.compile_manifest(manifests.parse(workflow.to_yaml())).name == workflow.name


def yaml_problems(nodes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    document = {"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}}
    with pytest.raises(SpecError) as raised:
        validation.compile_manifest({**document, "spec": {"nodes": nodes}})
    return [(p.field, p.message) for p in raised.value.problems]


def sdk_problems(build: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as raised, Workflow("w"):
        build()
    return [(p.field, p.message) for p in raised.value.problems]


def test_a_cycle_is_reported_at_the_end_of_the_block_as_validate_reports_it() -> None:
    def build() -> None:
        a, b = node("a", image="i", command=["a"]), node("b", image="i", command=["b"])
        a >> b >> a

    assert sdk_problems(build) == [("spec.nodes['a'].dependsOn[0]", "dependency cycle: a -> b -> a")]
    yaml = [{"name": "a", "image": "i", "command": ["a"], "dependsOn": ["b"]}, {"name": "b", "image": "i"}]
    yaml[1].update(command=["b"], dependsOn=["a"])
    assert yaml_problems(yaml) == [("spec.nodes[0].dependsOn[0]", "dependency cycle: a -> b -> a")]


def test_unknown_dependency_duplicate_and_bad_names_name_the_node() -> None:
    def unknown() -> None:
        node("load", image="i", command=["l"], depends_on=["extract"])

    assert sdk_problems(unknown) == [
        ("spec.nodes['load'].dependsOn[0]", "node 'load' depends on unknown node 'extract'")
    ]

    def duplicate() -> None:
        node("a", image="i", command=["a"])
        node("a", image="i", command=["b"])

    assert sdk_problems(duplicate) == [("spec.nodes['a'].name", "duplicate node name 'a'")]

    with pytest.raises(SpecError) as raised, Workflow("w"):
        node("ok", image="i", command=["a"])
        node("Load_2", image="i", command=["a"], retry=-1)  # fails here, where it is declared
    yaml = yaml_problems([{"name": "ok", "image": "i", "command": ["a"]}, {"name": "Load_2", "retry": {"limit": -1}}])
    assert [str(p) for p in raised.value.problems] == [
        field.replace("spec.nodes[1]", "spec.nodes['Load_2']") + f": {message}" for field, message in yaml
    ]
    assert "retry.limit" in str(raised.value) and "greater than or equal to 0" in str(raised.value)


def test_a_node_needs_a_workflow_and_parameters_must_be_defined() -> None:
    with pytest.raises(RuntimeError, match="inside `with Workflow"):
        node("a", image="i", command=["a"])
    with Workflow("w", parameters={"date": "2026-11-29"}) as wf:
        assert str(wf.params["date"]) == "{{ params.date }}"
        with pytest.raises(KeyError, match="parameter 'day' is not defined"):
            wf.params["day"]
        node("a", image="i", command=["a"])


def test_reading_outputs_adds_the_dependency_unless_it_is_already_upstream() -> None:
    with Workflow("io") as wf:
        extract = node("extract", image="i", command=["e"])
        clean = node("clean", image="i", command=["c", extract.outputs["path"]], env={"N": f"{extract.outputs['n']}"})
        load = node("load", image="i", command=["l", f"--rows={extract.outputs['rows']}"])
        report = node("report", image="i", command=["r"], when="nodes.load.outputs.rows > 0")
        clean >> load
    nodes = {entry["name"]: entry.get("dependsOn") for entry in wf.to_dict()["spec"]["nodes"]}
    # clean and report read outputs only; load also reads extract's, which is upstream through clean already
    assert nodes == {"extract": None, "clean": ["extract"], "load": ["clean"], "report": ["load"]}
    assert wf["load"] is load and report.depends_on == []  # the node keeps what was declared; the manifest infers
    assert wf.to_dict()["spec"]["nodes"][1]["command"] == ["c", "{{ nodes.extract.outputs.path }}"]


def test_a_finally_node_reads_regular_nodes_without_depending_on_them() -> None:
    with Workflow("w") as wf:
        build = node("build", image="i", command=["b"])
        report = node(
            "report",
            image="i",
            finally_=True,
            command=["r", build.outputs["url"]],
            when="nodes.build.phase == 'Failed'",
        )
        node("archive", image="i", finally_=True, command=["a", report.outputs["path"]])
    entries = {entry["name"]: entry for entry in wf.to_dict()["spec"]["nodes"]}
    assert entries["report"]["finally"] is True and "dependsOn" not in entries["report"]
    assert entries["archive"]["dependsOn"] == ["report"]  # finally nodes order among themselves
    assert "finally" not in entries["build"]

    def regular_after_finally() -> None:
        node("notify", image="i", command=["n"], finally_=True) >> node("late", image="i", command=["l"])

    problems = sdk_problems(regular_after_finally)
    assert problems and problems[0][0] == "spec.nodes['late'].dependsOn[0]"
    assert "depends on finally node 'notify'" in problems[0][1]


def test_for_each_takes_a_list_a_reference_or_the_model() -> None:
    with Workflow("fan", parameters={"regions": '["eu", "us"]'}) as wf:
        find = node("find", image="i", command=["f"])
        node("literal", image="i", command=["echo", item["name"], node_index], for_each=[{"name": "a"}, {"name": "b"}])
        node("listed", image="i", command=["echo", item], for_each=find.outputs["files"])  # reads find: depends on it
        node(
            "param",
            image="i",
            command=["echo", item],
            for_each=ForEach(from_json=str(wf.params["regions"]), max_parallel=3),
        )
        pick = function(measure.fn).with_options(name="pick", for_each=find.outputs["files"])
        pick(path=item, limit=node_index)
    entries = {entry["name"]: entry for entry in wf.to_dict()["spec"]["nodes"]}
    assert entries["literal"]["forEach"] == {"items": [{"name": "a"}, {"name": "b"}]}
    assert entries["literal"]["command"] == ["echo", "{{ item.name }}", "{{ node.index }}"]
    assert entries["listed"]["forEach"] == {"fromJSON": "{{ nodes.find.outputs.files }}"}
    assert entries["listed"]["dependsOn"] == ["find"]
    assert entries["param"]["forEach"] == {"fromJSON": "{{ params.regions }}", "maxParallel": 3}
    assert "dependsOn" not in entries["param"]
    assert entries["pick"]["args"] == ["--text", "path={{ item }}", "--text", "limit={{ node.index }}"]
    assert entries["pick"]["forEach"] == {"fromJSON": "{{ nodes.find.outputs.files }}"}

    def both() -> None:
        node("x", image="i", command=["x"], for_each=ForEach(items=[1], from_json="{{ params.p }}"))

    problems = sdk_problems(both)
    assert problems and all(field.startswith("spec.nodes['x'].forEach") for field, _ in problems)


def test_node_options_map_to_the_manifest_fields() -> None:
    with Workflow("w", parallelism=2, active_deadline=timedelta(hours=1), defaults=NodeDefaults(image="alpine")) as wf:
        node("gate", approval="ship it?")
        node(
            "job",
            command=["run"],
            retry=3,
            timeout=timedelta(seconds=89.5),
            env={"A": "1"},
            resources={"limits": {"cpu": "1"}},
            depends_on=["gate"],
        )
        node("other", command=["run"], retry=RetryPolicy(limit=1, policy="Transient"), timeout=5)
    spec = wf.to_dict()["spec"]
    assert spec["parallelism"] == 2 and spec["activeDeadlineSeconds"] == 3600
    gate, job, other = spec["nodes"]
    assert gate == {"name": "gate", "approval": {"message": "ship it?"}}
    assert job == {
        "name": "job",
        "command": ["run"],
        "env": [{"name": "A", "value": "1"}],
        "dependsOn": ["gate"],
        "timeoutSeconds": 90,
        "retry": {"limit": 3},
        "resources": {"limits": {"cpu": "1"}},
    }
    assert other["retry"] == {"limit": 1, "policy": "Transient"} and other["timeoutSeconds"] == 5


def test_shift_operators_chain_and_fan() -> None:
    with Workflow("w") as wf:
        a, b, c, d = (node(name, image="i", command=[name]) for name in "abcd")
        assert (a >> [b, c]) == [b, c]
        assert ([b, c] >> d) is d
    assert [n.depends_on for n in wf.nodes] == [[], ["a"], ["a"], ["b", "c"]]


@function(image="img:1", retry=2)
def measure(path: str, limit: int, tags: list[str] | None = None) -> dict[str, int]:
    return {"size": len(path) + limit + len(tags or [])}


def test_a_function_node_runs_its_module_with_arguments_as_json_or_templates() -> None:
    with Workflow("w", parameters={"path": "/data"}) as wf:
        first = measure(path=wf.params["path"], limit=3)
        second = measure.with_options(name="again", python="python3")(
            path=f"{wf.params['path']}/x", limit=first.outputs["size"], tags=["a", "b"]
        )
    entries = wf.to_dict()["spec"]["nodes"]
    assert entries[0]["command"] == ["python", "-m", "dagwright.sdk.call", "test_sdk:measure"]
    assert entries[0]["args"] == ["--text", "path={{ params.path }}", "--json", "limit=3"]
    assert entries[0]["image"] == "img:1" and entries[0]["retry"] == {"limit": 2} and entries[0]["name"] == "measure"
    assert entries[1]["command"][0] == "python3" and second.name == "again"
    assert entries[1]["args"] == [
        "--text",
        "path={{ params.path }}/x",
        "--text",
        "limit={{ nodes.measure.outputs.size }}",
        "--json",
        'tags=["a","b"]',
    ]
    assert entries[1]["dependsOn"] == ["measure"]
    assert measure.fn("ab", 1) == {"size": 3}  # still a plain function


def test_function_node_arguments_are_checked_when_declared() -> None:
    with Workflow("w"):
        with pytest.raises(TypeError, match="node 'measure': missing a required argument: 'limit'"):
            measure(path="x")
        with pytest.raises(TypeError, match="argument 'limit' is not JSON-serialisable"):
            measure(path="x", limit=object())
        measure(path="x", limit=1)

    def local() -> None: ...

    with pytest.raises(TypeError, match="top level of a module"):
        function(local)
    with pytest.raises(TypeError, match="top level of a module"):
        function(lambda: None)
    with pytest.raises(TypeError, match="unexpected node option 'imag'"):
        function(imag="img:1")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="unexpected node option 'retries'"):
        measure.with_options(retries=2)  # type: ignore[call-arg]


def edges(count: int) -> st.SearchStrategy[tuple[int, int]]:
    """Edges from a lower to a higher index: any DAG over `count` nodes."""
    return st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)).filter(lambda e: e[0] < e[1])


@given(st.integers(min_value=2, max_value=12).flatmap(lambda n: st.tuples(st.just(n), st.sets(edges(n)))))
def test_any_dag_built_with_shifts_is_the_manifest_written_by_hand(dag: tuple[int, set[tuple[int, int]]]) -> None:
    """Edges declared with `>>`, `after` and `depends_on` in any order give each node the dependsOn a YAML author
    would write (in declaration order of the edges), and nothing else."""
    count, chosen = dag
    ordered = sorted(chosen)
    with Workflow("random") as wf:
        nodes = [node(f"n{i}", image="i", command=["true"]) for i in range(count)]
        for k, (up, down) in enumerate(ordered):
            if k % 3 == 0:
                nodes[up] >> nodes[down]
            elif k % 3 == 1:
                nodes[down].after(nodes[up])
            else:
                [nodes[up]] >> nodes[down]
    expected = []
    for i in range(count):
        entry: dict[str, Any] = {"name": f"n{i}", "image": "i", "command": ["true"]}
        deps = [f"n{up}" for up, down in ordered if down == i]
        if deps:
            entry["dependsOn"] = deps
        expected.append(entry)
    assert wf.to_dict()["spec"]["nodes"] == expected
