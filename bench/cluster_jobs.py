"""How many Jobs per second the e2e control plane completes: the ceiling for throughput goals.

Why: every later throughput goal of dagwright (Workflows driving Jobs) is measured against
what the plane itself can do with the fastest kwok stages: a plain loop creates N single-pod
Jobs without annotations (each pod runs 100 ms), then waits until all are Complete.

Uses $KUBECONFIG if set; otherwise the local plane (tests/e2e/cluster/plane.py), reused if it
runs, else started (and its warm start time and memory printed) and stopped at the end
unless --keep. --start-only measures start time and memory and creates no Jobs.

    python bench/cluster_jobs.py [--jobs 500] [--start-only] [--keep]

DAGWRIGHT_KCM_QPS raises the controller-manager's client rate (Kubernetes' default, 20 QPS, is what
bounds Jobs/s here); it applies to a plane this script starts, e.g. with DAGWRIGHT_CLUSTER_RUN set
to a fresh directory. Figures are printed as plain "name: value" lines.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.cluster import plane
from tests.e2e.cluster.helpers import wait_for


def figure(name: str, value: str) -> None:
    print(f"{name}: {value}", flush=True)


def job_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
                }
            },
        },
    }


def count_complete(batch: client.BatchV1Api, namespace: str) -> int:
    jobs = batch.list_namespaced_job(namespace).items
    return sum(1 for j in jobs if any(c.type == "Complete" and c.status == "True" for c in j.status.conditions or []))


def write_requests(kubeconfig: Path) -> int:
    """Sum of apiserver_request_total over write verbs, from the API server's /metrics."""
    text = plane.kubectl("get", "--raw", "/metrics", kubeconfig=kubeconfig).stdout
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and any(
            f'verb="{v}"' in line for v in ("POST", "PUT", "PATCH", "DELETE")
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def run_jobs(api: client.ApiClient, kubeconfig: Path, n: int) -> None:
    v1, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    namespace = f"bench-jobs-{secrets.token_hex(3)}"
    v1.create_namespace({"metadata": {"name": namespace}})
    wait_for("default service account", lambda: v1.list_namespaced_service_account(namespace).items, timeout=30)
    writes_before = write_requests(kubeconfig)
    started = time.monotonic()
    for i in range(n):
        batch.create_namespaced_job(namespace, job_body(f"job-{i:04d}"))
    created = time.monotonic() - started
    figure("jobs", str(n))
    figure("create phase seconds", f"{created:.2f}")
    figure("create rate jobs/s", f"{n / created:.1f}")
    wait_for(f"{n} Jobs Complete", lambda: count_complete(batch, namespace) >= n, timeout=max(600, n), interval=1)
    elapsed = time.monotonic() - started
    figure("all complete seconds", f"{elapsed:.2f}")
    figure("throughput jobs/s", f"{n / elapsed:.1f}")
    figure("api write requests per job", f"{(write_requests(kubeconfig) - writes_before) / n:.1f}")
    v1.delete_namespace(namespace, propagation_policy="Background")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--start-only", action="store_true", help="measure start time and memory only")
    parser.add_argument("--keep", action="store_true", help="leave a plane this script started running")
    args = parser.parse_args()

    external = os.environ.get("KUBECONFIG")
    lease: plane.Lease | None = None
    if not external:
        was_running = plane.is_ready()
        state, lease = plane.acquire()
        if not was_running:
            figure("warm start seconds", f"{state.start_seconds:.2f}")
        figure("plane rss MiB", f"{plane.rss_bytes(state) / 2**20:.0f}")
    try:
        if not args.start_only:
            kubeconfig = Path(external) if external else plane.kubeconfig_path()
            api = config.new_client_from_config(config_file=str(kubeconfig))
            run_jobs(api, kubeconfig, args.jobs)
            if not external:
                figure("plane rss MiB after run", f"{plane.rss_bytes(plane.load_state() or state) / 2**20:.0f}")
    finally:
        if lease is not None:
            plane.release(lease, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
