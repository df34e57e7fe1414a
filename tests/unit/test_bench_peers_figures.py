"""The head-to-head benchmark's arithmetic (bench/peers/figures.py): percentiles, launch latency, the table."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "peers" / "figures.py"
_SPEC = importlib.util.spec_from_file_location("bench_peers_figures", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
figures = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = figures
_SPEC.loader.exec_module(figures)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert figures.percentile(values, 0.5) == 50
    assert figures.percentile(values, 0.99) == 99
    assert figures.percentile(values, 1.0) == 100
    assert figures.percentile([7.0], 0.99) == 7
    assert figures.percentile(list(reversed(values)), 0.5) == 50
    assert math.isnan(figures.percentile([], 0.5))


def test_launch_latency_counts_from_the_last_dependency_done() -> None:
    created = {("w", "a"): 0.0, ("w", "b"): 0.1, ("w", "c"): 2.5, ("w", "d"): 9.0}
    done = {("w", "a"): 1.0, ("w", "b"): 2.0}
    parents = {("w", "a"): [], ("w", "b"): [], ("w", "c"): [("w", "a"), ("w", "b")], ("w", "d"): [("w", "c")]}
    # c waits for b (the later one): 0.5 s; d's dependency c was never seen done: not measured
    assert figures.launch_latencies(created, done, parents) == [0.5]


def test_table_has_a_column_per_system_and_the_ratio_to_the_reference() -> None:
    rows = [
        figures.Row("chain s", {"dagwright": 50.0, "argo-tuned": 200.0}, digits=1),
        figures.Row("nodes/s", {"dagwright": 30.0, "argo-tuned": None}, digits=2),
    ]
    text = figures.table(rows, ["dagwright", "argo-tuned"], reference="argo-tuned")
    lines = text.splitlines()
    assert lines[0] == "| figure | dagwright | argo-tuned | dagwright / argo-tuned |"
    assert lines[2] == "| chain s | 50.0 | 200.0 | 0.25 |"
    assert lines[3] == "| nodes/s | 30.00 | - | - |"


def test_kwok_redoing_pod_starts_is_flagged_and_a_clean_run_is_not() -> None:
    clean = [("jobs/status PUT", 2.73), ("pods/status PATCH", 2.00), ("events POST", 1.97)]
    skewed = [("jobs/status PUT", 2.90), ("pods/status PATCH", 2.45)]
    assert figures.kwok_skew(clean) is None
    assert figures.kwok_skew([("jobs POST", 1.0)]) is None
    warning = figures.kwok_skew(skewed)
    assert warning is not None and "2.45" in warning


def test_rounds_alternate_the_order_of_the_systems() -> None:
    systems = ["dagwright", "argo-tuned"]
    assert [figures.round_order(systems, i) for i in range(3)] == [
        ["dagwright", "argo-tuned"],
        ["argo-tuned", "dagwright"],
        ["dagwright", "argo-tuned"],
    ]


def test_rounds_are_summed_up_by_median_and_range_and_paired_by_round() -> None:
    samples = {"dagwright": [14.0, None, 11.0, 15.0], "argo-tuned": [10.0, 8.0, 8.0, 10.0]}
    assert figures.median(samples["dagwright"]) == 14.0  # the round that did not finish is left out
    assert figures.median([1.0, 4.0]) == 2.5
    assert figures.median([None]) is None
    assert figures.spread(samples["dagwright"]) == "14.00 (11.00-15.00, n=3)"
    assert figures.spread([], digits=1) == "-"
    # round 2 has no dagwright figure, so it has no ratio; the others pair within their round
    assert figures.paired_ratios(samples, "dagwright", "argo-tuned") == [1.4, 1.375, 1.5]
