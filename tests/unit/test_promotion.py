"""Promotion through environments: gates as facts, decided per (service, environment, commit), never backwards."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain import promotion
from streams.domain.environments import Comparison, EnvironmentPolicy, KubernetesTarget, VerifyCheck
from streams.domain.facts import (
    Approved,
    CheckId,
    CheckKind,
    EventRef,
    GateFact,
    RolledBack,
    RolloutCompleted,
    VerificationPassed,
)
from streams.domain.policy import ServicePolicy
from streams.domain.promotion import EnvironmentDecision, ServicePromotion
from streams.domain.readiness import Decision

REPO = "github.com/acme/shop"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SOAK = timedelta(minutes=10)
ERRORS = VerifyCheck("error-ratio", 'errors{image="$image"}', Comparison("<", 0.05), timedelta(minutes=2))
_ids = itertools.count()


def target(namespace: str) -> KubernetesTarget:
    return KubernetesTarget(namespace, "shop", "app")


def policy(*environments: EnvironmentPolicy) -> ServicePolicy:
    first = environments[0]
    return ServicePolicy(
        "shop",
        REPO,
        "main",
        (CheckId(CheckKind.CIRCLECI, "build"),),
        "ghcr.io/acme/shop:{sha}",
        None,
        first.target,
        first.name,
        timedelta(hours=1),
        promotion=environments,
    )


STAGING = EnvironmentPolicy("staging", target("staging"), verify=(ERRORS,))
PRODUCTION = EnvironmentPolicy("production", target("prod"), after="staging", soak=SOAK, approval=True)
TWO = policy(STAGING, PRODUCTION)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ref(minutes: float) -> EventRef:
    n = next(_ids)
    return EventRef("autodeploy/deploy-agent", f"g{n}", "t", at(minutes), "deploy.gates", 0, n)


def ready(commit: str, minutes: float = 0) -> Decision:
    return Decision(
        kind="ready",
        service="shop",
        repository=REPO,
        branch="main",
        commit=commit,
        decision_id=f"d-{commit}",
        chain_id=f"c-{commit}",
        facts=(ref(minutes),),
        image=f"ghcr.io/acme/shop:{commit}",
        decided_at=at(minutes),
    )


def completed(commit: str, minutes: float, env: str = "staging") -> RolloutCompleted:
    return RolloutCompleted(REPO, "shop", env, commit, ref(minutes))


def verified(commit: str, minutes: float, env: str = "staging") -> VerificationPassed:
    return VerificationPassed(REPO, "shop", env, commit, ref(minutes))


def rolled_back(commit: str, minutes: float, env: str = "staging") -> RolledBack:
    return RolledBack(REPO, "shop", env, commit, "verify error-ratio: 0.12 (needs < 0.05)", ref(minutes))


def approved(commit: str, minutes: float, env: str = "production") -> Approved:
    return Approved(REPO, "shop", env, commit, "alice@example.com", ref(minutes))


Step = Decision | GateFact | datetime  # a datetime is a tick: time passing


@dataclass
class Run:
    state: ServicePromotion = field(default_factory=lambda: promotion.empty("shop", REPO))
    decisions: list[EnvironmentDecision] = field(default_factory=list)

    def feed(self, steps: Iterable[Step], service: ServicePolicy = TWO) -> list[tuple[str, str, str | None]]:
        new: list[EnvironmentDecision] = []
        for step in steps:
            if isinstance(step, datetime):
                self.state, made = promotion.on_time(self.state, service, step)
            elif isinstance(step, Decision):
                self.state, made = promotion.on_ready(self.state, service, step, step.decided_at or T0)
            else:
                self.state, made = promotion.on_gate(self.state, service, step, step.ref.time)
            new += made
        self.decisions += new
        return [(d.kind, d.commit, d.superseded_by or d.reason) for d in new]


def test_a_commit_goes_to_production_after_staging_verification_soak_and_approval() -> None:
    run = Run()
    assert run.feed([ready("a", 0), completed("a", 1), verified("a", 3), approved("a", 4)]) == []
    assert promotion.next_soak_end(run.state, TWO) == at(11)
    assert run.feed([at(10.9)]) == []
    assert run.feed([at(11)]) == [("ready", "a", None)]
    [decision] = run.decisions
    assert (decision.environment, decision.image, decision.decided_at) == ("production", "ghcr.io/acme/shop:a", at(11))
    assert decision.decision_id == promotion._uuid5("shop/production/a/ready")
    assert len(decision.facts) == 4  # the readiness decision's fact, then completion, verification, approval


def test_an_approval_after_the_soak_promotes_at_once() -> None:
    run = Run()
    run.feed([ready("a", 0), completed("a", 1), verified("a", 2), at(30)])
    assert run.feed([approved("a", 31)]) == [("ready", "a", None)]


def test_the_soak_counts_from_the_completion_not_from_the_readiness() -> None:
    run = Run()
    run.feed([ready("a", 0), approved("a", 0), verified("a", 8), completed("a", 7)])
    assert run.feed([at(16.9)]) == []
    assert run.feed([at(17)]) == [("ready", "a", None)]


def test_a_promotion_found_late_is_dated_when_its_last_gate_opened() -> None:
    run = Run()
    run.feed([ready("a", 0), completed("a", 1), verified("a", 2), approved("a", 3)])
    assert run.feed([at(30)]) == [("ready", "a", None)]
    assert run.decisions[0].decided_at == at(11)  # the soak's end, not the tick that found it


def test_a_rollback_after_the_soak_ended_does_not_take_back_the_promotion_due_before_it() -> None:
    """Whether or not a tick fell between the soak's end and the rollback: the log's order decides, not the ticks."""
    gates: list[Step] = [ready("a", 0), completed("a", 1), verified("a", 2), approved("a", 3)]
    with_tick, without = Run(), Run()
    with_tick.feed([*gates, at(12), rolled_back("a", 13)])
    without.feed([*gates, rolled_back("a", 13)])
    assert [(d.kind, d.decided_at) for d in with_tick.decisions] == [("ready", at(11))]
    assert [(d.kind, d.decided_at) for d in without.decisions] == [("ready", at(11))]


def test_a_commit_rolled_back_in_staging_is_rejected_for_production_with_the_reason() -> None:
    run = Run()
    assert run.feed([ready("a", 0), completed("a", 1), approved("a", 2), rolled_back("a", 3)]) == [
        ("rejected", "a", "rolled back in staging: verify error-ratio: 0.12 (needs < 0.05)")
    ]
    assert run.feed([verified("a", 4), at(60)]) == []


def test_without_verification_passed_staging_is_not_enough() -> None:
    run = Run()
    assert run.feed([ready("a", 0), completed("a", 1), approved("a", 2), at(60)]) == []
    [status] = promotion.explain(run.state, TWO, "a", at(60))
    assert status.missing == ("verification passed in staging",)


def test_a_newer_commit_verified_in_staging_supersedes_an_older_one_still_soaking() -> None:
    run = Run()
    run.feed([ready("a", 0), completed("a", 1), verified("a", 2), ready("b", 3), completed("b", 4)])
    assert run.feed([verified("b", 5)]) == [("superseded", "a", "b")]
    assert run.feed([approved("b", 6), at(14)]) == [("ready", "b", None)]


def test_an_older_commit_never_follows_a_newer_one_into_production() -> None:
    run = Run()
    run.feed([ready("a", 0), ready("b", 1), completed("b", 2), verified("b", 3), approved("b", 3), at(12)])
    assert [d.commit for d in run.decisions] == ["a", "b"]  # a superseded by b when b passed staging
    assert run.feed([completed("a", 20), verified("a", 21), approved("a", 22), at(40)]) == []


def test_facts_of_other_services_or_environments_change_nothing() -> None:
    run = Run()
    run.feed([ready("a", 0)])
    before = run.state
    assert run.feed([RolloutCompleted(REPO, "cart", "staging", "a", ref(1))]) == []
    assert run.feed([RolloutCompleted(REPO, "shop", "qa", "a", ref(1))]) == []
    assert run.state is before


def test_duplicates_change_nothing_and_a_re_emitted_readiness_decision_neither() -> None:
    run = Run()
    run.feed([ready("a", 0), completed("a", 1)])
    state = run.state
    assert run.feed([completed("a", 1), ready("a", 0)]) == []
    assert run.state is state


def test_an_approval_given_before_readiness_counts() -> None:
    run = Run()
    run.feed([approved("a", 0), ready("a", 1), completed("a", 2), verified("a", 2)])
    assert run.feed([at(12)]) == [("ready", "a", None)]


def test_a_later_environment_without_after_takes_each_commit_once_approved() -> None:
    canary = EnvironmentPolicy("canary", target("canary"), approval=True)
    service = policy(EnvironmentPolicy("staging", target("staging")), canary)
    run = Run()
    assert run.feed([ready("a", 0), approved("a", 1, "canary")], service) == [("ready", "a", None)]


def test_explain_names_the_soak_end_and_the_missing_approval() -> None:
    run = Run()
    run.feed([ready("a", 0), completed("a", 1), verified("a", 2)])
    [status] = promotion.explain(run.state, TWO, "a", at(5))
    assert status.status is None
    assert status.soak_ends == at(11)
    assert status.missing == ("soak 10m in staging (ends 2026-01-01T00:11:00Z)", "waiting for approval")
    assert status.holds == (
        "ready by the service's rules",
        "rollout completed in staging",
        "verification passed in staging",
    )


def test_candidates_are_bounded() -> None:
    run = Run()
    run.feed(ready(f"c{n}", n) for n in range(promotion.MAX_CANDIDATES + 50))
    assert len(run.state.commits) == promotion.MAX_CANDIDATES


def test_a_single_environment_policy_promotes_nowhere() -> None:
    single = ServicePolicy(
        "shop",
        REPO,
        "main",
        (CheckId(CheckKind.CIRCLECI, "build"),),
        "ghcr.io/acme/shop:{sha}",
        None,
        target("prod"),
        "production",
        timedelta(hours=1),
    )
    run = Run()
    assert run.feed([ready("a", 0), completed("a", 1, "production"), at(60)], single) == []


# ---------------------------------------------------------------------------------------------------------------
# Properties over any interleaving of readiness decisions, gate facts and time.

COMMITS = ["a", "b", "c", "d"]


@st.composite
def histories(draw: st.DrawFn) -> list[Step]:
    """Commits become ready in order (the readiness rules' order); gate facts and ticks come in any order between,
    at non-decreasing times (the merge's order)."""
    steps: list[Step] = []
    clock = 0.0
    ready_so_far = 0
    for _ in range(draw(st.integers(1, 40))):
        clock += draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0]))
        kind = draw(st.sampled_from(["ready", "completed", "verified", "rolled_back", "approved", "tick"]))
        commit = draw(st.sampled_from(COMMITS))
        env = draw(st.sampled_from(["staging", "production"]))
        if kind == "ready" and ready_so_far < len(COMMITS):
            steps.append(ready(COMMITS[ready_so_far], clock))
            ready_so_far += 1
        elif kind == "completed":
            steps.append(completed(commit, clock, env))
        elif kind == "verified":
            steps.append(verified(commit, clock, env))
        elif kind == "rolled_back":
            steps.append(rolled_back(commit, clock, env))
        elif kind == "approved":
            steps.append(approved(commit, clock))
        else:
            steps.append(at(clock))
    return steps


def _facts_before(steps: list[Step], moment: datetime) -> list[GateFact]:
    return [s for s in steps if not isinstance(s, datetime | Decision) and s.ref.time <= moment]


@settings(max_examples=400, deadline=None)
@given(histories())
def test_never_promoted_without_every_gate_nor_after_a_rollback(steps: list[Step]) -> None:
    run = Run()
    run.feed(steps)
    for decision in (d for d in run.decisions if d.kind == "ready"):
        known = [f for f in _facts_before(steps, decision.decided_at) if f.commit == decision.commit]
        completions = [f.ref.time for f in known if isinstance(f, RolloutCompleted) and f.environment == "staging"]
        assert completions, decision
        assert any(isinstance(f, VerificationPassed) and f.environment == "staging" for f in known)
        assert any(isinstance(f, Approved) and f.environment == "production" for f in known)
        assert decision.decided_at >= min(completions) + SOAK  # soak from the rollout's completion
        # A rollback stamped at the very moment the last gate opened comes after it: the commit went.
        assert not any(
            isinstance(f, RolledBack) and f.environment == "staging" and f.ref.time < decision.decided_at for f in known
        )


@settings(max_examples=400, deadline=None)
@given(histories())
def test_production_never_goes_backwards_and_decides_each_commit_once(steps: list[Step]) -> None:
    run = Run()
    run.feed(steps)
    promoted = [d.commit for d in run.decisions if d.kind == "ready"]
    assert promoted == sorted(promoted)  # COMMITS become ready in alphabetical order
    keys = [(d.environment, d.commit) for d in run.decisions]
    assert len(keys) == len(set(keys))
    for decision in run.decisions:
        if decision.kind == "superseded":
            assert decision.superseded_by is not None and decision.superseded_by > decision.commit


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_newest_commit_through_every_gate_is_promoted(steps: list[Step]) -> None:
    """Liveness: at the end, with time far past every soak, no commit waits although it could go."""
    run = Run()
    run.feed([*steps, at(10_000)])
    decided = {d.commit for d in run.decisions}
    for commit, gates in run.state.commits.items():
        if gates.rank is None or commit in decided:
            continue
        open_ = "staging" in gates.completed and "staging" in gates.verified and "production" in gates.approved
        assert not (open_ and "staging" not in gates.rolled_back), (commit, gates)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_where_the_ticks_fall_changes_no_decision(steps: list[Step]) -> None:
    """A soak ends by time: a commit whose soak ended before a newer one passed staging goes, whether or not a tick
    came between (the decision is taken at the next input either way)."""
    with_ticks, without = Run(), Run()
    with_ticks.feed([*steps, at(10_000)])
    without.feed([*(s for s in steps if not isinstance(s, datetime)), at(10_000)])

    def kinds(run: Run) -> list[tuple[str, str, str, str | None]]:
        return [(d.environment, d.commit, d.kind, d.superseded_by) for d in run.decisions]

    assert sorted(kinds(with_ticks)) == sorted(kinds(without))
