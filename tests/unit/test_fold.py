"""The worker's fold of one repository: provider facts through the readiness rules, each ready commit a candidate of
promotion, gate facts to promotion alone, time for expiries and soaks; and the state's JSON keeps it all."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from streams.domain.facts import Fact, GateFact, RolloutCompleted
from streams.domain.fold import Decided, fold_fact, fold_time, next_due
from streams.domain.gate_extract import GATE_EXTRACTORS
from streams.domain.promotion import EnvironmentDecision
from streams.domain.readiness import RepositoryState, empty_state, from_json, to_json
from tests.unit.test_promotion import PRODUCTION, SOAK, STAGING, approved, completed, policy, verified
from tests.unit.test_readiness import NOW, NULL, REPO, check, push

SHOP = replace(policy(STAGING, PRODUCTION), required_checks=(check("x").check,), readiness_ttl=timedelta(hours=1))
A = "a" * 40


def fold(steps: list[Fact | GateFact], state: RepositoryState | None = None) -> tuple[RepositoryState, list[Decided]]:
    state = state or empty_state(REPO)
    out: list[Decided] = []
    for step in steps:
        state, made = fold_fact(state, step, [SHOP], NOW)
        out += made
    return state, out


def summary(decisions: list[Decided]) -> list[tuple[str, str, str]]:
    return [
        (d.kind, d.environment if isinstance(d, EnvironmentDecision) else "staging (the rules)", d.commit[:1])
        for d in decisions
    ]


def test_a_commit_ready_by_the_rules_becomes_promotions_candidate_and_goes_on_by_gates_and_time() -> None:
    state, decisions = fold([push(A, NULL), check(A)])
    assert summary(decisions) == [("ready", "staging (the rules)", "a")]
    assert state.promotions["shop"].commits[A].rank == 0
    state, decisions = fold([completed(A, 0), verified(A, 1), approved(A, 2)], state)
    assert decisions == []
    due = next_due(state, [SHOP])
    assert due is not None and due == completed(A, 0).ref.time + SOAK
    state, decisions = fold_time(state, [SHOP], due)
    assert summary(decisions) == [("ready", "production", "a")]
    assert next_due(state, [SHOP]) is None


def test_gate_facts_of_services_without_environments_change_nothing() -> None:
    plain = replace(SHOP, promotion=())
    state, _ = fold([push(A, NULL), check(A)])
    before = state
    after, made = fold_fact(state, completed(A, 0), [plain], NOW)
    assert after is before and made == []


def test_the_promotion_state_survives_json() -> None:
    state, _ = fold([push(A, NULL), check(A), completed(A, 0), approved(A, 1)])
    again = from_json(to_json(state))
    assert again.promotions == state.promotions
    legacy = to_json(state)
    del legacy["promotions"]  # a state written before promotion existed
    assert from_json(legacy).promotions == {}


def test_gate_events_that_lack_what_their_type_promises_give_no_fact() -> None:
    ref = completed(A, 0).ref
    for extractor in GATE_EXTRACTORS.values():
        assert extractor({}, ref, None) == []
        assert (
            extractor({"customData": {"service": "shop", "repository": "acme/shop", "commit": "nope"}}, ref, None) == []
        )
    good = {
        "customData": {"service": "shop", "repository": "acme/shop", "commit": A},
        "subject": {"content": {"environment": {"id": "staging"}}},
    }
    [fact] = GATE_EXTRACTORS["dev.cdevents.service.deployed.0.3.0"](good, ref, None)
    assert isinstance(fact, RolloutCompleted) and fact.repository == "github.com/acme/shop"
    assert (
        GATE_EXTRACTORS["dev.cdevents.service.deployed.0.3.0"](
            {**good, "customData": {**good["customData"], "dryRun": True}}, ref, None
        )
        == []
    )
