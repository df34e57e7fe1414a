"""The operator SIGKILLed every few seconds while workflows run, pause, resume, stop, retry and fail.

Why: a Deployment's pod dies without warning (node loss, OOM, eviction). Whatever moment it dies at, the
replacement must carry on from what the API server holds: no attempt run twice, nothing launched early,
while paused or after a stop, and every workflow ending as it should. Judged from the Jobs the API server
holds (tests/e2e/chaos/oracle.py). The default suite runs a short version; `make chaos` the long one
(50 workflows of 20 nodes, a kill every 1-10 s).
"""

# pytest fixtures are imported from operator_fixtures, then named as test parameters:
# ruff: noqa: F811

from __future__ import annotations

import json

import pytest

from ..conftest import Kube
from ..operator_fixtures import Operators, Recorder, operators, recorder  # noqa: F401 (fixtures)
from . import scenario
from .faults import OperatorChurn

pytestmark = pytest.mark.e2e


def test_operator_killed_every_few_seconds_loses_nothing_and_runs_nothing_twice(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    scale = scenario.Scale.from_env()
    churn = OperatorChurn(operators.start, scale.kill_low, scale.kill_high, seed=scale.seed)
    churn.start()
    verdict, report = scenario.run(kube, namespace, recorder, scale, churn)
    report["operator_kills"] = churn.count
    print(f"\nchaos report: {json.dumps(report)}")
    assert churn.count >= 2, f"the run ended before the operator was killed twice: {report}"
    assert not verdict.violations, "\n".join(verdict.violations[:40]) + f"\n{report}"
