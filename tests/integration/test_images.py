"""The container images, built and run as a pod runs them: node-runner around a command, the operator's CLI.

Built by tests/e2e/cluster/images.py (a debootstrap base and a dockerd of our own: no registry needed), cached
by a hash of the image inputs, so only a changed tree rebuilds. Skipped only where dockerd cannot run (not root,
no docker.io).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagwright import nodeio

# The repository root on the path, so `tests.e2e.cluster` imports under a bare `pytest` too (not only python -m).
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.e2e.cluster import images

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

NONROOT_UID = "10001"


@pytest.fixture(scope="module")
def docker() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("the image tests start their own dockerd, which needs root here")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("no dockerd/docker (Debian: make system-packages)")
    try:
        session = images.docker_session()
        sock = session.__enter__()
    except images.ImagesError as error:
        pytest.skip(f"dockerd cannot start here: {error}")
    try:
        yield sock
    finally:
        session.__exit__(None, None, None)


@pytest.fixture(scope="module")
def refs(docker: str) -> dict[str, str]:
    built = images.build_images()
    for ref in built.values():
        print(f"{ref}: {images.image_size(ref) / 1e6:.1f} MB", file=sys.stderr)
    return built


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """docker run --rm, no network (as a node's command needs none here)."""
    return images.docker("run", "--rm", "--network", "none", *args, check=False, timeout=timeout)


def test_node_runner_passes_exit_codes_through(refs: dict[str, str]) -> None:
    ok = run(refs["node-runner"], "true")
    assert ok.returncode == 0, ok.stderr
    failed = run(refs["node-runner"], "sh", "-c", "exit 3")
    assert failed.returncode == 3, failed.stderr


def test_node_runner_writes_the_outputs_envelope(refs: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, int(NONROOT_UID), int(NONROOT_UID))  # the image's user writes the termination message here
    command = 'printf \'{"answer": 42}\' > "$DAGWRIGHT_OUTPUTS"'
    result = run(
        "-v", f"{out}:/out", "-e", "DAGWRIGHT_TERMINATION_LOG=/out/termination-log",
        refs["node-runner"], "sh", "-c", command,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    message = (out / "termination-log").read_text()
    assert json.loads(message) == {nodeio.ENVELOPE: {"outputs": {"answer": 42}}}
    carried = nodeio.read_termination(message, succeeded=True)
    assert carried.outputs == {"answer": 42} and carried.error_reason is None


def test_operator_cli_runs(refs: dict[str, str]) -> None:
    result = run("--entrypoint", "dagwright", refs["operator"], "operator", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


@pytest.mark.parametrize("target", images.TARGETS)
def test_images_run_as_uid_10001(refs: dict[str, str], target: str) -> None:
    result = run("--entrypoint", "id", refs[target], "-u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == NONROOT_UID


def test_images_carry_the_project_version(refs: dict[str, str]) -> None:
    for ref in refs.values():
        out = images.docker(
            "image", "inspect", "-f", '{{index .Config.Labels "org.opencontainers.image.version"}}', ref
        )
        assert out.stdout.strip() == images.project_version()


def test_unchanged_inputs_are_not_rebuilt(refs: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Same inputs, same tag, no build. (Others may edit this checkout meanwhile, so the tag is pinned here.)"""
    base = images.ensure_base()
    entries = [(str(path.relative_to(images.REPO)), path.read_bytes()) for path in images._input_files()]
    assert images._hash_inputs(base, entries) == images._hash_inputs(base, list(entries))
    assert images._hash_inputs(base, entries) != images._hash_inputs(base, [*entries, ("operator/new.py", b"")])
    assert images._hash_inputs(base, entries) != images._hash_inputs(
        base, [(rel, data + b" ") for rel, data in entries]
    )

    def no_build(args: object, label: str) -> None:
        raise AssertionError(f"{label} was rebuilt")

    tag = refs["operator"].rsplit(":", 1)[1]
    monkeypatch.setattr(images, "_hash_inputs", lambda base, entries: tag)
    monkeypatch.setattr(images, "_build", no_build)
    assert images.build_images() == refs


def test_redis_image_answers_ping(docker: str) -> None:
    ref = images.build_redis_image()
    print(f"{ref}: {images.image_size(ref) / 1e6:.1f} MB", file=sys.stderr)
    name = f"dagwright-test-redis-{uuid.uuid4().hex[:8]}"
    started = images.docker("run", "-d", "--rm", "--name", name, "--network", "none", ref, check=False)
    assert started.returncode == 0, started.stderr
    try:
        ping = images.docker(
            "exec", name, "sh", "-c", "for i in $(seq 50); do redis-cli ping && exit 0; sleep 0.1; done"
        )
        assert ping.stdout.strip().endswith("PONG")
        uid = images.docker("exec", name, "id", "-u")
        assert uid.stdout.strip() == str(images.REDIS_UID)
    finally:
        images.docker("rm", "-f", name, check=False)


def test_pause_image_stops_on_sigterm(docker: str) -> None:
    ref = images.build_pause_image()
    print(f"{ref}: {images.image_size(ref) / 1e3:.0f} kB", file=sys.stderr)
    name = f"dagwright-test-pause-{uuid.uuid4().hex[:8]}"
    images.docker("run", "-d", "--name", name, "--network", "none", ref)
    try:
        images.docker("stop", "-t", "10", name)
        code = images.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0"  # exited on SIGTERM itself, not killed after the grace period (137)
    finally:
        images.docker("rm", "-f", name, check=False)
