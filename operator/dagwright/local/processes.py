"""Node attempts as local subprocesses: start, wait for any to end, stop a whole process group.

Each attempt runs in its own session (process group), so stopping it also stops whatever the command started
(a shell's children, a pool of workers). Waiting uses pidfds with a selector, so one thread waits on every
running attempt, on the next planner wake-up time and on Ctrl-C at once, without polling.

Starting a process costs about a millisecond, most of it in fork/exec with the GIL released, so a batch of
launches is started from a few threads at once (`start_all`); everything else happens on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dagwright import nodeio
from dagwright.planner import AttemptState, Launch, Observation

STOP_GRACE_SECONDS = 5.0
SPAWN_THREADS = 8
MAX_MESSAGE = 2000


@dataclass(slots=True)
class Attempt:
    launch: Launch
    process: subprocess.Popen[bytes]
    pidfd: int
    log_path: Path
    outputs_path: Path
    progress_path: Path
    started: float
    stopping: bool = False


class Processes:
    """The running attempts of one local run."""

    def __init__(self, logs_dir: Path, wakeup_fd: int | None = None, environ: dict[str, str] | None = None) -> None:
        self.logs_dir = logs_dir
        self.selector = selectors.DefaultSelector()
        self.running: dict[tuple[str, int | None, int], Attempt] = {}  # (node, item, attempt)
        self.environ = dict(os.environ if environ is None else environ)
        self._pool: ThreadPoolExecutor | None = None
        if wakeup_fd is not None:
            self.selector.register(wakeup_fd, selectors.EVENT_READ, None)

    def start(self, launch: Launch, workdir: Path | None = None) -> Observation | None:
        """Start an attempt; an Observation comes back at once only when it could not start at all."""
        return self._register(self._spawn(launch, workdir))

    def start_all(self, launches: Sequence[Launch], workdir: Path | None = None) -> list[Observation]:
        """Start attempts, several at once; Observations come back only for those that could not start."""
        if len(launches) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SPAWN_THREADS, thread_name_prefix="dagwright-spawn")
            spawned = list(self._pool.map(lambda launch: self._spawn(launch, workdir), launches))
        else:
            spawned = [self._spawn(launch, workdir) for launch in launches]
        return [failed for failed in map(self._register, spawned) if failed is not None]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self.selector.close()

    def _spawn(self, launch: Launch, workdir: Path | None) -> Attempt | Observation:
        """Start one process; safe to call from several threads at once (it touches no shared state)."""
        item = "" if launch.item is None else f"{launch.item}."  # node names hold no dots: no stem is another's
        stem = f"{self.logs_dir}/{launch.node}.{item}{launch.attempt}"
        log_path, outputs_path, progress_path = (
            Path(f"{stem}.log"),
            Path(f"{stem}.outputs.json"),
            Path(f"{stem}.progress"),
        )
        env = {**self.environ, **dict(launch.env)}
        env["DAGWRIGHT_OUTPUTS"] = str(outputs_path)
        env["DAGWRIGHT_PROGRESS"] = str(progress_path)
        argv = [*launch.command, *launch.args]
        try:
            with open(log_path, "wb", buffering=0) as log:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=workdir,
                    start_new_session=True,
                )
        except (OSError, ValueError) as error:  # ValueError: a NUL byte, e.g. from an upstream node's outputs
            return Observation(
                launch.node,
                launch.attempt,
                AttemptState.FAILED,
                item=launch.item,
                exit_code=127,
                reason="Error",
                message=f"cannot start {argv[0]!r}: {getattr(error, 'strerror', None) or error}",
                finished_at=_utcnow(),
            )
        pidfd = os.pidfd_open(process.pid)
        return Attempt(launch, process, pidfd, log_path, outputs_path, progress_path, time.monotonic())

    def _register(self, spawned: Attempt | Observation) -> Observation | None:
        if isinstance(spawned, Observation):
            return spawned
        self.running[_key(spawned.launch)] = spawned
        self.selector.register(spawned.pidfd, selectors.EVENT_READ, spawned)
        return None

    def wait(self, timeout: float | None) -> list[Observation]:
        """Outcomes of the attempts that ended within `timeout` seconds (empty on timeout or a signal)."""
        observations = []
        for key, _ in self.selector.select(timeout):
            attempt = key.data
            if attempt is None:
                _drain(key.fd)
            elif attempt.process.poll() is not None:
                observations.append(self._finished(attempt))
        return observations

    def stop(self, node: str, attempt_number: int, item: int | None = None) -> None:
        """Ask an attempt's whole process group to end; `reap_stopped` makes sure it does."""
        attempt = self.running.get((node, item, attempt_number))
        if attempt is not None and not attempt.stopping:
            attempt.stopping = True
            _signal_group(attempt.process.pid, signal.SIGTERM)

    def reap_stopped(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Wait for stopped attempts to end, killing their groups after `grace` seconds.

        A stopped attempt's outcome is not reported: the planner already decided what it means.
        """
        deadline = time.monotonic() + grace
        for attempt in [a for a in self.running.values() if a.stopping]:
            try:
                attempt.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(attempt.process.pid, signal.SIGKILL)
                attempt.process.wait()
            _signal_group(attempt.process.pid, signal.SIGKILL)  # leftovers of the group
            self._forget(attempt)

    def stop_all(self) -> None:
        for node, item, number in list(self.running):
            self.stop(node, number, item)
        self.reap_stopped()

    def progress(self) -> list[Observation]:
        """The latest progress line each running attempt wrote to $DAGWRIGHT_PROGRESS, if it changed."""
        observations = []
        for attempt in self.running.values():
            text = _last_line(attempt.progress_path)
            if text is not None:
                launch = attempt.launch
                observations.append(
                    Observation(launch.node, launch.attempt, AttemptState.RUNNING, progress=text, item=launch.item)
                )
        return observations

    def _finished(self, attempt: Attempt) -> Observation:
        self._forget(attempt)
        launch, code = attempt.launch, attempt.process.returncode
        item = launch.item
        outputs, problem = nodeio.read_outputs_file(str(attempt.outputs_path))  # the cluster's rule and limit
        progress = _last_line(attempt.progress_path)
        now = _utcnow()
        if code == 0 and problem is None:
            return Observation(
                launch.node, launch.attempt, AttemptState.SUCCEEDED, 0, None, None, now, outputs, progress, item=item
            )
        if code == 0 and problem is not None:
            reason, message = problem
            return Observation(launch.node, launch.attempt, AttemptState.FAILED, 0, reason, message, now, item=item)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            message = f"killed by signal {name}"
            return Observation(
                launch.node, launch.attempt, AttemptState.FAILED, 128 - code, "Signal", message, now, item=item
            )
        tail = _tail(attempt.log_path)
        message = f"exit code {code}" + (f": {tail}" if tail else "")
        return Observation(launch.node, launch.attempt, AttemptState.FAILED, code, "Error", message, now, item=item)

    def _forget(self, attempt: Attempt) -> None:
        self.running.pop(_key(attempt.launch), None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(attempt.pidfd)
        os.close(attempt.pidfd)


def _key(launch: Launch) -> tuple[str, int | None, int]:
    return launch.node, launch.item, launch.attempt


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError):
        os.read(fd, 512)


def _last_line(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            lines = handle.read()[-256:].decode("utf-8", "replace").split()
    except FileNotFoundError:
        return None
    return lines[-1] if lines else None


def _tail(path: Path, limit: int = MAX_MESSAGE) -> str:
    """The last lines of an attempt's log, so a failure message says why without opening the file."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return " | ".join(lines[-3:])[-limit:]


def _utcnow() -> datetime:
    return datetime.now(UTC)
