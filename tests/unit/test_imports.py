"""The pure core imports nothing from Kubernetes, kopf, Redis, Prometheus or the backends.

Read from the source with `ast`, following imports inside `dagwright` transitively, so a backend import two
modules away is caught as well as a direct one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "dagwright"
CORE = [
    "spec",
    "status",
    "errors",
    "graph",
    "templates",
    "failures",
    "workflows",
    "validation",
    "planner",
    "nodeio",
    "crd",
    "manifests",
]
FORBIDDEN = ("kopf", "kubernetes", "redis", "prometheus_client", "dagwright.local", "dagwright.k8s")


def _source(module: str) -> Path | None:
    parts = module.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(module: str) -> set[str]:
    path = _source(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for statement in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                anchor = package.split(".")[: len(package.split(".")) - statement.level + 1]
                base = ".".join([*anchor, *([statement.module] if statement.module else [])])
            else:
                base = statement.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in statement.names)  # `from dagwright import planner`
    return found


def _closure(module: str) -> dict[str, str]:
    """Every module reachable from `module`, each with the module that imported it."""
    via: dict[str, str] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        for name in _imports(current):
            if name in via or name == module:
                continue
            via[name] = current
            if name.startswith("dagwright.") and _source(name) is not None:
                todo.append(name)
    return via


@pytest.mark.parametrize("name", CORE)
def test_core_module_imports_no_backend(name: str) -> None:
    module = f"dagwright.{name}"
    via = _closure(module)
    bad = sorted(n for n in via if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, {n: f"imported by {via[n]}" for n in bad}


def test_the_check_sees_backend_imports() -> None:
    """Without this, an import scanner that found nothing would pass the test above."""
    via = _closure("dagwright.cli")
    assert "dagwright.local.runner" in via
    assert "dagwright.planner" in via


def test_node_runner_starts_without_pydantic_or_redis() -> None:
    """It starts in every node's pod: only a node that uses Redis pays for importing redis."""
    probe = "import sys, dagwright_node_runner.runner; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    heavy = [name for name in loaded if name.split(".")[0] in ("pydantic", "redis", "yaml", "kubernetes")]
    assert heavy == []
    assert "dagwright.templates" in loaded  # the one renderer, shared with the planner
