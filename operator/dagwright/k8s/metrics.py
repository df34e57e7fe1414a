"""Prometheus metrics of the operator, served on /metrics (prometheus-client).

Counters and histograms are updated at the edges of a reconcile pass; gauges that describe the whole fleet
(workflows by phase, ready nodes waiting for capacity) are read from the operator's state at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DURATION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)

ATTEMPTS_STARTED = Counter("dagwright_attempts_started_total", "Node attempts launched as Jobs")
ATTEMPTS_FINISHED = Counter(
    "dagwright_attempts_finished_total", "Node attempts that ended, by result and reason", ["result", "reason"]
)
RETRIES = Counter("dagwright_retries_total", "Failed attempts that will be retried")
NODE_DURATION = Histogram(
    "dagwright_attempt_duration_seconds", "Node attempt duration, launch to end", buckets=_DURATION_BUCKETS
)
RECONCILE_DURATION = Histogram(
    "dagwright_reconcile_duration_seconds", "Time for one reconcile pass of one Workflow", buckets=_LATENCY_BUCKETS
)
LAUNCH_LATENCY = Histogram(
    "dagwright_launch_latency_seconds",
    "From the last dependency's completion to the dependent node's Job being created",
    buckets=_LATENCY_BUCKETS,
)
API_REQUESTS = Counter(
    "dagwright_api_requests_total",
    "Kubernetes API requests the reconciler made, by verb and resource",
    ["verb", "resource"],
)
CRON_RUNS_STARTED = Counter("dagwright_cron_runs_started_total", "Workflows a CronWorkflow started on schedule")
CRON_RUNS_SKIPPED = Counter(
    "dagwright_cron_runs_skipped_total",
    "Scheduled times that did not start, by reason (StartingDeadlineExceeded, CatchUpPolicy, ConcurrencyPolicy, "
    "Suspended)",
    ["reason"],
)
CRON_SCHEDULE_LAG = Histogram(
    "dagwright_cron_schedule_lag_seconds",
    "From a scheduled time to its Workflow being created",
    buckets=(*_LATENCY_BUCKETS, 30, 60, 300),
)
CRON_ERRORS = Counter("dagwright_cron_errors_total", "CronWorkflow passes that failed and were retried")
RECONCILE_ERRORS = Counter("dagwright_reconcile_errors_total", "Reconcile passes that failed and were retried")


class FleetCollector(Collector):
    """Gauges computed from the operator's current view at scrape time."""

    def __init__(self, phases: Callable[[], Mapping[str, int]], waiting: Callable[[], int]) -> None:
        self._phases = phases
        self._waiting = waiting

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_phase = GaugeMetricFamily("dagwright_workflows", "Workflows by phase", labels=["phase"])
        for phase, count in sorted(self._phases().items()):
            by_phase.add_metric([phase], count)
        yield by_phase
        yield GaugeMetricFamily(
            "dagwright_ready_nodes_waiting", "Ready nodes waiting for capacity", value=self._waiting()
        )


def serve(port: int, collector: FleetCollector) -> None:
    REGISTRY.register(collector)
    start_http_server(port, addr="0.0.0.0")
