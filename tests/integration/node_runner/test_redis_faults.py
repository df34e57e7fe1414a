"""Redis SIGKILLed and restarted while many nodes write their outputs.

The promise: no output that node-runner reported as written (exit 0 and a `ref` in the termination message)
is lost, and a node that could not write exits with the transient code (86, RunnerUnavailable), so the
planner retries it. With `appendfsync always` (as the chart's bundled Redis runs) Redis answers a SET only
once it is in the append-only file, so even SIGKILL cannot take back an acknowledged write.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dagwright import nodeio

from .conftest import RedisServer
from .test_node_runner import run_node

NODES = 40


def _node(tmp_path: Path, redis_server: RedisServer, index: int, attempt: int, delay: float) -> tuple[int, str]:
    """One node's attempt writing 1 KiB of outputs after `delay` seconds; (exit code, termination message)."""
    folder = tmp_path / f"n{index:02d}-{attempt}"
    folder.mkdir()
    value = json.dumps({"node": index, "blob": f"{index:04d}" * 256})
    script = f"sleep {delay:.2f}; printf '%s' '{value}' > \"$DAGWRIGHT_OUTPUTS\""
    env = {"DAGWRIGHT_NODE": f"n{index:02d}", "DAGWRIGHT_ATTEMPT": str(attempt)}
    code, message, _ = run_node(folder, script, "--redis-url", redis_server.url, env=env, timeout=120)
    return code, message


def test_redis_killed_while_many_nodes_write_loses_no_reported_output(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    redis_server.restart_with("--appendfsync", "always")
    rng = random.Random(7)
    downtimes = [0.5, 6.0]  # a blip node-runner rides out, and an outage longer than its retries (~3 s)
    kills: list[float] = []

    def chaos() -> None:
        for down in downtimes:
            time.sleep(1.5)
            kills.append(time.monotonic())
            redis_server.kill()
            time.sleep(down)
            redis_server.start()

    killer = threading.Thread(target=chaos)
    killer.start()
    pending = {index: 1 for index in range(NODES)}
    written: dict[int, str] = {}
    transient = 0
    with ThreadPoolExecutor(max_workers=10) as pool:
        while pending:
            runs = {i: pool.submit(_node, tmp_path, redis_server, i, a, rng.uniform(0, 4)) for i, a in pending.items()}
            retry: dict[int, int] = {}
            for index, future in runs.items():
                code, message = future.result()
                carried = nodeio.read_termination(message, succeeded=code == 0)
                if code == 0:
                    assert carried.reference == nodeio.outputs_key("uid-1", f"n{index:02d}"), message
                    written[index] = carried.reference
                else:
                    assert code == nodeio.EXIT_RUNNER_UNAVAILABLE, (index, code, message)
                    assert carried.error_reason == "RunnerUnavailable", message
                    transient += 1
                    retry[index] = pending[index] + 1  # what the planner does with a transient failure
            assert all(attempt <= 4 for attempt in retry.values()), retry
            if retry:
                killer.join()  # retries come after the outage, as the planner's backoff would have them
            pending = retry
    killer.join()

    redis_server.kill()  # one more SIGKILL after the last write: what was acknowledged must be on disk
    redis_server.start()
    client = redis_server.client()
    lost = [index for index, key in written.items() if client.get(key) is None]
    report = {"scenario": "Redis SIGKILLed", "nodes": NODES, "kills": len(kills) + 1, "transient": transient}
    _publish({**report, "lost": len(lost)})
    assert len(written) == NODES
    assert lost == []
    assert json.loads(client.get(written[3]) or b"{}")["blob"] == "0003" * 256
    assert transient >= 1, "the long outage should have failed some attempts (transient), to be retried"


def _publish(report: dict[str, object]) -> None:
    """Printed, and appended to DAGWRIGHT_CHAOS_REPORT when `make chaos` names one (as tests/e2e/chaos does)."""
    line = json.dumps(report)
    print(f"\n{line}")
    if os.environ.get("DAGWRIGHT_CHAOS_REPORT"):
        with open(os.environ["DAGWRIGHT_CHAOS_REPORT"], "a") as out:
            out.write(line + "\n")
