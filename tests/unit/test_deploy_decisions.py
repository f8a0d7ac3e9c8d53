"""The deploy agent's decisions: what to do given a ready decision and what the Deployment shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.deploy import decisions as d
from streams.deploy.decisions import Blocked, Nothing, NotReady, Patch, Ready, Report, Rollback, Watch

OLD, NEW = "registry.example/shop:old", "registry.example/shop:new"
READY = Ready("evt-2", "chain-2", "shop", "github.com/acme/shop", "b" * 40, "main", NEW)


@dataclass(frozen=True)
class Seen:
    image: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    rollout: str = "complete"
    progressing_reason: str | None = None


def deployed_by_us(image: str, event: str = "evt-1", **extra: str) -> dict[str, str]:
    return {d.READINESS_EVENT: event, d.IMAGE: image, d.COMMIT: "a" * 40, d.PREVIOUS_COMMIT: "", **extra}


def test_first_rollout_patches_with_annotations() -> None:
    action = d.decide(READY, Seen(OLD))
    assert action == Patch(
        {
            d.COMMIT: READY.commit,
            d.READINESS_EVENT: "evt-2",
            d.CHAIN_ID: "chain-2",
            d.IMAGE: NEW,
            d.PREVIOUS_IMAGE: OLD,
            d.PREVIOUS_COMMIT: "",
            d.ROLLED_BACK_FROM: None,
            d.ROLLBACK_REASON: None,
            d.WAITING: None,
        },
        first=True,
    )
    assert action.completed == "deployed"


def test_later_rollout_is_an_upgrade() -> None:
    action = d.decide(READY, Seen(OLD, deployed_by_us(OLD)))
    assert isinstance(action, Patch)
    assert (action.first, action.completed, action.annotations[d.PREVIOUS_COMMIT]) == (False, "upgraded", "a" * 40)


def test_already_at_the_image_does_nothing() -> None:
    assert isinstance(d.decide(READY, Seen(NEW)), Nothing)


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [("progressing", Watch()), ("complete", Report("deployed", NEW))],
)
def test_redelivery_never_patches_again(rollout: str, expected: object) -> None:
    seen = Seen(NEW, deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD}), rollout)
    assert d.decide(READY, seen) == expected


def test_redelivery_after_upgrade_reports_upgraded() -> None:
    notes = deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD, d.PREVIOUS_COMMIT: "a" * 40})
    assert d.decide(READY, Seen(NEW, notes)) == Report("upgraded", NEW)


def test_failed_rollout_rolls_back_to_the_previous_image() -> None:
    seen = Seen(
        NEW, deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD}), "failed", "ProgressDeadlineExceeded"
    )
    action = d.decide(READY, seen)
    assert isinstance(action, Rollback)
    assert action.previous_image == OLD
    assert action.annotations == {
        d.IMAGE: OLD,
        d.ROLLED_BACK_FROM: NEW,
        d.ROLLBACK_REASON: f"rollout of {NEW} failed (ProgressDeadlineExceeded)",
        d.FAILED_ROLLOUTS: "1",
    }
    assert "ProgressDeadlineExceeded" in action.reason


def test_redelivery_after_rollback_reports_rolledback() -> None:
    notes = deployed_by_us(OLD, event="evt-2", **{d.PREVIOUS_IMAGE: OLD, d.ROLLED_BACK_FROM: NEW})
    action = d.decide(READY, Seen(OLD, notes))
    assert isinstance(action, Report)
    assert (action.kind, action.artifact) == ("rolledback", OLD)


def test_manual_change_blocks() -> None:
    action = d.decide(READY, Seen("registry.example/shop:hotfix", deployed_by_us(OLD)))
    assert action == Blocked(
        "manual change detected: image registry.example/shop:hotfix is not what autodeploy set "
        "(registry.example/shop:old)"
    )
    # Our own rollout changed under us by hand: blocked too, not re-patched.
    ours = Seen("registry.example/shop:hotfix", deployed_by_us(NEW, event="evt-2"))
    assert isinstance(d.decide(READY, ours), Blocked)


def test_conflict_with_an_image_change_blocks_even_before_the_first_rollout() -> None:
    before, fresh = Seen(OLD), Seen("registry.example/shop:hotfix")
    action = d.after_conflict(READY, before, fresh)
    assert action == Blocked(d.manual_change("registry.example/shop:hotfix", OLD))
    # Only status moved: patch again on the fresh version.
    assert isinstance(d.after_conflict(READY, before, Seen(OLD)), Patch)


def ready_data(**content: Any) -> dict[str, Any]:
    body = {"service": "shop", "repository": "github.com/acme/shop", "commit": "b" * 40, "image": NEW, **content}
    return {"context": {"chainId": "chain-2"}, "subject": {"content": body}}


def test_parse_ready() -> None:
    assert d.parse_ready("evt-2", d.READY_TYPE, ready_data(branch="main")) == READY
    with pytest.raises(NotReady, match="not a ready"):
        d.parse_ready("evt-2", "dev.cdeventsx.autodeploy-readiness.expired.0.1.0", ready_data())
    with pytest.raises(NotReady, match="without an image"):
        d.parse_ready("evt-2", d.READY_TYPE, ready_data(image=None))
    with pytest.raises(NotReady):
        d.parse_ready("evt-2", d.READY_TYPE, {"subject": {}})


def test_a_rollout_after_a_rollback_clears_the_rollback_mark() -> None:
    after_rollback = deployed_by_us(OLD, event="evt-1", **{d.PREVIOUS_IMAGE: OLD, d.ROLLED_BACK_FROM: "broken:1"})
    action = d.decide(READY, Seen(OLD, after_rollback))
    assert isinstance(action, Patch)
    assert action.annotations[d.ROLLED_BACK_FROM] is None
    # Once patched, the Deployment no longer carries the mark, so the good rollout is reported as one.
    patched = {k: v for k, v in {**after_rollback, **action.annotations}.items() if v is not None}
    assert d.decide(READY, Seen(NEW, patched)) == Report("upgraded", NEW)


def failed_rollout(failures: int) -> Seen:
    notes = deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD, d.FAILED_ROLLOUTS: str(failures)})
    return Seen(NEW, notes, "failed", "ProgressDeadlineExceeded")


def test_the_nth_consecutive_failed_rollout_opens_the_circuit() -> None:
    below = d.decide(READY, failed_rollout(1), max_failed_rollouts=3)
    assert isinstance(below, Rollback) and d.CIRCUIT_OPEN not in below.annotations
    assert below.annotations[d.FAILED_ROLLOUTS] == "2"
    third = d.decide(READY, failed_rollout(2), max_failed_rollouts=3)
    assert isinstance(third, Rollback)
    assert (third.annotations[d.FAILED_ROLLOUTS], third.annotations[d.CIRCUIT_OPEN]) == ("3", "evt-2")


def test_rolledback_waits_for_the_restored_rollout_then_says_whether_it_opened_the_circuit() -> None:
    notes = deployed_by_us(OLD, event="evt-2", **{d.ROLLED_BACK_FROM: NEW, d.CIRCUIT_OPEN: "evt-2"})
    assert d.decide(READY, Seen(OLD, notes, "progressing")) == Watch()
    report = d.decide(READY, Seen(OLD, notes, "complete"))
    assert isinstance(report, Report)
    assert (report.kind, report.circuit_opened) == ("rolledback", True)
    assert report.reason == f"rollout of {NEW} failed; restored {OLD}"


def test_an_open_circuit_blocks_every_new_decision() -> None:
    notes = deployed_by_us(OLD, event="evt-1", **{d.CIRCUIT_OPEN: "evt-1", d.FAILED_ROLLOUTS: "3"})
    assert d.decide(READY, Seen(OLD, notes)) == Blocked(d.circuit_open_reason("shop", 3))
    assert "autodeploy unblock shop" in d.circuit_open_reason("shop", 3)


def test_a_completed_rollout_resets_the_failure_count() -> None:
    notes = deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD, d.FAILED_ROLLOUTS: "2"})
    report = d.decide(READY, Seen(NEW, notes, "complete"))
    assert report == Report("deployed", NEW, annotations={d.FAILED_ROLLOUTS: None})
    assert d.failed_rollouts({d.FAILED_ROLLOUTS: "junk"}) == 0


def test_a_rollout_past_the_agents_bound_is_rolled_back_and_counted() -> None:
    notes = deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD, d.FAILED_ROLLOUTS: "2"})
    action = d.timed_out(READY, Seen(NEW, notes, "progressing", "ReplicaSetUpdated"), 600)
    assert isinstance(action, Rollback)
    assert action.previous_image == OLD
    assert action.annotations == {
        d.IMAGE: OLD,
        d.ROLLED_BACK_FROM: NEW,
        d.ROLLBACK_REASON: f"rollout of {NEW} did not complete within 600 s",
        d.FAILED_ROLLOUTS: "3",
        d.CIRCUIT_OPEN: "evt-2",  # the third consecutive failure, timeouts included
    }


def test_a_rollout_that_settled_meanwhile_is_decided_as_usual() -> None:
    notes = deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD, d.PREVIOUS_COMMIT: "a" * 40})
    assert d.timed_out(READY, Seen(NEW, notes, "complete"), 600) == Report("upgraded", NEW)


def test_a_restore_past_the_bound_is_reported_not_rolled_back_again() -> None:
    notes = deployed_by_us(OLD, event="evt-2", **{d.PREVIOUS_IMAGE: OLD, d.ROLLED_BACK_FROM: NEW})
    action = d.timed_out(READY, Seen(OLD, notes, "progressing"), 30)
    assert action == Report("failed", OLD, f"the restored rollout of {OLD} did not complete within 30 s")


def test_a_timed_out_rollout_changed_by_hand_is_left_alone() -> None:
    notes = deployed_by_us(NEW, event="evt-2", **{d.PREVIOUS_IMAGE: OLD})
    action = d.timed_out(READY, Seen("registry.example/shop:hotfix", notes, "progressing"), 30)
    assert isinstance(action, Blocked)
