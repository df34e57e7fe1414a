"""Shared pieces of the operator benchmarks: a plane, a namespace, the operator as a process, figures.

Every operator benchmark runs against the local control plane (tests/e2e/cluster/plane.py; reused if it
runs, else started and left running) unless $KUBECONFIG names another cluster, in its own namespace, with the
operator started as a subprocess (`dagwright operator --namespace NS`) the way it runs in a pod. Figures are
printed as plain "name: value" lines.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.cluster import plane  # noqa: E402
from tests.e2e.cluster.helpers import wait_for  # noqa: E402

# The e2e tests' own Workflow builder and API names, so a benchmark's manifests are the tests' (re-exported).
from tests.e2e.operator_fixtures import GROUP, IMAGE, PLURAL, VERSION  # noqa: E402
from tests.e2e.operator_fixtures import workflow as workflow  # noqa: E402
from tests.e2e.ports import free_port  # noqa: E402

WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


def figure(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


_T0 = time.monotonic()


def note(text: str) -> None:
    print(f"# [{time.monotonic() - _T0:7.1f}s] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    kubeconfig: Path
    api: client.ApiClient
    local_plane: bool

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return plane.kubectl(*args, kubeconfig=self.kubeconfig, check=check, input=input, timeout=600)


def cluster() -> Cluster:
    """$KUBECONFIG's cluster, or the local plane (started if it is not running, and left running)."""
    external = os.environ.get("KUBECONFIG")
    if external and Path(external).expanduser().resolve() != plane.kubeconfig_path().resolve():
        kubeconfig, local = Path(external), False
    else:
        plane.up(lambda msg: note(f"plane: {msg}"))
        kubeconfig, local = plane.kubeconfig_path(), True
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 16
    found = Cluster(kubeconfig, client.ApiClient(configuration), local)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        found.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    found.kubectl("wait", "--for=condition=Established", "crd/workflows.dagwright.io", "--timeout=60s")
    return found


@contextlib.contextmanager
def namespace(kube: Cluster, prefix: str) -> Iterator[str]:
    """A fresh namespace (its default service account ready), deleted afterwards and waited for.

    Waited for because deleting a namespace of thousands of Jobs keeps the garbage collector, the API server,
    etcd and kwok busy for tens of seconds: measured in the background, that work landed in the next
    measurement's window (the Job ceiling's cleanup in the operator's run, one system's in the next system's
    run in bench/peers) and counted as its CPU and writes."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    core = kube.core
    core.create_namespace({"metadata": {"name": name, "labels": {"dagwright.io/bench": "true"}}})

    def has_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    wait_for(f"service account in {name}", has_sa, timeout=60)
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(name, propagation_policy="Background")
        wait_for(f"namespace {name} deleted", lambda: _gone(core, name), timeout=600, interval=1.0)


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


# --------------------------------------------------------------------------- the operator


@dataclass
class Operator:
    """A `dagwright operator` process watching one namespace."""

    proc: subprocess.Popen[bytes]
    metrics_port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def metrics(self) -> dict[str, float]:
        return scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the operator process, in KiB."""
        values: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def operator(kube: Cluster, namespace: str, *extra: str, env: dict[str, str] | None = None) -> Iterator[Operator]:
    """Start the operator on `namespace`, wait for its /metrics, stop it (SIGTERM) afterwards."""
    port = free_port()
    log_fd, log_name = tempfile.mkstemp(prefix=f"dagwright-operator-{namespace}-", suffix=".log")
    profile = os.environ.get("DAGWRIGHT_BENCH_PROFILE")  # a path: run the operator under cProfile
    traced = os.environ.get("DAGWRIGHT_BENCH_TRACEMALLOC")  # a path: under tracemalloc, reports written there
    launcher = ["-m", "dagwright.cli"]
    if profile:
        launcher = [str(REPO / "bench" / "_profiled_operator.py"), profile]
    elif traced:
        launcher = [str(REPO / "bench" / "_traced_operator.py"), traced]
    cmd = [
        sys.executable, *launcher, "operator", "--namespace", namespace, "--no-leader-election",
        "--metrics-port", str(port), "--health-port", "0", *extra,
    ]  # fmt: skip
    full_env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "DAGWRIGHT_LOG_LEVEL": "WARNING", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=log_fd, stderr=subprocess.STDOUT, env=full_env)
    os.close(log_fd)
    op = Operator(proc, port, Path(log_name))

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited {proc.returncode}:\n{op.log_tail()}")
        try:
            return bool(op.metrics())
        except OSError:
            return False

    try:
        wait_for("operator /metrics", up, timeout=60, interval=0.2)
        time.sleep(1.0)  # let kopf's watches start before anything is created
        yield op
    finally:
        note("stopping the operator")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        note(f"operator log: {op.log_path}")


def scrape(url: str) -> dict[str, float]:
    """A Prometheus text exposition as {'name{labels}': value}."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return parse_metrics(text)


def parse_metrics(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            values[name] = float(value)
    return values


def histogram_quantile(metrics: dict[str, float], name: str, q: float) -> float | None:
    """The q-quantile of a Prometheus histogram, interpolated in its bucket as Prometheus does."""
    buckets: list[tuple[float, float]] = []
    for key, value in metrics.items():
        if key.startswith(name + "_bucket{"):
            le = key.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-9)
        lower_bound, lower_count = bound, count
    return None


# --------------------------------------------------------------------------- API server metrics


def apiserver_writes(kube: Cluster) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total of write verbs as {(resource[/subresource], verb, code-class): count}."""
    text = kube.kubectl("get", "--raw", "/metrics").stdout
    counts: dict[tuple[str, str, str], float] = {}
    for key, value in parse_metrics(text).items():
        if not key.startswith("apiserver_request_total{"):
            continue
        labels = labels_of(key)
        verb = labels.get("verb", "")
        if verb not in WRITE_VERBS:
            continue
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        slot = (resource, verb, labels.get("code", "")[:1] + "xx")
        counts[slot] = counts.get(slot, 0.0) + value
    return counts


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def labels_of(key: str) -> dict[str, str]:
    return dict(_LABEL.findall(key[key.index("{") :]))


def delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def etcd_value_size(kube: Cluster, key: str) -> int | None:
    """Bytes etcd stores under `key` (local plane only), through etcd's JSON gateway."""
    if not kube.local_plane:
        return None
    state = plane.load_state()
    if state is None:
        return None
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{state.etcd_port}/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        kvs = json.loads(response.read()).get("kvs") or []
    return len(base64.b64decode(kvs[0]["value"])) if kvs else None


# --------------------------------------------------------------------------- workflows


def node(name: str, *depends_on: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "command": ["true"]}
    if depends_on:
        body["dependsOn"] = list(depends_on)
    return body


def chain(length: int) -> list[dict[str, Any]]:
    return [node(f"n{i:05d}", *([f"n{i - 1:05d}"] if i else [])) for i in range(length)]


def diamonds(count: int) -> list[dict[str, Any]]:
    """`count` diamonds in a row: top -> (left, right) -> bottom, each bottom the next top's parent."""
    nodes: list[dict[str, Any]] = []
    parent: str | None = None
    for d in range(count):
        top, left, right, bottom = (f"d{d:03d}-{part}" for part in ("top", "l", "r", "bottom"))
        nodes.append(node(top, *([parent] if parent else [])))
        nodes += [node(left, top), node(right, top), node(bottom, left, right)]
        parent = bottom
    return nodes


def layered(width: int, depth: int) -> list[dict[str, Any]]:
    """`depth` layers of `width` nodes; node j of a layer depends on nodes j and j+1 of the layer above."""
    nodes: list[dict[str, Any]] = []
    for layer in range(depth):
        for j in range(width):
            above = f"l{layer - 1:03d}"
            parents = [] if layer == 0 else sorted({f"{above}-{j:04d}", f"{above}-{(j + 1) % width:04d}"})
            nodes.append(node(f"l{layer:03d}-{j:04d}", *parents))
    return nodes


def create_workflows(kube: Cluster, namespace: str, bodies: Sequence[dict[str, Any]], threads: int = 8) -> None:
    """Create Workflows, a few at a time."""
    custom = kube.custom
    errors: list[BaseException] = []
    lock = threading.Lock()
    pending = list(bodies)

    def worker() -> None:
        while True:
            with lock:
                if not pending or errors:
                    return
                body = pending.pop()
            try:
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
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


@dataclass(frozen=True)
class WorkflowKind:
    """A workflow custom resource and the phases that end one: dagwright's, or a peer's (bench/peers)."""

    name: str
    group: str
    version: str
    plural: str
    finished: frozenset[str]

    def phase_of(self, item: dict[str, Any]) -> str:
        """The phase of one listed workflow (a kind without a phase field, such as Tekton's, overrides this)."""
        phase: str = (item.get("status") or {}).get("phase", "")
        return phase


DAGWRIGHT = WorkflowKind("dagwright", GROUP, VERSION, PLURAL, frozenset({"Succeeded", "Failed", "Stopped"}))


def workflow_phases(kube: Cluster, namespace: str, kind: WorkflowKind = DAGWRIGHT) -> dict[str, str]:
    response = kube.custom.list_namespaced_custom_object(
        kind.group, kind.version, namespace, kind.plural, _preload_content=False
    )
    items = json.loads(response.data)["items"]
    return {item["metadata"]["name"]: kind.phase_of(item) for item in items}


def wait_finished(
    kube: Cluster, namespace: str, count: int, timeout: float, interval: float = 1.0, kind: WorkflowKind = DAGWRIGHT
) -> dict[str, str]:
    """Wait until `count` workflows have ended (a phase in `kind.finished`); fail on any that is not Succeeded."""

    def done() -> dict[str, str] | None:
        phases = workflow_phases(kube, namespace, kind)
        return phases if sum(phase in kind.finished for phase in phases.values()) >= count else None

    what = "workflows" if kind is DAGWRIGHT else f"{kind.name} workflows"
    phases = wait_for(f"{count} {what} finished", done, timeout=timeout, interval=interval)
    bad = {k: v for k, v in phases.items() if v != "Succeeded"}
    if bad:
        raise RuntimeError(f"{what} did not succeed: {dict(list(bad.items())[:5])}")
    return phases


# --------------------------------------------------------------------------- watching Jobs


@dataclass
class JobTimes:
    created: dict[str, float] = field(default_factory=dict)  # job name -> monotonic receive time of ADDED
    # job name -> receive time of the first success condition (SuccessCriteriaMet, then Complete, in 1.31+)
    complete: dict[str, float] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)


class ObjectWatch:
    """A client-side watch of a namespace's objects of one kind: a list, then a watch from its version, and a list
    again whenever the watch lost its place (410 Gone); `_handle` gets every event with its receive time
    (monotonic). Subclasses say what to list (`_list`) and what to record (`_handle`): JobWatch here, the peers
    benchmark's PodWatch."""

    what = "object"  # for the start-up wait's message

    def __init__(self, kube: Cluster, namespace: str):
        self.kube = kube
        self.namespace = namespace
        self._stop = threading.Event()
        self._response: Any = None
        self.relists = 0  # lists done (1 at start); more mean some receive times are list times
        self.errors = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cond = threading.Condition()

    def __enter__(self) -> Self:
        self._thread.start()
        wait_for(f"{self.what} watch started", lambda: self._response is not None, timeout=30, interval=0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self._response.close()
        self._thread.join(timeout=5)

    def _list(self, **options: Any) -> Any:
        raise NotImplementedError

    def _handle(self, event: dict[str, Any], received: float) -> str | None:
        """Record the event; the object's resourceVersion."""
        raise NotImplementedError

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist()
                response = self._list(
                    watch=True,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=600,
                    _preload_content=False,
                    _request_timeout=(10, 120),
                )
                self._response = response
                buffer = b""
                for chunk in response.stream(65536, decode_content=False):
                    received = time.monotonic()
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            event = json.loads(line)
                            if event.get("type") == "ERROR":  # 410 Gone: too old a version; list again
                                self.errors += 1
                                version = ""
                                break
                            version = self._handle(event, received) or version
                    if not version:
                        break
            except Exception:
                if self._stop.is_set():
                    return
                self.errors += 1
                time.sleep(0.2)

    def _relist(self) -> str:
        """List the objects (at start, or after the watch lost its place) and record what was missed, as seen now."""
        listed = json.loads(self._list(_preload_content=False).data)
        received = time.monotonic()
        for item in listed["items"]:
            self._handle({"type": "ADDED", "object": item}, received)
        version: str = listed["metadata"]["resourceVersion"]
        self.relists += 1
        return version


class JobWatch(ObjectWatch):
    """A client-side watch of a namespace's Jobs, recording when each was first seen and first seen Complete."""

    what = "job"

    def __init__(self, kube: Cluster, namespace: str, on_complete: Callable[[str, dict[str, Any]], None] | None = None):
        super().__init__(kube, namespace)
        self.times = JobTimes()
        self.on_complete = on_complete

    def _list(self, **options: Any) -> Any:
        return self.kube.batch.list_namespaced_job(self.namespace, **options)

    def _handle(self, event: dict[str, Any], received: float) -> str | None:
        body = event.get("object") or {}
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if event.get("type") == "ERROR" or not name:
            return None
        times = self.times
        with self._cond:
            if name not in times.created and event.get("type") in ("ADDED", "MODIFIED"):
                times.created[name] = received
                times.labels[name] = meta.get("labels") or {}
            conditions = (body.get("status") or {}).get("conditions") or []
            if name not in times.complete and any(
                c.get("type") in ("Complete", "SuccessCriteriaMet") and c.get("status") == "True" for c in conditions
            ):
                times.complete[name] = received
                if self.on_complete is not None:
                    self.on_complete(name, body)
            self._cond.notify_all()
        version: str | None = meta.get("resourceVersion")
        return version

    def wait_complete(self, name: str, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while name not in self.times.complete:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"Job {name} not complete after {timeout:.0f}s")
                self._cond.wait(left)
            return self.times.complete[name]

    def wait_count_complete(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.times.complete) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.times.complete)}/{count} Jobs complete after {timeout:.0f}s")
                self._cond.wait(min(left, 1.0))


PodKey = tuple[str, str]  # (workflow name, node name)


@dataclass
class PodTimes:
    created: dict[PodKey, float] = field(default_factory=dict)  # first seen (receive time, monotonic)
    done: dict[PodKey, float] = field(default_factory=dict)  # first seen Succeeded or Failed


class PodWatch(ObjectWatch):
    """A client-side watch of a namespace's pods, by workflow node (as JobWatch does for Jobs): `node_of` names
    the (workflow, node) a pod runs, or None for a pod to leave out."""

    what = "pod"

    def __init__(self, kube: Cluster, namespace: str, node_of: Callable[[dict[str, Any]], PodKey | None]):
        super().__init__(kube, namespace)
        self.node_of = node_of
        self.times = PodTimes()

    def _list(self, **options: Any) -> Any:
        return self.kube.core.list_namespaced_pod(self.namespace, **options)

    def _handle(self, event: dict[str, Any], received: float) -> str | None:
        pod = event.get("object") or {}
        key = self.node_of(pod)
        if key is not None:
            with self._cond:
                self.times.created.setdefault(key, received)
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    self.times.done.setdefault(key, received)
                self._cond.notify_all()
        version: str | None = (pod.get("metadata") or {}).get("resourceVersion")
        return version

    def wait_done(self, count: int, timeout: float) -> bool:
        """Wait until `count` nodes' pods are done; False if the time ran out first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.times.done) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def job_body(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Job like the operator's (one pod, no retries), for bare-loop baselines."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": IMAGE, "command": ["true"]}],
                }
            },
        },
    }


@dataclass(frozen=True)
class Placement:
    """Where a benchmark's pods run: kwok's fake nodes (the default) or the plane's real node, with a real image."""

    image: str | None = None
    pod_fields: dict[str, Any] = field(default_factory=dict)

    def job(self, body: dict[str, Any]) -> dict[str, Any]:
        pod = body["spec"]["template"]["spec"]
        pod.update(self.pod_fields)
        if self.image:
            pod["containers"][0]["image"] = self.image
        return body

    def workflow(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.image:
            body["spec"]["defaults"]["image"] = self.image
        if self.pod_fields:
            body["spec"]["podTemplate"] = dict(self.pod_fields)
        return body


def real_node_placement() -> Placement:
    """Join the real node (building and loading the images first) and place pods there."""
    from tests.e2e.cluster import images, node  # Docker and a kubelet are needed only here

    runner = images.build_images()["node-runner"]
    node.up(note)
    if not node.has_image(runner):
        with tempfile.TemporaryDirectory() as tmp:
            node.load_images(images.save([runner], Path(tmp) / "runner.tar"))
    fields = {"nodeSelector": dict(node.NODE_SELECTOR), "tolerations": [dict(node.TOLERATION)]}
    return Placement(image=runner, pod_fields=fields)


# --------------------------------------------------------------------------- the cluster's own ceiling


def plane_cpu_seconds(kube: Cluster) -> dict[str, float]:
    """CPU seconds so far of each control-plane process (etcd, kube-apiserver, the controller manager, the
    scheduler, kwok) of the local plane; empty for another cluster. A delta over a run is what the plane spent
    on it: the Job controller's share of a node is invisible in the controller's own figures."""
    state = plane.load_state() if kube.local_plane else None
    found: dict[str, float] = {}
    for proc in state.procs if state is not None else []:
        with contextlib.suppress(OSError, IndexError, ValueError):
            found[proc.name] = process_cpu_seconds(proc.pid)
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_table(after: dict[str, float], before: dict[str, float], per: float) -> list[tuple[str, float]]:
    """(process, CPU ms per `per`) rows of a plane_cpu_seconds delta, largest first."""
    rows = [(name, (seconds - before.get(name, 0.0)) * 1000 / per) for name, seconds in after.items()]
    return sorted(rows, key=lambda row: -row[1])


@dataclass
class Ceiling:
    jobs: int
    seconds: float
    writes: dict[tuple[str, str, str], float]
    plane_cpu: list[tuple[str, float]] = field(default_factory=list)  # (process, CPU ms per Job)

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds


def cluster_ceiling(kube: Cluster, jobs: int) -> Ceiling:
    """bench/cluster_jobs.py's measurement: a plain loop creates `jobs` single-pod Jobs, then waits for all.

    Timed from the first create to the last Complete seen on a watch; also returns the API server's write
    requests by resource during the run (what the Job controller, scheduler and kwok do per Job).
    """
    with namespace(kube, "bench-ceiling") as ns, JobWatch(kube, ns) as watch:
        batch = kube.batch
        before = apiserver_writes(kube)
        cpu_before = plane_cpu_seconds(kube)
        started = time.monotonic()
        for i in range(jobs):
            batch.create_namespaced_job(ns, job_body(f"job-{i:05d}"))
        watch.wait_count_complete(jobs, timeout=max(600, jobs))
        last = max(watch.times.complete.values())
        # the Complete condition follows SuccessCriteriaMet; wait for the last writes to land
        time.sleep(3)
        writes = delta(apiserver_writes(kube), before)
        return Ceiling(jobs, last - started, writes, cpu_table(plane_cpu_seconds(kube), cpu_before, jobs))


def writes_table(writes: dict[tuple[str, str, str], float], per: float) -> list[tuple[str, float]]:
    """(resource verb, count per `per`) rows, largest first."""
    merged: dict[str, float] = {}
    for (resource, verb, _code), count in writes.items():
        key = f"{resource} {verb}"
        merged[key] = merged.get(key, 0.0) + count
    return sorted(((k, v / per) for k, v in merged.items()), key=lambda row: -row[1])
