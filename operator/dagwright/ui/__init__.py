"""The web UI: `dagwright ui` (Workflows in the cluster, as the caller's kubeconfig identity) and
`dagwright run FILE --ui` (the local run in progress), the same pages for both.

A layer of its own above the backends: it reads the cluster only through `dagwright.k8s.commands` and the local run
only through what `dagwright.cli` hands it, and nothing but the CLI imports it (tests/unit/test_imports.py).
- `views.py`: what the browser gets of a Workflow (list rows, the graph, node changes), pure;
- `sources.py`: the interface both sources implement; `cluster.py` and `local.py` implement it;
- `rendering.py`: a node's command as its latest attempt ran it;
- `server.py`: the Starlette app (pages, server-sent events, actions with CSRF checks); `serving.py` runs it;
- `static/`: the page, its script and style, and the vendored `dagre` layout library (static/vendor/README.md).
"""
