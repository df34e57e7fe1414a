"""The arithmetic of the head-to-head run, kept apart from any cluster so a unit test can check it.

A run records, per system, when each pod was first seen and first seen done (a client-side watch of the
namespace's pods), and which workflow node each pod ran. Launch latency is a dependent pod's creation minus
the moment its last dependency's pod was seen done: the same definition for a controller that creates pods
(Argo) and one that creates Jobs (dagwright, whose pods the Job controller creates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NodeKey = tuple[str, str]  # (workflow name, node name)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def launch_latencies(
    created: Mapping[NodeKey, float], done: Mapping[NodeKey, float], parents: Mapping[NodeKey, Sequence[NodeKey]]
) -> list[float]:
    """Seconds from the last dependency's pod done to the dependent's pod created, for every node measured.

    A node is left out when its pod or a dependency's pod was never seen (a run cut short).
    """
    found: list[float] = []
    for node, deps in parents.items():
        if not deps or node not in created or any(dep not in done for dep in deps):
            continue
        found.append(created[node] - max(done[dep] for dep in deps))
    return found


@dataclass(frozen=True)
class Row:
    """One figure for every system; None where a system has no value (not measured, did not finish)."""

    name: str
    values: Mapping[str, float | None]
    unit: str = ""
    digits: int = 0
    note: str = ""

    def cell(self, system: str) -> str:
        value = self.values.get(system)
        if value is None or math.isnan(value):
            return "-"
        text = f"{value:,.{self.digits}f}"
        return f"{text} {self.unit}".rstrip()


KWOK_POD_WRITES = 2.0  # kwok's Stages write a pod's status twice: started, then ended
_KWOK_SLACK = 0.05


def kwok_skew(writes: Sequence[tuple[str, float]]) -> str | None:
    """A warning when kwok wrote more pod statuses per node than its two Stages make, else None.

    Why: in some runs kwok writes more (likely its informer lagging on a loaded machine, so its start Stage,
    selected by "no podIP yet", fires again on a pod it already started; not confirmed); its CPU per node then
    triples and that run's plane CPU and throughput no longer compare with another run's (bench/PEERS.md runs
    9 and 11: 2.36-2.65 writes per node against 2.00)."""
    per_node = dict(writes).get("pods/status PATCH")
    if per_node is None or per_node <= KWOK_POD_WRITES + _KWOK_SLACK:
        return None
    return (
        f"kwok wrote {per_node:.2f} pod statuses per node (its Stages make {KWOK_POD_WRITES:.0f}): it likely "
        "redid pod starts, so this run's plane CPU and throughput are inflated; compare runs without this warning"
    )


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0 or math.isnan(value) or math.isnan(reference):
        return None
    return value / reference


def round_order(systems: Sequence[str], round_index: int) -> list[str]:
    """The systems in the order round `round_index` (0-based) runs them: as given, then reversed, and so on
    (A B, B A, A B): a plane that slows down or speeds up over a run then weighs on every system alike."""
    return list(systems) if round_index % 2 == 0 else list(reversed(systems))


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values measured (None and nan left out); None when there are none."""
    found = sorted(v for v in values if v is not None and not math.isnan(v))
    if not found:
        return None
    middle = len(found) // 2
    return found[middle] if len(found) % 2 else (found[middle - 1] + found[middle]) / 2


def paired_ratios(samples: Mapping[str, Sequence[float | None]], system: str, reference: str) -> list[float]:
    """`system` over `reference` round by round: each round's two figures come from the same plane minutes apart,
    so their ratio drifts less than either figure does from run to run (bench/PEERS.md runs 8-11)."""
    pairs = zip(samples.get(system, ()), samples.get(reference, ()), strict=False)
    return [share for value, ref in pairs if (share := ratio(value, ref)) is not None]


def spread(values: Sequence[float | None], digits: int = 2) -> str:
    """`median (min-max, n=N)` of the values measured; `-` when there are none."""
    found = [v for v in values if v is not None and not math.isnan(v)]
    middle = median(found)
    if middle is None:
        return "-"
    return f"{middle:,.{digits}f} ({min(found):,.{digits}f}-{max(found):,.{digits}f}, n={len(found)})"


def table(rows: Sequence[Row], systems: Sequence[str], reference: str | None = None) -> str:
    """A Markdown table: one column per system, then `first system / reference` when a reference is named."""
    header = ["figure", *systems]
    if reference is not None:
        header.append(f"{systems[0]} / {reference}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [row.name + (f" ({row.note})" if row.note else ""), *(row.cell(s) for s in systems)]
        if reference is not None:
            share = ratio(row.values.get(systems[0]), row.values.get(reference))
            cells.append("-" if share is None else f"{share:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
