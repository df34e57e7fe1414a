"""Properties of the planner over random DAGs and random sequences of outcomes, checked with hypothesis.

A simulated backend drives `plan` in a loop: random subsets of running attempts finish (success, failure, the
transient exit code, lost Jobs), time jumps, the user pauses, resumes, stops, changes parallelism or retries a
finished workflow. Some nodes have `when` conditions: always false, on a parameter, on an upstream's phase or
outputs (which may be missing, so evaluating fails). Two backend styles are simulated: the local runner's (each
outcome reported once) and the operator's (every attempt reported on every call, and sometimes a status write
is lost). After every call the invariants a user relies on are checked; every run must then finish within a
bounded number of calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from builders import T0, manifest
from hypothesis import event, given
from hypothesis import strategies as st

from dagwright import conditions, templates
from dagwright.errors import SpecError
from dagwright.planner import AttemptState, Decision, Observation, plan
from dagwright.status import NodePhase, WorkflowPhase, WorkflowStatus, to_wire
from dagwright.validation import compile_manifest, compile_spec
from dagwright.workflows import Workflow

KEY = "dagwright:uid:node:outputs"  # outputs node-runner stored in Redis
UNFINISHED = {NodePhase.PENDING, NodePhase.RUNNING, NodePhase.RETRYING, NodePhase.AWAITING_APPROVAL}
PASSED = {"ConditionFalse", "UpstreamSkipped"}  # skips that dependents treat as done


def _conditions(draw: st.DrawFn, deps: set[int], final: bool = False) -> list[str]:
    """`when` expressions a node with these dependencies may have (empty: none)."""
    choices = ["", "", "", "false", "true", "params.flip == 'yes'"]
    if final:
        choices += ["workflow.status == 'Failed'", "workflow.status == 'Succeeded' || size(workflow.failedNodes) > 1"]
    if deps:
        d = min(deps)
        choices += [
            f"nodes.n{d}.phase == 'Succeeded'",
            f"has(nodes.n{d}.outputs.k)",
            f"nodes.n{d}.outputs.k == 'v'",  # fails to evaluate when n{d} has no outputs
        ]
    expression = draw(st.sampled_from(choices))
    return [expression] if expression else []


@st.composite
def dags(draw: st.DrawFn) -> Workflow:
    """A random valid workflow: edges only point to earlier nodes of a hidden order, declared shuffled."""
    count = draw(st.integers(1, 10))
    # The last nodes of the hidden order may be finally nodes, which depend only on each other (rule 9).
    first_final = count - draw(st.integers(0, 3) if draw(st.integers(0, 2)) == 1 else st.just(0))
    nodes: list[dict[str, Any]] = []
    for i in range(count):
        final = i >= max(first_final, 0)
        low = max(first_final, 0) if final else 0
        deps = draw(st.sets(st.integers(low, i - 1), max_size=3)) if i > low else set()
        body: dict[str, Any] = {"name": f"n{i}", "dependsOn": [f"n{d}" for d in sorted(deps)]}
        if final:
            body["finally"] = True
        if draw(st.integers(0, 9)) == 4:
            body["approval"] = {}
        else:
            body["command"] = ["true"]
            if draw(st.booleans()):
                body["retry"] = {
                    "limit": draw(st.integers(0, 3)),
                    "policy": draw(st.sampled_from(["AnyFailure", "Transient"])),
                    "backoff": {"initialSeconds": draw(st.sampled_from([0, 1, 5, 30])), "jitter": 0.5},
                }
            if draw(st.booleans()):
                body["timeoutSeconds"] = draw(st.integers(1, 60))
            if deps and draw(st.booleans()):  # reads outputs, which may end up held only in Redis
                body["args"] = [f"{{{{ nodes.n{min(deps)}.outputs.k }}}}"]
                body["nodeRunner"] = draw(st.booleans())
        for expression in _conditions(draw, deps, final):
            body["when"] = expression
        nodes.append(body)
    declared = draw(st.permutations(nodes))
    spec: dict[str, Any] = {
        "failFast": draw(st.booleans()),
        "parameters": {"flip": draw(st.sampled_from(["yes", "no"]))},
    }
    if draw(st.booleans()):
        spec["parallelism"] = draw(st.integers(1, 4))
    if draw(st.integers(0, 3)) == 0:
        spec["activeDeadlineSeconds"] = draw(st.integers(1, 300))
    return compile_manifest(manifest(list(declared), **spec))


@dataclass
class Backend:
    """What a backend knows for real: attempts it started, their outcomes, and what it has reported."""

    level: bool  # report every attempt on every call (operator) or each outcome once (local runner)
    running: dict[tuple[str, int], datetime] = field(default_factory=dict)
    outcomes: dict[tuple[str, int], Observation] = field(default_factory=dict)
    pending_reports: list[Observation] = field(default_factory=list)
    launched: dict[str, int] = field(default_factory=dict)  # highest attempt launched per node
    succeeded: set[str] = field(default_factory=set)

    def observations(self) -> list[Observation]:
        if not self.level:
            reports, self.pending_reports = self.pending_reports, []
            return reports
        seen = [Observation(node, attempt, AttemptState.RUNNING) for node, attempt in self.running]
        return seen + list(self.outcomes.values())

    def finish(self, key: tuple[str, int], outcome: Observation) -> None:
        self.running.pop(key, None)
        self.outcomes[key] = outcome
        self.pending_reports.append(outcome)
        if outcome.state is AttemptState.SUCCEEDED:
            self.succeeded.add(key[0])


def _outcome(draw: Any, node: str, attempt: int, now: datetime, drain: bool) -> Observation:
    kind = draw(
        st.sampled_from(["ok", "ok", "ok", "fail", "transient", "lost"] if not drain else ["ok", "ok", "ok", "fail"])
    )
    if kind == "ok":
        outputs, reference = draw(st.sampled_from([(None, None), ({"k": "v"}, None), ({"k": "v"}, KEY), (None, KEY)]))
        return Observation(
            node, attempt, AttemptState.SUCCEEDED, exit_code=0, finished_at=now, outputs=outputs, outputs_ref=reference
        )
    if kind == "fail":
        return Observation(node, attempt, AttemptState.FAILED, exit_code=1, reason="Error", finished_at=now)
    if kind == "transient":
        return Observation(node, attempt, AttemptState.FAILED, exit_code=75, reason="Error", finished_at=now)
    return Observation(node, attempt, AttemptState.LOST, finished_at=now)


def _respec(workflow: Workflow, **update: Any) -> Workflow:
    spec = workflow.spec.model_copy(update=update)
    generation = (workflow.generation or 0) + 1
    return compile_spec(spec, name=workflow.name, namespace=workflow.namespace, uid=workflow.uid, generation=generation)


def _check(workflow: Workflow, before: WorkflowStatus | None, decision: Decision, backend: Backend) -> None:
    spec = workflow.spec
    status = decision.status
    nodes = status.nodes
    assert set(nodes) == set(workflow.graph.names)
    succeeded = sum(1 for n in nodes.values() if n.phase is NodePhase.SUCCEEDED)
    assert status.progress == f"{succeeded}/{len(workflow.nodes)}"
    if decision.launches:
        assert not spec.paused, "launched while paused"
        assert not spec.stopped, "launched after stop"
        assert not status.phase.finished
    for launch in decision.launches:
        i = workflow.graph.index[launch.node]
        if workflow.nodes[i].finally_:
            regular = [workflow.graph.names[r] for r in workflow.regular]
            assert all(nodes[name].phase.finished for name in regular), f"{launch.node} before the regular nodes"
        for parent in workflow.graph.upstream[i]:
            upstream = nodes[workflow.graph.names[parent]]
            assert upstream.phase is NodePhase.SUCCEEDED or _passed(upstream), f"{launch.node} before deps"
        assert launch.spec.when != "false", f"{launch.node} launched although its when is false"
        if launch.spec.when and launch.attempt == (before.nodes[launch.node].attempts if before else 0) + 1:
            assert _verdict(workflow, i, status) is True, f"{launch.node} launched although its when is not true"
        assert launch.attempt > backend.launched.get(launch.node, 0), f"{launch.node} attempt {launch.attempt} again"
        assert launch.node not in backend.succeeded, f"{launch.node} launched again after it succeeded"
        assert nodes[launch.node].phase is NodePhase.RUNNING
        assert nodes[launch.node].attempts == launch.attempt
        held = {name for name, node in nodes.items() if node.outputs is None and node.outputs_ref is not None}
        reads = {templates.output_upstream(text) for value in launch.spec.args for text in templates.references(value)}
        if reads & held:  # only node-runner can render these: never launched with them unrendered
            assert launch.inputs is not None and launch.spec.node_runner, f"{launch.node} cannot read its inputs"
        else:
            assert launch.inputs is None
    if status.phase.finished:
        assert all(n.phase not in UNFINISHED for n in nodes.values()), status.nodes
        assert decision.launches == []
        assert decision.wake_at is None
    for name, node in nodes.items():
        if node.reason == "ConditionFalse":
            assert node.attempts == (before.nodes[name].attempts if before and name in before.nodes else 0)
            assert _verdict(workflow, workflow.graph.index[name], status) is False, (
                f"{name} skipped, but its when holds"
            )
            assert name not in {launch.node for launch in decision.launches}
    if status.phase is WorkflowPhase.SUCCEEDED:
        assert all(n.phase is NodePhase.SUCCEEDED or _passed(n) for n in nodes.values())
    conditions = {c.type: c.status for c in status.conditions}
    expected = {WorkflowPhase.SUCCEEDED: "True", WorkflowPhase.FAILED: "False", WorkflowPhase.STOPPED: "False"}
    assert conditions["Succeeded"] == expected.get(status.phase, "Unknown")
    assert plan(workflow, before, _last_observations, _last_now) == decision, "not deterministic"


def _passed(node: Any) -> bool:
    return bool(node.phase is NodePhase.SKIPPED and node.reason in PASSED)


def _verdict(workflow: Workflow, i: int, status: WorkflowStatus) -> bool | None:
    """Node i's `when` over the upstream statuses in `status`, as the user reads the rule; None if it fails."""
    condition = workflow.conditions[i]
    assert condition is not None
    graph = workflow.graph
    readable = {graph.names[p]: status.nodes[graph.names[p]] for p in graph.ancestors(i)}
    outcome = None
    if workflow.nodes[i].finally_:
        readable.update({graph.names[r]: status.nodes[graph.names[r]] for r in workflow.regular})
        failed = [graph.names[r] for r in workflow.regular if status.nodes[graph.names[r]].phase is NodePhase.FAILED]
        broken = any(
            status.nodes[graph.names[r]].phase is NodePhase.SKIPPED and not _passed(status.nodes[graph.names[r]])
            for r in workflow.regular
        )
        outcome = {"status": "Failed" if failed or broken else "Succeeded", "failedNodes": failed}
    try:
        return conditions.evaluate(condition, workflow.spec.parameters, readable, outcome)
    except conditions.ConditionFailed:
        return None


def _stored(status: WorkflowStatus) -> WorkflowStatus:
    """The status as written to the cluster (or a --state file) and read back: it must come back the same."""
    wire = to_wire(status)
    back = WorkflowStatus.model_validate(json.loads(json.dumps(wire)))
    assert to_wire(back) == wire
    assert back == status
    return back


_last_observations: list[Observation] = []
_last_now = T0


@given(workflow=dags(), level=st.booleans(), data=st.data())
def test_random_runs_keep_the_invariants_and_terminate(workflow: Workflow, level: bool, data: st.DataObject) -> None:
    global _last_observations, _last_now
    draw = data.draw
    backend = Backend(level=level)
    status: WorkflowStatus | None = None
    now = T0
    retries_left = draw(st.integers(0, 2))
    random_steps = draw(st.integers(0, 40))
    budget = random_steps + len(workflow.nodes) * 12 + 20
    for step in range(budget):
        drain = step >= random_steps
        # The user's actions.
        if not drain and draw(st.integers(0, 7)) == 3:
            workflow = _respec(workflow, paused=not workflow.spec.paused)
        if drain and workflow.spec.paused:
            workflow = _respec(workflow, paused=False)
        if not drain and draw(st.integers(0, 30)) == 13:
            workflow = _respec(workflow, stopped=True)
        if not drain and draw(st.integers(0, 10)) == 5:
            workflow = _respec(workflow, parallelism=draw(st.none() | st.integers(1, 4)))
        # The world: time passes, attempts end, people answer approvals.
        now += timedelta(seconds=draw(st.sampled_from([0, 0.5, 1, 10, 61])) if not drain else 400)
        for key in sorted(backend.running):
            if drain or draw(st.booleans()):
                backend.finish(key, _outcome(draw, *key, now, drain))
        for name, node in (status.nodes if status else {}).items():
            asked = node.phase is NodePhase.AWAITING_APPROVAL and (name, 1) not in backend.outcomes
            if asked and (drain or draw(st.booleans())):
                approved = draw(st.booleans())
                state = AttemptState.SUCCEEDED if approved else AttemptState.FAILED
                backend.finish((name, 1), Observation(name, 1, state, reason=None if approved else "Rejected"))
        observations = backend.observations()
        _last_observations, _last_now = observations, now
        decision = plan(workflow, status, observations, now)
        _check(workflow, status, decision, backend)
        # Carry out: stops, then launches; the operator style sometimes loses the status write.
        for stop in decision.stops:
            event(f"stop: {stop.reason}")
            if backend.running.pop((stop.node, stop.attempt), None) is not None and level:
                backend.outcomes[(stop.node, stop.attempt)] = Observation(stop.node, stop.attempt, AttemptState.LOST)
        for launch in decision.launches:
            backend.launched[launch.node] = launch.attempt
            backend.running[(launch.node, launch.attempt)] = now
        parallelism = workflow.spec.parallelism
        if decision.launches and parallelism is not None:
            assert len(backend.running) <= parallelism, "more than parallelism running"
        lost_write = level and not decision.status.phase.finished and draw(st.integers(0, 5)) == 2
        if lost_write:
            event("a status write was lost")
        elif level:
            status = _stored(decision.status)  # the operator reads status back from the API server
        else:
            status = decision.status
        if status is not None and status.phase.finished and not backend.running:
            if not retries_left or status.phase is WorkflowPhase.SUCCEEDED:
                break
            retries_left -= 1
            workflow = _respec(workflow, stopped=False, retry_token=f"retry-{retries_left}")
            # A retried approval node asks again, as attempt 1: the earlier answer no longer counts.
            for spec in workflow.nodes:
                if spec.approval is not None and spec.name not in backend.succeeded:
                    backend.outcomes.pop((spec.name, 1), None)
    else:
        raise AssertionError(f"did not finish in {budget} calls: {status}")
    assert status is not None
    assert status.phase.finished
    assert all(node.phase not in UNFINISHED for node in status.nodes.values())
    event(f"ended {status.phase.value} after {'few' if step < 10 else 'many'} calls")
    for reason in {node.reason for node in status.nodes.values() if node.reason}:
        event(f"a node ended with reason {reason}")
    event(f"attempts launched: {min(sum(backend.launched.values()), 10)}+" if backend.launched else "no launch")


@given(workflow=dags(), data=st.data())
def test_first_decision_is_deterministic_and_launches_ready_roots_in_order(
    workflow: Workflow, data: st.DataObject
) -> None:
    decision = plan(workflow, None, [], T0)
    assert decision == plan(workflow, None, [], T0)
    graph = workflow.graph
    nodes = decision.status.nodes
    ready = [  # a node skipped by its `when` unblocks its dependents at once, in the same call
        name
        for i, name in enumerate(graph.names)
        if all(_passed(nodes[graph.names[p]]) for p in graph.upstream[i])
        and workflow.nodes[i].approval is None
        and (workflow.conditions[i] is None or _verdict(workflow, i, decision.status) is not False)
        and not _passed(nodes[name])
    ]
    limit = workflow.spec.parallelism or len(ready)
    launched = [launch.node for launch in decision.launches]
    if workflow.finals:  # the finally nodes' turn comes only once every regular node has ended (rule 9)
        regular_ended = all(nodes[graph.names[r]].phase.finished for r in workflow.regular)
        assert regular_ended or not {graph.names[f] for f in workflow.finals} & set(launched)
        return
    if not workflow.conditional:
        assert launched == ready[:limit]
    else:  # declaration order within each look at the nodes; a skip can make nodes declared before it ready
        assert set(launched) <= set(ready)
        # a ready node whose `when` errors ends Failed instead of launching; one that is not ready (an approval
        # node whose `when` reads a skipped node's outputs) may fail too, and takes no launch from the others
        failed = [name for name in ready if nodes[name].phase is NodePhase.FAILED]
        any_failed = any(node.phase is NodePhase.FAILED for node in nodes.values())
        assert len(launched) == min(limit, len(ready) - len(failed)) or (any_failed and workflow.spec.fail_fast)


@given(workflow=dags(), data=st.data())
def test_a_node_whose_when_is_false_never_launches(workflow: Workflow, data: st.DataObject) -> None:
    """Run to the end with random outcomes: no node launches while its `when` is false, and each node whose
    dependencies all succeeded ends Skipped (ConditionFalse) exactly when its `when` was false."""
    status: WorkflowStatus | None = None
    now = T0
    running: list[tuple[str, int]] = []
    launched: set[str] = set()
    for _ in range(len(workflow.nodes) * 8 + 10):
        observations = []
        for name, attempt in running:
            outcome = _outcome(data.draw, name, attempt, now, drain=True)
            observations.append(outcome)
        for name, node in (status.nodes if status else {}).items():
            if node.phase is NodePhase.AWAITING_APPROVAL:
                observations.append(Observation(name, 1, AttemptState.SUCCEEDED))
        decision = plan(workflow, status, observations, now)
        for launch in decision.launches:
            i = workflow.graph.index[launch.node]
            if workflow.conditions[i] is not None:
                assert _verdict(workflow, i, decision.status) is True, f"{launch.node} launched, its when not true"
            launched.add(launch.node)
        running = [(launch.node, launch.attempt) for launch in decision.launches]
        status = decision.status
        now += timedelta(seconds=400)
        if status.phase.finished:
            break
    assert status is not None and status.phase.finished
    for i, name in enumerate(workflow.graph.names):
        node = status.nodes[name]
        if workflow.nodes[i].when == "false":
            assert name not in launched and node.phase is NodePhase.SKIPPED
        if node.reason == "ConditionFalse":
            assert name not in launched and _verdict(workflow, i, status) is False
            event("a node was skipped by its condition")


# -- arbitrary manifests: compile_manifest returns or raises SpecError, nothing else

_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4),
    max_leaves=20,
)
_field_names = st.sampled_from(
    [
        "name",
        "command",
        "args",
        "env",
        "dependsOn",
        "timeoutSeconds",
        "retry",
        "approval",
        "image",
        "resources",
        "podMetadata",
        "when",
        "value",
        "limit",
        "backoff",
        "policy",
        "transientExitCodes",
        "initialSeconds",
        "factor",
        "jitter",
    ]
)
_values = st.recursive(
    _scalars
    | st.sampled_from(
        ["a", "b", "{{ params.x }}", "{{ nodes.a.outputs.k }}", "Transient", "true", "nodes.a.outputs.k > 1", "x ||"]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_field_names, inner, max_size=4),
    max_leaves=15,
)
_nodes = st.lists(st.dictionaries(_field_names, _values, max_size=5), max_size=5)
_specs = st.fixed_dictionaries(
    {"nodes": _nodes},
    optional={
        "parameters": st.dictionaries(st.text(max_size=5), _values, max_size=3),
        "parallelism": _values,
        "failFast": _values,
        "defaults": st.dictionaries(_field_names, _values, max_size=3),
        "activeDeadlineSeconds": _values,
        "stopped": _values,
    },
)
_manifests = st.fixed_dictionaries(
    {
        "apiVersion": st.just("dagwright.io/v1alpha1") | _scalars,
        "kind": st.just("Workflow") | _scalars,
        "metadata": st.just({"name": "w"}) | _json,
        "spec": _specs | _json,
    }
)


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid manifest with one value somewhere replaced by anything: the checks after the schema get fuzzed too."""
    every: list[dict[str, Any]] = [
        {"name": "a", "command": ["echo", "{{ params.x }}"]},
        {"name": "b", "dependsOn": ["a"], "args": ["{{ nodes.a.outputs.k }}"], "command": ["true"]},
        {"name": "c", "dependsOn": ["b"], "retry": {"limit": 1, "backoff": {"factor": 2}}, "approval": {}},
    ]
    nodes = every[: draw(st.integers(1, 3))]
    if len(nodes) == 3:
        nodes[2].pop("approval")
        nodes[2]["command"] = ["true"]
    document = manifest(nodes, parameters={"x": "1"})
    for _ in range(draw(st.integers(1, 3))):
        target: Any = document
        path: list[Any] = draw(
            st.lists(
                st.sampled_from(["spec", "nodes", 0, 1, 2, "dependsOn", "retry", "backoff", "args"]),
                min_size=1,
                max_size=5,
            )
        )
        for part in path[:-1]:
            if _has(target, part):
                target = target[part]
        key = path[-1]
        value = draw(_values | st.sampled_from(["a", "b", "c", "z", ["a"], ["c"], ["b", "a"]]))
        if (isinstance(target, dict) and isinstance(key, str)) or _has(target, key):
            target[key] = value
    return document


def _has(container: Any, key: str | int) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


@given(document=_manifests | _json | _mutated())
def test_any_document_compiles_or_raises_spec_error(document: Any) -> None:
    try:
        workflow = compile_manifest(document)
    except SpecError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.field and problem.message
            assert "Traceback" not in str(problem)
    else:
        event("valid")
        plan(workflow, None, [], T0)
