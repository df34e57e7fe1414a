"""Running the UI's app with uvicorn: in the foreground for `dagwright ui`, on a thread beside the local runner
for `dagwright run --ui` (the runner keeps the main thread, where its Ctrl-C handling lives).

Binds 127.0.0.1 unless told otherwise; port 0 picks a free one (the tests use it) and `Server.url` says which.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from dagwright.ui import server
from dagwright.ui.sources import Source

LOOPBACK = "127.0.0.1"


class Server:
    def __init__(self, source: Source, host: str = LOOPBACK, port: int = 8765) -> None:
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.host = host
        self.port = self.socket.getsockname()[1]
        hosts = [LOOPBACK, "localhost", "[::1]"] if host in (LOOPBACK, "localhost", "::1") else ["*"]
        app = server.build(source, hosts=hosts)
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
        self.uvicorn = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve until Ctrl-C."""
        self.uvicorn.run(sockets=[self.socket])

    def start(self) -> None:
        """Serve on a thread; returns once the server accepts connections."""
        self.thread = threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.uvicorn.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=5)
