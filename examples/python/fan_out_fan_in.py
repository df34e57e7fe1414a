"""The Python form of examples/fan-out-fan-in.yaml: one node fans out to eight shards (at most four at once),
which fan back in. Nodes made in a loop are plain Python values.

    python examples/python/fan_out_fan_in.py         # print the manifest
    python examples/python/fan_out_fan_in.py --run   # run it on this machine
"""

from __future__ import annotations

import sys

from dagwright.sdk import NodeDefaults, Workflow, WorkflowPhase, node

SHARDS = 8


def build() -> Workflow:
    with Workflow("fan-out-fan-in", parallelism=4, defaults=NodeDefaults(image="busybox:1.36")) as wf:
        split = node("split", command=["sh", "-c", "echo splitting"])
        shards = [
            node(f"shard-{i}", command=["sh", "-c", "sleep 0.3; echo {{ node.name }}"]) for i in range(1, SHARDS + 1)
        ]
        merge = node("merge", command=["sh", "-c", f"echo merged {SHARDS} shards"])
        split >> shards >> merge
    return wf


if __name__ == "__main__":
    workflow = build()
    if "--run" in sys.argv:
        status = workflow.run(progress=sys.stderr)
        sys.exit(0 if status.phase is WorkflowPhase.SUCCEEDED else 1)
    print(workflow.to_yaml(), end="")
