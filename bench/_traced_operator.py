"""Run `dagwright operator ...` under tracemalloc, writing where the memory is every `interval` seconds.

Used by the benchmarks when DAGWRIGHT_BENCH_TRACEMALLOC=PATH is set: PATH gets, at each report, the process's
RSS, the traced total, and the live allocations grouped (a) by the innermost frame in dagwright or kopf (who
asked for the memory) and (b) by source line. tracemalloc roughly doubles allocation cost and adds its own
memory, so RSS figures from such a run are not the benchmark's figures; the breakdown is what it is for.
Tracing starts after the operator's modules are imported (importing kubernetes under tracemalloc takes
seconds), so the idle footprint of the libraries is not in the breakdown.

    python bench/_traced_operator.py PATH operator --namespace NS ...
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import tracemalloc
from collections import defaultdict

import kubernetes

from dagwright import cli
from dagwright.k8s import operator as _operator  # noqa: F401  (imported before tracing: imports are slow under it)

_FRAMES = 6
_INTERVAL = float(os.environ.get("DAGWRIGHT_BENCH_TRACEMALLOC_INTERVAL", "60"))
_OWN = ("/dagwright/", "/kopf/")


def _rss_kib() -> tuple[int, int]:
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def _owner(trace: tracemalloc.Trace) -> str:
    """The innermost frame in our code or kopf's, with the frame that allocated (library code) after it."""
    frames = list(trace.traceback)  # most recent first (tracemalloc keeps that order with most_recent_first)
    inner = frames[0]
    for frame in frames:
        if any(part in frame.filename for part in _OWN):
            owner = f"{_short(frame.filename)}:{frame.lineno}"
            return owner if frame is inner else f"{owner} <- {_short(inner.filename)}:{inner.lineno}"
    return f"(other) {_short(inner.filename)}:{inner.lineno}"


def _short(path: str) -> str:
    for marker in ("site-packages/", "operator/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _report(path: str, label: str) -> None:
    started = time.monotonic()
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    rss, hwm = _rss_kib()
    by_owner: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for trace in snapshot.traces:
        slot = by_owner[_owner(trace)]
        slot[0] += trace.size
        slot[1] += 1
    lines = [
        f"=== {label} at {time.strftime('%H:%M:%S')}: rss {rss / 1024:.0f} MiB (hwm {hwm / 1024:.0f}), "
        f"traced {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f}), gc counts {gc.get_count()}, "
        f"tracemalloc's own {tracemalloc.get_tracemalloc_memory() / 2**20:.0f} MiB",
        "--- by owner (innermost dagwright/kopf frame)",
    ]
    for owner, (size, count) in sorted(by_owner.items(), key=lambda item: -item[1][0])[:60]:
        lines.append(f"{size / 2**20:8.2f} MiB {count:9d} blocks  {owner}")
    lines.append("--- by line")
    for stat in snapshot.statistics("lineno")[:30]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  {_short(frame.filename)}:{frame.lineno}")
    lines.append(f"(report took {time.monotonic() - started:.1f}s)\n")
    with open(path, "a") as out:
        out.write("\n".join(lines) + "\n")


def _reporter(path: str) -> None:
    number = 0
    while True:
        time.sleep(_INTERVAL)
        number += 1
        _report(path, f"report {number}")


def main() -> None:
    path = sys.argv[1]
    sys.argv = ["dagwright", *sys.argv[2:]]
    for api in ("BatchV1Api", "CoreV1Api", "CustomObjectsApi", "CoordinationV1Api"):  # lazily imported modules
        getattr(kubernetes.client, api)
    tracemalloc.start(_FRAMES)
    threading.Thread(target=_reporter, args=(path,), daemon=True).start()
    cli.main()


if __name__ == "__main__":
    main()
