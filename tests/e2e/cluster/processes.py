"""What plane.py, node.py and images.py share about the processes and files they own.

Why one place: each starts long-lived processes (the control plane, the real node, a dockerd) that outlive the
Python process that started them, so each must recognise its own processes later without trusting a bare pid
(pids are reused), serialise starts across concurrent pytest sessions, and write its state so that a killed writer
never leaves half a file. Standard library only: `make cluster-up` and the image builds import this.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (two pytest sessions, make and pytest) for as long as the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone (or a zombie).

    A recorded (pid, start ticks) pair names one process for good: a new process reusing the pid starts later.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never a part."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def mounts_below(root: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Mount points at or below `root`, deepest first, a stacked one as often as it is stacked."""
    base = os.path.realpath(root)
    points = []
    for line in mountinfo.read_text().splitlines():
        # Field 5 is the mount point, with space, tab, newline and backslash written as octal escapes.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split(" ")[4])
        if point == base or point.startswith(base + "/"):
            points.append(Path(point))
    return sorted(points, key=lambda point: len(point.parts), reverse=True)


def unmount_below(root: Path, passes: int = 5) -> list[Path]:
    """Unmount all that is mounted at or below `root`, so the directory can be removed: what a kubelet mounts
    (its root dir bound onto itself, pods' volumes) and containerd's leftovers outlive their processes. Deepest
    first; a busy mount is detached (`umount --lazy`) and goes once nothing uses it. Returns what is still
    mounted: nothing, unless umount itself is refused."""
    for _ in range(passes):
        points = mounts_below(root)
        if not points:
            return []
        for point in points:
            if subprocess.run(["umount", str(point)], capture_output=True, timeout=30).returncode != 0:
                subprocess.run(["umount", "--lazy", str(point)], capture_output=True, timeout=30)
    return mounts_below(root)
