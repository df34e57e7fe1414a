"""`python -m dagwright.sdk.call`: what a function node runs. Arguments read by annotation, outputs written."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dagwright import nodeio
from dagwright.sdk import call

MODULE = """
    from dataclasses import dataclass
    from datetime import date
    from typing import Any

    from dagwright.sdk import function


    @function
    def typed(day: date, rows: int, name: str, sizes: list[int], extra: Any = None) -> dict[str, Any]:
        return {"day": day, "rows": rows + 1, "name": name, "total": sum(sizes), "extra": extra}


    def plain(value):
        return value


    @dataclass
    class Summary:
        count: int


    def summary() -> Summary:
        return Summary(3)


    def nothing() -> None:
        return None


    def unserialisable() -> object:
        return object()
"""


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "callee.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "outputs.json"
    monkeypatch.setenv("DAGWRIGHT_OUTPUTS", str(path))
    return path


def test_templated_values_are_read_by_annotation_and_the_return_value_is_the_outputs(outputs: Path) -> None:
    # what the planner renders: a parameter (text), a number and a list output (JSON), a string output (as it is)
    code = call.main(
        [
            "callee:typed",
            *("--text", "day=2026-11-29", "--text", "rows=41", "--text", "name=42", "--text", "sizes=[1, 2, 3]"),
            *("--json", 'extra={"k": [1]}'),
        ]
    )
    assert code == 0
    assert json.loads(outputs.read_text()) == {
        "day": "2026-11-29",
        "rows": 42,
        "name": "42",  # annotated str: the text exactly, never a number
        "total": 6,
        "extra": {"k": [1]},
    }


def test_without_annotations_json_is_tried_then_text_and_other_values_are_wrapped(outputs: Path) -> None:
    assert call.main(["callee:plain", "--text", "value=[1, 2]"]) == 0
    assert json.loads(outputs.read_text()) == {"result": [1, 2]}
    assert call.main(["callee:plain", "--text", "value=s3://bucket/key"]) == 0
    assert json.loads(outputs.read_text()) == {"result": "s3://bucket/key"}
    assert call.main(["callee:summary"]) == 0
    assert json.loads(outputs.read_text()) == {"count": 3}  # a dataclass is a mapping of outputs
    outputs.unlink()
    assert call.main(["callee:nothing"]) == 0 and not outputs.exists()  # None: no outputs


def test_bad_inputs_and_outputs_exit_with_data_error_naming_the_argument(
    outputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = call.main(
        ["callee:typed", "--text", "day=someday", "--text", "rows=1", "--text", "name=n", "--json", "sizes=[]"]
    )
    assert code == nodeio.EXIT_INVALID_INPUTS
    assert "argument 'day'" in capsys.readouterr().err
    assert call.main(["callee:plain", "--text", "nope=1"]) == nodeio.EXIT_INVALID_INPUTS
    assert "argument 'nope': the function has no such parameter" in capsys.readouterr().err
    assert call.main(["callee:unserialisable"]) == nodeio.EXIT_INVALID_OUTPUTS
    assert "not JSON-serialisable" in capsys.readouterr().err
    assert call.main(["callee:missing"]) == 1
    assert "module 'callee' has no 'missing'" in capsys.readouterr().err
    assert call.main(["callee"]) == 64
