"""The operator's side of CronWorkflows without a cluster: the checks the webhook and the loop share, the run
objects and how they are read back, the test clock, and what a pass writes through a fake API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from dagwright.errors import SpecError
from dagwright.k8s import admission, cronruns
from dagwright.k8s.cron import Clock, CronBook, CronRunner, check, cron_of_run

T = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)


def cron(**spec: Any) -> dict[str, Any]:
    workflow = {"defaults": {"image": "busybox"}, "nodes": [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}]}
    return {
        "apiVersion": "dagwright.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {
            "name": "etl",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 1,
            "resourceVersion": "5",
            "creationTimestamp": "2026-11-29T02:00:00Z",
        },
        "spec": {"schedule": "30 2 * * *", "timezone": "UTC", "workflow": workflow, **spec},
    }


def test_the_workflow_inside_is_checked_as_a_workflow_is_with_its_path() -> None:
    body = cron()
    body["spec"]["workflow"]["nodes"][0]["dependsOn"] = ["b"]
    body["spec"]["schedule"] = "30 25 * * *"
    with pytest.raises(SpecError) as error:
        check(body)
    fields = [problem.field for problem in error.value.problems]
    assert fields == ["spec.schedule", "spec.workflow.nodes[0].dependsOn[0]"]


def test_the_cluster_rule_applies_inside_too() -> None:
    body = cron()
    body["spec"]["workflow"] = {"nodes": [{"name": "a", "command": ["true"]}]}
    (problem,) = admission.cron_problems_of(body)
    assert str(problem).startswith("spec.workflow.nodes[0].image: node 'a' needs an image on Kubernetes")


def test_a_workflow_running_a_template_is_checked_for_its_shape_and_resolved_when_each_run_starts() -> None:
    body = cron(workflow={"templateRef": {"name": "etl"}, "parameters": {"date": "x"}})
    assert check(body).workflow.template_ref is not None
    body["spec"]["workflow"]["defaults"] = {"image": "busybox"}
    (problem,) = admission.cron_problems_of(body)
    assert str(problem) == "spec.workflow.defaults: not allowed with templateRef: the template says what runs"


def test_a_parameter_the_template_does_not_declare_is_refused_when_the_template_exists() -> None:
    etl = {
        "metadata": {"name": "etl", "namespace": "ns"},
        "spec": {
            "parameters": {"date": "today"},
            "nodes": [{"name": "load", "image": "busybox", "args": ["{{ params.date }}"]}],
        },
    }
    templates = {("ns", "etl"): etl}.get
    lookup = lambda namespace, name: templates((namespace, name))  # noqa: E731
    typo = cron(workflow={"templateRef": {"name": "etl"}, "parameters": {"dat": "x"}})
    (problem,) = admission.cron_problems_of(typo, lookup)
    assert (
        str(problem)
        == "spec.workflow.parameters.dat: WorkflowTemplate 'etl' declares no parameter 'dat' (it declares: date)"
    )
    assert (
        admission.cron_problems_of(cron(workflow={"templateRef": {"name": "etl"}, "parameters": {"date": "x"}}), lookup)
        == []
    )
    later = cron(workflow={"templateRef": {"name": "later"}, "parameters": {"dat": "x"}})
    assert admission.cron_problems_of(later, lookup) == []  # applied before its template: each run checks it


def test_the_webhook_refuses_a_bad_schedule_and_admits_an_unchanged_invalid_one() -> None:
    bad = cron(timezone="Europe/Berln")
    assert admission.review("CREATE", bad, None, admission.cron_problems_of)[0].field == "spec.timezone"
    suspended = cron(timezone="Europe/Berln", suspend=True)
    assert admission.review("UPDATE", suspended, bad, admission.cron_problems_of) == []
    assert admission.review("CREATE", cron(), None, admission.cron_problems_of) == []


def test_the_kopf_handler_for_cron_workflows_refuses_with_422() -> None:
    registry = kopf.OperatorRegistry()
    admission.register(registry)
    (handler,) = [h for h in registry._webhooks.get_all_handlers() if h.id == admission.CRON_HANDLER_ID]
    with pytest.raises(kopf.AdmissionError) as refused:
        handler.fn(operation="CREATE", new=cron(schedule="every day"), old=None)
    assert refused.value.code == 422 and "spec.schedule" in str(refused.value)


def test_a_run_is_the_workflow_spec_as_written_labelled_and_owned() -> None:
    body = cron(workflowMetadata={"labels": {"team": "data"}, "annotations": {"note": "x"}})
    run = cronruns.run_body(body, T)
    meta = run["metadata"]
    assert meta["name"] == f"etl-{int(T.timestamp())}"
    assert meta["labels"] == {
        "team": "data",
        "dagwright.io/cron-workflow": "etl",
        "dagwright.io/scheduled-time": str(int(T.timestamp())),
    }
    assert meta["annotations"] == {"note": "x", "dagwright.io/scheduled-time": "2026-11-29T02:30:00Z"}
    assert meta["ownerReferences"][0]["uid"] == "u-1" and meta["ownerReferences"][0]["kind"] == "CronWorkflow"
    assert run["spec"] == body["spec"]["workflow"]
    assert cron_of_run(run) == ("ns", "etl")
    manual = cronruns.run_body(body, T, manual=True)
    assert manual["metadata"]["name"] == f"etl-manual-{int(T.timestamp())}"
    (read,) = cronruns.runs_of("u-1", [manual, {**run, "metadata": {**meta, "ownerReferences": [{"uid": "old"}]}}])
    assert read.manual and read.scheduled_time == T and not read.finished


def test_the_test_clock_runs_fast_from_its_anchor() -> None:
    import time

    clock = Clock(anchor=time.time() - 10, speed=6)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds() - 50) < 2
    assert abs(clock.seconds_until(clock.now() + timedelta(minutes=1)) - 10) < 0.5


class FakeApi:
    def __init__(self) -> None:
        self.workflows: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str]] = []

    def list_workflows(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return list(self.workflows.values())

    def create_workflow(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if body["metadata"]["name"] in self.workflows:
            return None
        self.workflows[body["metadata"]["name"]] = body
        return body

    def patch_workflow(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.workflows[name]["spec"].update(patch["spec"])

    def delete_workflow(self, namespace: str, name: str, uid: str) -> None:
        self.workflows.pop(name, None)

    def patch_cron_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.status = patch["status"]

    def emit_event(self, workflow: dict[str, Any], type_: str, reason: str, message: str, *, kind: str = "") -> None:
        self.events.append((reason, message))


class FixedClock(Clock):
    def now(self) -> datetime:
        return T + timedelta(seconds=3)


def test_a_pass_creates_the_due_run_posts_the_event_writes_status_and_sleeps_until_the_next_time() -> None:
    api, book = FakeApi(), CronBook()
    key = book.put(cron())
    assert key is not None
    runner = CronRunner(api=api, book=book, is_leader=lambda: True, clock=FixedClock())

    delay = runner.reconcile(key)

    assert list(api.workflows) == [f"etl-{int(T.timestamp())}"]
    assert api.events[0][0] == "RunStarted" and "3.0s after it" in api.events[0][1]
    assert api.status["lastScheduleTime"] == "2026-11-29T02:30:00Z"
    assert api.status["nextScheduleTime"] == "2026-11-30T02:30:00Z"
    assert delay is not None and abs(delay - (86400 - 3)) < 1
    assert runner.reconcile(key) is not None and len(api.workflows) == 1  # again: nothing new


def test_only_the_leader_passes_and_an_invalid_spec_is_said_once() -> None:
    api, book = FakeApi(), CronBook()
    key = book.put(cron())
    assert key is not None
    assert CronRunner(api=api, book=book, is_leader=lambda: False, clock=FixedClock()).reconcile(key) is None
    assert api.workflows == {} and api.status == {}

    book = CronBook()
    invalid = book.put({**cron(schedule="31 2 * * * *"), "status": {}})
    assert invalid is not None
    runner = CronRunner(api=api, book=book, is_leader=lambda: True, clock=FixedClock())
    assert runner.reconcile(invalid) is None
    (condition,) = api.status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert condition["message"].startswith("invalid spec: spec.schedule: '31 2 * * * *' has 6 fields")
    assert [reason for reason, _ in api.events] == ["InvalidSpec"]


def test_only_a_new_object_or_a_new_spec_asks_for_a_pass() -> None:
    book = CronBook()
    assert book.put(cron()) == ("ns", "etl")
    status_written = cron()
    status_written["metadata"] = {**status_written["metadata"], "resourceVersion": "6"}
    assert book.put({**status_written, "status": {"activeCount": 1}}) is None
    assert book.get(("ns", "etl"))["status"] == {"activeCount": 1}  # type: ignore[index]
    edited = {**status_written, "metadata": {**status_written["metadata"], "resourceVersion": "7", "generation": 2}}
    assert book.put(edited) == ("ns", "etl")
    assert book.put(cron()) is None  # an older resourceVersion is not taken


def test_after_one_list_that_the_watch_has_caught_up_with_passes_read_runs_from_the_watch() -> None:
    class CountingApi(FakeApi):
        lists = 0

        def list_workflows(self, namespace: str, selector: str) -> list[dict[str, Any]]:
            self.lists += 1
            return super().list_workflows(namespace, selector)

    api, book = CountingApi(), CronBook()
    api.workflows["etl-1"] = {"metadata": {"name": "etl-1", "ownerReferences": []}}  # from before a restart
    watched: dict[str, dict[str, Any]] = {}
    key = book.put(cron())
    assert key is not None
    runner = CronRunner(
        api=api,
        book=book,
        is_leader=lambda: True,
        clock=FixedClock(),
        cached_runs=lambda namespace, value: list(watched.values()),
        remember=lambda body: watched.__setitem__(body["metadata"]["name"], body),
    )

    runner.reconcile(key)  # the watch has not delivered etl-1 yet: LIST, and again next pass
    assert api.lists == 1 and len(api.workflows) == 2
    watched["etl-1"] = api.workflows["etl-1"]
    runner.reconcile(key)
    runner.reconcile(key)

    assert api.lists == 2  # caught up: the third pass read the watch
    assert len(api.workflows) == 2 and f"etl-{int(T.timestamp())}" in watched  # the created run, remembered


def test_passes_whose_time_has_come_are_queued_before_history_and_status_passes() -> None:
    book = CronBook()
    runner = CronRunner(api=FakeApi(), book=book, is_leader=lambda: True, clock=FixedClock())
    due, later = cron(), cron()
    due["metadata"] = {**due["metadata"], "name": "b-due", "uid": "u2"}
    due["status"] = {"nextScheduleTime": "2026-11-29T02:30:00Z"}  # FixedClock: 3 s past it
    later["status"] = {"nextScheduleTime": "2026-11-30T02:30:00Z"}
    keys = [book.put(later), book.put(due)]

    assert sorted(keys, key=lambda key: runner.order(key)) == [("ns", "b-due"), ("ns", "etl")]  # type: ignore[arg-type,return-value]
