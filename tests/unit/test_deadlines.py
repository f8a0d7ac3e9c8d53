"""The worker's deadline index: when each repository's next waiting commit expires, without keeping its state."""

from __future__ import annotations

import gc
import types
from datetime import timedelta

from streams.domain.readiness import apply
from streams.domain.readiness_state import empty_state
from streams.worker.deadlines import Deadlines
from tests.unit.test_readiness import LINT, NOW, REPO, T0, check, push, svc

GLOBAL = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
SERVICES = [svc(checks=(LINT,))]  # ttl 1 h from a commit's first fact
PUSHED = apply(empty_state(REPO), push("c1", t=0), SERVICES, NOW)[0]


def reachable(start: object, target: object) -> bool:
    """Whether `start`'s data refers to `target`; classes, functions and modules (everything global) are not data."""
    seen, todo = {id(start)}, [start]
    while todo:
        for child in gc.get_referents(todo.pop()):
            if child is target:
                return True
            if not isinstance(child, GLOBAL) and id(child) not in seen:
                seen.add(id(child))
                todo.append(child)
    return False


def test_a_waiting_commit_is_due_when_its_ttl_has_passed() -> None:
    deadlines = Deadlines()
    deadlines.track(3, REPO, PUSHED, SERVICES)
    assert not deadlines.has_due(3, T0 + timedelta(minutes=59))
    assert deadlines.has_due(3, T0 + timedelta(minutes=61))
    assert not deadlines.has_due(4, T0 + timedelta(minutes=61))
    assert deadlines.due(3, T0 + timedelta(minutes=61)) == [REPO]
    assert deadlines.due(3, T0 + timedelta(minutes=61)) == []


def test_a_decided_commit_has_no_deadline_left() -> None:
    deadlines = Deadlines()
    deadlines.track(0, REPO, PUSHED, SERVICES)
    decided = apply(PUSHED, check("c1", c=LINT, t=1), SERVICES, NOW)[0]
    assert decided.waiting is not PUSHED.waiting
    deadlines.track(0, REPO, decided, SERVICES, replaced=PUSHED)
    assert deadlines.due(0, T0 + timedelta(days=1)) == []


def test_a_fact_that_leaves_the_waiting_sets_alone_keeps_the_deadline() -> None:
    deadlines = Deadlines()
    deadlines.track(0, REPO, PUSHED, SERVICES)
    other_check = apply(PUSHED, check("c1", t=2), SERVICES, NOW)[0]  # a check no service requires
    assert other_check is not PUSHED and other_check.waiting is PUSHED.waiting
    deadlines.track(0, REPO, other_check, SERVICES, replaced=PUSHED)
    assert deadlines.due(0, T0 + timedelta(minutes=61)) == [REPO]


def test_no_state_is_kept_so_memory_stays_bounded_by_the_stores_cache() -> None:
    deadlines = Deadlines()
    deadlines.track(0, REPO, PUSHED, SERVICES)
    later = apply(PUSHED, push("c2", "c1", t=1), SERVICES, NOW)[0]
    deadlines.track(0, REPO, later, SERVICES, replaced=PUSHED)
    assert not reachable(deadlines, PUSHED.waiting)
    assert not reachable(deadlines, later.waiting)
    assert not reachable(deadlines, later)
