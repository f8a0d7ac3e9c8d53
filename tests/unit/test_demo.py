"""`autodeploy demo` without services: the scenario it builds, how it reads answers, when it says it failed."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from streams.adapters.policy_file import load_policies
from streams.config import REPO_ROOT
from streams.demo.deliveries import Delivery, Secrets
from streams.demo.play import DeliveryRefused, Player
from streams.demo.scenario import ScenarioError, build
from streams.demo.watch import Observed, parse_outcome, parse_readiness
from streams.deploy.decisions import Ready
from streams.deploy.outcomes import Outcome, outcome_record
from streams.domain.policy import Policies
from streams.domain.readiness import Decision
from streams.domain.signatures import circleci_signature_valid, github_signature_valid
from streams.worker.output import readiness_record

SECRETS = Secrets(b"gh", b"cci")


@pytest.fixture
def policies() -> Policies:
    return load_policies(REPO_ROOT / "autodeploy.yaml")


def test_scenario_is_signed_and_expects_every_service(policies: Policies) -> None:
    scenario = build(policies, SECRETS, "run1")
    assert [len(step.deliveries) for step in scenario.steps] == [4, 3, 6]
    for step in scenario.steps:
        for delivery in step.deliveries:
            if delivery.path == "/webhooks/github":
                assert github_signature_valid([b"gh"], delivery.body, delivery.headers["X-Hub-Signature-256"])
            else:
                assert circleci_signature_valid([b"cci"], delivery.body, delivery.headers["circleci-signature"])
    d = scenario.commits["D"]
    assert scenario.final == {
        ("shop", "staging"): f"ghcr.io/acme/shop:{d}",
        ("shop", "production"): f"ghcr.io/acme/shop:{d}",
        ("shop-worker", "production"): f"ghcr.io/acme/shop-worker:{d}",
    }
    last = {(e.topic, e.service, e.environment, e.kind, scenario.label(e.commit)) for e in scenario.steps[-1].expected}
    # C is superseded where D overtook it, the first environment; it never reached a later one.
    assert {x for x in last if x[3] == "superseded"} == {
        ("readiness", "shop", "staging", "superseded", "C"),
        ("readiness", "shop-worker", "production", "superseded", "C"),
    }
    # D is promoted through both of shop's environments.
    assert {(x[2], x[3]) for x in last if x[1] == "shop" and x[4] == "D"} == {
        ("staging", "ready"),
        ("staging", "rolled out"),
        ("production", "ready"),
        ("production", "rolled out"),
    }
    assert build(policies, SECRETS, "run1").commits == scenario.commits != build(policies, SECRETS, "run2").commits


def test_the_bad_commit_is_stopped_where_it_is_verified(policies: Policies) -> None:
    scenario = build(policies, SECRETS, "run1", bad_commit=True)
    assert len(scenario.steps) == 4
    bad = scenario.steps[-1]
    d, e = scenario.commits["D"], scenario.commits["E"]
    # Only shop verifies (in staging): the demo application fails E's shop image, not shop-worker's.
    assert dict(bad.error_ratios) == {f"ghcr.io/acme/shop:{e}": 0.4}
    assert {(x.topic, x.service, x.environment, x.kind) for x in bad.expected} == {
        ("readiness", "shop", "staging", "ready"),
        ("rollout", "shop", "staging", "rolled out"),
        ("rollout", "shop", "staging", "rolledback"),
        ("readiness", "shop", "production", "rejected"),
        ("readiness", "shop-worker", "production", "ready"),
        ("rollout", "shop-worker", "production", "rolled out"),
    }
    assert scenario.final == {
        ("shop", "staging"): f"ghcr.io/acme/shop:{d}",
        ("shop", "production"): f"ghcr.io/acme/shop:{d}",
        ("shop-worker", "production"): f"ghcr.io/acme/shop-worker:{e}",
    }


def test_the_demo_cannot_approve(policies: Policies) -> None:
    shop = policies.services[0]
    production = replace(shop.promotion[1], approval=True)
    needs_approval = Policies((replace(shop, promotion=(shop.promotion[0], production)), *policies.services[1:]))
    with pytest.raises(ScenarioError, match="production needs an approval"):
        build(needs_approval, SECRETS, "x")


def test_scenario_refuses_a_policy_it_cannot_play(policies: Policies) -> None:
    no_actions = Policies(
        tuple(
            replace(s, required_checks=tuple(c for c in s.required_checks if c.name != "lint"))
            for s in policies.services
        )
    )
    with pytest.raises(ScenarioError, match="GitHub Actions"):
        build(no_actions, SECRETS, "x")
    with pytest.raises(ScenarioError, match="no service deploys"):
        build(policies, SECRETS, "x", repository="github.com/acme/other")


def test_readiness_and_outcome_records_are_read_back() -> None:
    decision = Decision(
        "superseded",
        "shop",
        "github.com/acme/shop",
        "main",
        "c" * 40,
        "id-1",
        "chain",
        (),
        superseded_by="d" * 40,
        decided_at=datetime.now(UTC),
    )
    value = json.loads(readiness_record(decision, "production", "deploy.readiness").value)
    seen = parse_readiness(value)
    assert seen is not None
    assert (seen.topic, seen.service, seen.environment, seen.kind, seen.commit, seen.detail) == (
        "readiness",
        "shop",
        "production",
        "superseded",
        "c" * 40,
        f"by {'d' * 40}",
    )
    ready = Ready("id-2", "chain", "shop", "github.com/acme/shop", "a" * 40, "main", "ghcr.io/acme/shop:a")
    for kind, detail in (("upgraded", "ghcr.io/acme/shop:a"), ("skipped", "newer")):
        outcome = Outcome(kind, ready, "shop", "shop", "staging", "ghcr.io/acme/shop:a", "newer")  # type: ignore[arg-type]
        observed = parse_outcome(json.loads(outcome_record(outcome, "deploy.events").value))
        assert observed is not None
        assert (observed.service, observed.environment, observed.kind, observed.commit, observed.detail) == (
            "shop",
            "staging",
            kind,
            "a" * 40,
            detail,
        )


class Replay:
    """Answers each step with what the pipeline would have said, minus what `drop` names."""

    def __init__(self, answers: list[list[Observed]]) -> None:
        self.answers = answers

    def poll(self, timeout: float) -> list[Observed]:
        return self.answers.pop(0) if self.answers else []


def _answers(
    policies: Policies,
    extra: Observed | None = None,
    drop_last: bool = False,
    ratios: list[tuple[str, float]] | None = None,
) -> tuple[Player, io.StringIO]:
    scenario = build(policies, SECRETS, "r", bad_commit=ratios is not None)
    answers = []
    for step in scenario.steps:
        kinds = {"rolled out": "upgraded"}
        answers.append(
            [
                Observed(e.topic, e.service, e.environment, kinds.get(e.kind, e.kind), e.commit, "", 0)
                for e in sorted(step.expected, key=lambda e: (e.topic, e.service, e.environment, e.kind))
            ]
        )
    if drop_last:
        answers[-1].pop()
    if extra is not None:
        answers[0].append(extra)
    out = io.StringIO()

    def post(delivery: Delivery) -> tuple[int, str]:
        return 200, "{}"

    def set_ratio(image: str, ratio: float) -> None:
        assert ratios is not None
        ratios.append((image, ratio))

    return Player(scenario, post, Replay(answers), out, step_timeout_s=1.0, set_error_ratio=set_ratio), out


def test_player_succeeds_when_every_outcome_arrives(policies: Policies) -> None:
    player, out = _answers(policies)
    assert player.play().ok
    assert "result: every expected outcome arrived" in out.getvalue()
    assert "superseded C" in out.getvalue()
    # Whole SHAs where a person copies them: the commit list at the start.
    a = build(policies, SECRETS, "r").commits["A"]
    assert f"\n  A {a}\n" in out.getvalue()


def test_player_fails_on_a_missing_or_unexpected_outcome(policies: Policies) -> None:
    player, out = _answers(policies, drop_last=True)
    summary = player.play()
    assert not summary.ok and len(summary.missing) == 1 and "MISSING" in out.getvalue()
    scenario = build(policies, SECRETS, "r")
    assert f"{scenario.label(summary.missing[0].commit)} {summary.missing[0].commit} for " in out.getvalue()
    failed = Observed("rollout", "shop", "staging", "failed", scenario.commits["A"], "403", 0)
    player, out = _answers(policies, extra=failed)
    summary = player.play()
    assert summary.unexpected == [failed] and not summary.ok and "UNEXPECTED" in out.getvalue()


def test_player_sets_the_bad_images_error_ratio_before_sending_its_step(policies: Policies) -> None:
    ratios: list[tuple[str, float]] = []
    player, out = _answers(policies, ratios=ratios)
    assert player.play().ok
    e = build(policies, SECRETS, "r", bad_commit=True).commits["E"]
    assert ratios == [(f"ghcr.io/acme/shop:{e}", 0.4)]
    text = out.getvalue()
    assert text.index(f"error ratio of 0.4 for ghcr.io/acme/shop:{e}") < text.index("push E on D")
    assert "1 rejected" in text and "1 rolled back" in text


def test_player_stops_when_a_delivery_is_refused(policies: Policies) -> None:
    player = Player(build(policies, SECRETS, "r"), lambda d: (401, "bad signature"), Replay([]), io.StringIO(), 1.0)
    with pytest.raises(DeliveryRefused, match="401"):
        player.play()
