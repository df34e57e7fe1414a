"""dagwright: workflow DAGs as Kubernetes Jobs, or as local processes, from one Workflow manifest.

Layers, lowest first; a lower one never imports a higher one (tests/unit/test_imports.py checks every import):
- core, pure: `spec`, `status` (the model), `errors`, `templates`, `graph`, `failures`, `workflows`,
  `validation`, `planner` (every scheduling rule), `nodeio` (the node I/O contract), `crd`, `reference`,
  `manifests`;
- backends, independent of each other: `local` (`dagwright run`) and `k8s` (the kopf operator, and the cluster
  operations the CLI calls);
- `cli`, the command line over both.

Kept free of imports on purpose: node-runner imports `dagwright.nodeio` inside every node's pod, where each
millisecond of start-up counts. So `__version__` is looked up only when asked for, from the installed package's
metadata: pyproject.toml holds the one version.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("dagwright")
    raise AttributeError(f"module 'dagwright' has no attribute {name!r}")
