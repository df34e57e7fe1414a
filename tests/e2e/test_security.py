"""Node pods meet the restricted Pod Security Standard by default, so the examples run where it is enforced.

Why: clusters increasingly label namespaces `pod-security.kubernetes.io/enforce=restricted`; a Job whose pods
that admission refuses never starts, and the workflow would hang.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Kube
from .operator_fixtures import OperatorProcess, list_jobs, wait_phase

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("example", ["diamond", "fan-out-fan-in"])
def test_examples_run_in_a_namespace_enforcing_the_restricted_standard(
    kube: Kube, namespace: str, operator: OperatorProcess, example: str
) -> None:
    kube.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kube.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / f"{example}.yaml"))
    status = wait_phase(kube, namespace, example, "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", status
    pods = kube.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split()
    assert len(pods) == len(list_jobs(kube, namespace, example)) > 0  # every Job's pod was admitted
