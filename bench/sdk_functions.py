"""What a Python-function node costs: the start of `python -m dagwright.sdk.call` in every such node.

    python bench/sdk_functions.py [--nodes 5] [--rounds 3]

Prints the median time to start Python and import `dagwright.sdk.call` (what each node pays before the user's
function), the same for bare `python -c pass`, and the wall time per node of a chain of `--nodes` function nodes
that each return their input plus one, run with `Workflow.run()` (one node at a time, so the figure is per node).

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHAIN = """
    from dagwright.sdk import Workflow, function


    @function
    def step(value: int) -> dict[str, int]:
        return {"value": value + 1}


    def build(nodes: int) -> Workflow:
        with Workflow("chain") as wf:
            previous = step.with_options(name="step-0")(value=0)
            for i in range(1, nodes):
                previous = step.with_options(name=f"step-{i}")(value=previous.outputs["value"])
        return wf
"""


def startup(code: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def chain_per_node(nodes: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "bench_chain.py").write_text(textwrap.dedent(CHAIN))
        sys.path.insert(0, directory)
        import bench_chain  # type: ignore[import-not-found]

        times = []
        for _ in range(rounds):
            workflow = bench_chain.build(nodes)
            began = time.perf_counter()
            status = workflow.run(logs_dir=Path(directory, "logs"))
            times.append(time.perf_counter() - began)
            assert status.nodes[f"step-{nodes - 1}"].outputs == {"value": nodes}, status
        return statistics.median(times) / nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"python_start_seconds: {startup('pass', args.rounds):.3f}")
    print(f"sdk_call_import_seconds: {startup('import dagwright.sdk.call', args.rounds):.3f}")
    print(f"function_node_seconds_per_node: {chain_per_node(args.nodes, args.rounds):.3f}")


if __name__ == "__main__":
    main()
