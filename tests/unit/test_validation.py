"""Manifest validation: one clear `field: message` per problem, every problem at once, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import manifest, node

from dagwright import cli, cronspec, manifests
from dagwright.errors import SpecError
from dagwright.validation import compile_documents, compile_manifest, parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def problems(document: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        compile_manifest(document)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    documents = [cronspec.as_workflow(doc) for doc in manifests.load_all(path)]  # a CronWorkflow: its workflow
    workflow = compile_documents(documents, source=str(path))
    metadata = list(yaml.safe_load_all(path.read_text()))[-1]["metadata"]
    assert workflow.name == metadata.get("name") or workflow.name.startswith(metadata["generateName"])


def test_duplicate_names() -> None:
    assert problems(manifest([node("a"), node("b"), node("a")])) == ["spec.nodes[2].name: duplicate node name 'a'"]


@pytest.mark.parametrize("name", ["Upper", "under_score", "-dash", "dash-", "x" * 64, "", "a.b"])
def test_invalid_names(name: str) -> None:
    (problem,) = problems(manifest([node(name)]))
    assert problem.startswith("spec.nodes[0].name: ")


def test_unknown_and_self_dependencies_are_all_reported() -> None:
    assert problems(manifest([node("a", "a"), node("b", "a", "nope")])) == [
        "spec.nodes[0].dependsOn[0]: node 'a' depends on itself",
        "spec.nodes[1].dependsOn[1]: node 'b' depends on unknown node 'nope'",
    ]


def test_cycle_message_shows_the_cycle() -> None:
    document = manifest([node("start"), node("a", "start", "c"), node("b", "a"), node("c", "b")])
    assert problems(document) == ["spec.nodes[1].dependsOn[1]: dependency cycle: a -> b -> c -> a"]


def test_long_chain_is_not_a_recursion_problem() -> None:
    chain = [node("n0")] + [node(f"n{i}", f"n{i - 1}") for i in range(1, 10_000)]
    assert len(compile_manifest(manifest(chain)).nodes) == 10_000
    chain[0] = node("n0", "n9999")
    (problem,) = problems(manifest(chain))
    assert problem.startswith("spec.nodes[0].dependsOn[0]: dependency cycle: n0 -> n1 -> ")
    assert problem.endswith("n9999 -> n0")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ params.nope }}", "'{{ params.nope }}' names parameter 'nope', which spec.parameters does not define"),
        ("{{ nodes.b.outputs.k }}", "'{{ nodes.b.outputs.k }}' reads outputs of 'b', which is not upstream of 'a'"),
        ("{{ workflow.nam }}", "'{{ workflow.nam }}' is not a known reference"),
        ("{{ nodes.b.k }}", "'{{ nodes.b.k }}' should be nodes.NODE.outputs.KEY"),
        ("{{ a b }}", "'{{ a b }}' is not a valid template reference"),
    ],
)
def test_unknown_template_references(value: str, expected: str) -> None:
    (problem,) = problems(manifest([node("a", args=["x", value]), node("b")]))
    assert problem.startswith(f"spec.nodes[0].args[1]: {expected}")


def test_template_references_in_env_and_command_name_their_field() -> None:
    document = manifest([node("a", command=["{{ params.x }}"], env=[{"name": "E", "value": "{{ params.y }}"}])])
    assert sorted(p.split(":")[0] for p in problems(document)) == [
        "spec.nodes[0].command[0]",
        "spec.nodes[0].env[0].value",
    ]


def test_template_problems_in_defaults_are_named_there_once() -> None:
    document = manifest(
        [node("a", env=[{"name": "OWN", "value": "{{ params.nope }}"}]), node("b"), node("c")],
        defaults={"env": [{"name": "SHARED", "value": "{{ params.missing }}"}]},
    )
    assert problems(document) == [
        "spec.nodes[0].env[0].value: '{{ params.nope }}' names parameter 'nope', which spec.parameters does not define",
        "spec.defaults.env[0].value: '{{ params.missing }}' names parameter 'missing', "
        "which spec.parameters does not define",
    ]


def test_nul_characters_are_refused_where_a_process_would_get_them() -> None:
    document = manifest(
        [node("a", command=["echo", "a\x00b"], env=[{"name": "E", "value": "\x00"}])],
        parameters={"p": "x\x00"},
    )
    assert [p.split(": ")[0] for p in problems(document)] == [
        "spec.nodes[0].command[1]",
        "spec.nodes[0].env[0].value",
        "spec.parameters.p",
    ]


@pytest.mark.timeout(10)
def test_long_chain_passing_outputs_compiles_in_linear_time() -> None:
    """Each node reads its parent's outputs: checking that with every node's ancestors was quadratic."""
    chain = [node("n0")] + [
        node(f"n{i}", f"n{i - 1}", args=[f"{{{{ nodes.n{i - 1}.outputs.x }}}}"]) for i in range(1, 10_000)
    ]
    assert len(compile_manifest(manifest(chain)).nodes) == 10_000


def test_empty_workflow() -> None:
    assert problems(manifest([])) == ["spec.nodes: List should have at least 1 item after validation, not 0"]
    assert problems({"apiVersion": "dagwright.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}}) == [
        "spec: required field is missing"
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"parallelism": 0}, "spec.parallelism"),
        ({"parallelism": 10_001}, "spec.parallelism"),
        ({"activeDeadlineSeconds": -5}, "spec.activeDeadlineSeconds"),
        ({"activeDeadlineSeconds": 10**12}, "spec.activeDeadlineSeconds"),
        ({"priority": 5000}, "spec.priority"),
        ({"nodes": [node("a", timeoutSeconds=0)]}, "spec.nodes[0].timeoutSeconds"),
        ({"nodes": [node("a", retry={"limit": -1})]}, "spec.nodes[0].retry.limit"),
        ({"nodes": [node("a", retry={"limit": 10**6})]}, "spec.nodes[0].retry.limit"),
        ({"nodes": [node("a", retry={"backoff": {"factor": 0.5}})]}, "spec.nodes[0].retry.backoff.factor"),
        ({"nodes": [node("a", retry={"backoff": {"jitter": 2}})]}, "spec.nodes[0].retry.backoff.jitter"),
        ({"nodes": [node("a", retry={"backoff": {"initialSeconds": float("nan")}})]}, "spec.nodes[0].retry.backoff"),
        ({"nodes": [node("a", retry={"transientExitCodes": [0]})]}, "spec.nodes[0].retry.transientExitCodes[0]"),
        ({"nodes": [node("a", args=["x" * 40_000])]}, "spec.nodes[0].args[0]"),
        ({"nodes": [node("a", args=["x"] * 300)]}, "spec.nodes[0].args"),
    ],
)
def test_negative_or_absurd_numbers_and_sizes(spec: dict[str, Any], field: str) -> None:
    document = manifest([node("a")])
    document["spec"].update(spec)
    (problem,) = problems(document)
    assert problem.startswith(field)


def test_too_many_nodes() -> None:
    (problem,) = problems(manifest([node(f"n{i}") for i in range(10_001)]))
    assert problem.startswith("spec.nodes: List should have at most 10000 items")


def test_unknown_fields_are_named_with_their_node() -> None:
    document = manifest([node("a"), node("b", comand=["x"])], paralelism=3)
    assert sorted(problems(document)) == [
        "spec.nodes[1].comand: unknown field (node 'b')",
        "spec.paralelism: unknown field",
    ]


def test_wrong_types() -> None:
    document = manifest([node("a", command="echo hi", dependsOn="b")], parallelism="many")
    assert sorted(problems(document)) == [
        "spec.nodes[0].command: Input should be a valid list (got 'echo hi') (node 'a')",
        "spec.nodes[0].dependsOn: Input should be a valid list (got 'b') (node 'a')",
        "spec.parallelism: Input should be a valid integer, unable to parse string as an integer (got 'many')",
    ]


def test_not_a_workflow_at_all() -> None:
    assert problems([1, 2]) == ["(document): a Workflow manifest must be a mapping with apiVersion, kind, spec"]
    assert [p.split(":")[0] for p in problems({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}})] == [
        "apiVersion",
        "kind",
        "metadata.name",
        "spec.nodes",
    ]


def test_node_needs_a_command_and_approval_nodes_run_nothing() -> None:
    document = manifest([{"name": "a"}, {"name": "b", "approval": {}, "command": ["true"]}])
    assert problems(document) == [
        "spec.nodes[0]: node 'a' needs a command (or an image whose entrypoint runs)",
        "spec.nodes[1]: approval node 'b' runs nothing: remove image/command/args",
    ]


def test_parse_spec_prefixes_fields_with_spec() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"nodes": [{"name": "a", "bogus": 1}]})
    assert [str(p) for p in caught.value.problems] == ["spec.nodes[0].bogus: unknown field (node 'a')"]


def test_yaml_yes_and_dates_are_strings_not_booleans_or_dates() -> None:
    text = """
apiVersion: dagwright.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  parameters: {enabled: yes, day: 2026-11-25}
  nodes:
  - name: a
    command: ["true"]
    retry: {limit: 1, policy: Transient}
"""
    workflow = compile_manifest(manifests.parse(text))
    assert workflow.nodes[0].retry is not None and workflow.nodes[0].retry.policy == "Transient"
    assert workflow.spec.parameters == {"enabled": "yes", "day": "2026-11-25"}


_OLD_RETRY = """
apiVersion: dagwright.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  defaults: {retry: {on: Transient}}
  nodes:
  - {name: a, command: ["true"]}
  - {name: b, command: ["true"]}
  - {name: c, command: ["true"], retry: {limit: 1, on: Transient}}
"""


@pytest.mark.parametrize(
    "document",
    [
        manifests.parse(_OLD_RETRY),  # dagwright's own loader (YAML 1.2): the key `on`
        yaml.safe_load(_OLD_RETRY),  # YAML 1.1 (PyYAML's default): the key True
        json.loads(json.dumps(yaml.safe_load(_OLD_RETRY))),  # kubectl sends it to the API server as "true"
    ],
    ids=["on", "True", "true"],
)
def test_retry_on_is_refused_with_its_new_name(document: dict[str, Any]) -> None:
    """`retry.on` became `retry.policy`: the old key, however a parser spelled it, names the new one."""
    with pytest.raises(SpecError) as caught:
        compile_manifest(document)
    fields = {problem.field: problem.message for problem in caught.value.problems}
    assert set(fields) == {"spec.defaults.retry.on", "spec.nodes[2].retry.on"}
    assert fields["spec.nodes[2].retry.on"].startswith("renamed to retry.policy")
    with pytest.raises(SpecError) as operator_side:  # what the operator and its webhook parse
        parse_spec(document["spec"])
    assert {problem.field for problem in operator_side.value.problems} == set(fields)


def test_invalid_yaml_names_line_and_column() -> None:
    with pytest.raises(SpecError) as caught:
        manifests.parse("spec:\n  nodes: [a, b\n", "w.yaml")
    (problem,) = caught.value.problems
    assert problem.field.startswith("w.yaml:3:")
    assert problem.message.startswith("invalid YAML")


def test_parameters_override_spec_parameters() -> None:
    document = manifest([node("a", args=["{{ params.who }}"])], parameters={"who": "world"})
    assert compile_manifest(document, {"who": "you"}).spec.parameters == {"who": "you"}


# -- the CLI shows problems, one per line, and exits 1


def test_cli_validate_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest([node("a", "zz"), node("a", timeoutSeconds=-1)])))
    assert cli.main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {path} is not a valid Workflow:",
        "  spec.nodes[1].timeoutSeconds: Input should be greater than or equal to 1 (got -1) (node 'a')",
    ]


def test_cli_validate_accepts_a_valid_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    path = EXAMPLES[0]
    assert cli.main(["validate", str(path)]) == 0
    assert "valid Workflow" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text",
    ["", "a: [", "- 1\n- 2\n", "---\na: 1\n---\nb: 2\n", "\x00", "spec: {nodes: [{name: a, dependsOn: [a]}]}"],
)
def test_cli_run_on_broken_files_exits_1_without_traceback(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    assert cli.main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} is not a valid Workflow:\n  ")
    assert "Traceback" not in err


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read the file" in capsys.readouterr().err
