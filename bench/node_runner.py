"""node-runner's cost: the overhead it adds around a node running `true`, and Redis output throughput.

Prints:
- median and p95 wall time of `true` alone vs `dagwright-node-runner -- true` (process start to exit), and the
  difference (the overhead a node pays);
- the same for `dagwright-node-runner --render-inputs` running `true` with an argument rendered from 10 KiB of
  upstream outputs fetched from Redis (what a node reading outputs larger than 3 KiB pays);
- output writes and reads per second against a local redis-server, for 1 KiB and 1 MiB outputs, with the append-only
  file fsynced every second (Redis' default) and before every reply (the chart's setting: nothing acknowledged lost).
Run: python bench/node_runner.py [--rounds N]. Needs redis-server on the PATH (Debian package).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node-runner"))

from dagwright import nodeio
from dagwright_node_runner.store import RedisStore


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env)
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def overhead(rounds: int, redis_url: str) -> None:
    runner = shutil.which("dagwright-node-runner") or sys.exit("dagwright-node-runner is not installed")
    reference = nodeio.outputs_key("bench", "extract")
    RedisStore(redis_url).put_outputs(reference, json.dumps({"blob": "0123456789abcdef" * 640}), 600)
    inputs = nodeio.Inputs(
        command=("true",),
        args=("{{ nodes.extract.outputs.blob }}",),
        env=(),
        values=(),
        outputs=(("extract", reference),),
    )
    with tempfile.TemporaryDirectory() as scratch:
        env = {"PATH": "/usr/bin:/bin", "DAGWRIGHT_TERMINATION_LOG": f"{scratch}/termination-log"}
        render_env = {**env, "DAGWRIGHT_REDIS_URL": redis_url, "DAGWRIGHT_INPUTS": inputs.to_json()}
        bare = [timed(["true"]) for _ in range(rounds)]
        wrapped = [timed([runner, "--", "true"], env) for _ in range(rounds)]
        rendered = [timed([runner, "--render-inputs"], render_env) for _ in range(rounds)]
    rows = (("true alone", bare), ("node-runner -- true", wrapped), ("--render-inputs, 10 KiB", rendered))
    for label, times in rows:
        median, p95 = statistics.median(times) * 1000, percentile(times, 0.95) * 1000
        print(f"{label + ':':26} median {median:7.2f} ms  p95 {p95:7.2f} ms")
    for label, times in rows[1:]:
        added = (statistics.median(times) - statistics.median(bare)) * 1000
        print(f"{'overhead, ' + label.split(',')[0] + ':':26} median {added:7.2f} ms")


@contextlib.contextmanager
def redis_server(*options: str) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL."""
    server = shutil.which("redis-server") or sys.exit("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", data, "--save", "", *options]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            RedisStore(f"redis://127.0.0.1:{port}/0", attempts=50, first_delay=0.05).check()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait()


def redis_throughput(seconds: float) -> None:
    for fsync in ("everysec", "always"):
        with redis_server("--appendonly", "yes", "--appendfsync", fsync) as url:
            store = RedisStore(url)
            for label, size in (("1 KiB", 1024), ("1 MiB", 1024 * 1024 - 64)):
                value = json.dumps({"blob": "x" * (size - 12)})

                def write(i: int, value: str = value, store: RedisStore = store) -> None:
                    store.put_outputs(nodeio.outputs_key("bench", f"n{i}"), value, 600)

                def read(i: int, store: RedisStore = store) -> None:
                    store.get_outputs(nodeio.outputs_key("bench", f"n{i % 50}"))

                writes, reads = _rate(write, seconds), _rate(read, seconds)
                print(f"redis outputs {label}, fsync {fsync:8}: {writes:7.0f} writes/s  {reads:7.0f} reads/s")


def _rate(call: Callable[[int], None], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call(count)
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with redis_server() as url:
        overhead(args.rounds, url)
    redis_throughput(args.seconds)


if __name__ == "__main__":
    main()
