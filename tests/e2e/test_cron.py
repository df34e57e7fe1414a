"""CronWorkflows on a real API server: runs on time, concurrency policies, history, suspend and trigger, and no
missed or doubled run across an operator SIGKILLed and down across scheduled times.

Why a fast clock: an every-minute schedule would make these tests wait minutes. The operators here run with
DAGWRIGHT_TEST_CLOCK=ANCHOR:SPEED (k8s/cron.py), so their clock runs SPEED times as fast from the test's start and
a minute passes every 60/SPEED real seconds; everything else (the API server, kwok's pods, creation timestamps)
is real. `FastClock` is the same clock on the test's side, to say when a scheduled time happens in real time.
What is checked is what users see: the Workflows the API server holds (names, labels, owner, creation times),
the CronWorkflow's status, its Events and `kubectl get dwc`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client

from .cluster.helpers import wait_for
from .conftest import Kube
from .operator_fixtures import (
    GROUP,
    IMAGE,
    VERSION,
    Operators,
    dagwright,
    get_workflow,
    hold,
    leader_identity,
    node,
    parse_time,
)

pytestmark = pytest.mark.e2e

SPEED = 10.0  # a minute every 6 s
MINUTE = 60 / SPEED  # real seconds per minute of the operator's clock
CRON_PLURAL = "cronworkflows"


@dataclass(frozen=True)
class FastClock:
    anchor: float

    @property
    def env(self) -> str:
        return f"{self.anchor}:{SPEED}"

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.anchor + (time.time() - self.anchor) * SPEED, UTC)

    def real(self, instant: datetime) -> float:
        """The real (unix) time at which the operator's clock shows `instant`."""
        return self.anchor + (instant.timestamp() - self.anchor) / SPEED


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FastClock]:
    """Operators started after this (`operators.start`) run on the fast clock."""
    fast = FastClock(time.time())
    monkeypatch.setenv("DAGWRIGHT_TEST_CLOCK", fast.env)
    yield fast


def cron_workflow(name: str, nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CronWorkflow",
        "metadata": {"name": name},
        "spec": {"schedule": "* * * * *", **spec, "workflow": {"defaults": {"image": IMAGE}, "nodes": nodes}},
    }


def apply(kube: Kube, namespace: str, manifest: dict[str, Any]) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


def runs(kube: Kube, namespace: str, cron: str) -> list[dict[str, Any]]:
    """The cron's runs the API server holds, oldest scheduled time first."""
    custom = client.CustomObjectsApi(kube.api_client)
    selector = f"dagwright.io/cron-workflow={cron}"
    response = custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", label_selector=selector, _preload_content=False
    )
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return sorted(items, key=lambda item: int(item["metadata"]["labels"]["dagwright.io/scheduled-time"]))


def scheduled(items: list[dict[str, Any]]) -> list[int]:
    return [int(item["metadata"]["labels"]["dagwright.io/scheduled-time"]) for item in items]


def get_cron(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(kube.api_client)
    body: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, CRON_PLURAL, name)
    return body


def cron_events(kube: Kube, namespace: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    core = client.CoreV1Api(kube.api_client)
    selector = f"involvedObject.kind=CronWorkflow,involvedObject.name={name}"
    response = core.list_namespaced_event(namespace, field_selector=selector, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return [item for item in items if reason is None or item["reason"] == reason]


def wait_runs(kube: Kube, namespace: str, cron: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    return wait_for(
        f"{count} runs of {cron}",
        lambda: (found := runs(kube, namespace, cron)) and len(found) >= count and found,
        timeout=timeout,
    )


def next_minute(instant: datetime) -> int:
    return int((instant.replace(second=0, microsecond=0) + timedelta(minutes=1)).timestamp())


def test_runs_start_on_time_named_from_their_time_and_old_ones_go(
    kube: Kube, namespace: str, operators: Operators, clock: FastClock
) -> None:
    operators.start()
    apply(kube, namespace, cron_workflow("tick", [node("a", duration="100ms")], successfulRunsHistoryLimit=2))
    applied = parse_time(get_cron(kube, namespace, "tick")["metadata"]["creationTimestamp"])
    assert applied is not None

    found = wait_runs(kube, namespace, "tick", 3, timeout=6 * MINUTE)

    times = scheduled(found)[:3]
    assert times == [times[0], times[0] + 60, times[0] + 120]
    # The first time after its creation (a real timestamp: this clock runs ahead of it), unless the operator was
    # still starting then (a few seconds are minutes of this clock): catchUp Latest then started the newest missed
    # time and said why the others did not run.
    assert times[0] >= next_minute(applied)
    skipped = " ".join(e["message"] for e in cron_events(kube, namespace, "tick", "RunSkipped"))
    for missed in range(next_minute(applied), times[0], 60):
        stamp = datetime.fromtimestamp(missed, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert f"{stamp} skipped: CatchUpPolicy" in skipped
    for item in found[:3]:
        meta = item["metadata"]
        at = int(meta["labels"]["dagwright.io/scheduled-time"])
        assert meta["name"] == f"tick-{at}"
        assert meta["annotations"]["dagwright.io/scheduled-time"] == datetime.fromtimestamp(at, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        (owner,) = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("CronWorkflow", "tick", True)
        created = parse_time(meta["creationTimestamp"])
        assert created is not None
        # Never early, and on time: creationTimestamp has whole seconds, a real second is 10 s of this clock.
        due = clock.real(datetime.fromtimestamp(at, UTC))
        assert due - 1 <= created.timestamp() <= due + 3, (meta["name"], created, due)
        assert item["spec"]["nodes"] == [node("a", duration="100ms")]

    # History: at most 2 succeeded runs are kept, the oldest go first.
    wait_for("a succeeded run deleted", lambda: scheduled(runs(kube, namespace, "tick"))[0] > times[0], timeout=60)
    status = get_cron(kube, namespace, "tick")["status"]
    assert status["lastSucceeded"]["name"].startswith("tick-")
    assert status["nextScheduleTime"] > status["lastScheduleTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Scheduling": "True"}
    started = cron_events(kube, namespace, "tick", "RunStarted")
    assert len(started) >= 3 and all("started tick-" in e["message"] for e in started)
    header, row = kube.kubectl("get", "dwc", "tick", "-n", namespace).stdout.splitlines()
    assert header.split()[:5] == ["NAME", "SCHEDULE", "SUSPENDED", "LAST", "ACTIVE"]
    assert row.split()[:6] == ["tick", "*", "*", "*", "*", "*"]


def test_forbid_skips_while_a_run_is_active(kube: Kube, namespace: str, operators: Operators, clock: FastClock) -> None:
    operators.start()
    apply(kube, namespace, cron_workflow("solo", [node("a", never_finish=True)], concurrencyPolicy="Forbid"))
    (first,) = wait_runs(kube, namespace, "solo", 1, timeout=5 * MINUTE)

    # Only the skips for the active run count: on a loaded machine the operator may start late enough for a
    # time to be skipped by catch-up first.
    forbidden = lambda: [  # noqa: E731
        e for e in cron_events(kube, namespace, "solo", "RunSkipped") if "ConcurrencyPolicy" in e["message"]
    ]
    wait_for("two times skipped", lambda: len(forbidden()) >= 2, timeout=60)

    assert [item["metadata"]["name"] for item in runs(kube, namespace, "solo")] == [first["metadata"]["name"]]
    skips = forbidden()
    assert all(f"ConcurrencyPolicy: Forbid: {first['metadata']['name']} still active" in e["message"] for e in skips)
    status = get_cron(kube, namespace, "solo")["status"]
    assert status["active"] == [first["metadata"]["name"]] and status["activeCount"] == 1
    assert status["lastSkipped"]["reason"] == "ConcurrencyPolicy"
    assert status["lastScheduleTime"] == first["metadata"]["annotations"]["dagwright.io/scheduled-time"]


def test_replace_stops_the_active_run_then_starts_the_new_one(
    kube: Kube, namespace: str, operators: Operators, clock: FastClock
) -> None:
    operators.start()
    apply(kube, namespace, cron_workflow("swap", [node("a", never_finish=True)], concurrencyPolicy="Replace"))

    first, second = wait_runs(kube, namespace, "swap", 2, timeout=4 * MINUTE)[:2]

    name = first["metadata"]["name"]
    stopped = wait_for(
        f"{name} stopped",
        lambda: (
            (body := get_workflow(kube, namespace, name))
            and (body.get("status") or {}).get("phase") == "Stopped"
            and body
        ),
        timeout=30,
    )
    assert stopped["spec"]["stopped"] is True
    assert not (get_workflow(kube, namespace, second["metadata"]["name"]) or {})["spec"].get("stopped")
    assert any(name in e["message"] for e in cron_events(kube, namespace, "swap", "RunStopped"))


@pytest.mark.parametrize("catch_up", ["All", "Latest"])
def test_an_operator_killed_and_down_across_scheduled_times_starts_what_catch_up_promises_once(
    kube: Kube, namespace: str, operators: Operators, clock: FastClock, catch_up: str
) -> None:
    operator = operators.start()
    spec = {"catchUp": catch_up, "startingDeadlineSeconds": 3600, "successfulRunsHistoryLimit": 100}
    apply(kube, namespace, cron_workflow("etl", [node("a", duration="100ms")], **spec))
    # Killed twice right after a scheduled time's run appeared (a pass may have been writing its status), and
    # restarted at once: no time is started twice or lost.
    for count in (1, 2):
        wait_runs(kube, namespace, "etl", count, timeout=5 * MINUTE)
        operator.kill()
        operator = operators.start()
    wait_runs(kube, namespace, "etl", 3, timeout=5 * MINUTE)
    operator.kill()
    killed = clock.now()
    before = scheduled(runs(kube, namespace, "etl"))  # read after the kill: another time may have started before it
    hold(3.5 * MINUTE)  # down across three or four scheduled times
    restarted = clock.now()
    missed = list(range(before[-1] + 60, int(restarted.timestamp()) + 1, 60))
    assert len(missed) >= 3
    assert scheduled(runs(kube, namespace, "etl")) == before, "a run was created while no operator ran"
    operators.start()

    # The restarted operator's first pass decides (its start-up takes a few seconds: another time may pass).
    wait_for("the caught-up runs", lambda: scheduled(runs(kube, namespace, "etl"))[-1] >= missed[-1], timeout=30)
    hold(MINUTE)  # the next scheduled time starts too; nothing else may
    final = scheduled(runs(kube, namespace, "etl"))
    assert len(final) == len(set(final)) and final[: len(before)] == before
    after = final[len(before) :]
    assert after == list(range(after[0], after[-1] + 1, 60)), "a gap or a double after the catch-up"
    if catch_up == "All":
        assert after[0] == missed[0], "a missed time was not started"
    else:
        assert after[0] >= missed[-1], "Latest started an older missed time"
        skipped = cron_events(kube, namespace, "etl", "RunSkipped")
        assert any("CatchUpPolicy" in e["message"] for e in skipped)
    assert killed < restarted


def test_cli_list_suspend_resume_trigger(kube: Kube, namespace: str, operators: Operators, clock: FastClock) -> None:
    operators.start()
    apply(kube, namespace, cron_workflow("ctl", [node("a", duration="100ms")], successfulRunsHistoryLimit=100))
    wait_runs(kube, namespace, "ctl", 1, timeout=5 * MINUTE)

    dagwright(kube, "cron", "suspend", "ctl", "-n", namespace)
    suspended_at = clock.now()
    hold(0.2)
    count = len(runs(kube, namespace, "ctl"))
    wait_for(
        "a suspended time skipped",
        lambda: any("Suspended" in e["message"] for e in cron_events(kube, namespace, "ctl", "RunSkipped")),
        timeout=2 * MINUTE + 5,
    )
    hold(MINUTE)
    assert len(runs(kube, namespace, "ctl")) <= count + 1  # at most one a pass began before the suspend
    listing = dagwright(kube, "cron", "list", "-n", namespace).stdout.splitlines()
    assert listing[0].split()[:6] == ["NAMESPACE", "NAME", "SCHEDULE", "TIMEZONE", "SUSPENDED", "ACTIVE"]
    assert listing[1].split()[:2] == [namespace, "ctl"] and " yes " in listing[1]

    triggered = dagwright(kube, "cron", "trigger", "ctl", "-n", namespace).stdout
    name = triggered.split()[1].split("/")[1]
    assert name.startswith("ctl-manual-")
    manual = get_workflow(kube, namespace, name)
    assert manual is not None and manual["metadata"]["labels"]["dagwright.io/manual"] == "true"

    dagwright(kube, "cron", "resume", "ctl", "-n", namespace)
    resumed_at = clock.now()
    after = wait_for(
        "a run after the resume",
        lambda: [t for t in scheduled(runs(kube, namespace, "ctl")) if t > resumed_at.timestamp()],
        timeout=2 * MINUTE + 5,
    )
    # Nothing stale: no run for a time passed over while suspended.
    stale = [t for t in scheduled(runs(kube, namespace, "ctl")) if suspended_at.timestamp() + 60 < t < after[0]]
    assert stale == [] or all(t > resumed_at.timestamp() for t in stale)


def test_only_the_leader_starts_runs_and_the_standby_carries_on_after_it_is_killed(
    kube: Kube, namespace: str, operators: Operators, clock: FastClock
) -> None:
    leader, standby, _ = operators.leader_and_standby()
    spec = {"catchUp": "All", "successfulRunsHistoryLimit": 100}
    apply(kube, namespace, cron_workflow("ha", [node("a", duration="100ms")], **spec))
    before = scheduled(wait_runs(kube, namespace, "ha", 2, timeout=4 * MINUTE))
    assert "cron " not in standby.log(), "the standby started a run while the leader held the lease"

    leader.kill()  # the Lease expires after 15 s: minutes of this clock pass without a leader
    wait_for("the standby to lead", lambda: leader_identity(standby) is not None, timeout=40)
    wait_for("a run by the standby", lambda: f"cron {namespace}/ha: started" in standby.log(), timeout=2 * MINUTE)

    final = scheduled(runs(kube, namespace, "ha"))
    assert final[: len(before)] == before
    assert final == list(range(final[0], final[-1] + 1, 60)), "a time missed or doubled across the takeover"
