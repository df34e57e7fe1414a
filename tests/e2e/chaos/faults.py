"""Faults a chaos run injects: the operator SIGKILLed and restarted, and its connections to the API server cut.

Each injector is a thread that runs until told to stop and counts what it did, so the report can say how many
faults a run survived.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
from collections.abc import Callable

from ..operator_fixtures import OperatorProcess


class Periodic(threading.Thread):
    """Inject one fault every `low`..`high` seconds (seeded) until stopped or `limit` were injected; `count` says
    how many."""

    def __init__(
        self, fault: Callable[[], object], low: float, high: float, seed: int, limit: int | None = None
    ) -> None:
        super().__init__(daemon=True, name="fault-injector")
        self.fault = fault
        self.low, self.high = low, high
        self.rng = random.Random(seed)
        self.count = 0
        self.limit = limit
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while (self.limit is None or self.count < self.limit) and not self.stopping.wait(
            self.rng.uniform(self.low, self.high)
        ):
            try:
                self.fault()
            except Exception as error:  # reported, and the run goes on: the oracle judges the outcome
                self.errors.append(f"{type(error).__name__}: {error}")
            else:
                self.count += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=180)


class OperatorChurn(Periodic):
    """SIGKILL the running operator and start a fresh one at once: a pod dying and being replaced.

    The dying process is never asked to stop, so it gets no chance to tidy up.
    """

    def __init__(self, start_operator: Callable[[], OperatorProcess], low: float, high: float, seed: int) -> None:
        super().__init__(self.replace, low, high, seed)
        self.start_operator = start_operator
        self.current = start_operator()

    def replace(self) -> None:
        self.current.kill()
        self.current = self.start_operator()


class TcpProxy(threading.Thread):
    """A loopback TCP relay in front of the API server whose connections the test can cut at will.

    TLS passes through untouched (the API server's certificate names 127.0.0.1, so a client pointed at the
    proxy's port verifies it as usual). `cut()` closes every relayed connection at once, as a broken network
    path or a restarted load balancer would: watches and in-flight requests see their sockets reset.
    """

    def __init__(self, upstream_port: int) -> None:
        super().__init__(daemon=True, name="apiserver-proxy")
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.cuts = 0
        self.connections = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                downstream.close()
                continue
            with self.lock:
                self.pairs.append((downstream, upstream))
                self.connections += 1
            threading.Thread(target=self._relay, args=(downstream, upstream), daemon=True).start()

    def _relay(self, one: socket.socket, other: socket.socket) -> None:
        sockets = [one, other]
        with contextlib.suppress(OSError, ValueError):
            while not self.stopping.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return self._close(one, other)
                    (other if sock is one else one).sendall(data)
        self._close(one, other)

    def _close(self, one: socket.socket, other: socket.socket) -> None:
        for sock in (one, other):
            with contextlib.suppress(OSError):
                sock.close()
        with self.lock:
            if (one, other) in self.pairs:
                self.pairs.remove((one, other))

    def cut(self) -> int:
        """Reset every open connection; returns how many were cut."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
            self.cuts += 1
        for one, other in pairs:
            for sock in (one, other):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
        return len(pairs)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.cut()
        self.join(timeout=5)
