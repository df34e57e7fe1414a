"""One version: pyproject.toml's. The package reports it (from the installed metadata) and the Helm chart carries
it as both its own version and the operator's (appVersion, which is also the default image tag)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

import dagwright

REPO = Path(__file__).resolve().parents[2]


def _project_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    return version


def test_the_package_reports_pyproject_version() -> None:
    assert dagwright.__version__ == _project_version(), (
        "the installed metadata is older than pyproject.toml: reinstall (`pip install -e .`)"
    )


def test_the_chart_carries_the_same_version() -> None:
    chart = yaml.safe_load((REPO / "charts" / "dagwright" / "Chart.yaml").read_text(encoding="utf-8"))
    expected = _project_version()
    assert (chart["version"], chart["appVersion"]) == (expected, expected), (
        f"charts/dagwright/Chart.yaml: set version and appVersion to {expected} (pyproject.toml's version)"
    )


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    assert not hasattr(dagwright, "__versoin__")
