"""The operator SIGKILLed every few seconds while workflows run, pause, resume, stop, retry and fail; and two
replicas whose leader is killed again and again.

Why: a Deployment's pod dies without warning (node loss, OOM, eviction). Whatever moment it dies at, the
replacement must carry on from what the API server holds: no attempt run twice, nothing launched early,
while paused or after a stop, and every workflow ending as it should. Judged from the Jobs the API server
holds (tests/e2e/chaos/oracle.py). The default suite runs a short version; `make chaos` the long one
(50 workflows of 20 nodes, a kill every 1-10 s).
With two replicas, each Job names the replica that created it, and the Lease's history in etcd says who held
it at that moment (leadership.py): at most one replica may act at any time.
"""

from __future__ import annotations

import pytest

from ..cluster.helpers import wait_for
from ..conftest import Kube
from ..operator_fixtures import OperatorProcess, Operators, Recorder
from . import scenario
from .faults import OperatorChurn, Periodic
from .leadership import LeaseHistory, acted_without_lease
from .report import publish

pytestmark = pytest.mark.e2e


def test_operator_killed_every_few_seconds_loses_nothing_and_runs_nothing_twice(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    scale = scenario.Scale.from_env()
    churn = OperatorChurn(operators.start, scale.kill_low, scale.kill_high, seed=scale.seed)
    churn.start()
    verdict, report = scenario.run(kube, namespace, recorder, scale, churn)
    report["operator_kills"] = churn.count
    publish("operator SIGKILLed", report)
    assert churn.count >= 2, f"the run ended before the operator was killed twice: {report}"
    assert not verdict.violations, "\n".join(verdict.violations[:40]) + f"\n{report}"


def test_two_replicas_with_the_leader_killed_repeatedly_never_act_at_once(
    kube: Kube, namespace: str, recorder: Recorder, operators: Operators
) -> None:
    full = scenario.Scale.from_env()
    scale = scenario.Scale(max(2, full.workflows // 2), full.nodes, 0, 0, full.seed)
    history = LeaseHistory(kube, namespace)
    try:
        operators.start(leader_election=True)
        operators.start(leader_election=True)
        replace = LeaderReplacer(operators, history)
        kills = Periodic(replace.once, 4, 10, seed=scale.seed)
        kills.start()
        verdict, report = scenario.run(kube, namespace, recorder, scale, kills)
        problems = acted_without_lease(recorder.jobs_of(), list(history.writes))
        report.update(leader_kills=kills.count, leaders=len(history.holders()), acted_without_lease=len(problems))
        publish("two replicas, leader killed", report)
        assert kills.count >= 1 and not kills.errors, (kills.count, kills.errors)
        # The last kill can come just before the workflows end; a SIGKILLed leader's Lease only expires 15 s
        # later, so its replacement is waited for instead of read from the history at once.
        wait_for("a new leader after every kill", lambda: len(history.holders()) > kills.count, timeout=60)
        assert not problems, "\n".join(problems[:20])
        assert not verdict.violations, "\n".join(verdict.violations[:40]) + f"\n{report}"
    finally:
        history.stop()


class LeaderReplacer:
    """Kill whichever replica holds the Lease (SIGKILL, or SIGTERM every other time, which releases it) and
    start another, so two replicas run again."""

    def __init__(self, operators: Operators, history: LeaseHistory) -> None:
        self.operators = operators
        self.history = history
        self.rounds = 0

    def once(self) -> None:
        leader = wait_for("a live leader", self.live_leader, timeout=60)
        self.rounds += 1
        if self.rounds % 2:
            leader.kill()
        else:
            leader.stop()
        self.operators.start(leader_election=True)

    def live_leader(self) -> OperatorProcess | None:
        """The running replica the Lease names (a killed leader stays named until its Lease expires)."""
        holder = self.history.holder()
        said = f"became the leader as {holder}"
        return next((p for p in self.operators.started if holder and p.alive() and said in p.log()), None)
