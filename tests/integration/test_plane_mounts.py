"""The real node's `down` unmounts what its kubelet left mounted, so the plane's run dir can be removed.

Why: a kubelet binds its root dir onto itself and mounts pods' volumes below it; these outlive its process, and
`rm -rf` of the run dir then fails with "Device or resource busy". Starting a real node takes many minutes, so
this plays the kubelet's part with mounts of its own (tmpfs and binds, one kept busy) in a temporary directory.
Needs root (mount); skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The repository root on the path, so `tests.e2e.cluster` imports under a bare `pytest` too (not only python -m).
if str(Path(__file__).resolve().parents[2]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.e2e.cluster.processes import mounts_below, unmount_below


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")


@pytest.fixture
def node_dir(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    root = tmp_path / "run dir" / "node"  # a space: mountinfo escapes it
    yield root
    for point in mounts_below(tmp_path):  # whatever a failing test left behind
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True)


def test_everything_mounted_below_the_node_dir_goes_busy_or_not_and_the_dir_can_be_removed(node_dir: Path) -> None:
    kubelet = node_dir / "kubelet"
    volume = kubelet / "pods" / "uid-1" / "volumes" / "kubernetes.io~projected" / "token"
    kubelet.mkdir(parents=True)
    mount("--bind", str(kubelet), str(kubelet))  # the kubelet's root dir, bound onto itself
    mount("--make-rshared", str(kubelet))
    volume.mkdir(parents=True)
    mount("-t", "tmpfs", "tmpfs", str(volume))
    mount("-t", "tmpfs", "tmpfs", str(volume))  # stacked on the first
    (volume / "token").write_text("secret")
    outside = node_dir.parent / "elsewhere"
    outside.mkdir()
    mount("-t", "tmpfs", "tmpfs", str(outside))
    assert mounts_below(node_dir) == [volume, volume, kubelet]

    with (volume / "token").open():  # busy: a plain umount is refused
        assert unmount_below(node_dir) == []

    assert mounts_below(node_dir) == []
    assert mounts_below(outside) == [outside], "a mount beside the node dir was touched"
    shutil.rmtree(node_dir)
    subprocess.run(["umount", str(outside)], check=True)


def test_mount_points_are_read_with_mountinfo_escapes_and_only_below_the_root(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "36 35 98:0 / /run\\040dir/node/kubelet rw - ext4 /dev/vda rw\n"
        "37 36 0:5 / /run\\040dir/node/kubelet/pods/a rw - tmpfs tmpfs rw\n"
        "38 35 0:6 / /run\\040dir/node-other rw - tmpfs tmpfs rw\n"
        "39 35 0:7 / /run\\040dir/node rw - tmpfs tmpfs rw\n"
    )
    node = Path("/run dir/node")
    assert mounts_below(node, info) == [node / "kubelet/pods/a", node / "kubelet", node]
