"""The operator on a forEach of N items against N plain nodes: the same Jobs, the same wall time?

Two workflows run one after the other, each alone with a fresh operator: `plain`, N independent nodes, and
`fanned`, one forEach node of N items; every pod lasts `--duration` (kwok). Printed: the seconds from creation
to Succeeded, Jobs created, status patches and reconcile passes (from the operator's metrics), and the
largest stored object (minified JSON, as `kubectl get -o json` returns it). Target from issue 12: the
forEach within 10 % of the plain nodes' wall time.

    python bench/operator_foreach.py [--items 1000] [--duration 1s] [--repeat 1]
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

from tests.e2e.operator_fixtures import node

KIB = 1024


def bodies(items: int, duration: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "plain": [node(f"n{i:04d}", duration=duration, command=["x"]) for i in range(items)],
        "fanned": [node("each", duration=duration, command=["x"], forEach={"items": list(range(items))})],
    }


def run_one(kube: s.Cluster, name: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    with s.namespace(kube, f"bench-{name}") as ns, s.operator(kube, ns) as op:
        started = time.monotonic()
        s.create_workflows(kube, ns, [s.workflow(name, nodes)])
        largest, phase = 0, ""
        while phase not in ("Succeeded", "Failed", "Stopped"):
            time.sleep(1)
            response = kube.custom.get_namespaced_custom_object(
                s.GROUP, s.VERSION, ns, s.PLURAL, name, _preload_content=False
            )
            stored = json.loads(response.data)
            largest = max(largest, len(json.dumps(stored, separators=(",", ":"))))
            phase = (stored.get("status") or {}).get("phase", "")
            if time.monotonic() - started > 1800:
                raise RuntimeError(f"{name} did not finish in 30 minutes")
        seconds = time.monotonic() - started
        metrics = op.metrics()
        jobs = len(kube.kubectl("get", "jobs", "-n", ns, "-o", "name").stdout.split())
    return {
        "phase": phase,
        "seconds": seconds,
        "jobs": jobs,
        "patches": int(metrics.get('dagwright_api_requests_total{resource="workflows/status",verb="PATCH"}', 0)),
        "passes": int(metrics.get("dagwright_reconcile_duration_seconds_count", 0)),
        "largest KiB": largest / KIB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--duration", default="1s")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    kube = s.cluster()
    results: dict[str, list[dict[str, Any]]] = {"plain": [], "fanned": []}
    for _ in range(args.repeat):
        for name, nodes in bodies(args.items, args.duration).items():
            result = run_one(kube, name, nodes)
            s.note(f"{name}: {result}")
            results[name].append(result)
    for name, runs in results.items():
        best = min(runs, key=lambda run: run["seconds"])
        label = f"{args.items} plain nodes" if name == "plain" else f"forEach of {args.items} items"
        s.figure(f"{label}: seconds (best of {len(runs)})", f"{best['seconds']:.1f}")
        s.figure(f"{label}: jobs", best["jobs"])
        s.figure(f"{label}: status patches", best["patches"])
        s.figure(f"{label}: reconcile passes", best["passes"])
        s.figure(f"{label}: largest stored object KiB", f"{best['largest KiB']:.0f}")
    plain = min(run["seconds"] for run in results["plain"])
    fanned = min(run["seconds"] for run in results["fanned"])
    s.figure("forEach / plain wall time", f"{fanned / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
