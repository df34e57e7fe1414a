"""The Python form of examples/map-reduce.yaml: map-reduce over a list known only at run time. `find` lists the
shards, `work` runs once per shard (`for_each`, at most 2 at once) and `sum` reads every item's `n` as one JSON
array, in item order.

    python examples/python/map_reduce.py         # print the manifest
    python examples/python/map_reduce.py --run   # run it on this machine
"""

from __future__ import annotations

import sys

from dagwright.sdk import ForEach, NodeDefaults, Workflow, WorkflowPhase, item, node, node_index


def build() -> Workflow:
    with Workflow("map-reduce", defaults=NodeDefaults(image="python:3.12-slim")) as wf:
        find = node("find", command=["sh", "-c", 'echo "{\\"shards\\": [1, 2, 3, 4, 5]}" > "$DAGWRIGHT_OUTPUTS"'])
        square = (
            f'echo "shard {item} (item {node_index})"; '
            f'echo "{{\\"n\\": $(( {item} * {item} ))}}" > "$DAGWRIGHT_OUTPUTS"'
        )
        work = node(
            "work",
            for_each=ForEach(from_json=str(find.outputs["shards"]), max_parallel=2),  # reading find: depends on it
            retry=2,
            command=["sh", "-c", square],
        )
        total = 'import json, sys; squares = json.loads(sys.argv[1]); print("sum of squares:", sum(squares))'
        node("sum", command=["python3", "-c", total], args=[work.outputs["n"]])
    return wf


if __name__ == "__main__":
    workflow = build()
    if "--run" in sys.argv:
        status = workflow.run(progress=sys.stderr)
        sys.exit(0 if status.phase is WorkflowPhase.SUCCEEDED else 1)
    print(workflow.to_yaml(), end="")
