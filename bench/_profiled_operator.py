"""Run `dagwright operator ...` under cProfile: the event-loop thread, every reconcile pass (worker threads) and the
Workflow, Job and pod watch threads.

Used by the benchmarks with `--profile PATH` (py-spy is not available here): on SIGTERM the merged profile of
the main thread and the reconcile passes is written to PATH (pstats format), with a text summary next to it.

    python bench/_profiled_operator.py PATH operator --namespace NS ...
"""

from __future__ import annotations

import atexit
import cProfile
import functools
import io
import os
import pstats
import sys
import threading
import time
from typing import Any

from dagwright import cli
from dagwright.k8s import reconcile, watch

_profiles: list[cProfile.Profile] = []
_local = threading.local()
_lock = threading.Lock()


def _new_profile() -> cProfile.Profile:
    """Wall time by default (where a pass waits, too); CPU time of each thread with DAGWRIGHT_BENCH_PROFILE_CPU=1,
    which is what "CPU per node" counts (on a busy machine wall time is mostly waiting for a core)."""
    if os.environ.get("DAGWRIGHT_BENCH_PROFILE_CPU"):
        return cProfile.Profile(time.thread_time)
    return cProfile.Profile()


def _thread_profile() -> cProfile.Profile:
    profile = getattr(_local, "profile", None)
    if profile is None:
        profile = _new_profile()
        _local.profile = profile
        with _lock:
            _profiles.append(profile)
    return profile


def _wrap(method: Any) -> Any:
    @functools.wraps(method)
    def profiled(self: Any, *args: Any, **kwargs: Any) -> Any:
        profile = _thread_profile()
        profile.enable()
        try:
            return method(self, *args, **kwargs)
        finally:
            profile.disable()

    return profiled


def _dump(path: str, main: cProfile.Profile) -> None:
    main.disable()
    with _lock:
        profiles = [main, *_profiles]
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(path)
    text = io.StringIO()
    pstats.Stats(path, stream=text).sort_stats("cumulative").print_stats(60)
    pstats.Stats(path, stream=text).sort_stats("tottime").print_stats(40)
    with open(path + ".txt", "w") as out:
        out.write(text.getvalue())


def main() -> None:
    path = sys.argv[1]
    sys.argv = ["dagwright", *sys.argv[2:]]
    reconcile.Reconciler.reconcile = _wrap(reconcile.Reconciler.reconcile)  # type: ignore[method-assign]
    watch.Watch._run = _wrap(watch.Watch._run)  # type: ignore[method-assign]
    main_profile = _new_profile()
    atexit.register(_dump, path, main_profile)
    main_profile.enable()
    try:
        cli.main()
    finally:
        main_profile.disable()


if __name__ == "__main__":
    main()
