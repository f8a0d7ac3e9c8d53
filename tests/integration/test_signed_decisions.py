"""The deploy agent verifies each decision before it touches the cluster, against the key directory at the record's
log time, and signs its outcomes (real broker, local control plane)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streams import catalog
from streams.adapters.kafka_producer import Record
from streams.adapters.kubernetes_deployments import DeploymentsClient
from streams.deploy import decisions
from streams.events.decoding import RawRecord
from streams.events.signing import DirectoryVerifier
from streams.worker.output import readiness_record
from tests.integration import test_deploy_agent as agent_tests
from tests.integration.test_deploy_agent import events, produce, ready, running_agent, wait_handled
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.kube import C2, V1, V2
from tests.support.signing import FORGER, TEST_KEY, directory_entry, named_key, write_directory

pytestmark = pytest.mark.timeout(900)

REVOKED = named_key("revoked")
shop = agent_tests.shop  # the fixtures: a Deployment `shop` at V1, and the test's topics
topics = agent_tests.topics


def produce_record(broker: SelectedBroker, record: Record) -> None:
    producer = Producer(broker.config({"partitioner": "murmur2_random"}, role="worker"))
    producer.produce(record.topic, record.value, record.key, headers=list(record.headers))
    assert producer.flush(10) == 0


def test_forged_tampered_and_revoked_decisions_patch_nothing_and_outcomes_are_signed(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str, tmp_path: Path
) -> None:
    revoked_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    directory = write_directory(
        tmp_path / "directory.yaml", directory_entry(TEST_KEY), directory_entry(REVOKED, revoked_at=revoked_at)
    )
    verifier = DirectoryVerifier(directory)
    topic = topics.topic("deploy.readiness").name
    forged, tampered, revoked, good = (ready(V2) for _ in range(4))
    produce(kafka_broker, topics, forged, FORGER)
    signed = readiness_record(tampered, "production", topic, TEST_KEY)
    value = signed.value.replace(V2.encode(), b"registry.example/evil:latest")
    assert value != signed.value
    produce_record(kafka_broker, Record(signed.topic, signed.key, value, signed.headers))
    produce(kafka_broker, topics, revoked, REVOKED)  # signed with a key revoked before the record was written
    k8s = DeploymentsClient(admin)
    with running_agent(kafka_broker, topics, shop, k8s, verifier=verifier, signer=TEST_KEY) as handled:
        refused = [wait_handled(handled, n) for n in (1, 2, 3)]
        view = k8s.get(shop, "shop", "app")
        assert view.image == V1 and decisions.READINESS_EVENT not in view.annotations, "nothing was patched"
        produce(kafka_broker, topics, good)
        deployed = wait_handled(handled, 4)
    assert [h.note for h in refused] == ["blocked", "blocked", "blocked"]
    reasons = [h.outcome.reason or "" for h in refused if h.outcome is not None]
    assert [r.split(":")[1].strip() for r in reasons] == ["unknown_key", "core_digest_mismatch", "key_not_accepted"]
    assert "revoked" in reasons[2]
    assert deployed.note == "deployed"
    assert k8s.get(shop, "shop", "app").annotations[decisions.READINESS_EVENT] == good.decision_id

    letters = consume(kafka_broker, topics.topic("autodeploy.deadletter").name, 3, timeout=20)
    assert sorted(dict(m.headers())["deadletter_origin"] for m in letters) == [b"deploy-agent"] * 3
    assert all(dict(m.headers())["deadletter_reason"].startswith(b"signature: ") for m in letters)

    found = events(kafka_broker, topics, 4)
    kinds = [e["type"].split(".")[-4] for e in found]
    assert kinds == ["blocked", "blocked", "blocked", "deployed"]
    for message in consume(kafka_broker, topics.topic("deploy.events").name, 4):
        raw = RawRecord(message.topic(), 0, 0, message.key(), message.value(), message.headers() or [])
        verified = verifier.verify_record(raw, datetime.now(UTC))
        assert verified is not None and verified.key_id == TEST_KEY.key_id, "the agent signs its outcomes"


def test_a_replayed_signed_decision_patches_nothing_more(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str, tmp_path: Path
) -> None:
    verifier = DirectoryVerifier(write_directory(tmp_path / "directory.yaml"))
    decision = ready(V2)
    record = readiness_record(decision, "production", topics.topic("deploy.readiness").name, TEST_KEY)
    k8s = DeploymentsClient(admin)
    with running_agent(kafka_broker, topics, shop, k8s, verifier=verifier, signer=TEST_KEY) as handled:
        produce_record(kafka_broker, record)
        assert wait_handled(handled, 1).note == "deployed"
        generation = k8s.get(shop, "shop", "app").generation
        produce_record(kafka_broker, record)  # the same bytes, signature and all, again
        again = wait_handled(handled, 2)
        view = k8s.get(shop, "shop", "app")
    assert again.note == "deployed"  # reported again with the same outcome id: a duplicate downstream
    assert again.outcome is not None and again.outcome.event_id == handled[0].outcome.event_id  # type: ignore[union-attr]
    assert view.image == V2 and view.annotations[decisions.READINESS_EVENT] == decision.decision_id
    assert view.generation == generation, "no second patch"


def test_a_correctly_signed_decision_the_policy_does_not_allow_patches_nothing(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str, tmp_path: Path
) -> None:
    """Defense in depth: the signature verifies, but the image is not the service's template filled with the commit
    (nor is the other one's repository the service's): blocked, whoever signed it, and the next allowed one deploys."""
    verifier = DirectoryVerifier(write_directory(tmp_path / "directory.yaml", directory_entry(TEST_KEY)))
    wrong_image = replace(ready(V2), image="registry.example/evil:v2")
    wrong_repository = ready(V2, repository="github.com/evil/shop")
    good = ready(V2)
    for decision in (wrong_image, wrong_repository):
        produce(kafka_broker, topics, decision, TEST_KEY)
    k8s = DeploymentsClient(admin)
    with running_agent(kafka_broker, topics, shop, k8s, verifier=verifier, signer=TEST_KEY) as handled:
        refused = [wait_handled(handled, n) for n in (1, 2)]
        view = k8s.get(shop, "shop", "app")
        assert view.image == V1 and decisions.READINESS_EVENT not in view.annotations, "nothing was patched"
        produce(kafka_broker, topics, good)
        deployed = wait_handled(handled, 3)
    assert [h.note for h in refused] == ["blocked", "blocked"]
    assert not any(h.dead_letter for h in refused)
    reasons = [h.outcome.reason or "" for h in refused if h.outcome is not None]
    assert reasons[0].startswith(f"policy: image registry.example/evil:v2 is not the service's image for commit {C2}")
    assert reasons[1].startswith("policy: repository github.com/evil/shop is not the service's repository")
    assert deployed.note == "deployed"
    assert k8s.get(shop, "shop", "app").annotations[decisions.READINESS_EVENT] == good.decision_id
    found = events(kafka_broker, topics, 3)
    assert [e["type"].split(".")[-4] for e in found] == ["blocked", "blocked", "deployed"]
    assert found[0]["data"]["subject"]["content"]["reason"] == reasons[0]
