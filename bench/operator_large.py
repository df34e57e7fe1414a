"""A 10,000-node workflow completes, and its stored object stays under 1 MiB.

The workflow is `--width` chains of `--depth` nodes (node n depends on node n - width), with short node names
and no command, so the spec itself is small (~38 bytes a node) and the status is what grows. The stored size
is sampled every few seconds while it runs: the JSON the API server returns (what `kubectl get workflow -o
json | wc -c` counts) and, on the local plane, the bytes etcd holds under the object's key. If the workflow
stops making progress (e.g. status patches rejected as too large), the run ends early and says so.

    python bench/operator_large.py [--width 100 --depth 100] [--stall 120]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s

KIB = 1024


def nodes(width: int, depth: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for n in range(width * depth):
        body: dict[str, Any] = {"name": f"n{n:05d}"}
        if n >= width:
            body["dependsOn"] = [f"n{n - width:05d}"]
        found.append(body)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--stall", type=float, default=120, help="give up after this long without progress")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    args = parser.parse_args()
    total = args.width * args.depth
    kube = s.cluster()
    body = s.workflow("large", nodes(args.width, args.depth))
    s.figure("nodes", total)
    s.figure("spec bytes (JSON)", len(json.dumps(body["spec"], separators=(",", ":"))))
    with s.namespace(kube, "bench-large") as ns, s.operator(kube, ns, *args.operator_arg) as op:
        etcd_key = f"/registry/dagwright.io/workflows/{ns}/large"
        started = time.monotonic()
        s.create_workflows(kube, ns, [body])
        largest_json = largest_etcd = 0
        progress, phase, last_change = "", "", time.monotonic()
        while True:
            response = kube.custom.get_namespaced_custom_object(
                s.GROUP, s.VERSION, ns, s.PLURAL, "large", _preload_content=False
            )
            raw = response.data
            stored = json.loads(raw)
            status = stored.get("status") or {}
            size_json = len(json.dumps(stored, separators=(",", ":")))  # as `kubectl get -o json | wc -c`, minified
            parts = {
                "spec": len(json.dumps(stored.get("spec"), separators=(",", ":"))),
                "status": len(json.dumps(status, separators=(",", ":"))),
                "managedFields": len(json.dumps(stored["metadata"].get("managedFields"), separators=(",", ":"))),
            }
            size_etcd = s.etcd_value_size(kube, etcd_key) or 0
            largest_json, largest_etcd = max(largest_json, size_json), max(largest_etcd, size_etcd)
            if status.get("progress") != progress:
                progress, last_change = status.get("progress", ""), time.monotonic()
            phase = status.get("phase", "")
            elapsed = time.monotonic() - started
            sizes = f"json {size_json / KIB:.0f} KiB etcd {size_etcd / KIB:.0f} KiB"
            s.note(f"{elapsed:6.0f}s phase {phase} progress {progress} {sizes} {parts}")
            if phase in ("Succeeded", "Failed", "Stopped"):
                break
            if time.monotonic() - last_change > args.stall:
                s.note(f"no progress for {args.stall:.0f}s; operator log tail:\n{op.log_tail(10)}")
                break
            time.sleep(5)
        finished = time.monotonic() - started
        kubectl_json = len(kube.kubectl("get", "workflow", "large", "-n", ns, "-o", "json").stdout)
        memory = op.memory_kib()
        metrics = op.metrics()
        cpu = op.cpu_seconds()
    s.figure("phase", phase)
    for part, size in parts.items():
        s.figure(f"last stored {part} KiB", f"{size / KIB:.0f}")
    s.figure("progress", progress)
    s.figure("seconds", f"{finished:.0f}")
    s.figure("nodes/s", f"{int(progress.split('/')[0] or 0) / finished:.1f}")
    s.figure("kubectl get -o json | wc -c, at the end", kubectl_json)
    s.figure("largest stored object, minified JSON KiB (target < 1024)", f"{largest_json / KIB:.0f}")
    s.figure("largest stored object in etcd KiB (target < 1024)", f"{largest_etcd / KIB:.0f}")
    patches = metrics.get('dagwright_api_requests_total{resource="workflows/status",verb="PATCH"}', 0)
    s.figure("status patches", int(patches))
    s.figure("reconcile passes", int(metrics.get("dagwright_reconcile_duration_seconds_count", 0)))
    count = metrics.get("dagwright_reconcile_duration_seconds_count", 0)
    if count:
        s.figure("reconcile pass mean", s.ms(metrics["dagwright_reconcile_duration_seconds_sum"] / count))
        for q in (0.5, 0.95):  # interpolated within the buckets (0.1, 0.25, 0.5, 1 s ...), as Prometheus does
            value = s.histogram_quantile(metrics, "dagwright_reconcile_duration_seconds", q)
            s.figure(f"reconcile pass p{q * 100:.0f} (bucket-interpolated)", s.ms(value) if value is not None else "-")
    s.figure("operator CPU seconds (whole run, watch events included)", f"{cpu:.0f}")
    s.figure("operator peak rss MiB", f"{memory['VmHWM'] / 1024:.0f}")
    return 0 if phase == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
