"""Schedule lag: from a CronWorkflow's scheduled time to its run's Workflow being created, with 200 firing at once.

N CronWorkflows (default 200) with the schedule `* * * * *` all fire at the start of every minute; each run is
a one-node Workflow whose pod kwok plays out in 100 ms, and history limits keep one run of each. A client-side
watch on the namespace's Workflows records when each run is first seen (wall clock, the operator's host is this
host); a run's lag is (first seen) - (its `dagwright.io/scheduled-time`). Runs of the first full minute after
every CronWorkflow exists are counted, for `--minutes` minutes. The operator's own
`dagwright_cron_schedule_lag_seconds` histogram (scheduled time -> create returned) is printed beside it.

    python bench/cron_lag.py [--crons 200] [--minutes 3]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _support as s
from kubernetes import watch

CRON_PLURAL = "cronworkflows"
LABEL_TIME = "dagwright.io/scheduled-time"


def cron_body(name: str) -> dict[str, Any]:
    node = {"name": "a", "podMetadata": {"annotations": {"kwok.dagwright.io/duration": "100ms"}}}
    return {
        "apiVersion": f"{s.GROUP}/{s.VERSION}",
        "kind": "CronWorkflow",
        "metadata": {"name": name},
        "spec": {
            "schedule": "* * * * *",
            "successfulRunsHistoryLimit": 1,
            "failedRunsHistoryLimit": 1,
            "workflow": {"defaults": {"image": s.IMAGE}, "nodes": [node]},
        },
    }


class RunWatch(threading.Thread):
    """First-seen wall time of every Workflow in the namespace that is a scheduled run."""

    def __init__(self, kube: s.Cluster, namespace: str) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.namespace = namespace
        self.seen: dict[str, tuple[int, float]] = {}  # name -> (scheduled unix seconds, first seen)
        self.stopping = False

    def run(self) -> None:
        version = ""
        while not self.stopping:
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.kube.custom.list_namespaced_custom_object,
                    s.GROUP,
                    s.VERSION,
                    self.namespace,
                    s.PLURAL,
                    resource_version=version or None,
                    timeout_seconds=60,
                ):
                    received = time.time()
                    body = event["object"]
                    meta = body.get("metadata") or {}
                    version = meta.get("resourceVersion", version)
                    stamp = (meta.get("labels") or {}).get(LABEL_TIME)
                    if event["type"] == "ADDED" and stamp and meta["name"] not in self.seen:
                        self.seen[meta["name"]] = (int(stamp), received)
            except Exception as error:  # a watch that expired: start again from now
                s.note(f"watch restarted: {error}")
                version = ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crons", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeatable)")
    args = parser.parse_args()

    kube = s.cluster()
    kube.kubectl("wait", "--for=condition=Established", f"crd/{CRON_PLURAL}.{s.GROUP}", "--timeout=60s")
    with s.namespace(kube, "bench-cron") as ns, s.operator(kube, ns, *args.operator_arg) as op:
        runs = RunWatch(kube, ns)
        runs.start()
        for i in range(args.crons):
            kube.custom.create_namespaced_custom_object(s.GROUP, s.VERSION, ns, CRON_PLURAL, cron_body(f"c{i:03d}"))
        created = time.time()
        first = (int(created) // 60 + 1) * 60
        last = first + 60 * (args.minutes - 1)
        s.note(f"{args.crons} CronWorkflows created; counting the runs of {args.minutes} minutes from {first}")
        time.sleep(max(0.0, last - time.time()))
        expected = args.crons * args.minutes
        try:
            s.wait_for(
                "every counted run",
                lambda: sum(1 for t, _ in runs.seen.values() if first <= t <= last) >= expected,
                timeout=300,
            )
        except TimeoutError as error:  # report what was seen: the figures say how many
            s.note(str(error))
        time.sleep(1)
        runs.stopping = True
        lags = sorted(seen - t for t, seen in runs.seen.values() if first <= t <= last)
        metrics = op.metrics()

    s.figure("cronworkflows", args.crons)
    s.figure("minutes counted", args.minutes)
    s.figure("runs counted (of crons x minutes)", f"{len(lags)} of {args.crons * args.minutes}")
    s.figure("schedule lag p50 (first seen by a watch)", s.ms(s.percentile(lags, 0.5)))
    s.figure("schedule lag p99 (first seen by a watch)", s.ms(s.percentile(lags, 0.99)))
    s.figure("schedule lag max (first seen by a watch)", s.ms(lags[-1]))
    for q in (0.5, 0.99):
        value = s.histogram_quantile(metrics, "dagwright_cron_schedule_lag_seconds", q)
        s.figure(f"operator histogram p{int(q * 100)}", "n/a" if value is None else s.ms(value))
    s.figure("runs started (operator counter)", int(metrics.get("dagwright_cron_runs_started_total", 0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
