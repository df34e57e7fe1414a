"""dagwright against Argo Workflows and Tekton Pipelines on the same plane, in one run: the same workloads, the same
pod duration.

Every system runs every workload in a fresh namespace with a fresh controller process (dagwright's operator, Argo's
workflow-controller or Tekton's controller, each in one of its profiles: see argo.py and tekton.py). A client-side
watch of the namespace's pods records when each workflow node's pod was first seen and first seen done (Succeeded
or Failed); figures:

- launch latency p50 / p99: a dependent's pod created - its last dependency's pod done (chains and diamonds);
- a 100-node chain: first create to the Workflow's phase Succeeded;
- 100 workflows x 50 nodes (5 layers of 10): nodes/s from the first create to the last pod done, and that rate
  over the plane's Job ceiling (bench/cluster_jobs.py's bare Job loop, measured first in the same run);
  API server writes per node (apiserver_request_total, every client: the controller, the Job controller,
  the scheduler, kwok); controller CPU ms per node and peak RSS (VmHWM);
- one workflow of 5,000 nodes (50 wide, 100 deep): wall time to Succeeded, and the controller's peak RSS.

    python bench/peers/run.py              # full sizes, all five systems (hours on 2 shared cores)
    python bench/peers/run.py --quick      # small sizes, a few minutes
    python bench/peers/run.py --systems dagwright,argo-tuned --workloads chain,throughput
    python bench/peers/run.py --systems dagwright,argo-tuned --workloads throughput --rounds 3

With `--rounds N` every workload runs N times per system, the systems' order alternating (A B, B A, A B) and the
Job ceiling measured again each round; the table gives medians, then each headline figure's range and the
first system's ratio to Argo tuned within each round. One round's figures move by more than the changes we
make (bench/PEERS.md runs 8-11): compare medians and paired ratios, not single runs.

The plane's Job controller client rate (DAGWRIGHT_KCM_QPS at plane start) bounds dagwright, whose pods come
from Jobs, and not Argo or Tekton, which create pods themselves: the ceiling row says what the plane allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s
import argo
import figures as f
import tekton

SYSTEMS = ("dagwright", "argo-tuned", "argo-defaults", "tekton-tuned", "tekton-defaults")
WORKLOADS = ("latency", "chain", "throughput", "large")
NodeKey = f.NodeKey


@dataclass(frozen=True)
class Sizes:
    chains: int
    chain_length: int
    diamonds: int
    diamond_count: int
    chain: int
    workflows: int
    width: int
    depth: int
    large_width: int
    large_depth: int
    ceiling_jobs: int


FULL = Sizes(4, 40, 4, 12, 100, 100, 10, 5, 50, 100, 500)
QUICK = Sizes(2, 10, 2, 4, 20, 10, 10, 5, 10, 50, 100)


# --------------------------------------------------------------------------- the systems


@dataclass(frozen=True)
class System(s.WorkflowKind):
    """dagwright, an Argo or a Tekton profile: what to create, how to read its pods and phases, and its controller."""

    def phase_of(self, item: dict[str, Any]) -> str:
        return tekton.phase_of(item) if self.is_tekton else super().phase_of(item)

    @property
    def is_argo(self) -> bool:
        return self.name.startswith("argo")

    @property
    def is_tekton(self) -> bool:
        return self.name.startswith("tekton")

    def body(self, name: str, nodes: list[dict[str, Any]], pod_duration: str) -> dict[str, Any]:
        if self.is_argo:
            return argo.workflow(name, nodes, s.IMAGE, pod_duration)
        if self.is_tekton:
            return tekton.pipeline_run(name, nodes, s.IMAGE, pod_duration)
        body = s.workflow(name, nodes)
        body["spec"]["podTemplate"] = {"metadata": {"annotations": {argo.DURATION_ANNOTATION: pod_duration}}}
        return body

    def node_of(self, pod: dict[str, Any]) -> NodeKey | None:
        if self.is_argo:
            return argo.node_of(pod)
        if self.is_tekton:
            return tekton.node_of(pod)
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if "dagwright.io/workflow" not in labels or "dagwright.io/node" not in labels:
            return None
        return labels["dagwright.io/workflow"], labels["dagwright.io/node"]

    @contextlib.contextmanager
    def controller(self, kube: s.Cluster, namespace: str) -> Iterator[s.Operator]:
        if self.is_argo:
            with argo.controller(kube, namespace, argo.PROFILES[self.name.split("-", 1)[1]]) as ctl:
                yield ctl
        elif self.is_tekton:
            with tekton.controller(kube, namespace, tekton.PROFILES[self.name.split("-", 1)[1]]) as ctl:
                yield ctl
        else:
            with s.operator(kube, namespace) as op:
                yield op


def system(name: str) -> System:
    if name == "dagwright":
        return System(name, s.GROUP, s.VERSION, s.PLURAL, s.DAGWRIGHT.finished)
    if name.startswith("tekton"):
        return System(
            name, tekton.GROUP, tekton.API_VERSION, tekton.PLURAL, frozenset({"Succeeded", "Failed", "Cancelled"})
        )
    return System(name, argo.GROUP, argo.API_VERSION, argo.PLURAL, frozenset({"Succeeded", "Failed", "Error"}))


def create(kube: s.Cluster, ns: str, sys_: System, bodies: Sequence[dict[str, Any]], threads: int = 8) -> None:
    """Create the workflows, a few at a time (as s.create_workflows, for either API group)."""
    pending = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                if not pending or errors:
                    return
                body = pending.pop()
            try:
                kube.custom.create_namespaced_custom_object(sys_.group, sys_.version, ns, sys_.plural, body)
            except BaseException as error:
                with lock:
                    errors.append(error)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if errors:
        raise errors[0]


def wait_finished(kube: s.Cluster, ns: str, sys_: System, count: int, timeout: float, interval: float) -> float:
    """Wait until `count` workflows have ended (`s.wait_finished`); the moment it was seen."""
    s.wait_finished(kube, ns, count, timeout, interval, kind=sys_)
    return time.monotonic()


# --------------------------------------------------------------------------- workloads


def parents_of(bodies: Sequence[tuple[str, list[dict[str, Any]]]]) -> dict[NodeKey, list[NodeKey]]:
    return {
        (wf, node["name"]): [(wf, dep) for dep in node.get("dependsOn", [])] for wf, nodes in bodies for node in nodes
    }


@dataclass
class Run:
    kube: s.Cluster
    sizes: Sizes
    pod_duration: str
    samples: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)  # figure -> system -> rounds
    writes: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # system -> per-node writes rows
    plane_cpu: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # system -> plane CPU ms per node

    def put(self, figure: str, sys_: System, value: float | None) -> None:
        self.samples.setdefault(figure, {}).setdefault(sys_.name, []).append(value)
        s.figure(f"{sys_.name} {figure}", "-" if value is None else f"{value:.3f}")

    @property
    def results(self) -> dict[str, dict[str, float | None]]:
        """Each figure's median over the rounds, per system."""
        return {name: {k: f.median(v) for k, v in by.items()} for name, by in self.samples.items()}


def latency(run: Run, sys_: System) -> None:
    z = run.sizes
    shapes = [(f"chain{i}", s.chain(z.chain_length)) for i in range(z.chains)]
    shapes += [(f"diamond{i}", s.diamonds(z.diamond_count)) for i in range(z.diamonds)]
    total = sum(len(nodes) for _, nodes in shapes)
    with (
        s.namespace(run.kube, "peers-latency") as ns,
        sys_.controller(run.kube, ns),
        s.PodWatch(run.kube, ns, sys_.node_of) as watch,
    ):
        create(run.kube, ns, sys_, [sys_.body(name, nodes, run.pod_duration) for name, nodes in shapes])
        if not watch.wait_done(total, timeout=120 + total * 3):
            s.note(f"{sys_.name}: {len(watch.times.done)}/{total} pods done when the time ran out")
    values = f.launch_latencies(watch.times.created, watch.times.done, parents_of(shapes))
    run.put("launch latency p50 ms", sys_, f.percentile(values, 0.5) * 1000 if values else None)
    run.put("launch latency p99 ms", sys_, f.percentile(values, 0.99) * 1000 if values else None)
    run.put("launches measured", sys_, len(values))


def chain(run: Run, sys_: System) -> None:
    length = run.sizes.chain
    with (
        s.namespace(run.kube, "peers-chain") as ns,
        sys_.controller(run.kube, ns),
        s.PodWatch(run.kube, ns, sys_.node_of) as watch,
    ):
        started = time.monotonic()
        create(run.kube, ns, sys_, [sys_.body("chain", s.chain(length), run.pod_duration)])
        if not watch.wait_done(length, timeout=60 + length * 15):
            s.note(f"{sys_.name}: chain not done, {len(watch.times.done)}/{length}")
            run.put(f"{length}-node chain s", sys_, None)
            return
        finished = wait_finished(run.kube, ns, sys_, 1, timeout=120, interval=0.1)
    run.put(f"{length}-node chain s", sys_, finished - started)
    run.put(f"{length}-node chain s per node", sys_, (finished - started) / length)


def throughput(run: Run, sys_: System, ceiling: s.Ceiling | None) -> None:
    z = run.sizes
    total = z.workflows * z.width * z.depth
    shapes = [(f"wf{i:04d}", s.layered(z.width, z.depth)) for i in range(z.workflows)]
    with (
        s.namespace(run.kube, "peers-throughput") as ns,
        sys_.controller(run.kube, ns) as ctl,
        s.PodWatch(run.kube, ns, sys_.node_of) as watch,
    ):
        before = s.apiserver_writes(run.kube)
        cpu_before = ctl.cpu_seconds()
        plane_before = s.plane_cpu_seconds(run.kube)
        started = time.monotonic()
        create(run.kube, ns, sys_, [sys_.body(name, nodes, run.pod_duration) for name, nodes in shapes])
        complete = watch.wait_done(total, timeout=max(900.0, total / 2))
        label = f"{z.workflows} x {z.width * z.depth}"
        if not complete:
            s.note(f"{sys_.name}: {len(watch.times.done)}/{total} pods done when the time ran out")
            run.put(f"{label}: nodes/s", sys_, None)
            return
        last = max(watch.times.done.values())
        finished = wait_finished(run.kube, ns, sys_, z.workflows, timeout=300, interval=1.0)
        time.sleep(3)  # the last status writes land
        writes = s.delta(s.apiserver_writes(run.kube), before)
        cpu = ctl.cpu_seconds() - cpu_before
        plane_cpu = s.cpu_table(s.plane_cpu_seconds(run.kube), plane_before, total)
        memory = ctl.memory_kib()
        passes = mean_pass_ms(ctl)
    rate = total / (last - started)
    run.put(f"{label}: nodes/s (to last pod done)", sys_, rate)
    run.put(f"{label}: s to all Succeeded", sys_, finished - started)
    if ceiling is not None:
        run.put(f"{label}: fraction of the Job ceiling", sys_, rate / ceiling.jobs_per_second)
    run.put(f"{label}: API writes per node (all clients)", sys_, sum(writes.values()) / total)
    run.put(f"{label}: controller CPU ms per node", sys_, cpu / total * 1000)
    if plane_cpu:
        run.put(
            f"{label}: plane CPU ms per node (API server, etcd, KCM, scheduler, kwok)",
            sys_,
            sum(v for _, v in plane_cpu),
        )
        run.plane_cpu[sys_.name] = plane_cpu
    run.put(f"{label}: controller peak RSS MiB", sys_, memory["VmHWM"] / 1024)
    run.put(f"{label}: mean reconcile pass ms (own metrics)", sys_, passes)
    run.writes[sys_.name] = s.writes_table(writes, total)
    run.put(f"{label}: kwok pod status writes per node", sys_, dict(run.writes[sys_.name]).get("pods/status PATCH"))
    if (warning := f.kwok_skew(run.writes[sys_.name])) is not None:
        s.note(f"WARNING ({sys_.name}): {warning}")


def mean_pass_ms(ctl: s.Operator) -> float | None:
    """Mean duration of one reconcile pass (dagwright), one workflow operation (Argo) or one work queue item
    (Tekton: a TaskRun or PipelineRun reconcile, its pod or TaskRun creates included), from its own metrics."""
    metrics = ctl.metrics()
    stems = (
        "dagwright_reconcile_duration_seconds",
        "operation_duration_seconds",
        "kn_workqueue_process_duration_seconds",
    )
    for stem in stems:
        sums = [v for k, v in metrics.items() if k.split("{")[0].endswith(stem + "_sum")]
        counts = [v for k, v in metrics.items() if k.split("{")[0].endswith(stem + "_count")]
        if sums and sum(counts):
            return sum(sums) / sum(counts) * 1000
    return None


def large(run: Run, sys_: System, timeout: float) -> None:
    z = run.sizes
    total = z.large_width * z.large_depth
    label = f"1 x {total:,}"
    with (
        s.namespace(run.kube, "peers-large") as ns,
        sys_.controller(run.kube, ns) as ctl,
        s.PodWatch(run.kube, ns, sys_.node_of) as watch,
    ):
        cpu_before = ctl.cpu_seconds()
        started = time.monotonic()
        create(run.kube, ns, sys_, [sys_.body("large", s.layered(z.large_width, z.large_depth), run.pod_duration)])
        complete = watch.wait_done(total, timeout=timeout)
        finished = wait_finished(run.kube, ns, sys_, 1, timeout=300, interval=0.5) if complete else None
        memory = ctl.memory_kib()
        passes = mean_pass_ms(ctl)
        cpu = ctl.cpu_seconds() - cpu_before
    if finished is None:
        s.note(f"{sys_.name}: {len(watch.times.done)}/{total} pods done after {timeout:.0f}s")
        run.put(f"{label}: s to Succeeded", sys_, None)
        run.put(f"{label}: nodes done in {timeout:.0f} s (did not finish)", sys_, len(watch.times.done))
    else:
        run.put(f"{label}: s to Succeeded", sys_, finished - started)
        run.put(f"{label}: nodes/s", sys_, total / (finished - started))
        run.put(f"{label}: controller CPU ms per node", sys_, cpu / total * 1000)
    run.put(f"{label}: controller peak RSS MiB", sys_, memory["VmHWM"] / 1024)
    run.put(f"{label}: mean reconcile pass ms (own metrics)", sys_, passes)


# --------------------------------------------------------------------------- the table


def rows(results: dict[str, dict[str, float | None]]) -> list[f.Row]:
    found = []
    for name, values in results.items():
        digits = 2 if ("per node" in name or "fraction" in name or "nodes/s" in name) else 0
        if name.endswith(" s") or " s " in name:
            digits = max(digits, 1)
        found.append(f.Row(name, values, digits=digits))
    return found


def print_rounds(
    run: Run, names: Sequence[str], reference: str | None, ceilings: Sequence[s.Ceiling], rounds: int
) -> None:
    """The headline figures round by round: median (min-max), and the first system's ratio to the reference
    within each round. Writes and plane CPU below the table are the last round's."""
    print(f"\nRounds: median (min-max, n) of {rounds} rounds")
    if ceilings:
        print(f"- Job ceiling, Jobs/s: {f.spread([c.jobs_per_second for c in ceilings])}")
    headline = ("nodes/s", "fraction", "controller CPU", "plane CPU", "kwok", "chain s per node", "latency")
    for name, by in run.samples.items():
        if not any(word in name for word in headline):
            continue
        cells = "; ".join(f"{system} {f.spread(by.get(system, []))}" for system in names)
        print(f"- {name}: {cells}")
        if reference is not None and ("nodes/s" in name or "fraction" in name):
            shares = f.paired_ratios(by, names[0], reference)
            print(
                f"  {names[0]} / {reference} within each round: {f.spread(shares)}; rounds: "
                + ", ".join(f"{share:.2f}" for share in shares)
            )


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM (`kill`, `timeout`) as an exit, so the controllers' `finally` blocks stop them: by default Python
    dies at once and leaves a workflow-controller or operator running against the plane, which then skews the
    next run's figures."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--pod-duration", default="100ms", help="every pod's run time (kwok), every system")
    parser.add_argument("--large-timeout", type=float, default=1200.0, help="seconds the large workflow may take")
    for name in ("chain", "workflows", "large_depth", "ceiling_jobs"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"override the size's {name}")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the bare Job loop")
    parser.add_argument("--rounds", type=int, default=1, help="run every workload this many times, order alternating")
    args = parser.parse_args()
    systems = [system(name) for name in args.systems.split(",")]
    workloads = args.workloads.split(",")
    unknown = {x.name for x in systems} - set(SYSTEMS) | set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else FULL
    overrides = {k: getattr(args, k) for k in ("chain", "workflows", "large_depth", "ceiling_jobs")}
    sizes = dataclasses.replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    s.note(f"sizes: {sizes}")
    run = Run(s.cluster(), sizes, args.pod_duration)
    if any(x.is_argo for x in systems):
        s.note(f"workflow-controller: {argo.install_controller()}")
        argo.install_crds(run.kube)
    if any(x.is_tekton for x in systems):
        s.note(f"tekton controller: {tekton.install_controller()}")
        tekton.install_crds(run.kube)
    ceilings: list[s.Ceiling] = []
    for round_index in range(args.rounds):
        ceiling = None
        if "throughput" in workloads and not args.no_ceiling:
            ceiling = s.cluster_ceiling(run.kube, run.sizes.ceiling_jobs)
            ceilings.append(ceiling)
            s.figure("ceiling jobs/s", f"{ceiling.jobs_per_second:.2f}")
        by_name = {x.name: x for x in systems}
        for workload in WORKLOADS:
            if workload not in workloads:
                continue
            for sys_ in (by_name[name] for name in f.round_order([x.name for x in systems], round_index)):
                s.note(f"round {round_index + 1}/{args.rounds}, {workload}: {sys_.name}")
                if workload == "latency":
                    latency(run, sys_)
                elif workload == "chain":
                    chain(run, sys_)
                elif workload == "throughput":
                    throughput(run, sys_, ceiling)
                else:
                    large(run, sys_, args.large_timeout)
    ceiling = ceilings[-1] if ceilings else None
    names = [x.name for x in systems]
    reference = "argo-tuned" if "argo-tuned" in names and names[0] != "argo-tuned" else None
    print()
    if ceiling is not None:
        print(f"Plane's Job ceiling: {ceiling.jobs_per_second:.2f} Jobs/s ({ceiling.jobs} bare Jobs in ", end="")
        print(f"{ceiling.seconds:.1f} s, {sum(ceiling.writes.values()) / ceiling.jobs:.2f} API writes per Job", end="")
        if ceiling.plane_cpu:
            print(f", {sum(v for _, v in ceiling.plane_cpu):.1f} ms of plane CPU per Job", end="")
        print(")")
        print()
    print(f.table(rows(run.results), names, reference))
    if args.rounds > 1:
        print_rounds(run, names, reference, ceilings, args.rounds)
    for name, table in run.writes.items():
        top = ", ".join(f"{key} {value:.2f}" for key, value in table if value >= 0.05)
        print(f"\nAPI writes per node, {name}: {top}")
        if (warning := f.kwok_skew(table)) is not None:
            print(f"WARNING ({name}): {warning}")
    for name, table in run.plane_cpu.items():
        print(f"\nPlane CPU ms per node, {name}: " + ", ".join(f"{key} {value:.1f}" for key, value in table))
    if ceiling is not None and ceiling.plane_cpu:
        print("\nPlane CPU ms per bare Job: " + ", ".join(f"{key} {value:.1f}" for key, value in ceiling.plane_cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
