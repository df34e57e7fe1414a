"""dagwright: workflow DAGs as Kubernetes Jobs, or as local processes, from one Workflow manifest.

Layers, lowest first; a lower one never imports a higher one (tests/unit/test_imports.py checks the core):
- core, pure: `spec`, `status` (the model), `errors`, `templates`, `graph`, `failures`, `workflows`,
  `validation`, `planner` (every scheduling rule), `nodeio` (the node I/O contract), `crd`, `reference`,
  `manifests`;
- backends: `local` (`dagwright run`) and `k8s` (the kopf operator and the cluster CLI);
- `cli`, the command line over both.

Kept free of imports on purpose: node-runner imports `dagwright.nodeio` inside every node's pod, where each
millisecond of start-up counts.
"""

__version__ = "0.1.0"
