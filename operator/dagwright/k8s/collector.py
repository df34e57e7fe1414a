"""The garbage collector's thresholds in the operator process.

CPython's default (a young collection every 700 net new container objects) suits small programs. The
operator parses large JSON documents all day: every watch event and every status patch response of a
10,000-node Workflow is ~100,000 dicts and lists. Parsed under the default, most of such a document is
promoted to the oldest generation while it is still being built, even when it is dropped a moment later, and
that promotion is what schedules the full collections, each of which walks every long-lived object (the
cached Workflows and Jobs, compiled specs, parsed statuses): ~60% of a reconcile pass's CPU time at 10,000
nodes (bench/reconcile_large.py). With young collections every 50,000 objects a parsed document is mostly
freed before any collection sees it, and full collections become rare. Cyclic garbage waits a little longer
to be found; it is a small part of the operator's allocations (most objects are freed by reference counts).
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # net new container objects between young collections (CPython's default: 700)
MIDDLE = 20  # young collections between middle-generation ones (default: 10)


def tune() -> None:
    """Raise the thresholds (never lower ones already raised, e.g. by an embedding program)."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG), max(middle, MIDDLE), old)
