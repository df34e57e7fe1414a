"""The Python form of examples/notify-on-failure.yaml: `finally_=True` nodes run once every regular node has
ended, whatever happened. `notify` runs only when something failed and names what; `cleanup` always runs, after
`notify`. The workflow still ends Failed when a regular node failed.

    python examples/python/notify_on_failure.py                  # print the manifest
    python examples/python/notify_on_failure.py --run            # load fails: notify and cleanup run, Failed
    python examples/python/notify_on_failure.py --run rows=10    # all succeed: notify skipped, cleanup runs
"""

from __future__ import annotations

import sys

from dagwright.sdk import NodeDefaults, Workflow, WorkflowPhase, node


def build() -> Workflow:
    with Workflow("notify-on-failure", parameters={"rows": "0"}, defaults=NodeDefaults(image="busybox:1.36")) as wf:
        rows = wf.params["rows"]
        extract = node("extract", command=["sh", "-c", f'echo "{{\\"rows\\": {rows}}}" > "$DAGWRIGHT_OUTPUTS"'])
        # reading extract's outputs makes load depend on it
        check = f'test "{extract.outputs["rows"]}" -gt 0 || {{ echo "nothing to load" >&2; exit 2; }}'
        node("load", command=["sh", "-c", check])
        notify = node(
            "notify",
            finally_=True,
            when="workflow.status == 'Failed'",
            # values reach the shell as variables, never as script text
            env={"STATUS": "{{ workflow.status }}", "FAILED": "{{ workflow.failedNodes }}"},
            command=["sh", "-c", 'echo "workflow {{ workflow.name }} $STATUS: failed nodes $FAILED"'],
        )
        cleanup = node("cleanup", finally_=True, command=["sh", "-c", "echo removing scratch files"])
        notify >> cleanup
    return wf


if __name__ == "__main__":
    workflow = build()
    if "--run" in sys.argv:
        parameters = dict(arg.split("=", 1) for arg in sys.argv[1:] if "=" in arg)
        status = workflow.run(parameters=parameters, progress=sys.stderr)
        sys.exit(0 if status.phase is WorkflowPhase.SUCCEEDED else 1)
    print(workflow.to_yaml(), end="")
