"""dagwright's container images, built on a machine with no container registry.

Why: the operator and node-runner images (the repository's ``Dockerfile``) are what a real cluster runs, so
tests must build and run them; but the machines this project is developed on reach Debian's mirror and PyPI,
not Docker Hub, and run no Docker daemon. So this module

- starts a dockerd of its own (data under ``~/.cache/dagwright/docker``, override ``DAGWRIGHT_DOCKER_CACHE``),
  reusing a running one, and records its pid and start time so that only a daemon it started is ever stopped;
- makes the base image ``dagwright-base:bookworm`` with debootstrap (Debian bookworm, python3, the venv module),
  its root filesystem cached as a tarball under ``~/.cache/dagwright/images`` (``DAGWRIGHT_IMAGES_CACHE``);
- builds the Dockerfile's ``operator`` and ``node-runner`` targets FROM that base, tagged by a hash of their
  inputs (an unchanged tree is not rebuilt) and ``:dev``;
- builds what a cluster without a registry also needs: Redis from Debian's package (the chart's bundled Redis)
  and a pause image (the sandbox container) from a small static C program;
- saves images as a tar archive, for ``ctr -n k8s.io images import`` on a containerd node.

On a machine with Docker and a registry none of this is needed: plain ``docker build`` uses the official
Python base (``make images`` does that there).

CLI: ``python -m tests.e2e.cluster.images build|save|docker-env|stop-docker``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .processes import file_lock, start_ticks, write_json

REPO = Path(__file__).resolve().parents[3]

SUITE = "bookworm"
MIRROR = os.environ.get("DAGWRIGHT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES = ("python3", "python3-venv", "passwd", "ca-certificates")
BASE_REF = f"dagwright-base:{SUITE}"
ROOTFS_REF = f"dagwright-base:{SUITE}-rootfs"  # the debootstrap tree as imported; BASE_REF adds local CAs
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
PAUSE_REF = "dagwright-pause:1"
TARGETS = ("operator", "node-runner")
DEV_TAG = "dev"
KEEP_BUILDS = 3  # input-hash tags kept per image (older ones are removed after a build)
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEY_LABEL = "io.dagwright.inputs"  # the hash of what an image was made from, to know when to remake it

# What the Dockerfile copies (the .dockerignore allowlist), and what inside it is never sent.
IMAGE_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator", "node-runner", "crds")
IGNORED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})

DOCKERD_START_TIMEOUT_S = 60.0
DOCKERD_STOP_GRACE_S = 20.0

# Debian's redis-server, running as uid 999: the chart's bundled Redis runs as that user (runAsUser: 999).
REDIS_UID = 999
REDIS_DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools \\
 && rm -rf /var/lib/apt/lists/* \\
 && usermod -u {REDIS_UID} redis && groupmod -g {REDIS_UID} redis \\
 && mkdir -p /data && chown -R redis:redis /data /var/lib/redis /var/log/redis /etc/redis
WORKDIR /data
USER {REDIS_UID}:{REDIS_UID}
EXPOSE 6379
CMD ["redis-server", "--dir", "/data"]
"""

# The sandbox ("pause") container: sleeps until SIGTERM or SIGINT and reaps the zombies it inherits as PID 1.
PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { (void)sig; _exit(0); }

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction stop = {0}, child = {0};
    stop.sa_handler = on_stop;
    sigaction(SIGTERM, &stop, 0);
    sigaction(SIGINT, &stop, 0);
    child.sa_handler = on_child;
    child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &child, 0);
    for (;;) pause();
}
"""


class ImagesError(RuntimeError):
    """dockerd could not be started, or an image could not be made."""


def _say(msg: str) -> None:
    print(f"[dagwright-images] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths and locks


def images_root() -> Path:
    """Cached root filesystems, build logs and saved archives."""
    env = os.environ.get("DAGWRIGHT_IMAGES_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dagwright" / "images"


def docker_root() -> Path:
    """Our dockerd's data, runtime state, socket and log."""
    env = os.environ.get("DAGWRIGHT_DOCKER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dagwright" / "docker"


def socket_path() -> Path:
    return docker_root() / "docker.sock"


def docker_host() -> str:
    return f"unix://{socket_path()}"


def _docker_lock() -> contextlib.AbstractContextManager[None]:
    return file_lock(docker_root() / "dockerd.lock")


def _build_lock() -> contextlib.AbstractContextManager[None]:
    return file_lock(images_root() / "build.lock")


# --------------------------------------------------------------------------- dockerd


@dataclass
class DockerState:
    """The dockerd this module started, persisted as ``<docker root>/state.json``."""

    pid: int
    start_ticks: int
    socket: str
    # True when started for test sessions (docker_session): the last session to leave stops it. False when a
    # developer (or other code) asked with ensure_docker(): it then runs until stop-docker.
    managed: bool = False


def _state_path() -> Path:
    return docker_root() / "state.json"


def _load_state() -> DockerState | None:
    try:
        return DockerState(**json.loads(_state_path().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _save_state(state: DockerState) -> None:
    write_json(_state_path(), asdict(state))


def _is_ours(state: DockerState) -> bool:
    return start_ticks(state.pid) == state.start_ticks


def _ping(path: Path) -> bool:
    """True if a Docker API answers on the socket (GET /_ping -> OK)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] + b" "


def docker_running() -> bool:
    return _ping(socket_path())


def ensure_docker() -> str:
    """Start our own dockerd, or reuse the one answering on our socket; return the socket path.

    A daemon reused or started here runs until ``stop-docker`` (test sessions use docker_session instead).
    """
    with _docker_lock():
        return _ensure_locked(managed=False)


def _docker_up() -> str:
    """Our dockerd's socket: the running one as it is (managed or not), else one started by ensure_docker."""
    return str(socket_path()) if _ping(socket_path()) else ensure_docker()


def _ensure_locked(managed: bool) -> str:
    path = socket_path()
    state = _load_state()
    if _ping(path):
        if state is not None and state.managed and not managed:
            state.managed = False
            _save_state(state)
        return str(path)
    if state is not None and _is_ours(state):
        # Started but not answering: wait a little (another process may have just started it), else restart.
        if _wait_for_socket(path, state, timeout=DOCKERD_START_TIMEOUT_S):
            return str(path)
        _say(f"dockerd (pid {state.pid}) does not answer on {path}; stopping it")
        _stop(state)
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        raise ImagesError("dockerd and docker are needed (Debian: apt-get install docker.io; or make system-packages)")
    if os.geteuid() != 0:
        raise ImagesError("dockerd needs root here (no rootless setup)")
    return _start_dockerd(managed)


def _wait_for_socket(path: Path, state: DockerState, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ping(path):
            return True
        if not _is_ours(state):
            return False
        time.sleep(0.2)
    return False


def _start_dockerd(managed: bool) -> str:
    root = docker_root()
    for sub in ("data", "exec"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    path = socket_path()
    path.unlink(missing_ok=True)
    log = root / "dockerd.log"
    args = [
        "dockerd",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--host=unix://{path}",
        f"--pidfile={root / 'dockerd.pid'}",
        "--iptables=false",
        "--ip-masq=false",
        "--bridge=none",
    ]
    _say(f"starting dockerd (data under {root}, log {log})")
    started = time.monotonic()
    # Detached (own session, not our child): the daemon may outlive the process that started it.
    launcher = '"$@" >"$0" 2>&1 </dev/null & echo $!'
    out = subprocess.run(
        ["sh", "-c", launcher, str(log), *args], cwd=root, capture_output=True, text=True, start_new_session=True
    )
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        raise ImagesError(f"could not start dockerd: {out.stderr.strip()}")
    pid = int(out.stdout)
    ticks = start_ticks(pid)
    if ticks is None:
        raise ImagesError(f"dockerd exited at once:\n{_tail(log)}")
    state = DockerState(pid=pid, start_ticks=ticks, socket=str(path), managed=managed)
    _save_state(state)
    if not _wait_for_socket(path, state, timeout=DOCKERD_START_TIMEOUT_S):
        _stop(state)
        raise ImagesError(f"dockerd did not answer on {path} within {DOCKERD_START_TIMEOUT_S:.0f}s:\n{_tail(log)}")
    _say(f"dockerd ready in {time.monotonic() - started:.1f}s (pid {pid}); export DOCKER_HOST={docker_host()}")
    return str(path)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def _stop(state: DockerState) -> None:
    """SIGTERM the recorded dockerd (only if it is still the process we started), SIGKILL after a grace."""
    if _is_ours(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + DOCKERD_STOP_GRACE_S
        while _is_ours(state) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_ours(state):
            _say(f"dockerd (pid {state.pid}) ignored SIGTERM for {DOCKERD_STOP_GRACE_S:.0f}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, signal.SIGKILL)
    _state_path().unlink(missing_ok=True)


def stop_docker() -> bool:
    """Stop the dockerd this module started; False if none of ours runs (nothing else is ever stopped)."""
    with _docker_lock():
        state = _load_state()
        if state is None or not _is_ours(state):
            _state_path().unlink(missing_ok=True)
            return False
        _stop(state)
        return True


def _users_dir() -> Path:
    return docker_root() / "users"


def _live_users() -> list[Path]:
    live = []
    for path in _users_dir().glob("*"):
        pid, _, ticks = path.name.partition("-")
        if pid.isdigit() and ticks.isdigit() and start_ticks(int(pid)) == int(ticks):
            live.append(path)
        else:
            path.unlink(missing_ok=True)
    return live


@contextlib.contextmanager
def docker_session() -> Iterator[str]:
    """ensure_docker for one test session: a dockerd started here stops when the last session using it leaves.

    A daemon that was already running (a developer's, from ``build`` or ``docker-env``) is left running.
    """
    with _docker_lock():
        sock = _ensure_locked(managed=True)
        _users_dir().mkdir(parents=True, exist_ok=True)
        lease = _users_dir() / f"{os.getpid()}-{start_ticks(os.getpid())}"
        lease.touch()
    try:
        yield sock
    finally:
        with _docker_lock():
            lease.unlink(missing_ok=True)
            state = _load_state()
            if state is not None and state.managed and not _live_users():
                _stop(state)
                _say("dockerd stopped")


def docker(
    *args: str, check: bool = True, timeout: float | None = 600, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI against our dockerd (start it first with ensure_docker or docker_session)."""
    env = {**os.environ, "DOCKER_HOST": docker_host(), "DOCKER_BUILDKIT": "0"}
    cmd = ["docker", *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, input=input)
    if check and out.returncode != 0:
        raise ImagesError(f"{' '.join(cmd[:3])} ... failed ({out.returncode}):\n{out.stderr.strip()[-3000:]}")
    return out


def _inspect(ref: str) -> dict[str, object] | None:
    out = docker("image", "inspect", ref, check=False)
    if out.returncode != 0:
        return None
    found: list[dict[str, object]] = json.loads(out.stdout)
    return found[0] if found else None


def _label(ref: str, key: str) -> str | None:
    info = _inspect(ref)
    if info is None:
        return None
    config = info.get("Config")
    labels = config.get("Labels") if isinstance(config, dict) else None
    value = labels.get(key) if isinstance(labels, dict) else None
    return value if isinstance(value, str) else None


def image_exists(ref: str) -> bool:
    return _inspect(ref) is not None


def image_id(ref: str) -> str:
    info = _inspect(ref)
    if info is None:
        raise ImagesError(f"no image {ref}")
    return str(info["Id"])


def image_size(ref: str) -> int:
    """The image's size in bytes, all layers (as `docker images` shows it)."""
    info = _inspect(ref)
    if info is None:
        raise ImagesError(f"no image {ref}")
    size = info.get("Size")
    return size if isinstance(size, int) else 0


# --------------------------------------------------------------------------- base image


def _sha(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _base_key() -> str:
    return _sha("base-v1", SUITE, MIRROR, *BASE_PACKAGES, BASE_PATH)[:12]


def _unmount_under(root: Path) -> None:
    """Unmount anything an interrupted debootstrap left mounted (proc, sys) before the tree is deleted."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def ensure_base() -> str:
    """The base image: Debian bookworm (minbase) with python3 and its venv module, made with debootstrap.

    The root filesystem is made once per machine and cached as a tarball; ``docker import`` turns it into
    ``dagwright-base:bookworm-rootfs``. ``dagwright-base:bookworm`` adds this machine's own CA certificates
    (``/usr/local/share/ca-certificates``, e.g. a TLS-intercepting proxy's, which pip must trust to reach PyPI
    from the build), and pip set to the system store. Each is remade only if missing or made from another recipe.
    """
    _docker_up()
    rootfs_key = _base_key()
    cas = sorted(p for p in LOCAL_CA_DIR.glob("**/*.crt") if p.is_file()) if LOCAL_CA_DIR.is_dir() else []
    key = _sha(rootfs_key, *(part for ca in cas for part in (ca.name, ca.read_bytes())))[:12]
    with _build_lock():
        if _label(BASE_REF, KEY_LABEL) == key:
            return BASE_REF
        if _label(ROOTFS_REF, KEY_LABEL) != rootfs_key:
            tarball = images_root() / f"rootfs-{SUITE}-{rootfs_key}.tar"
            if not tarball.exists():
                _make_rootfs(tarball)
            started = time.monotonic()
            changes = [
                f"ENV PATH={BASE_PATH}",
                "ENV LANG=C.UTF-8",
                'CMD ["/bin/bash"]',
                f"LABEL {KEY_LABEL}={rootfs_key}",
            ]
            docker("import", *(arg for change in changes for arg in ("--change", change)), str(tarball), ROOTFS_REF)
            _say(f"imported {ROOTFS_REF} in {time.monotonic() - started:.0f}s ({image_size(ROOTFS_REF) / 1e6:.0f} MB)")
        with tempfile.TemporaryDirectory(prefix="dagwright-base-") as tmp:
            lines = [f"FROM {ROOTFS_REF}"]
            if cas:
                (Path(tmp) / "ca").mkdir()
                for index, ca in enumerate(cas):
                    shutil.copyfile(ca, Path(tmp) / "ca" / f"local-{index}-{ca.name}")
                lines += [
                    "COPY ca/ /usr/local/share/ca-certificates/",
                    "RUN update-ca-certificates >/dev/null",
                    "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                ]
            (Path(tmp) / "Dockerfile").write_text("\n".join(lines) + "\n")
            _build(["--network", "none", "--label", f"{KEY_LABEL}={key}", "-t", BASE_REF, tmp], "dagwright-base")
    return BASE_REF


def _make_rootfs(tarball: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise ImagesError("debootstrap is needed for the base image (apt-get install debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=tarball.parent, prefix="rootfs-"))
    rootfs = work / "rootfs"
    started = time.monotonic()
    _say(f"debootstrap {SUITE} (minbase + {', '.join(BASE_PACKAGES)}) from {MIRROR}; first time only, minutes")
    try:
        log = tarball.parent / "debootstrap.log"
        with log.open("w") as fh:
            include = f"--include={','.join(BASE_PACKAGES)}"
            code = subprocess.run(
                ["debootstrap", "--variant=minbase", include, SUITE, str(rootfs), MIRROR],
                stdout=fh,
                stderr=subprocess.STDOUT,
            ).returncode
        if code != 0:
            raise ImagesError(f"debootstrap failed ({code}):\n{_tail(log)}")
        # The Dockerfile runs `python -m venv` and adds its user with groupadd/useradd.
        (rootfs / "usr/bin/python").symlink_to("python3")
        for tool in ("usr/sbin/groupadd", "usr/sbin/useradd", "usr/bin/python3"):
            if not (rootfs / tool).exists():
                raise ImagesError(f"the debootstrap root has no /{tool}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file() and entry.name != "lock":
                    entry.unlink()
        tmp = tarball.with_suffix(".tmp")
        subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./dev/*", "-cf", str(tmp), "."],
            check=True,
            capture_output=True,
        )
        os.replace(tmp, tarball)
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    _say(f"root filesystem cached as {tarball} in {time.monotonic() - started:.0f}s")


# --------------------------------------------------------------------------- dagwright images


def project_version() -> str:
    """The package version: pyproject.toml is the one place it is written."""
    with (REPO / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def _input_files() -> list[Path]:
    files: list[Path] = []
    for name in IMAGE_INPUTS:
        top = REPO / name
        if top.is_file():
            files.append(top)
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.endswith(".egg-info"))
            files += [Path(dirpath) / f for f in sorted(filenames) if not f.endswith((".pyc", ".pyo"))]
    return files


def _hash_inputs(base: str, entries: Sequence[tuple[str, bytes]]) -> str:
    parts: list[str | bytes] = ["images-v1", base, image_id(base)]
    for rel, data in entries:
        parts += [rel, data]
    return _sha(*parts)[:12]


def inputs_hash(base: str) -> str:
    """A short hash of everything the images are made from: the build context's files and the base image."""
    return _hash_inputs(base, [(str(p.relative_to(REPO)), p.read_bytes()) for p in _input_files()])


def _snapshot(dest: Path) -> list[tuple[str, bytes]]:
    """Copy the build context into dest, returning what was copied.

    Others may edit the tree while a build runs: building both targets from one copy makes the tag the hash of
    exactly what was built, and lets the second target reuse the first one's cached build stage.
    """
    entries = []
    for path in _input_files():
        rel, data = str(path.relative_to(REPO)), path.read_bytes()
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        shutil.copymode(path, target)
        entries.append((rel, data))
    return entries


def _build(args: Sequence[str], label: str) -> None:
    """``docker build`` with the classic builder, its output in a log file (shown when it fails)."""
    logs = images_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{label}.log"
    started = time.monotonic()
    _say(f"building {label}")
    env = {**os.environ, "DOCKER_HOST": docker_host(), "DOCKER_BUILDKIT": "0"}
    with log.open("w") as fh:
        code = subprocess.run(["docker", "build", *args], env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise ImagesError(f"building {label} failed ({code}); {log}:\n{_tail(log)}")
    _say(f"built {label} in {time.monotonic() - started:.0f}s")


def build_images(extra_tags: Sequence[str] = ()) -> dict[str, str]:
    """Build the Dockerfile's operator and node-runner targets FROM the local base; {"operator": ref, ...}.

    Each is tagged ``dagwright-<target>:<inputs hash>`` (skipped when that tag exists: an unchanged tree is
    not rebuilt), ``:dev`` and any extra_tags.
    """
    base = ensure_base()
    with _build_lock(), tempfile.TemporaryDirectory(dir=images_root(), prefix="context-") as tmp:
        context = Path(tmp)
        entries = _snapshot(context)
        tag = _hash_inputs(base, entries)
        version = str(tomllib.loads(dict(entries)["pyproject.toml"].decode())["project"]["version"])
        refs = {target: f"dagwright-{target}:{tag}" for target in TARGETS}
        for target, ref in refs.items():
            if image_exists(ref):
                _say(f"{ref} is up to date")
            else:
                args = ["--network", "host", "--target", target, "--build-arg", f"PYTHON_IMAGE={base}"]
                args += ["--build-arg", f"VERSION={version}", "--label", f"{KEY_LABEL}={tag}"]
                _build([*args, "-t", ref, str(context)], f"dagwright-{target}")
            for extra in (DEV_TAG, *extra_tags):
                docker("tag", ref, f"dagwright-{target}:{extra}")
            _prune(f"dagwright-{target}", keep=tag)
    return refs


def _prune(repository: str, keep: str) -> None:
    """Untag all but the newest KEEP_BUILDS input-hash tags (each changed tree leaves one), freeing their layers.

    Only hash tags are touched; an image still tagged otherwise (:dev, a version) or used by a container stays.
    """
    listed = docker("images", repository, "--format", "{{.Tag}}").stdout.split()  # newest first
    hashes = [tag for tag in listed if re.fullmatch(r"[0-9a-f]{12}", tag) and tag != keep]
    for tag in hashes[KEEP_BUILDS - 1 :]:
        docker("rmi", f"{repository}:{tag}", check=False)


# --------------------------------------------------------------------------- redis and pause


def _docker_tag(text: str) -> str:
    """A Debian version as a Docker tag: the epoch dropped, ~ and + (not allowed in tags) as - and _."""
    return re.sub(r"[^\w.-]", "-", text.split(":", 1)[-1].replace("+", "_"))[:128]


def build_redis_image() -> str:
    """``dagwright-redis:<Debian package version>``: Debian's redis-server FROM the local base, as uid 999."""
    base = ensure_base()
    with _build_lock():
        key = _sha("redis-v1", REDIS_DOCKERFILE, image_id(base))[:12]
        dev = f"dagwright-redis:{DEV_TAG}"
        if _label(dev, KEY_LABEL) != key:
            with tempfile.TemporaryDirectory(prefix="dagwright-redis-") as tmp:
                (Path(tmp) / "Dockerfile").write_text(REDIS_DOCKERFILE)
                args = ["--network", "host", "--build-arg", f"BASE={base}", "--label", f"{KEY_LABEL}={key}"]
                _build([*args, "-t", dev, tmp], "dagwright-redis")
        query = ["--entrypoint", "dpkg-query", dev, "-W", "-f", "${Version}", "redis-server"]
        version = docker("run", "--rm", "--network", "none", *query).stdout.strip()
        ref = f"dagwright-redis:{_docker_tag(version)}"
        docker("tag", dev, ref)
    return ref


def build_pause_image() -> str:
    """``dagwright-pause:1``: one static binary, /pause, that sleeps until SIGTERM/SIGINT and reaps children."""
    _docker_up()
    key = _sha("pause-v1", PAUSE_C)[:12]
    with _build_lock():
        if _label(PAUSE_REF, KEY_LABEL) == key:
            return PAUSE_REF
        if shutil.which("gcc") is None:
            raise ImagesError("gcc (and libc6-dev for -static) is needed for the pause image")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="dagwright-pause-") as tmp:
            source, binary, archive = Path(tmp) / "pause.c", Path(tmp) / "pause", Path(tmp) / "pause.tar"
            source.write_text(PAUSE_C)
            compiled = subprocess.run(
                ["gcc", "-static", "-Os", "-s", "-Wall", "-Werror", "-o", str(binary), str(source)],
                capture_output=True,
                text=True,
            )
            if compiled.returncode != 0:
                raise ImagesError(f"compiling the pause program failed:\n{compiled.stderr}")
            with tarfile.open(archive, "w") as tar:
                info = tarfile.TarInfo("pause")
                info.size, info.mode, info.mtime = binary.stat().st_size, 0o755, 0
                with binary.open("rb") as fh:
                    tar.addfile(info, io.BytesIO(fh.read()))
            changes = ['ENTRYPOINT ["/pause"]', "USER 65535:65535", f"LABEL {KEY_LABEL}={key}"]
            docker("import", *(arg for change in changes for arg in ("--change", change)), str(archive), PAUSE_REF)
        _say(f"built {PAUSE_REF} in {time.monotonic() - started:.1f}s ({image_size(PAUSE_REF) / 1e3:.0f} kB)")
    return PAUSE_REF


# --------------------------------------------------------------------------- save


def save(refs: list[str], path: Path) -> Path:
    """``docker save`` the images into one tar archive (for ``ctr -n k8s.io images import``); return its path."""
    _docker_up()
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    started = time.monotonic()
    docker("save", "-o", str(tmp), *refs)
    os.replace(tmp, path)
    size = path.stat().st_size / 1e6
    _say(f"saved {len(refs)} image(s) to {path} in {time.monotonic() - started:.0f}s ({size:.0f} MB)")
    return path


def build_all() -> list[str]:
    """Every image a cluster without a registry needs: operator, node-runner, Redis, pause."""
    refs = list(build_images().values())
    return [*refs, build_redis_image(), build_pause_image()]


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.cluster.images", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="build the base, operator, node-runner, Redis and pause images; print refs")
    build.add_argument("--tag", action="append", default=[], help="also tag operator and node-runner so")
    build.add_argument("--only-dagwright", action="store_true", help="only the operator and node-runner images")
    save_cmd = sub.add_parser("save", help="docker save images into a tar archive (default: all that build makes)")
    save_cmd.add_argument("-o", "--output", type=Path, default=None)
    save_cmd.add_argument("refs", nargs="*")
    sub.add_parser("docker-env", help="start our dockerd (or reuse it) and print export DOCKER_HOST=...")
    sub.add_parser("stop-docker", help="stop the dockerd this module started")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            refs = list(build_images(args.tag).values())
            if not args.only_dagwright:
                refs += [build_redis_image(), build_pause_image()]
            for ref in refs:
                print(f"{ref}\t{image_size(ref) / 1e6:.1f} MB")
        elif args.cmd == "save":
            refs = args.refs or build_all()
            print(save(refs, args.output or images_root() / "images.tar"))
        elif args.cmd == "docker-env":
            ensure_docker()
            print(f"export DOCKER_HOST={docker_host()}")
        elif args.cmd == "stop-docker":
            _say("dockerd stopped" if stop_docker() else "no dockerd of ours is running")
    except (ImagesError, subprocess.SubprocessError) as err:
        _say(f"error: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
