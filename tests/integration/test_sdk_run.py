"""`Workflow.run()`: Python-built workflows on the local runner, function nodes as real processes end to end."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from dagwright.sdk import ForEach, NodePhase, Workflow, WorkflowPhase, WorkflowStatus, item, node

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"

PIPELINE = '''
    """Function nodes for the tests: imported by the test, and again by each node's process."""

    from dagwright.sdk import function


    @function
    def extract(day: str, limit: int) -> dict[str, object]:
        return {"rows": limit * 2, "day": day, "tables": ["users", "orders"]}


    @function
    def combine(rows: int, tables: list[str], day: str) -> str:
        return f"{day}: {rows} rows in {len(tables)} tables"


    @function
    def square(n: int) -> dict[str, int]:
        return {"square": n * n}


    @function
    def total(squares: list[int]) -> int:
        return sum(squares)


    @function
    def explode(rows: int) -> None:
        raise RuntimeError(f"cannot handle {rows} rows")
'''


def module_from(tmp_path: Path, name: str, text: str) -> ModuleType:
    """A module of the test's own, importable here (and, through run()'s PYTHONPATH, in the nodes)."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        importlib.invalidate_caches()


def test_run_returns_the_final_typed_status(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import diamond  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    status = diamond.build().run(parameters={"date": "2027-01-01"}, logs_dir=tmp_path)
    assert isinstance(status, WorkflowStatus)
    assert status.phase is WorkflowPhase.SUCCEEDED and status.progress == "4/4"
    assert {name: n.phase for name, n in status.nodes.items()} == dict.fromkeys(
        ["extract", "transform-a", "transform-b", "load"], NodePhase.SUCCEEDED
    )
    assert (tmp_path / "load.1.log").read_text().strip() == "load 2027-01-01"  # the parameter override arrived


def test_function_outputs_flow_to_a_function_and_a_shell_node(tmp_path: Path) -> None:
    pipeline = module_from(tmp_path, "sdk_pipeline_flow", PIPELINE)
    with Workflow("flow", parameters={"day": "2026-11-29"}) as wf:
        extracted = pipeline.extract(day=wf.params["day"], limit=21)
        combined = pipeline.combine(
            rows=extracted.outputs["rows"], tables=extracted.outputs["tables"], day=extracted.outputs["day"]
        )
        node("show", command=["sh", "-c", f"echo '{combined.outputs['result']}' > {tmp_path / 'shown'}"])
    status = wf.run(logs_dir=tmp_path / "logs")
    assert status.phase is WorkflowPhase.SUCCEEDED, status.nodes
    assert status.nodes["extract"].outputs == {"rows": 42, "day": "2026-11-29", "tables": ["users", "orders"]}
    assert status.nodes["combine"].outputs == {"result": "2026-11-29: 42 rows in 2 tables"}
    assert (tmp_path / "shown").read_text() == "2026-11-29: 42 rows in 2 tables\n"
    assert [n["name"] for n in wf.to_dict()["spec"]["nodes"] if n.get("dependsOn")] == ["combine", "show"]


def test_a_function_that_raises_fails_its_node_with_the_error_in_the_message(tmp_path: Path) -> None:
    pipeline = module_from(tmp_path, "sdk_pipeline_raise", PIPELINE)
    with Workflow("boom") as wf:
        extracted = pipeline.extract(day="today", limit=1)
        pipeline.explode(rows=extracted.outputs["rows"])
        pipeline.combine.with_options(name="bad-input")(rows=extracted.outputs["day"], tables=[], day="x")
    status = wf.run(logs_dir=tmp_path / "logs")
    assert status.phase is WorkflowPhase.FAILED
    explode, bad = status.nodes["explode"], status.nodes["bad-input"]
    assert explode.phase is NodePhase.FAILED and "RuntimeError: cannot handle 2 rows" in (explode.message or "")
    assert bad.phase is NodePhase.FAILED and "exit code 65" in (bad.message or "")
    assert "argument 'rows'" in (bad.message or "")


def test_a_script_that_runs_its_workflow_on_import_does_not_run_it_again_in_its_nodes(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from dagwright.sdk import Workflow, function

            @function
            def hello() -> dict[str, str]:
                return {"greeting": "hello"}

            with Workflow("unguarded") as wf:
                hello()
            status = wf.run()  # no `if __name__ == "__main__":`
            print(status.phase.value, status.nodes["hello"].message)
            """
        )
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Failed ") and "start it under `if __name__" in result.stdout


@pytest.mark.parametrize(("day", "alert"), [("2026-11-29", NodePhase.SUCCEEDED), ("today", NodePhase.SKIPPED)])
def test_the_rows_example_alerts_only_on_a_big_day(tmp_path: Path, day: str, alert: NodePhase) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import rows  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    status = rows.build().run(parameters={"day": day}, logs_dir=tmp_path)
    assert status.phase is WorkflowPhase.SUCCEEDED, status.nodes
    assert status.nodes["summarise"].outputs["big"] is (alert is NodePhase.SUCCEEDED)
    assert status.nodes["alert"].phase is alert


@pytest.mark.parametrize(
    ("rows", "phase", "notify"),
    [("0", WorkflowPhase.FAILED, NodePhase.SUCCEEDED), ("10", WorkflowPhase.SUCCEEDED, NodePhase.SKIPPED)],
)
def test_finally_nodes_from_python_run_whatever_happened(
    tmp_path: Path, rows: str, phase: WorkflowPhase, notify: NodePhase
) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import notify_on_failure  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    status = notify_on_failure.build().run(parameters={"rows": rows}, logs_dir=tmp_path)
    assert status.phase is phase
    assert status.nodes["notify"].phase is notify and status.nodes["cleanup"].phase is NodePhase.SUCCEEDED
    if notify is NodePhase.SUCCEEDED:
        assert (
            tmp_path / "notify.1.log"
        ).read_text().strip() == 'workflow notify-on-failure Failed: failed nodes ["load"]'


def test_a_function_node_for_each_item_fans_in_to_a_typed_list(tmp_path: Path) -> None:
    pipeline = module_from(tmp_path, "sdk_pipeline_fan", PIPELINE)
    with Workflow("fan") as wf:
        squared = pipeline.square.with_options(for_each=ForEach(items=[1, 2, 3, 4], max_parallel=2))(n=item)
        pipeline.total(squares=squared.outputs["square"])
    status = wf.run(logs_dir=tmp_path / "logs")
    assert status.phase is WorkflowPhase.SUCCEEDED, status.nodes
    assert status.nodes["total"].outputs == {"result": 30}


def test_the_map_reduce_example_sums_every_items_output(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import map_reduce  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    status = map_reduce.build().run(logs_dir=tmp_path)
    assert status.phase is WorkflowPhase.SUCCEEDED, status.nodes
    assert (tmp_path / "sum.1.log").read_text().strip() == "sum of squares: 55"
