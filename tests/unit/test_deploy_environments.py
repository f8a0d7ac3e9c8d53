"""The deploy agent with environments: a decision goes to its environment's Deployment, gate facts follow on
deploy.gates (keyed by repository), verify queries decide whether the rollout stays, another cluster is refused."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.adapters.kafka_producer import Record
from streams.adapters.kubernetes_deployments import DeploymentView
from streams.adapters.prometheus_api import PrometheusUnreachable
from streams.deploy.agent import DeployAgent
from streams.domain.environments import Comparison, EnvironmentPolicy, Inconclusive, KubernetesTarget, VerifyCheck
from streams.domain.extract import facts_from_event
from streams.domain.facts import RolledBack, RolloutCompleted, VerificationPassed
from streams.domain.policy import Policies
from streams.domain.promotion import EnvironmentDecision
from streams.events.decoding import RawRecord
from streams.worker.output import readiness_record
from tests.support.decisions import ready_decision
from tests.support.signing import TEST_KEY
from tests.unit.test_deploy_against_policy import COMMIT, TEMPLATED, FakeDeployments, agent

IMAGE = f"registry.example/shop:{COMMIT}"
ERRORS = VerifyCheck("error-ratio", 'errors{image="$image"}', Comparison("<", 0.05), timedelta(seconds=0.05))
STAGING = EnvironmentPolicy("staging", KubernetesTarget("shop-staging", "shop", "app"), verify=(ERRORS,))
PRODUCTION = EnvironmentPolicy("production", KubernetesTarget("shop", "shop", "app"), after="staging")
SERVICE = replace(TEMPLATED, target=STAGING.target, environment="staging", promotion=(STAGING, PRODUCTION))


class Deployments(FakeDeployments):
    """FakeDeployments that remembers which Deployment each call was for, and rolls back."""

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: list[str] = []

    def get(self, namespace: str, name: str, container: str) -> DeploymentView:
        self.namespaces.append(namespace)
        return super().get(namespace, name, container)

    def rollback(
        self, view: DeploymentView, previous_image: str, annotations: Mapping[str, str | None]
    ) -> DeploymentView:
        self.calls.append("rollback")
        return self.set_image(view, previous_image, annotations)


def answering(value: float) -> Any:
    def query(expr: str) -> Sequence[Mapping[str, Any]]:
        return [{"metric": {"image": IMAGE}, "value": [0, str(value)]}]

    return query


def staging_record() -> RawRecord:
    decision = ready_decision(IMAGE, commit=COMMIT)
    record = readiness_record(decision, "staging", "deploy.readiness", TEST_KEY)
    return RawRecord(record.topic, 0, 0, record.key, record.value, list(record.headers), datetime.now(UTC))


def production_record(environment: str = "production") -> RawRecord:
    base = ready_decision(IMAGE, commit=COMMIT)
    decision = EnvironmentDecision(
        "ready",
        "shop",
        environment,
        base.repository,
        "main",
        COMMIT,
        "d-prod",
        base.chain_id,
        (),
        datetime.now(UTC),
        IMAGE,
    )
    record = readiness_record(decision, environment, "deploy.readiness", TEST_KEY)
    return RawRecord(record.topic, 0, 0, record.key, record.value, list(record.headers), datetime.now(UTC))


def run(tmp_path: Path, record: RawRecord, query: Any, service: Any = SERVICE) -> tuple[Any, Deployments, list[Record]]:
    deployments, published = Deployments(), list[Record]()
    the_agent: DeployAgent = agent(tmp_path, deployments, published, service)
    if query is not None:
        the_agent = DeployAgent(
            the_agent._settings,
            Policies((service,)),
            _catalog(),
            consumer=None,
            publish=published.append,
            deployments=deployments,  # type: ignore[arg-type]
            verifier=the_agent._verifier,
            signer=TEST_KEY,
            verify_query=query,
        )
    handled = the_agent.handle(record, threading.Event())
    return handled, deployments, published


def _catalog() -> Any:
    from streams import catalog  # noqa: PLC0415 - only here
    from tests.unit.test_deploy_against_policy import REPO_ROOT  # noqa: PLC0415

    return catalog.load(REPO_ROOT / "topics" / "catalog.yaml")


def gate_facts(published: list[Record]) -> list[Any]:
    """What the worker would read of the records on deploy.gates."""
    out = []
    for record in published:
        if record.topic != "deploy.gates":
            continue
        assert record.key == b"github.com/acme/shop"  # the join's key: the repository
        event = orjson.loads(record.value)
        time = datetime.fromisoformat(event["time"])
        out += facts_from_event(event["type"], event["source"], event["id"], time, event["data"])
    return out


def test_a_staging_decision_deploys_staging_verifies_and_reports_gate_facts(tmp_path: Path) -> None:
    handled, deployments, published = run(tmp_path, staging_record(), answering(0.01))
    assert handled.note == "deployed"
    assert set(deployments.namespaces) == {"shop-staging"}
    assert [r.topic for r in published] == ["deploy.events", "deploy.gates", "deploy.gates"]
    completed, verified = gate_facts(published)
    assert isinstance(completed, RolloutCompleted) and (completed.environment, completed.commit) == ("staging", COMMIT)
    assert isinstance(verified, VerificationPassed) and verified.service == "shop"


def test_a_failing_verify_query_rolls_back_with_the_query_and_its_value(tmp_path: Path) -> None:
    handled, deployments, published = run(tmp_path, staging_record(), answering(0.12))
    assert handled.note == "rolledback"
    assert deployments.calls.count("rollback") == 1 and deployments.view.image == "registry.example/shop:v1"
    facts = gate_facts(published)
    assert [type(f).__name__ for f in facts] == ["RolloutCompleted", "RolledBack"]  # no verification passed
    rolled_back = facts[-1]
    assert isinstance(rolled_back, RolledBack)
    assert rolled_back.reason.startswith("verify error-ratio: 0.12 (needs < 0.05)")
    assert rolled_back.environment == "staging"
    outcome = orjson.loads(next(r for r in published if r.topic == "deploy.events" and b"rolledback" in r.value).value)
    assert "error-ratio: 0.12" in outcome["data"]["customData"]["reason"]


@pytest.mark.parametrize(("inconclusive", "note"), [(Inconclusive.HOLD, "deployed"), (Inconclusive.FAIL, "rolledback")])
def test_prometheus_down_never_passes(tmp_path: Path, inconclusive: Inconclusive, note: str) -> None:
    def down(expr: str) -> Sequence[Mapping[str, Any]]:
        raise PrometheusUnreachable("connection refused")

    staging = replace(STAGING, verify=(replace(ERRORS, inconclusive=inconclusive),))
    service = replace(SERVICE, promotion=(staging, PRODUCTION))
    handled, _, published = run(tmp_path, staging_record(), down, service)
    assert handled.note == note
    assert not any(isinstance(f, VerificationPassed) for f in gate_facts(published))


def test_a_production_decision_goes_to_productions_deployment(tmp_path: Path) -> None:
    handled, deployments, published = run(tmp_path, production_record(), answering(0.01))
    assert handled.note == "deployed"
    assert set(deployments.namespaces) == {"shop"}
    [completed] = gate_facts(published)  # production verifies nothing
    assert isinstance(completed, RolloutCompleted) and completed.environment == "production"


def test_an_environment_in_another_cluster_is_blocked_untouched(tmp_path: Path) -> None:
    elsewhere = replace(PRODUCTION, target=replace(PRODUCTION.target, context="prod-eu"))
    service = replace(SERVICE, promotion=(STAGING, elsewhere))
    handled, deployments, published = run(tmp_path, production_record(), answering(0.01), service)
    assert handled.note == "blocked" and deployments.calls == []
    assert "kubeconfig context prod-eu" in orjson.loads(published[0].value)["data"]["subject"]["content"]["reason"]


def test_an_environment_the_service_lacks_is_dead_lettered(tmp_path: Path) -> None:
    handled, deployments, published = run(tmp_path, production_record("qa"), answering(0.01))
    assert handled.dead_letter or handled.note.startswith("dead")
    assert deployments.calls == []
    assert [r.topic for r in published] == ["autodeploy.deadletter"]


def test_only_a_newer_decision_of_the_same_environment_supersedes_a_queued_one(tmp_path: Path) -> None:
    """A production decision queued behind a staging one of a newer commit is not skipped: they are two Deployments."""
    from streams.deploy import pending  # noqa: PLC0415 - only here

    the_agent = agent(tmp_path, Deployments(), [], SERVICE)
    staging, production = the_agent._decode(staging_record()), the_agent._decode(production_record())
    newer_staging = the_agent._decode(staging_record())
    assert pending.newer_ready([production, newer_staging], 0) is None
    assert pending.newer_ready([staging, production, newer_staging], 0) == COMMIT
    assert pending.has_ready_for([newer_staging], "shop", "staging")
    assert not pending.has_ready_for([newer_staging], "shop", "production")
