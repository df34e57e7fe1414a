"""What one Workflow status PATCH costs the API server (and etcd), in CPU ms, by how the node map is written.

Why: on two cores throughput is CPU per node (bench/PEERS.md run 6), and the API server is most of it: 86 ms
per dagwright node against 43.5 per bare Job. The operator's status patches (0.66 per node of a 50-node
workflow) are one candidate for the difference; this measures them alone, with nothing else running in the
namespace, so the figure is the patch's own cost: the merge, the CRD schema's validation, managedFields, the
etcd write and the watch fan-out (a watch on the namespace's Workflows is open, as the operator's is).

Each variant patches one node at a time of a 50-node status, as the operator's passes do:
- plain: `status.nodes.<name>` merge patches (what the operator writes below statuswire.COMPRESS_ABOVE nodes);
- compressed: the whole node map as `status.compressedNodes` (what it writes above);
- configmap: a ConfigMap of the same JSON size patched the same way, for the cost of any object that size.

    python bench/apiserver_status_patch.py [--patches 300] [--nodes 50] [--pprof /tmp/apiserver.pprof]

`--pprof` saves the API server's CPU profile of the plain variant (`go tool pprof -top FILE`).

Figures (2026-11-30, quiet machine, 300 patches; runs vary by +-5 ms): plain ~51 ms of API-server CPU per patch
(~62 with the two node fields the model now leaves out, three interleaved runs each), compressed ~15, the
ConfigMap ~5: the cost follows the object's number of fields (managedFields list each again), not its bytes.
With `status.nodes` atomic for the field manager (x-kubernetes-map-type), plain is ~28 ms (43 before, in the same
session): managedFields went from 5.6 KB of the 16 KB object to 0.5 KB. `status.nodes` kept as preserved unknown
fields as well (no schema under it) measured ~19 ms; not done, as it would drop `kubectl explain` and the API
server's validation of the node map.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _support as s

from dagwright.k8s import names, statuswire
from dagwright.status import NodePhase, NodeStatus

_CPU = ("kube-apiserver", "etcd")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=300)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--pprof", type=Path, default=None)
    args = parser.parse_args()
    kube = s.cluster()
    spec_nodes = s.layered(10, max(1, args.nodes // 10))
    with s.namespace(kube, "bench-status-patch") as ns, _WorkflowWatch(kube, ns):
        for variant in ("plain", "compressed", "configmap"):
            patch = _patcher(kube, ns, variant, spec_nodes)
            for i in range(10):  # warm: the first writes create managedFields entries and caches
                patch(i)
            profile = _profile(kube, args.pprof, args.patches) if variant == "plain" and args.pprof else None
            before = s.plane_cpu_seconds(kube)
            started = time.monotonic()
            for i in range(args.patches):
                patch(10 + i)
            seconds = time.monotonic() - started
            after = s.plane_cpu_seconds(kube)
            if profile is not None:
                profile.join()
            cpu = dict(s.cpu_table(after, before, args.patches))
            s.figure(f"{variant}: object bytes", _size(kube, ns, variant))
            s.figure(f"{variant}: patches/s (one client, in sequence)", f"{args.patches / seconds:.1f}")
            for process in _CPU:
                s.figure(f"{variant}: {process} CPU ms per patch", f"{cpu.get(process, 0.0):.2f}")
    return 0


def _node_status(index: int, step: int) -> dict[str, Any]:
    """A node's status as the operator writes it (the model's own wire form): Running, then Succeeded."""
    start = datetime(2026, 11, 30, tzinfo=UTC) + timedelta(seconds=step)
    ended = {"finished_at": start + timedelta(seconds=2), "exit_code": 0} if step % 2 else {}
    node = NodeStatus(
        phase=NodePhase.SUCCEEDED if step % 2 else NodePhase.RUNNING,
        attempts=1,
        started_at=start,
        attempt_started_at=start,
        **ended,
    )
    wire: dict[str, Any] = node.model_dump(mode="json", by_alias=True, exclude_none=True)
    return wire


def _patcher(kube: s.Cluster, ns: str, variant: str, spec_nodes: list[dict[str, Any]]) -> Callable[[int], None]:
    """Creates the variant's object with every node's status, and returns a function writing step `i`: one
    node's status changed, and the summary fields the operator writes with it."""
    node_names = [node["name"] for node in spec_nodes]
    nodes = {name: _node_status(i, 1) for i, name in enumerate(node_names)}

    def summary(step: int) -> dict[str, Any]:
        return {"phase": "Running", "progress": f"{step % len(node_names)}/{len(node_names)}"}

    if variant == "configmap":
        data = {"status": json.dumps({**summary(0), "nodes": nodes}), "spec": json.dumps(spec_nodes)}
        kube.core.create_namespaced_config_map(ns, {"metadata": {"name": "status"}, "data": data})

        def patch_configmap(step: int) -> None:
            nodes[node_names[step % len(node_names)]] = _node_status(step, step)
            body = {"data": {"status": json.dumps({**summary(step), "nodes": nodes})}}
            kube.core.patch_namespaced_config_map("status", ns, body)

        return patch_configmap

    name = f"wf-{variant}"
    body = s.workflow(name, spec_nodes)
    kube.custom.create_namespaced_custom_object(names.GROUP, names.VERSION, ns, names.PLURAL, body)
    first: dict[str, Any] = {**summary(0)}
    if variant == "compressed":
        first["compressedNodes"] = statuswire.encode(nodes)
    else:
        first["nodes"] = nodes
    _patch_status(kube, ns, name, first)

    def patch_workflow(step: int) -> None:
        node = node_names[step % len(node_names)]
        nodes[node] = _node_status(step, step)
        status: dict[str, Any] = summary(step)
        if variant == "compressed":
            status["compressedNodes"] = statuswire.encode(nodes)
        else:
            status["nodes"] = {node: nodes[node]}
        _patch_status(kube, ns, name, status)

    return patch_workflow


def _patch_status(kube: s.Cluster, ns: str, name: str, status: dict[str, Any]) -> None:
    """A merge patch of the status subresource (the client sends a dict body as one), as the operator's."""
    kube.custom.patch_namespaced_custom_object_status(
        names.GROUP, names.VERSION, ns, names.PLURAL, name, {"status": status}
    )


def _size(kube: s.Cluster, ns: str, variant: str) -> str:
    """The object's JSON bytes, and how many of them are metadata.managedFields (the API server's record of
    which manager set which field: it names every field of the status the operator writes)."""
    kind = "configmap/status" if variant == "configmap" else f"workflows.{names.GROUP}/wf-{variant}"
    body = json.loads(kube.kubectl("get", "-n", ns, kind, "-o", "json", "--show-managed-fields").stdout)
    managed = len(json.dumps(body["metadata"].get("managedFields") or [], separators=(",", ":")))
    return f"{len(json.dumps(body, separators=(',', ':')))} ({managed} of them managedFields)"


def _profile(kube: s.Cluster, out: Path, patches: int) -> threading.Thread:
    """The API server's CPU profile over about as long as the variant's patches take (a guess: ~10 ms each)."""
    seconds = max(5, patches // 100)

    def grab() -> None:
        raw = [*_kubectl(kube), "get", "--raw", f"/debug/pprof/profile?seconds={seconds}"]
        out.write_bytes(subprocess.run(raw, capture_output=True, check=False, timeout=seconds + 60).stdout)

    thread = threading.Thread(target=grab)
    thread.start()
    return thread


class _WorkflowWatch:
    """A watch on the namespace's Workflows, open for the whole run, as the operator's is."""

    def __init__(self, kube: s.Cluster, ns: str) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.kube = kube
        self.ns = ns

    def __enter__(self) -> _WorkflowWatch:
        command = [*_kubectl(self.kube), "get", "-n", self.ns, f"workflows.{names.GROUP}", "--watch", "-o", "name"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _kubectl(kube: s.Cluster) -> list[str]:
    return [str(s.plane.binary("kubectl")), f"--kubeconfig={kube.kubeconfig}"]


if __name__ == "__main__":
    raise SystemExit(main())
