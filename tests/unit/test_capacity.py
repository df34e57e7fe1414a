"""The operator-wide limit on running attempts (`capacity.Fleet`): examples, then properties over random fleets."""

from __future__ import annotations

from dataclasses import dataclass

from builders import T0, node, ok, workflow
from hypothesis import given
from hypothesis import strategies as st

from dagwright.capacity import Fleet, Standing
from dagwright.planner import plan
from dagwright.status import WorkflowStatus
from dagwright.workflows import Workflow


def standing(running: int = 0, waiting: int = 0, held_back: int = 0, priority: int = 0) -> Standing:
    return Standing(running=running, waiting=waiting, held_back=held_back, priority=priority, phase="Running")


def test_without_a_limit_there_is_no_cap_and_nothing_to_requeue() -> None:
    fleet: Fleet[str] = Fleet(None)
    fleet.record("a", standing(running=50, waiting=3))
    assert fleet.room("b", 0) is None
    assert fleet.record("a", standing(running=0, waiting=3)) == []


def test_room_is_the_limit_less_everything_running() -> None:
    fleet: Fleet[str] = Fleet(10)
    assert fleet.room("a", 0) == 10
    fleet.record("a", standing(running=4))
    fleet.record("b", standing(running=5))
    assert fleet.room("a", 0) == 1  # its own running attempts count too
    fleet.record("c", standing(running=3))
    assert fleet.room("a", 0) == 0  # never negative


def test_room_a_higher_priority_workflow_waits_for_is_reserved_for_it() -> None:
    fleet: Fleet[str] = Fleet(10)
    fleet.record("urgent", standing(running=2, waiting=5, held_back=4, priority=5))
    assert fleet.room("low", 0) == 4  # 10 - 2 running - 4 reserved
    assert fleet.room("peer", 5) == 8  # equal priority: no reservation
    assert fleet.room("urgent", 5) == 8  # nor against itself
    assert fleet.room("higher", 9) == 8


def test_a_drop_in_running_requeues_every_waiting_workflow() -> None:
    fleet: Fleet[str] = Fleet(4)
    fleet.record("a", standing(running=4))
    fleet.record("b", standing(waiting=2, held_back=2))
    fleet.record("c", standing())
    assert fleet.record("a", standing(running=4)) == []  # unchanged
    assert fleet.record("a", standing(running=3, waiting=1)) == ["a", "b"]  # itself too: it may get the room
    assert fleet.record("new", standing(running=0, waiting=9)) == []  # first record: nothing dropped


def test_forgetting_a_workflow_frees_what_it_held() -> None:
    fleet: Fleet[str] = Fleet(4)
    fleet.record("a", standing(running=4, waiting=1, held_back=1, priority=9))
    fleet.forget("a")
    assert fleet.room("b", 0) == 4
    assert fleet.waiting_total() == 0


def test_metrics_counts() -> None:
    fleet: Fleet[str] = Fleet(None)
    fleet.record("a", Standing(running=1, waiting=2, held_back=0, priority=0, phase="Running"))
    fleet.record("b", Standing(running=0, waiting=3, held_back=0, priority=0, phase="Running"))
    fleet.record("c", Standing(running=0, waiting=0, held_back=0, priority=0, phase="Succeeded"))
    assert fleet.phase_counts() == {"Running": 2, "Succeeded": 1}
    assert fleet.waiting_total() == 5


# -- properties: a model of workflows (ready nodes, parallelism) taking passes in any order


@dataclass
class _Model:
    priority: int
    parallelism: int
    ready: int
    running: int = 0


_STEPS = st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(0, 5)), max_size=60)
_WORKFLOWS = st.lists(
    st.builds(_Model, priority=st.integers(-2, 2), parallelism=st.integers(1, 6), ready=st.integers(0, 12)),
    min_size=1,
    max_size=4,
)


@given(limit=st.integers(0, 8), models=_WORKFLOWS, steps=_STEPS)
def test_the_limit_holds_reservations_are_respected_and_freed_room_wakes_the_waiting(
    limit: int, models: list[_Model], steps: list[tuple[int, bool, int]]
) -> None:
    fleet: Fleet[int] = Fleet(limit)
    recorded: dict[int, Standing] = {}  # what each workflow's last pass recorded
    for pick, finish, count in steps:
        key = pick % len(models)
        model = models[key]
        if finish:  # some attempts ended before this pass
            model.running -= min(model.running, count)
        with fleet.turn():
            room = fleet.room(key, model.priority)
            assert room is not None and room >= 0
            reserved = sum(
                held.held_back for other, held in recorded.items() if other != key and held.priority > model.priority
            )
            launched = max(0, min(model.ready, model.parallelism - model.running, room))
            model.ready -= launched
            model.running += launched
            total = sum(m.running for m in models)
            assert total <= limit  # rule 1
            if launched:
                assert total + reserved <= limit  # rule 2: never room a higher priority is waiting for
            new = Standing(
                running=model.running,
                waiting=model.ready,
                held_back=min(model.ready, max(0, model.parallelism - model.running)),
                priority=model.priority,
                phase="Running",
            )
            previous = recorded.get(key)
            recorded[key] = new
            requeue = fleet.record(key, new)
            waiting = {other for other, held in recorded.items() if held.waiting}
            if previous is not None and new.running < previous.running:
                assert set(requeue) == waiting  # rule 3
            else:
                assert requeue == []


# -- the real planner under a fleet limit


def _fan_out(width: int, parallelism: int | None = None) -> Workflow:
    spec = {"parallelism": parallelism} if parallelism else {}
    return workflow([node(f"n{i}") for i in range(width)], **spec)


@given(
    limit=st.integers(1, 6),
    shapes=st.lists(st.tuples(st.integers(1, 8), st.integers(0, 4), st.integers(-1, 1)), min_size=1, max_size=3),
    picks=st.lists(st.integers(0, 2), max_size=40),
)
def test_the_planner_never_runs_more_than_the_fleet_allows(
    limit: int, shapes: list[tuple[int, int, int]], picks: list[int]
) -> None:
    """Passes of real workflows in any order: attempts running across the fleet never exceed the limit, and
    every workflow finishes once passes keep coming."""
    fleet: Fleet[int] = Fleet(limit)
    workflows = [_fan_out(width, parallelism or None) for width, parallelism, _ in shapes]
    priorities = [priority for _, _, priority in shapes]
    statuses: list[WorkflowStatus | None] = [None] * len(workflows)

    def step(key: int) -> None:
        status = statuses[key]
        done = [ok(name, n.attempts) for name, n in (status.nodes.items() if status else ()) if n.phase == "Running"]
        with fleet.turn():
            decision = plan(workflows[key], status, done[:1], T0, capacity=fleet.room(key, priorities[key]))
            statuses[key] = decision.status
            fleet.record(
                key,
                Standing(
                    running=decision.running,
                    waiting=decision.waiting,
                    held_back=decision.held_back,
                    priority=priorities[key],
                    phase=decision.status.phase.value,
                ),
            )
        running = sum(sum(1 for n in s.nodes.values() if n.phase == "Running") for s in statuses if s is not None)
        assert running <= limit

    for pick in picks:
        step(pick % len(workflows))
    for _ in range(sum(width for width, _, _ in shapes) * 2 + 2):
        for key in range(len(workflows)):
            step(key)
    assert all(s is not None and s.phase.value == "Succeeded" for s in statuses)
