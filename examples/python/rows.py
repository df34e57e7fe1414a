"""Python-function nodes: each `@function` runs in its own node, imports what its image has, and returns its
outputs. `summarise` reads `extract`'s outputs (which makes it depend on `extract`), typed by its annotations;
`alert` runs only when `summarise` says the day was big (a `when` condition, CEL).

    python examples/python/rows.py         # print the manifest
    python examples/python/rows.py --run   # run it on this machine (nodes run this interpreter)

On a cluster the image must have dagwright and this module installed, e.g. built FROM the dagwright-node-runner
image with this file copied to its site-packages; set IMAGE to it and `wf.submit(namespace=...)`.
"""

from __future__ import annotations

import statistics
import sys

import dagwright
from dagwright.sdk import Workflow, function

IMAGE = f"dagwright-node-runner:{dagwright.__version__}"  # the image of this release (pyproject.toml's version)


@function(image=IMAGE, retry=2)
def extract(day: str) -> dict[str, object]:
    sizes = [len(day) * i for i in range(1, 6)]  # stands for a query
    return {"rows": len(sizes), "sizes": sizes, "day": day}


@function(image=IMAGE)
def summarise(day: str, sizes: list[int], threshold: float = 10.0) -> dict[str, object]:
    mean = statistics.mean(sizes)
    return {"summary": f"{len(sizes)} rows on {day}, mean size {mean:g}", "big": mean > threshold}


@function(image=IMAGE, when="nodes.summarise.outputs.big")
def alert(summary: str) -> None:
    print(f"ALERT: {summary}")


def build() -> Workflow:
    with Workflow("rows", parameters={"day": "2026-11-29"}) as wf:
        extracted = extract(day=wf.params["day"])
        summary = summarise(day=extracted.outputs["day"], sizes=extracted.outputs["sizes"], threshold=20)
        alert(summary=summary.outputs["summary"])
    return wf


if __name__ == "__main__":
    # Imported here, not above: every node imports this module, and the status models cost it a second to load.
    from dagwright.sdk import WorkflowPhase

    workflow = build()
    if "--run" in sys.argv:
        status = workflow.run(progress=sys.stderr)
        for name, node in status.nodes.items():
            print(f"{name}: {node.phase.value} {node.outputs or ''}")
        sys.exit(0 if status.phase is WorkflowPhase.SUCCEEDED else 1)
    print(workflow.to_yaml(), end="")
