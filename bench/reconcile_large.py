"""One reconcile pass of a 10,000-node workflow mid-run: the operator's own CPU, and what share each stage takes.

    python bench/reconcile_large.py [--width 1000 --depth 10] [--singles 20] [--default-gc] [--profile]

The workflow is `--width` chains of `--depth` nodes (node n depends on node n - width), so each layer is
`--width` nodes that run together. The real `Reconciler` (the code `dagwright operator` runs) reconciles it
through its unit-test seam: a fake of `k8s.client.Api` and the real watch cache, fed the way kopf's watch
events feed it (a Job's end arrives as its pod, then the Job). So the figures are the operator's CPU only,
not the API server's: no network, no etcd. The fake API does what the real client does on our side of the
wire: a status patch is JSON-encoded, and its response (the whole Workflow, spec and status) is JSON-decoded.

Two kinds of pass are measured, both in the same run:
- "layer": every running Job of a layer (`--width` of them) ended; the planner records them and launches the
  next layer (as many Job creates);
- "one Job": one Job ended and its dependent launches (mid-run, with the node map half done).
Each pass is timed whole (wall clock and the process's CPU time; the machine is shared, so CPU is the figure
to trust) and by stage: status read (parse the stored status, unless it is the one this replica wrote),
observe (Jobs and pods from the cache), plan (the pure planner), Jobs (build and create), status patch
(serialize the node map, compress it: its encoding is timed on its own inside it), API write (the
fake's patch: JSON out, the response's JSON in) and cache (writing the response through). Stage times are
the process's CPU time (the Job creates run on the reconciler's launch threads); garbage collections are
counted on their own as well (within whichever stage they interrupted), split into full (gen 2) and young.
The fake keeps its own objects few (the Workflow as JSON text, Jobs slim), so collections walk about the heap
the operator's own would; the collector's thresholds are the operator process's (`k8s.collector`), or
CPython's defaults with --default-gc. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import json
import pstats
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from dagwright import planner
from dagwright.k8s import names, reconcile, statuswire
from dagwright.k8s.cache import Body, Cache, Key, slim_job
from dagwright.k8s.reconcile import Reconciler, Settings

F = TypeVar("F", bound=Callable[..., Any])

STAGES: dict[str, float] = defaultdict(float)
SERVER = [0.0, 0.0]  # wall, CPU seconds the fake API server spent in this pass: taken out of the figures


@contextmanager
def server() -> Iterator[None]:
    started, started_cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        SERVER[0] += time.perf_counter() - started
        SERVER[1] += time.process_time() - started_cpu


@contextmanager
def stage(name: str) -> Iterator[None]:
    started = time.process_time()
    try:
        yield
    finally:
        STAGES[name] += time.process_time() - started


def timed(name: str, function: F) -> F:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with stage(name):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class FakeApi:
    """The API server as `k8s.client.Api` shows it: Jobs and one Workflow in dicts, nothing else."""

    def __init__(self) -> None:
        self.workflows: dict[Key, bytes] = {}  # as JSON: the server's objects are not the operator's heap
        self.jobs: dict[str, Body] = {}
        self.status_bytes: list[int] = []
        self._versions = itertools.count(100)

    def version(self) -> str:
        return str(next(self._versions))

    def create_job(self, namespace: str, job: Body) -> Body | None:
        name = job["metadata"]["name"]
        if name in self.jobs:
            return None
        created = {**job, "metadata": {**job["metadata"], "uid": f"job-{name}", "resourceVersion": self.version()}}
        created["status"] = {}
        self.jobs[name] = slim_job(created)
        return created

    def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)

    def get_job(self, namespace: str, name: str) -> Body | None:
        return self.jobs.get(name)

    def set_job_suspended(
        self, namespace: str, name: str, suspend: bool, active_deadline_seconds: int | None = None
    ) -> None:
        pass

    def list_pods(self, namespace: str, job_name: str) -> list[Body]:
        return []

    def patch_status(self, namespace: str, name: str, patch: Body) -> Body | None:
        """As the real client: the patch goes out as JSON, the whole updated Workflow comes back as JSON. What
        the API server would do between the two (merge, encode the response) is not counted."""
        sent = json.dumps(patch)
        with server():
            workflow = json.loads(self.workflows[(namespace, name)])
            workflow["status"] = _merged(workflow.get("status") or {}, json.loads(sent)["status"])
            workflow["metadata"]["resourceVersion"] = self.version()
            response = self.workflows[(namespace, name)] = json.dumps(workflow).encode()
            self.status_bytes.append(len(json.dumps(workflow["status"], separators=(",", ":"))))
            del workflow
        result: Body = json.loads(response)
        return result

    def get_workflow_template(self, namespace: str, name: str) -> Body | None:
        return None

    def delete_workflow(self, namespace: str, name: str, uid: str) -> None:
        pass

    def emit_event(self, workflow: Body, type_: str, reason: str, message: str) -> None:
        pass


def _merged(target: Body, patch: Body) -> Body:
    """RFC 7386 merge patch."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


def manifest(width: int, depth: int) -> Body:
    nodes: list[Body] = []
    for n in range(width * depth):
        node: Body = {"name": f"n{n:05d}", "image": "busybox:1.36", "command": ["true"]}
        if n >= width:
            node["dependsOn"] = [f"n{n - width:05d}"]
        nodes.append(node)
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "name": "large",
            "namespace": "bench",
            "uid": "uid-large",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2026-11-30T00:00:00Z",
        },
        "spec": {"nodes": nodes},
    }


class Run:
    """The fake API, the cache, and the reconciler; `finish` plays the watch events of a Job's end."""

    def __init__(self, width: int, depth: int) -> None:
        self.api = FakeApi()
        self.cache = Cache()
        self.reconciler = Reconciler(
            api=self.api,
            cache=self.cache,
            settings=Settings(),
            is_leader=lambda: True,
            identity="bench",
            requeue=lambda key, delay: None,
            queued_again=lambda key: False,
            progress=None,
        )
        body = manifest(width, depth)
        self.key: Key = ("bench", "large")
        self.api.workflows[self.key] = json.dumps(body).encode()
        self.cache.put_workflow(body)
        self.finished: set[str] = set()
        self.random = random.Random(15)

    def running(self) -> list[str]:
        return sorted(name for name in self.api.jobs if name not in self.finished)

    def finish(self, job_name: str) -> None:
        """The Job's end as the watch brings it: its pod, then the Job (ends spread over a minute, as they
        would be in a real run, so the stored timestamps are not all alike)."""
        job = self.api.jobs[job_name]
        ended = datetime.now(UTC) + timedelta(seconds=self.random.randrange(60))
        now = ended.strftime("%Y-%m-%dT%H:%M:%SZ")
        job["status"] = {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]}
        job["metadata"] = {**job["metadata"], "resourceVersion": self.api.version()}
        terminated = {"exitCode": 0, "reason": "Completed"}
        pod = {
            "metadata": {
                "name": f"{job_name}-pod",
                "namespace": "bench",
                "uid": f"pod-{job_name}",
                "resourceVersion": self.api.version(),
                "labels": {"batch.kubernetes.io/job-name": job_name},
                "creationTimestamp": now,
            },
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [{"name": names.CONTAINER, "state": {"terminated": terminated}}],
            },
        }
        self.cache.put_pod(pod)
        self.cache.put_job(dict(job))
        self.finished.add(job_name)

    def progress(self) -> str:
        status = json.loads(self.api.workflows[self.key]).get("status") or {}
        return f"{status.get('phase')} {status.get('progress')}"


def instrument(run: Run) -> None:
    """Stage timers around the pass's parts (wrapping, not changing, the code the operator runs)."""
    reconciler = run.reconciler
    reconciler._status = timed("status read", reconciler._status)  # type: ignore[method-assign]
    reconciler._observe = timed("observe", reconciler._observe)  # type: ignore[method-assign]
    reconciler._carry_out = timed("Jobs", reconciler._carry_out)  # type: ignore[method-assign]
    run.api.patch_status = timed("API write", run.api.patch_status)  # type: ignore[method-assign]
    run.cache.put_workflow = timed("cache", run.cache.put_workflow)  # type: ignore[method-assign]
    planner.plan = timed("plan", planner.plan)
    reconcile.status_patch = timed("status patch", reconcile.status_patch)
    statuswire.encode = timed("  of which encode", statuswire.encode)
    if hasattr(statuswire, "NodeMap"):
        statuswire.NodeMap.encode = timed("  of which encode", statuswire.NodeMap.encode)  # type: ignore[method-assign]
    gc.callbacks.append(_collected)


def _collected(phase: str, info: dict[str, int]) -> None:
    """Garbage collections inside a pass: counted apart, as they land in whichever stage allocated last."""
    if phase == "start":
        GC[0] = time.process_time()
    else:
        STAGES["  collections (gen 2)" if info["generation"] == 2 else "  collections (gen 0-1)"] += (
            time.process_time() - GC[0]
        )


GC = [0.0]


def tune_collector() -> None:
    """As `dagwright operator` does at start (before that module existed: nothing, the default)."""
    try:
        from dagwright.k8s import collector
    except ImportError:
        return
    collector.tune()


class Pass:
    def __init__(self, kind: str, wall: float, cpu: float, stages: dict[str, float]) -> None:
        self.kind, self.wall, self.cpu, self.stages = kind, wall, cpu, stages


def one_pass(run: Run, kind: str, profiler: cProfile.Profile | None = None) -> Pass:
    STAGES.clear()
    SERVER[:] = [0.0, 0.0]
    started, started_cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    run.reconciler.reconcile(run.key)
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - started - SERVER[0], time.process_time() - started_cpu - SERVER[1]
    stages = dict(STAGES)
    if "API write" in stages:
        stages["API write"] -= SERVER[1]
    return Pass(kind, wall, cpu, stages)


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def report(kind: str, passes: list[Pass]) -> None:
    chosen = [p for p in passes if p.kind == kind]
    if not chosen:
        return
    wall = [p.wall for p in chosen]
    cpu = [p.cpu for p in chosen]
    print(
        f"{kind}: {len(chosen)} passes; wall p50 {statistics.median(wall) * 1e3:.0f} ms p95 {p95(wall) * 1e3:.0f} ms; "
        f"CPU p50 {statistics.median(cpu) * 1e3:.0f} ms p95 {p95(cpu) * 1e3:.0f} ms"
    )
    total = sum(cpu)
    names_ = sorted({name for p in chosen for name in p.stages}, key=lambda n: list(STAGE_ORDER).index(n))
    for name in names_:
        spent = [p.stages.get(name, 0.0) for p in chosen]
        print(f"  {name:<18} p50 {statistics.median(spent) * 1e3:7.1f} ms  {sum(spent) / total:6.1%} of the CPU time")
    other = [p.cpu - sum(v for n, v in p.stages.items() if not n.startswith(" ")) for p in chosen]
    print(f"  {'other':<18} p50 {statistics.median(other) * 1e3:7.1f} ms  {sum(other) / total:6.1%} of the CPU time")


STAGE_ORDER = (
    "status read",
    "observe",
    "plan",
    "Jobs",
    "status patch",
    "  of which encode",
    "API write",
    "cache",
    "  collections (gen 0-1)",
    "  collections (gen 2)",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--singles", type=int, default=20, help="one-Job passes, measured at the middle layer")
    parser.add_argument("--default-gc", action="store_true", help="CPython's collector thresholds")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured passes (top 30, cumulative)")
    args = parser.parse_args()
    if not args.default_gc:
        tune_collector()
    run = Run(args.width, args.depth)
    instrument(run)
    profiler = cProfile.Profile() if args.profile else None
    passes = [one_pass(run, "first")]  # all Pending, the first layer launched
    for layer in range(args.depth - 1):
        if layer == args.depth // 2 - 1:
            for job_name in run.running()[: args.singles]:
                run.finish(job_name)
                passes.append(one_pass(run, "one Job", profiler))
        for job_name in run.running():
            run.finish(job_name)
        passes.append(one_pass(run, "layer", profiler))
    print(f"collector thresholds {gc.get_threshold()}")
    print(f"{args.width * args.depth} nodes ({args.width} chains of {args.depth}); ends {run.progress()}")
    print(f"stored status: {max(run.api.status_bytes) / 1024:.0f} KiB at most (compact JSON)")
    report("first", passes)
    report("layer", passes)
    report("one Job", passes)
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
