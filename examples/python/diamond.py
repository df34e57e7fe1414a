"""The Python form of examples/diamond.yaml: a -> (b, c) -> d; b and c run in parallel once a succeeds.

python examples/python/diamond.py         # print the manifest (the same as examples/diamond.yaml)
python examples/python/diamond.py --run   # run it on this machine
"""

from __future__ import annotations

import sys

from dagwright.sdk import NodeDefaults, Workflow, WorkflowPhase, node


def build() -> Workflow:
    with Workflow("diamond", parameters={"date": "2026-11-25"}, defaults=NodeDefaults(image="python:3.12-slim")) as wf:
        date = wf.params["date"]
        nap = "import time; time.sleep(0.5); "
        extract = node("extract", command=["python3", "-c"], args=[f"{nap}print('extract {date}')"])
        transform_a = node("transform-a", command=["python3", "-c"], args=[nap + "print('{{ node.name }}')"])
        transform_b = node("transform-b", command=["python3", "-c"], args=[nap + "print('{{ node.name }}')"])
        load = node("load", command=["python3", "-c"], args=[f"print('load {date}')"])
        extract >> [transform_a, transform_b] >> load
    return wf


if __name__ == "__main__":
    workflow = build()
    if "--run" in sys.argv:
        status = workflow.run(progress=sys.stderr)
        sys.exit(0 if status.phase is WorkflowPhase.SUCCEEDED else 1)
    print(workflow.to_yaml(), end="")
