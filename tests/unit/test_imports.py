"""The layering contract of `dagwright`, read from the source with `ast`:

    core (model, DAG, planner, ...)  <-  backends: dagwright.k8s, dagwright.local  <-  dagwright.ui  <-  dagwright.cli
                                                                                   dagwright.sdk (beside the CLI)

- a module imports only its own layer and the layers below it: the core imports no backend and no CLI, a
  backend imports no CLI, and `k8s` and `local` do not import each other;
- the core imports none of kopf, kubernetes, redis, prometheus_client, `local` none of kopf and kubernetes, and
  the CLI, the web UI and the Python SDK reach the cluster only through `dagwright.k8s` (they import kubernetes
  and kopf nowhere themselves); the web UI is imported only by the CLI, and the CLI and the SDK, two top layers,
  do not import each other.

Every import statement counts, also one inside a function: a lazy import is still a dependency. The core is
also followed transitively, so a backend import two modules away is reported with the module that made it.
`test_the_contract_reports_each_kind_of_violation` runs the checker on a small package that breaks every rule.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "dagwright"
REPO = PACKAGE.parents[1]

# Which dagwright layers each layer may import, and which outside packages it may not.
MAY_IMPORT = {
    "core": {"core"},
    "local": {"core", "local"},
    "k8s": {"core", "k8s"},
    "ui": {"core", "local", "k8s", "ui"},
    "cli": {"core", "local", "k8s", "ui", "cli"},
    "sdk": {"core", "local", "k8s", "sdk"},
}
FORBIDDEN_PACKAGES = {
    "core": ("kopf", "kubernetes", "redis", "prometheus_client"),
    "local": ("kopf", "kubernetes"),
    "k8s": (),
    "ui": ("kopf", "kubernetes"),
    "cli": ("kopf", "kubernetes"),
    "sdk": ("kopf", "kubernetes"),
}


def layer(module: str) -> str:
    """`dagwright.k8s.jobs` -> k8s, `dagwright.cli` -> cli, `dagwright.planner` -> core."""
    second = module.split(".")[1] if "." in module else ""
    return second if second in ("k8s", "local", "ui", "cli", "sdk") else "core"


def modules(root: Path) -> list[str]:
    """Every module of the package at `root` (a directory named like the package)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        found.append(".".join((root.name, *parts)))
    return found


def _source(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(root: Path, module: str) -> dict[str, int]:
    """The modules `module` imports, each with the line of its first import statement."""
    path = _source(root, module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for statement in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(statement, ast.Import):
            names = [alias.name for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                anchor = package.split(".")[: len(package.split(".")) - statement.level + 1]
                base = ".".join([*anchor, *([statement.module] if statement.module else [])])
            else:
                base = statement.module or ""
            names = [base, *(f"{base}.{alias.name}" for alias in statement.names)]  # `from dagwright import cli`
        for name in names:
            found.setdefault(name, statement.lineno)
    return found


def violations(root: Path) -> list[str]:
    """Every import in the package at `root` that breaks the contract, one line per statement and rule."""
    problems: dict[tuple[str, int, str], str] = {}
    for module in modules(root):
        own = layer(module)
        for name, line in _imports(root, module).items():
            top = name.split(".")[0]
            if top == root.name and _source(root, name) is not None and layer(name) not in MAY_IMPORT[own]:
                key, text = (module, line, layer(name)), f"{module}:{line} imports {name}: {own} may not import it"
            elif top in FORBIDDEN_PACKAGES[own]:
                key, text = (module, line, top), f"{module}:{line} imports {top}: {own} may not import it"
            else:
                continue
            if len(text) > len(problems.get(key, "")):  # `from dagwright.k8s import jobs`: name the module
                problems[key] = text
    return sorted(problems.values())


def _closure(root: Path, module: str) -> dict[str, str]:
    """Every module reachable from `module`, each with the module that imported it."""
    via: dict[str, str] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        for name in _imports(root, current):
            if name in via or name == module:
                continue
            via[name] = current
            if name.startswith(root.name + ".") and _source(root, name) is not None:
                todo.append(name)
    return via


def test_every_import_keeps_to_the_layers() -> None:
    assert violations(PACKAGE) == []


@pytest.mark.parametrize("module", [m for m in modules(PACKAGE) if layer(m) == "core"])
def test_core_module_reaches_no_backend_even_indirectly(module: str) -> None:
    via = _closure(PACKAGE, module)
    forbidden = (*FORBIDDEN_PACKAGES["core"], "dagwright.local", "dagwright.k8s", "dagwright.cli", "dagwright.sdk")
    bad = sorted(n for n in via if any(n == f or n.startswith(f + ".") for f in forbidden))
    assert not bad, {n: f"imported by {via[n]}" for n in bad}


def test_the_check_sees_backend_imports() -> None:
    """Without this, an import scanner that found nothing would pass the tests above."""
    via = _closure(PACKAGE, "dagwright.cli")
    assert "dagwright.local.runner" in via
    assert "dagwright.k8s.commands" in via
    assert "dagwright.planner" in via
    assert {"dagwright.spec", "dagwright.planner", "dagwright.k8s.reconcile", "dagwright.cli.cluster"} <= set(
        modules(PACKAGE)
    )


def test_the_contract_reports_each_kind_of_violation(tmp_path: Path) -> None:
    """A package that breaks every rule once, with lazy and relative imports among them: each is reported."""
    root = tmp_path / "dagwright"
    files = {
        "__init__.py": "",
        "planner.py": "from dagwright import helpers\n",
        "helpers.py": "def later():\n    import kubernetes.client\n",  # lazy: still a dependency
        "spec.py": "from .cli import main\n",  # relative
        "k8s/__init__.py": "",
        # planner and kopf are allowed here; local is not
        "k8s/jobs.py": "from dagwright.local.runner import run\nfrom dagwright.planner import plan\nimport kopf\n",
        "k8s/commands.py": "from ..cli import arguments\n",
        "local/__init__.py": "",
        "local/runner.py": "from dagwright.k8s import jobs\nimport kopf\n",
        "cli/__init__.py": "from dagwright.k8s import commands\nfrom dagwright.local import runner\n",
        "cli/arguments.py": "def guard():\n    from kubernetes.client.exceptions import ApiException\n",
        "sdk/__init__.py": "from dagwright.cli import main\nfrom dagwright.k8s import commands\nimport kopf\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert violations(root) == [
        "dagwright.cli.arguments:2 imports kubernetes: cli may not import it",
        "dagwright.helpers:2 imports kubernetes: core may not import it",
        "dagwright.k8s.commands:1 imports dagwright.cli.arguments: k8s may not import it",
        "dagwright.k8s.jobs:1 imports dagwright.local.runner: k8s may not import it",
        "dagwright.local.runner:1 imports dagwright.k8s.jobs: local may not import it",
        "dagwright.local.runner:2 imports kopf: local may not import it",
        "dagwright.sdk:1 imports dagwright.cli: sdk may not import it",
        "dagwright.sdk:3 imports kopf: sdk may not import it",
        "dagwright.spec:1 imports dagwright.cli: core may not import it",
    ]
    assert _closure(root, "dagwright.planner")["kubernetes.client"] == "dagwright.helpers"  # two modules away


def test_the_cli_starts_without_kubernetes_or_kopf() -> None:
    """`dagwright run`, `validate`, `graph FILE` and `crd` never load the cluster libraries: only cluster verbs do."""
    probe = (
        "import sys, contextlib, io\n"
        "from dagwright.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['validate', sys.argv[1]]) == 0 and main(['graph', sys.argv[1]]) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    manifest = str(REPO / "examples" / "diamond.yaml")
    result = subprocess.run([sys.executable, "-c", probe, manifest], capture_output=True, text=True, check=True)
    loaded = result.stdout.split()
    assert "dagwright.cli.cluster" in loaded  # the cluster verbs are registered ...
    heavy = ("kubernetes", "kopf", "starlette", "uvicorn")
    assert [name for name in loaded if name.split(".")[0] in heavy] == []  # ... but nothing loaded


def test_node_runner_starts_without_pydantic_or_redis() -> None:
    """It starts in every node's pod: only a node that uses Redis pays for importing redis."""
    probe = "import sys, dagwright_node_runner.runner; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    heavy = [name for name in loaded if name.split(".")[0] in ("pydantic", "redis", "yaml", "kubernetes")]
    assert heavy == []
    assert "dagwright.templates" in loaded  # the one renderer, shared with the planner


def test_the_sdk_builds_without_loading_a_backend() -> None:
    """Writing a manifest from Python loads neither backend: only `run()` and `submit()` load theirs."""
    probe = (
        "import sys\n"
        "from dagwright.sdk import Workflow, node\n"
        "with Workflow('w') as wf:\n"
        "    node('a', image='i', command=['a']) >> node('b', image='i', command=['b'])\n"
        "wf.to_yaml()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert "dagwright.sdk.builder" in loaded and "dagwright.validation" in loaded
    backends = [
        n
        for n in loaded
        if n.split(".")[0] in ("kubernetes", "kopf") or n.startswith(("dagwright.local", "dagwright.k8s"))
    ]
    assert backends == []


def test_a_function_node_starts_without_the_models() -> None:
    """Every function node starts `dagwright.sdk.call`, which imports the user's module, which imports the SDK:
    none of that loads pydantic, the models, validation, CEL or YAML (about a second on a busy machine)."""
    probe = (
        "import sys\n"
        "import dagwright.sdk.call\n"
        "from dagwright.sdk import Workflow, function, node\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    heavy = [n for n in loaded if n.split(".")[0] in ("pydantic", "pydantic_core", "cel_expr_python", "yaml")]
    assert heavy == []
    assert [n for n in loaded if n in ("dagwright.spec", "dagwright.validation", "dagwright.status")] == []
    assert "dagwright.sdk.functions" in loaded


def test_the_operator_runs_without_the_kubernetes_package(tmp_path: Path) -> None:
    """`dagwright operator` never loads the kubernetes package (~9 MiB of its memory), though it is installed for
    the CLI: it reads its credentials itself, and kopf would import it only to recognise model objects we never
    pass. Nor the Redis client (~5 MiB) unless it is given Redis. Started for real (against a closed port), and
    probed once its start-up made the Job and pod watches."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "current-context: c\n"
        "contexts: [{name: c, context: {cluster: c, user: c}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: c, user: {token: t}}]\n"
    )
    probe = (
        "import os, sys, threading, time\n"
        "def probe():\n"
        "    deadline = time.monotonic() + 60\n"
        "    while time.monotonic() < deadline:\n"
        "        if any(t.name.startswith('watch ') for t in threading.enumerate()):\n"
        "            break\n"
        "        time.sleep(0.1)\n"
        "    print(' '.join(sorted(m for m, module in sys.modules.items() if module is not None)), flush=True)\n"
        "    os._exit(0)\n"
        "threading.Thread(target=probe, daemon=True).start()\n"
        "from dagwright.cli import main\n"
        "main(['operator', '--no-leader-election', '--metrics-port', '0', '--health-port', '0', '--namespace', 'x'])\n"
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("KUBERNETES_SERVICE")}
    env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    loaded = result.stdout.split()
    assert "kopf" in loaded and "dagwright.k8s.watch" in loaded, result.stderr[-2000:]  # it did start ...
    assert [name for name in loaded if name.split(".")[0] == "kubernetes"] == []  # ... without the package
    assert [name for name in loaded if name.split(".")[0] == "redis"] == []  # no --redis-url: no Redis client
