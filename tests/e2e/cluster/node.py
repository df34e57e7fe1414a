"""A real node for the e2e plane: kubelet with containerd and CNI, so pods run real containers on this machine.

Why: kwok only simulates pods. The images, the Helm chart's operator Deployment, node-runner, termination
messages, logs and memory limits are only proven by containers that really run. This module joins one kubelet
(built from the same pinned Kubernetes module as the rest of the plane) beside kwok's fake nodes.

Layout, everything under ``<run>/node`` and started as detached processes recorded in ``node.json`` (pid and
start time, like plane.py's, so ``down`` ends only what ``up`` started):

- containerd (Debian's) with its own root, state, socket and CRI config: runc v2 with cgroupfs, and
  ``restrict_oom_score_adj`` because this VM refuses lowering ``oom_score_adj`` (without it every sandbox fails
  with runc's "can't get final child's PID from pipe: EOF"). The pause image is built locally (images.py).
- CNI: Debian's bridge + host-local plugins on the bridge ``dwbr0`` (198.18.0.1/24). Pods get addresses in
  198.18.0.0/24 and a route to 198.18.0.0/16 only (no default route); Service IPs are 198.18.128.0/17. An
  iptables rule drops any forwarded packet from the plane's range to an address outside it, so nothing a pod
  sends can leave the machine.
- kubelet: a node identity of its own (``system:node:dagwright-real-0``), node IP 198.18.0.1 (not loopback, or
  ``kubectl logs`` finds no address), tainted ``dagwright.io/real-node=true:NoSchedule`` and labelled
  ``dagwright.io/real-node=true``: only pods that ask for it (a toleration and a node selector) land here.
- kube-proxy in iptables mode, so pods reach Services; the ``kubernetes`` Service's endpoint is 198.18.0.1 where
  a socat relay forwards to the API server, which itself still listens on 127.0.0.1 only.
- CoreDNS (built from coredns/go.mod with only the plugins it needs) on 198.18.0.1:53: Service and pod names
  resolve in pods (the chart's bundled Redis is ``redis://<release>-redis.<ns>.svc``); nothing else does.

Needs root and Debian's containerd, runc, containernetworking-plugins, iptables, socat (``make system-packages``).
CLI: ``python -m tests.e2e.cluster.node up|down|status|load IMAGE...``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import images, plane
from .processes import file_lock, unmount_below, write_json

NODE_NAME = plane.REAL_NODE_NAME
BRIDGE = "dwbr0"
NODE_IP = "198.18.0.1"
POD_SUBNET = "198.18.0.0/24"
TAINT_KEY = "dagwright.io/real-node"
LABEL = f"{TAINT_KEY}=true"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
HOST_TOOLS = ("containerd", "ctr", "runc", "iptables", "socat", "ip", "dockerd", "docker")  # docker: the pause image
NAMESPACE_K8S = "k8s.io"  # containerd's namespace for the CRI plugin

# What a pod must carry to run here.
TOLERATION = {"key": TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
NODE_SELECTOR = {TAINT_KEY: "true"}


def node_dir() -> Path:
    return plane.run_dir() / "node"


def _state_file() -> Path:
    return node_dir() / "node.json"


def _sock() -> Path:
    # A short path: unix socket paths are limited to 108 bytes, and the run dir may be deep.
    digest = hashlib.sha256(str(node_dir()).encode()).hexdigest()[:10]
    return Path("/run/dagwright") / f"containerd-{digest}.sock"


def unavailable() -> str | None:
    """Why a real node cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "a real node needs root (kubelet, containerd and CNI manage namespaces, cgroups and iptables)"
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if not any(Path(d, "bridge").exists() for d in CNI_BIN_DIRS):
        missing.append("CNI plugins (containernetworking-plugins)")
    if missing:
        return f"missing {', '.join(missing)}: run `make system-packages`"
    return None


def _cni_bin_dir() -> str:
    return next(d for d in CNI_BIN_DIRS if Path(d, "bridge").exists())


@dataclass
class NodeState:
    """What ``up`` started for the real node, persisted as ``node.json``."""

    apiserver_port: int
    procs: list[plane.Proc] = field(default_factory=list)


def load_state() -> NodeState | None:
    try:
        raw = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    try:
        procs = [plane.Proc(**p) for p in raw.get("procs", [])]
        return NodeState(apiserver_port=int(raw["apiserver_port"]), procs=procs)
    except (KeyError, TypeError, ValueError):  # written by another version of this module: nothing to trust
        return None


def _save(state: NodeState) -> None:
    write_json(_state_file(), asdict(state))


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


# --------------------------------------------------------------------------- network


def _network() -> None:
    """The bridge, bridged traffic through iptables (for Service replies), and the rule that keeps pods in."""
    if _sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
    if NODE_IP not in _sh("ip", "-4", "addr", "show", BRIDGE).stdout:
        _sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _sh("ip", "link", "set", BRIDGE, "up")
    # kube-proxy's DNAT must see packets between two pods on the same bridge, or a reply skips the un-NAT.
    bridged = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if not bridged.exists():
        raise plane.PlaneError(f"{bridged} is missing: the kernel's br_netfilter module must be loaded")
    bridged.write_text("1")
    keep_in = ["FORWARD", "-s", plane.PLANE_NET, "!", "-d", plane.PLANE_NET, "-j", "DROP"]
    if _sh("iptables", "-C", *keep_in, check=False).returncode != 0:
        _sh("iptables", "-I", *keep_in)


def _cni_config(conf_dir: Path) -> None:
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": "dagwright",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "198.18.0.10", "gateway": NODE_IP}]],
                    # No default route: a pod can address the plane's range and nothing else.
                    "routes": [{"dst": plane.PLANE_NET}],
                    "dataDir": str(node_dir() / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (conf_dir / "10-dagwright.conflist").write_text(json.dumps(config, indent=2))


# --------------------------------------------------------------------------- containerd


def _containerd_config(root: Path) -> Path:
    pause = f"docker.io/library/{images.PAUSE_REF}"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{root / "containerd"}"
state = "{root / "containerd-state"}"
[grpc]
  address = "{_sock()}"
[{cri}]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  [{cri}.containerd]
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{_cni_bin_dir()}"
    conf_dir = "{root / "cni"}"
"""
    path = root / "containerd.toml"
    path.write_text(text)
    return path


def _ctr(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _sh("ctr", "--address", str(_sock()), "-n", NAMESPACE_K8S, *args, check=check)


def load_images(archive: Path) -> None:
    """Import a ``docker save`` archive into the node's containerd (the CRI plugin's namespace)."""
    _ctr("images", "import", str(archive))


def has_image(ref: str) -> bool:
    full = ref if "/" in ref.split(":")[0] else f"docker.io/library/{ref}"
    return full in _ctr("images", "ls", "-q").stdout.split()


# --------------------------------------------------------------------------- kubelet and kube-proxy


def _kubelet_config(root: Path, pki: Path) -> Path:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": plane._free_port(),
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "failCgroupV1": False,  # this VM has cgroup v1
        "containerRuntimeEndpoint": f"unix://{_sock()}",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        "clusterDNS": [NODE_IP],  # CoreDNS, started beside the kubelet
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "podCIDR": POD_SUBNET,
        "maxPods": 60,
        "serializeImagePulls": False,
        # Images are imported, never pulled: the kubelet must not garbage-collect them, nor evict for a full disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "resolvConf": "/etc/resolv.conf",
        "shutdownGracePeriod": "0s",
    }
    path = root / "kubelet.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def _proxy_config(root: Path, run: Path) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(run / "proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": plane.PLANE_NET,
        "bindAddress": NODE_IP,  # also how kube-proxy learns the node's address
        "nodePortAddresses": [f"{NODE_IP}/32"],  # NodePorts on the node's bridge address only, never the host's
        "healthzBindAddress": f"127.0.0.1:{plane._free_port()}",
        "metricsBindAddress": f"127.0.0.1:{plane._free_port()}",
        # Leave the host's conntrack settings alone.
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    path = root / "kube-proxy.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def _corefile(root: Path, kubeconfig: Path) -> Path:
    """Cluster DNS for the real node's pods, served on the node's address: Service and pod names only."""
    text = f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{plane._free_port()}
    ready 127.0.0.1:{plane._free_port()}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} dagwright-e2e
        pods insecure
    }}
    cache 30
}}
"""
    path = root / "Corefile"
    path.write_text(text)
    return path


def _kubernetes_endpoints(port: int, kubeconfig: Path) -> None:
    """Point the ``kubernetes`` Service at the socat relay (the plane runs with endpoint reconciler none)."""
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "dagwright-plane",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    }
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": [slice_, endpoints]})
    plane.kubectl("apply", "-f", "-", kubeconfig=kubeconfig, input=manifest)


# --------------------------------------------------------------------------- up / down


def is_ready(state: NodeState | None = None) -> bool:
    state = state or load_state()
    if state is None or not state.procs or not all(plane._is_ours(p) for p in state.procs):
        return False
    out = plane.kubectl(
        "get", "node", NODE_NAME, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False
    )
    return out.stdout.strip() == "True"


def up(progress: plane.Progress = plane._say) -> NodeState:
    """Join the real node to the running plane (or reuse it); the plane must be up."""
    reason = unavailable()
    if reason:
        raise plane.PlaneError(reason)
    plane_state = plane.load_state()
    if plane_state is None or not plane.is_ready(plane_state):
        raise plane.PlaneError("the plane is not running: start it first (make cluster-up)")
    pause = images.build_pause_image()
    with file_lock(node_dir().parent / "node.lock"):
        state = load_state()
        if state is not None and state.apiserver_port == plane_state.apiserver_port and is_ready(state):
            return state
        if state is not None:
            _stop(state, progress)
        return _start(plane_state, pause, progress)


def _start(plane_state: plane.State, pause: str, progress: plane.Progress) -> NodeState:
    root = node_dir()
    root.mkdir(parents=True, exist_ok=True)
    _sock().parent.mkdir(parents=True, exist_ok=True)
    run, pki = plane.run_dir(), plane._pki_dir()
    kubeconfig = plane.kubeconfig_path()
    state = NodeState(apiserver_port=plane_state.apiserver_port)
    _network()
    _cni_config(root / "cni")
    try:
        state.procs.append(plane._spawn("containerd", ["containerd", "--config", str(_containerd_config(root))], root))
        _save(state)
        plane._wait("containerd", lambda: _ctr("version", check=False).returncode == 0, state.procs, timeout=30)
        with tempfile.TemporaryDirectory() as tmp:
            archive = images.save([pause], Path(tmp) / "pause.tar")
            load_images(archive)
        relay = f"TCP-LISTEN:{plane_state.apiserver_port},bind={NODE_IP},fork,reuseaddr"
        state.procs.append(
            plane._spawn("apiserver-relay", ["socat", relay, f"TCP:127.0.0.1:{plane_state.apiserver_port}"], root)
        )
        _kubernetes_endpoints(plane_state.apiserver_port, kubeconfig)
        corefile = _corefile(root, kubeconfig)
        state.procs.append(plane._spawn("coredns", [str(plane.binary("coredns")), "-conf", str(corefile)], root))
        kubelet = [
            str(plane.binary("kubelet")),
            f"--config={_kubelet_config(root, pki)}",
            f"--kubeconfig={run / 'node.kubeconfig'}",
            f"--root-dir={root / 'kubelet'}",
            f"--cert-dir={root / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            f"--node-labels={LABEL},kubernetes.io/os=linux",
            "--v=1",
        ]
        state.procs.append(plane._spawn("kubelet", kubelet, root))
        proxy = [str(plane.binary("kube-proxy")), f"--config={_proxy_config(root, run)}", "--v=1"]
        state.procs.append(plane._spawn("kube-proxy", proxy, root))
        _save(state)
        plane._wait("the real node Ready", lambda: is_ready(state), state.procs, timeout=plane.START_TIMEOUT_S)
    except BaseException:
        _stop(state, progress)
        raise
    progress(f"real node {NODE_NAME} Ready (containerd socket {_sock()})")
    return state


def _stop(state: NodeState, progress: plane.Progress) -> None:
    """End the node: kubelet and the rest first (nothing restarts a container then), the pods' containers, then
    containerd and its shims; the pods' network namespaces and addresses are freed so the next start has them."""
    alive = [p for p in reversed(state.procs) if plane._is_ours(p)]
    runtime = [p for p in alive if p.name == "containerd"]
    _end([p for p in alive if p not in runtime])
    if runtime:
        for task in _ctr("tasks", "ls", "-q", check=False).stdout.split():
            _ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False)
    _end(runtime)
    _sh("pkill", "-KILL", "-f", f"containerd-shim-runc-v2 .*-address {_sock()}", check=False)
    for netns in _sh("ip", "netns", "list", check=False).stdout.split("\n"):
        name = netns.split(" ")[0]
        if name.startswith("cni-"):
            _sh("ip", "netns", "delete", name, check=False)
    shutil.rmtree(node_dir() / "cni-ipam", ignore_errors=True)
    _unmount(progress)
    with contextlib.suppress(plane.PlaneError, subprocess.TimeoutExpired):
        plane.kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false", check=False, timeout=10)
    _state_file().unlink(missing_ok=True)
    progress("real node stopped")


def _unmount(progress: plane.Progress) -> None:
    """Once its processes are gone, unmount what the node mounted under its directory (the kubelet's root dir,
    bound onto itself, and pods' volumes; containerd's rootfs and shm mounts), or the run dir cannot be removed."""
    left = unmount_below(node_dir())
    if left:
        progress(f"still mounted under {node_dir()}: {', '.join(map(str, left))}")


def _end(procs: list[plane.Proc]) -> None:
    plane._terminate(procs, signal.SIGTERM)
    deadline = time.monotonic() + plane.STOP_GRACE_S
    while time.monotonic() < deadline and any(plane._is_ours(p) for p in procs):
        time.sleep(0.1)
    plane._terminate([p for p in procs if plane._is_ours(p)], signal.SIGKILL)


def down(progress: plane.Progress = plane._say) -> bool:
    state = load_state()
    if state is None:
        _unmount(progress)  # mounts left by a node stopped before `down` unmounted them
        return False
    _stop(state, progress)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.cluster.node", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="join the real node to the running plane")
    sub.add_parser("down", help="stop the real node")
    sub.add_parser("status", help="say whether the real node is Ready")
    load = sub.add_parser("load", help="docker save IMAGE... and import them into the node's containerd")
    load.add_argument("refs", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "up":
            up()
        elif args.cmd == "down":
            down()
        elif args.cmd == "status":
            print("Ready" if is_ready() else "down")
        elif args.cmd == "load":
            with tempfile.TemporaryDirectory() as tmp:
                load_images(images.save(args.refs, Path(tmp) / "images.tar"))
    except plane.PlaneError as err:
        plane._say(f"error: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
