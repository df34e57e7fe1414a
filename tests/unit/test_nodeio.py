"""The outputs contract both backends read through: `nodeio.parse_outputs` and `nodeio.read_outputs_file`."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagwright import nodeio


@pytest.mark.parametrize("text", ["", "  \n"])
def test_empty_outputs_are_no_outputs(tmp_path: Path, text: str) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(text)
    assert nodeio.read_outputs_file(str(path)) == (None, None)
    assert nodeio.parse_outputs(text, nodeio.TERMINATION_LIMIT) == (None, None)


def test_no_file_is_no_outputs(tmp_path: Path) -> None:
    assert nodeio.read_outputs_file(str(tmp_path / "missing")) == (None, None)


def test_a_file_reads_as_its_text_parses(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    for text in ['{"rows": 42}', "[1]", "{not json"]:
        path.write_text(text)
        assert nodeio.read_outputs_file(str(path)) == nodeio.parse_outputs(text, nodeio.REDIS_LIMIT)


def test_the_file_limit_is_the_largest_a_cluster_accepts(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text('{"k": "' + "x" * (nodeio.REDIS_LIMIT - 10) + '"}')
    outputs, problem = nodeio.read_outputs_file(str(path))
    assert problem is None and outputs is not None
    path.write_text('{"k": "' + "x" * nodeio.REDIS_LIMIT + '"}')
    outputs, problem = nodeio.read_outputs_file(str(path))
    assert outputs is None and problem is not None
    assert problem[0] == "OutputsTooLarge" and str(nodeio.REDIS_LIMIT) in problem[1]


def test_undecodable_outputs_are_invalid(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_bytes(b'{"k": "\xff"}')
    outputs, problem = nodeio.read_outputs_file(str(path))
    assert outputs is None and problem is not None and problem[0] == "InvalidOutputs"
