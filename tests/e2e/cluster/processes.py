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
