"""A real Kubernetes control plane for dagwright's end-to-end tests, run as local processes.

Why: the operator must be tested against a real API server (watches, resourceVersions,
owner references and garbage collection, the status subresource, CRD validation and
printer columns), and machines here have no Docker engine, so kind cannot run. Instead
the real binaries are built from pinned Go modules (``k8s/go.mod``, ``etcd/go.mod``)
and started directly: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
and kwok, which plays the kubelet for fake nodes and drives each pod's lifecycle from
the Stage files in ``stages/``.

Everything listens on 127.0.0.1 only. Binaries are cached per version set under
``~/.cache/dagwright/cluster/<versions>/bin`` (override the root with
``DAGWRIGHT_CLUSTER_CACHE``); the running plane lives in ``<root>/run`` (or
``DAGWRIGHT_CLUSTER_RUN``, for a second plane sharing the binaries) with its kubeconfig
at ``<root>/run/kubeconfig``. ``up`` is idempotent: a plane that answers
/readyz is reused, so one plane can serve many pytest runs.

CLI: ``python -m tests.e2e.cluster.plane build|up|down|env|status|kwok-attach``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .processes import file_lock, start_ticks, write_json

HERE = Path(__file__).resolve().parent
STAGES_DIR = HERE / "stages"

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.5"  # what k8s v1.34.4's build/dependencies.yaml names
KWOK_VERSION = "v0.7.0"
COREDNS_VERSION = "v1.12.1"  # coredns/go.mod; what kubeadm v1.34 deploys
KIND_VERSION = "v0.30.0"
HELM_VERSION = "v3.19.0"

K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy")
KWOK_BINARIES = ("kwok", "kwokctl")
ALL_BINARIES = (*K8S_BINARIES, "etcd", *KWOK_BINARIES, "coredns")

# Go build settings: 2 cores here, so 2 packages at a time; never fetch a toolchain.
GO_PARALLELISM = os.environ.get("DAGWRIGHT_GO_PARALLELISM", "2")
K8S_BUILD_TAGS = "selinux,notest,grpcnotrace"  # as k8s' hack/lib/golang.sh for release builds

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
REAL_NODE_NAME = "dagwright-real-0"
FAKE_NODE_COUNT = 2
# Everything a pod may address lies in 198.18.0.0/16 (RFC 2544's range for benchmark networks): the real node's
# pods (node.py) and Service IPs. Pod traffic never has a reason to leave the machine, and node.py drops any
# that tries.
PLANE_NET = "198.18.0.0/16"
SERVICE_CIDR = "198.18.128.0/17"
KUBERNETES_SERVICE_IP = "198.18.128.1"
POD_CIDR = "198.18.64.1/18"  # addresses kwok writes into pod status; nothing connects to them
PKI_VERSION = "2"  # bump when ensure_pki's files or names change: an older pki/ is made again
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0  # then SIGKILL: a throwaway test plane needs no long graceful shutdown

Progress = Callable[[str], None]


class PlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


def _say(msg: str) -> None:
    print(f"[dagwright-plane] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths


def cache_root() -> Path:
    """Root of everything this module keeps on disk."""
    env = os.environ.get("DAGWRIGHT_CLUSTER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dagwright" / "cluster"


def versions_key() -> str:
    return f"k8s-{K8S_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}"  # coredns, kubelet: built when missing


def bin_dir() -> Path:
    return cache_root() / versions_key() / "bin"


def run_dir() -> Path:
    """Where the running plane keeps its state, logs, etcd data, certificates and kubeconfig.

    DAGWRIGHT_CLUSTER_RUN gives a separate plane (e.g. a benchmark's own) that shares the
    cached binaries with the default one.
    """
    env = os.environ.get("DAGWRIGHT_CLUSTER_RUN")
    return Path(env) if env else cache_root() / "run"


def _run_lock() -> Path:
    return run_dir() / "run.lock"


def kubeconfig_path() -> Path:
    return run_dir() / "kubeconfig"


def binary(name: str) -> Path:
    return bin_dir() / name


# --------------------------------------------------------------------------- build


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0")
    return env


def _k8s_ldflags() -> str:
    """Version stamps, as k8s' hack/lib/version.sh sets them for a release build."""
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    stamps = {
        "gitVersion": K8S_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = [
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
        for key, value in stamps.items()
    ]
    return "all=-s -w " + " ".join(flags)


def _run_go(
    args: Sequence[str], cwd: Path, label: str, progress: Progress, extra_env: dict[str, str] | None = None
) -> None:
    """Run a go command, saying every 30 s how far it got (a cold build takes many minutes)."""
    if shutil.which("go") is None:
        raise PlaneError("the Go toolchain (go) is needed to build the e2e control plane")
    progress(f"{label}: go {args[0]} (GOTOOLCHAIN=local, -p {GO_PARALLELISM})")
    started = time.monotonic()
    counts = {"downloaded": 0, "built": 0}
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        ["go", *args],
        cwd=cwd,
        env={**_go_env(), **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip())
                if line.startswith("go: downloading"):
                    counts["downloaded"] += 1
                elif not line.startswith("go: "):
                    counts["built"] += 1

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while proc.poll() is None:
            reader.join(timeout=30)
            if proc.poll() is None:
                elapsed = time.monotonic() - started
                fetched, built = counts["downloaded"], counts["built"]
                progress(f"{label}: {fetched} modules fetched, {built} packages built, {elapsed:.0f}s")
        reader.join()
    if proc.returncode != 0:
        raise PlaneError(f"{label} failed:\n" + "\n".join(tail))
    progress(f"{label}: done in {time.monotonic() - started:.0f}s")


def _build_into(target: Path, names: Sequence[str], build: Callable[[Path], None]) -> None:
    """Build into a scratch dir, then move binaries into place (a killed build leaves none)."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix="build-") as tmp:
        out = Path(tmp)
        build(out)
        for name in names:
            os.replace(out / name, target / name)


def build(progress: Progress = _say) -> Path:
    """Build every missing binary into the versioned cache; return the bin directory."""
    target = bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / "build.lock"):
        missing = [name for name in ALL_BINARIES if not (target / name).exists()]
        if not missing:
            return target
        progress(f"building {', '.join(missing)} into {target} (first time only)")
        started = time.monotonic()
        k8s = [name for name in K8S_BINARIES if name in missing]
        if k8s:
            pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in k8s]

            def build_k8s(out: Path) -> None:
                args = ["build", "-v", "-p", GO_PARALLELISM, "-trimpath", "-tags", K8S_BUILD_TAGS]
                args += ["-ldflags", _k8s_ldflags(), "-o", f"{out}/", *pkgs]
                _run_go(args, HERE / "k8s", f"kubernetes {K8S_VERSION}", progress)

            _build_into(target, k8s, build_k8s)
        if "etcd" in missing:

            def build_etcd(out: Path) -> None:
                ldflags = f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA={ETCD_VERSION}"
                args = ["build", "-v", "-p", GO_PARALLELISM, "-trimpath", "-ldflags", ldflags]
                args += ["-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"]
                _run_go(args, HERE / "etcd", f"etcd {ETCD_VERSION}", progress)

            _build_into(target, ["etcd"], build_etcd)
        if "coredns" in missing:

            def build_coredns(out: Path) -> None:
                args = ["build", "-v", "-p", GO_PARALLELISM, "-trimpath", "-ldflags", "-s -w"]
                args += ["-o", str(out / "coredns"), "."]
                _run_go(args, HERE / "coredns", f"coredns {COREDNS_VERSION}", progress)

            _build_into(target, ["coredns"], build_coredns)
        kwok = [name for name in KWOK_BINARIES if name in missing]
        if kwok:
            _install_go_tools(target, [f"sigs.k8s.io/kwok/cmd/{n}@{KWOK_VERSION}" for n in kwok], progress)
        progress(f"build finished in {time.monotonic() - started:.0f}s")
    return target


def _install_go_tools(target: Path, modules: Sequence[str], progress: Progress) -> None:
    """``go install pkg@version`` into the cache's bin directory."""
    names = [m.split("@")[0].rsplit("/", 1)[-1] for m in modules]

    def install(out: Path) -> None:
        args = ["install", "-v", "-p", GO_PARALLELISM, "-trimpath", "-ldflags", "-s -w", *modules]
        _run_go(args, HERE, " ".join(modules), progress, {"GOBIN": str(out)})

    _build_into(target, names, install)


def install_helm(progress: Progress = _say) -> Path:
    """helm, for the chart tests: built from its Go module into the same cache, once."""
    target = bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    helm = target / f"helm-{HELM_VERSION}"
    with file_lock(target.parent / "build.lock"):
        if not helm.exists():
            _install_go_tools(target, [f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"], progress)
            os.replace(target / "helm", helm)
    return helm


def install_kind(progress: Progress = _say) -> Path:
    """kind, for machines that have Docker (see the Makefile's kind-up)."""
    target = bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "kind").exists():
        _install_go_tools(target, [f"sigs.k8s.io/kind@{KIND_VERSION}"], progress)
    return target / "kind"


# --------------------------------------------------------------------------- state


@dataclass
class Proc:
    """A process this module started; start_ticks guards against pid reuse."""

    name: str
    pid: int
    start_ticks: int
    exe: str


@dataclass
class State:
    """What ``up`` started, persisted as ``run/state.json``."""

    apiserver_port: int
    etcd_port: int
    token: str
    etcd_peer_port: int = 0  # kept so a restarted etcd finds the peer URL its data directory recorded
    procs: list[Proc] = field(default_factory=list)
    start_seconds: float = 0.0
    # True when started for test sessions (see acquire/release): the last session to leave
    # stops it. False when a developer started it with `up`: it then runs until `down`.
    managed: bool = False

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


def _state_path() -> Path:
    return run_dir() / "state.json"


def load_state() -> State | None:
    try:
        raw = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        return None
    procs = [Proc(**p) for p in raw.pop("procs", [])]
    return State(**raw, procs=procs)


def _save_state(state: State) -> None:
    write_json(_state_path(), asdict(state))


def _is_ours(proc: Proc) -> bool:
    """True while the recorded process runs: same pid and same start time (no pid reuse)."""
    return start_ticks(proc.pid) == proc.start_ticks


def rss_bytes(state: State) -> int:
    """Sum of the resident memory of the plane's processes."""
    total = 0
    for proc in state.procs:
        if not _is_ours(proc):
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


# --------------------------------------------------------------------------- PKI


def _pki_dir() -> Path:
    return run_dir() / "pki"


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise PlaneError("openssl is needed to make the plane's certificates (apt-get install openssl)")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def ensure_pki() -> Path:
    """CA, API server serving cert, service-account key pair and a bearer token; made once."""
    pki = _pki_dir()
    with contextlib.suppress(OSError):
        if (pki / "version").read_text().strip() == PKI_VERSION:
            return pki
    run_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run_dir(), prefix="pki-"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=dagwright-e2e-ca", cwd=tmp)
    names = ["IP:127.0.0.1", "DNS:localhost", f"IP:{KUBERNETES_SERVICE_IP}", "DNS:kubernetes", "DNS:kubernetes.default"]
    sans = "subjectAltName=" + ",".join([*names, "DNS:kubernetes.default.svc"])
    _openssl(
        "req", "-x509", *ec, "-CA", "ca.crt", "-CAkey", "ca.key", "-keyout", "apiserver.key",
        "-out", "apiserver.crt", "-subj", "/CN=kube-apiserver", "-addext", sans, cwd=tmp,
    )  # fmt: skip
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=tmp)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=tmp)
    # The API server's client certificate towards kubelets (logs, exec), which trust this CA.
    _openssl(
        "req", "-x509", *ec, "-CA", "ca.crt", "-CAkey", "ca.key", "-keyout", "kubelet-client.key",
        "-out", "kubelet-client.crt", "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client", cwd=tmp,
    )  # fmt: skip
    (tmp / "token").write_text(secrets.token_hex(24))
    (tmp / "version").write_text(PKI_VERSION)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(pki)
    os.replace(tmp, pki)
    return pki


def _write_auth_files(run: Path, pki: Path, state: State) -> None:
    """Static tokens: admin (system:masters), and the controller-manager and scheduler users."""
    token = state.token
    users = {
        "admin": (f"{token}", "admin", "system:masters"),
        "kcm": (f"{token}-kcm", "system:kube-controller-manager", ""),
        "scheduler": (f"{token}-sched", "system:kube-scheduler", ""),
        # The real node (node.py): its kubelet as a node identity, kube-proxy as bootstrap RBAC expects.
        "node": (f"{token}-node", f"system:node:{REAL_NODE_NAME}", "system:nodes"),
        "proxy": (f"{token}-proxy", "system:kube-proxy", ""),
    }
    lines = [f'{tok},{user},{user},"{groups}"' for tok, user, groups in users.values()]
    (run / "tokens.csv").write_text("\n".join(lines) + "\n")
    for name, (tok, user, _) in users.items():
        path = run / ("kubeconfig" if name == "admin" else f"{name}.kubeconfig")
        path.write_text(_kubeconfig(state.server, pki / "ca.crt", user, tok))


def _kubeconfig(server: str, ca: Path, user: str, token: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "dagwright-e2e", "cluster": {"server": server, "certificate-authority": str(ca)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "dagwright-e2e", "context": {"cluster": "dagwright-e2e", "user": user}}],
            "current-context": "dagwright-e2e",
        },
        indent=2,
    )


# --------------------------------------------------------------------------- probes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ctx = ssl.create_default_context(cafile=str(_pki_dir() / "ca.crt")) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as err:
        return 0, str(err)


COMPONENTS = frozenset({"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"})


def is_ready(state: State | None = None) -> bool:
    """True when a plane started by ``up`` is running: every component started and alive, /readyz ok.

    A start that was interrupted (its process killed) leaves etcd and the API server running without the rest; such
    a plane must not be reused: nothing would ever schedule or run a pod on it.
    """
    state = state or load_state()
    if state is None or {p.name for p in state.procs} != COMPONENTS or not all(_is_ours(p) for p in state.procs):
        return False
    return _get(f"{state.server}/readyz", state.token)[0] == 200


def _wait(what: str, check: Callable[[], bool], procs: Sequence[Proc], timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = [p.name for p in procs if not _is_ours(p)]
        if dead:
            raise PlaneError(f"{', '.join(dead)} exited while waiting for {what}; see logs in {run_dir() / 'logs'}")
        time.sleep(0.2)
    raise PlaneError(f"timed out after {timeout:.0f}s waiting for {what}; see logs in {run_dir() / 'logs'}")


# --------------------------------------------------------------------------- processes


def _spawn(name: str, args: Sequence[str], run: Path) -> Proc:
    """Start one component detached (its own session, not our child), logging to run/logs/<name>.log.

    Detached because the plane may outlive the process that started it (another pytest session
    may still use it), and a child left running would be reported by Python as a leak.
    """
    logs = run / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{name}.log"
    launcher = '"$@" >"$0" 2>&1 </dev/null & echo $!'
    out = subprocess.run(
        ["sh", "-c", launcher, str(log), *args], cwd=run, capture_output=True, text=True, start_new_session=True
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise PlaneError(f"could not start {name}: {out.stderr.strip()}")
    pid = int(out.stdout)
    ticks = start_ticks(pid)
    if ticks is None:
        raise PlaneError(f"{name} exited at once; see {log}")
    return Proc(name=name, pid=pid, start_ticks=ticks, exe=str(args[0]))


def _etcd_args(run: Path, state: State) -> list[str]:
    client = f"http://127.0.0.1:{state.etcd_port}"
    state.etcd_peer_port = state.etcd_peer_port or _free_port()
    peer = f"http://127.0.0.1:{state.etcd_peer_port}"
    return [
        str(binary("etcd")),
        "--name=dagwright",
        f"--data-dir={run / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=dagwright={peer}",
        "--unsafe-no-fsync",  # a throwaway test store: durability is not wanted, speed is
        "--log-level=warn",
    ]


def _apiserver_args(run: Path, pki: Path, state: State) -> list[str]:
    return [
        str(binary("kube-apiserver")),
        f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={state.apiserver_port}",
        f"--cert-dir={run / 'apiserver-certs'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={run / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",  # on top of the default set, as kubeadm does
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        # The endpoints of the 'kubernetes' service would be 127.0.0.1, which validation refuses.
        "--endpoint-reconciler-type=none",
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'kubelet-client.key'}",
        # Webhooks are called at their Service's endpoint (a pod address), not its cluster IP: no kube-proxy runs
        # on the host side of this plane.
        "--enable-aggregator-routing=true",
    ]


def _component_args(name: str, run: Path, pki: Path) -> list[str]:
    short = {"kube-controller-manager": "kcm", "kube-scheduler": "scheduler"}[name]
    kubeconfig = run / f"{short}.kubeconfig"
    common = [
        str(binary(name)),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={_free_port()}",
        "--leader-elect=false",
    ]
    if name == "kube-scheduler":
        return common
    return [
        *common,
        "--cluster-name=dagwright-e2e",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--use-service-account-credentials=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        *_kcm_qps_args(),
    ]


def _kcm_qps_args() -> list[str]:
    """Kubernetes' own client limits (20 QPS, burst 30) unless DAGWRIGHT_KCM_QPS is set.

    The Job controller's client rate is what bounds Jobs/s on this plane; the default keeps
    it the same as kind or a kubeadm cluster, the variable shows what a tuned one does.
    """
    qps = os.environ.get("DAGWRIGHT_KCM_QPS")
    if not qps:
        return []
    return [f"--kube-api-qps={qps}", f"--kube-api-burst={int(float(qps) * 2)}"]


def kwok_args(kubeconfig: Path) -> list[str]:
    """kwok, managing only the fake nodes, with this repo's pod Stages."""
    stage_files = sorted(STAGES_DIR.glob("*.yaml"))
    return [
        str(binary("kwok")),
        f"--kubeconfig={kubeconfig}",
        *[f"--config={path}" for path in stage_files],
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        "--node-ip=127.0.0.1",
        f"--cidr={POD_CIDR}",
        f"--server-address=127.0.0.1:{_free_port()}",
        "--node-lease-duration-seconds=40",
    ]


def fake_nodes() -> list[dict[str, object]]:
    """Node objects for kwok to run: big, untainted, so every ordinary pod fits."""
    capacity = {"cpu": "1000", "memory": "4Ti", "pods": "10000", "ephemeral-storage": "10Ti"}
    nodes: list[dict[str, object]] = []
    for i in range(FAKE_NODE_COUNT):
        name = f"kwok-node-{i}"
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
                "status": {"capacity": capacity, "allocatable": capacity},
            }
        )
    return nodes


def kubectl(
    *args: str, kubeconfig: Path | None = None, check: bool = True, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the cached kubectl against the plane (or the given kubeconfig)."""
    cmd = [str(binary("kubectl")), f"--kubeconfig={kubeconfig or kubeconfig_path()}", *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, input=input, timeout=timeout)


def _create_nodes(kubeconfig: Path) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": fake_nodes()})
    kubectl("apply", "-f", "-", kubeconfig=kubeconfig, input=manifest)


def _nodes_ready(kubeconfig: Path) -> bool:
    out = kubectl(
        "get", "nodes", "-l", "type=kwok", "-o",
        'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
        kubeconfig=kubeconfig, check=False,
    ).stdout.split()  # fmt: skip
    return len(out) >= FAKE_NODE_COUNT and all(s == "True" for s in out)


def _default_sa_exists(kubeconfig: Path) -> bool:
    return (
        kubectl("get", "serviceaccount", "default", "-n", "default", kubeconfig=kubeconfig, check=False).returncode == 0
    )


# --------------------------------------------------------------------------- up / down


def up(progress: Progress = _say, managed: bool = False) -> State:
    """Start the plane unless one is running; return its state. Builds binaries first if needed.

    A plane started or reused by a developer (managed=False) is left running until ``down``.
    """
    build(progress)
    with file_lock(_run_lock()):
        return _up_locked(progress, managed)


def _up_locked(progress: Progress, managed: bool) -> State:
    state = load_state()
    if state is not None and is_ready(state):
        progress(f"reusing the running plane at {state.server}")
        if state.managed and not managed:
            state.managed = False
            _save_state(state)
        return state
    if state is not None:
        progress("a previous plane is not healthy; stopping what is left of it")
        _stop(state, progress)
    return _start(progress, managed)


@dataclass
class Lease:
    """One test session's use of the plane; the file exists while the session runs."""

    path: Path


def _users_dir() -> Path:
    return run_dir() / "users"


def _live_users(exclude: Path | None = None) -> list[Path]:
    live = []
    for path in _users_dir().glob("*"):
        pid, _, ticks = path.name.partition("-")
        if path != exclude and ticks.isdigit() and start_ticks(int(pid)) == int(ticks):
            live.append(path)
    return live


def acquire(progress: Progress = _say) -> tuple[State, Lease]:
    """Use the plane for one test session: reuse a running one or start a managed one.

    Several sessions (several developers' pytest runs on one machine) may share one plane;
    each holds a lease, and ``release`` stops a managed plane only when the last one leaves.
    """
    build(progress)
    with file_lock(_run_lock()):
        state = _up_locked(progress, managed=True)
        _users_dir().mkdir(parents=True, exist_ok=True)
        lease = Lease(_users_dir() / f"{os.getpid()}-{start_ticks(os.getpid())}")
        lease.path.touch()
        return state, lease


def release(lease: Lease, progress: Progress = _say, keep: bool = False) -> None:
    """End a session's use; stop a managed plane if no other live session uses it."""
    with file_lock(_run_lock()):
        lease.path.unlink(missing_ok=True)
        state = load_state()
        if state is None or not state.managed or keep:
            return
        others = _live_users()
        if others:
            progress(f"leaving the plane running for {len(others)} other session(s)")
            return
        _stop(state, progress)
        progress("plane stopped")


def _start(progress: Progress, managed: bool) -> State:
    started = time.monotonic()
    pki = ensure_pki()
    run = run_dir()
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(run / "etcd")
    run.mkdir(parents=True, exist_ok=True)
    token = (pki / "token").read_text().strip()
    state = State(apiserver_port=_free_port(), etcd_port=_free_port(), token=token, managed=managed)
    _write_auth_files(run, pki, state)
    kubeconfig = kubeconfig_path()
    try:
        state.procs.append(_spawn("etcd", _etcd_args(run, state), run))
        _save_state(state)
        etcd_ok = lambda: _get(f"http://127.0.0.1:{state.etcd_port}/health")[0] == 200  # noqa: E731
        _wait("etcd", etcd_ok, state.procs)
        state.procs.append(_spawn("kube-apiserver", _apiserver_args(run, pki, state), run))
        _save_state(state)
        _wait("kube-apiserver /readyz", lambda: _get(f"{state.server}/readyz", state.token)[0] == 200, state.procs)
        for name in ("kube-controller-manager", "kube-scheduler"):
            state.procs.append(_spawn(name, _component_args(name, run, pki), run))
        state.procs.append(_spawn("kwok", kwok_args(kubeconfig), run))
        _save_state(state)
        _create_nodes(kubeconfig)
        _wait("kwok nodes Ready", lambda: _nodes_ready(kubeconfig), state.procs)
        _wait("the default service account", lambda: _default_sa_exists(kubeconfig), state.procs)
    except BaseException:
        _stop(state, progress)
        raise
    state.start_seconds = round(time.monotonic() - started, 2)
    _save_state(state)
    progress(f"plane up in {state.start_seconds:.1f}s at {state.server}; export KUBECONFIG={kubeconfig}")
    return state


RESTARTABLE = ("etcd", "kube-apiserver")


def restart(name: str, down_for: float = 0.0, progress: Progress = _say) -> float:
    """SIGKILL one component of the running plane, keep it down `down_for` seconds, start it again with the
    same ports and data, and wait until it serves. Returns the seconds until it served again.

    For the fault tests: etcd or kube-apiserver dying under the operator. Everything else (the controller
    manager, scheduler, kwok, the operator) has to reconnect on its own.
    """
    if name not in RESTARTABLE:
        raise PlaneError(f"restart supports {', '.join(RESTARTABLE)}, not {name}")
    with file_lock(_run_lock()):
        state = load_state()
        if state is None or not is_ready(state):
            raise PlaneError("no healthy plane is running")
        old = next(p for p in state.procs if p.name == name)
        killed = time.monotonic()
        _terminate([old], signal.SIGKILL)
        _wait(f"{name} to exit", lambda: not _is_ours(old), [], timeout=30)
        time.sleep(down_for)
        run, pki = run_dir(), _pki_dir()
        args = _etcd_args(run, state) if name == "etcd" else _apiserver_args(run, pki, state)
        new = _spawn(name, args, run)
        state.procs = [new if p is old else p for p in state.procs]
        _save_state(state)
        _wait(f"{name} to serve again", lambda: is_ready(state), [new], timeout=START_TIMEOUT_S)
    serving = time.monotonic() - killed
    progress(f"{name} restarted; serving again {serving:.1f}s after it was killed")
    return serving


def _terminate(procs: Sequence[Proc], sig: int) -> None:
    for proc in procs:
        if _is_ours(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)


def _stop(state: State, progress: Progress) -> None:
    """End exactly the processes recorded in state (checked by pid and start time), the real node's first."""
    from . import node  # the real node joined this plane: it cannot outlive it

    node.down(progress)
    alive = [p for p in reversed(state.procs) if _is_ours(p)]
    _terminate(alive, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(_is_ours(p) for p in alive):
        time.sleep(0.1)
    leftover = [p for p in alive if _is_ours(p)]
    if leftover:
        progress(f"killing {', '.join(p.name for p in leftover)}")
        _terminate(leftover, signal.SIGKILL)
    _state_path().unlink(missing_ok=True)
    for path in (run_dir() / "etcd", _users_dir()):
        shutil.rmtree(path, ignore_errors=True)


def down(progress: Progress = _say) -> bool:
    """Stop the plane that ``up`` started; True if there was one."""
    with file_lock(_run_lock()):
        state = load_state()
        if state is None:
            progress("no plane is running")
            return False
        _stop(state, progress)
        progress("plane stopped")
        return True


# --------------------------------------------------------------------------- kwok for other clusters


def kwok_attach(kubeconfig: Path, progress: Progress = _say) -> Proc:
    """Run kwok (with this repo's Stages and fake nodes) against another cluster, e.g. kind.

    Only pods scheduled onto the fake nodes get kwok's lifecycle; the Makefile's kind-up
    taints the real nodes so that test pods land on the fake ones.
    """
    build(progress)
    run = cache_root() / "kwok-attach"
    run.mkdir(parents=True, exist_ok=True)
    proc = _spawn("kwok", kwok_args(kubeconfig), run)
    (run / "kwok.json").write_text(json.dumps(asdict(proc)))
    _create_nodes(kubeconfig)
    _wait("kwok nodes Ready", lambda: _nodes_ready(kubeconfig), [proc])
    progress(f"kwok (pid {proc.pid}) manages {FAKE_NODE_COUNT} fake nodes in {kubeconfig}")
    return proc


def kwok_detach(progress: Progress = _say) -> None:
    path = cache_root() / "kwok-attach" / "kwok.json"
    with contextlib.suppress(FileNotFoundError, ValueError):
        proc = Proc(**json.loads(path.read_text()))
        _terminate([proc], signal.SIGTERM)
        path.unlink()
        progress(f"stopped kwok (pid {proc.pid})")


# --------------------------------------------------------------------------- CLI


def _status() -> int:
    state = load_state()
    if state is None or not is_ready(state):
        print("down")
        return 1
    print(f"up {state.server} started in {state.start_seconds}s rss {rss_bytes(state) / 2**20:.0f} MiB")
    for proc in state.procs:
        print(f"  {proc.name} pid {proc.pid} {'alive' if _is_ours(proc) else 'gone'}")
    return 0


def _join_real_node() -> None:
    """`up` from the command line joins the real node too, where this machine can run one."""
    from . import node

    reason = node.unavailable()
    if reason:
        _say(f"no real node: {reason}")
    else:
        node.up()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.cluster.plane", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the binaries into the cache")
    sub.add_parser("up", help="start the plane (or reuse a running one) and print export KUBECONFIG=...")
    sub.add_parser("down", help="stop the plane that up started")
    sub.add_parser("env", help="print export KUBECONFIG=... for a running plane")
    sub.add_parser("status", help="say whether the plane runs, with its processes and memory")
    sub.add_parser("kind", help="install kind into the cache and print its path")
    which = sub.add_parser("which", help="print the path of a cached binary (building it if needed)")
    which.add_argument("name", choices=ALL_BINARIES)
    attach = sub.add_parser("kwok-attach", help="run kwok with fake nodes against --kubeconfig")
    attach.add_argument("--kubeconfig", type=Path, required=True)
    sub.add_parser("kwok-detach", help="stop the kwok that kwok-attach started")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            print(build())
        elif args.cmd == "up":
            up()
            _join_real_node()
            print(f"export KUBECONFIG={kubeconfig_path()}")
        elif args.cmd == "down":
            down()
        elif args.cmd == "env":
            if not is_ready():
                _say("no plane is running; start one with: python -m tests.e2e.cluster.plane up")
                return 1
            print(f"export KUBECONFIG={kubeconfig_path()}")
        elif args.cmd == "status":
            return _status()
        elif args.cmd == "which":
            build()
            print(binary(args.name))
        elif args.cmd == "kind":
            print(install_kind())
        elif args.cmd == "kwok-attach":
            kwok_attach(args.kubeconfig)
        elif args.cmd == "kwok-detach":
            kwok_detach()
    except PlaneError as err:
        _say(f"error: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
