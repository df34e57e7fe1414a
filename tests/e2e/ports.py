"""`free_port()`: a TCP port on 127.0.0.1 that nothing listens on, for a server a test or a benchmark starts
(the operator's metrics and webhook, the control plane's components, Redis).

The one copy for tests/ and bench/ (bench imports it as `tests.e2e.ports`). It imports nothing but the standard
library, so the plane, the benchmarks and tests without a cluster can all use it. The port is free when asked:
start the server right away, since another process may take it in between.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
