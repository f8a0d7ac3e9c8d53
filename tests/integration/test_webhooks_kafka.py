"""Webhooks through the real server stack into the real broker, read back with a plain consumer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft7Validator

from streams import catalog
from streams.config import WebhookSettings
from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.webhook_mapping import github_attributes
from streams.webhooks.server import WebhookServer
from tests.support.brokers import SelectedBroker
from tests.support.fixtures import FIXTURES
from tests.support.kafka_io import consume
from tests.support.topics import apply_topics, delete_topics
from tests.support.webhooks import (
    CIRCLECI_SECRET,
    EVENTS_TOKEN,
    GITHUB_SECRET,
    AppClient,
    circleci_corpus,
    circleci_delivery,
    github_corpus,
    github_delivery,
)

CLOUDEVENTS_SCHEMA = Draft7Validator(
    json.loads((FIXTURES / "cloudevents" / "spec" / "formats" / "cloudevents.json").read_text())
)


def webhook_settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "github_secrets": (GITHUB_SECRET,),
        "circleci_secrets": (CIRCLECI_SECRET,),
        "events_tokens": (EVENTS_TOKEN,),
        "allow_unsigned": frozenset(),
        "publish_timeout_s": 10.0,
        "max_body_bytes": 25 * 1024 * 1024,
    }
    values.update(overrides)
    return WebhookSettings(**values)


@pytest.fixture
def pipeline(kafka_broker: SelectedBroker, unique: str) -> Iterator[tuple[catalog.Catalog, AppClient]]:
    cat = apply_topics(kafka_broker, f"w{unique}-")
    client = AppClient(WebhookServer(webhook_settings(), cat, kafka_broker.producer("webhooks")).app())
    yield cat, client
    client.close()
    delete_topics(kafka_broker, cat)


def _check_envelope(message: Any, topic: str) -> dict[str, Any]:
    assert message.topic() == topic
    assert dict(message.headers() or [])["content-type"] == b"application/cloudevents+json"
    event = json.loads(message.value())
    errors = sorted(e.message for e in CLOUDEVENTS_SCHEMA.iter_errors(event))
    assert errors == [], errors
    assert message.key().decode() == event["partitionkey"]
    return event


def test_every_github_corpus_payload_lands_on_github_events(
    kafka_broker: SelectedBroker, pipeline: tuple[catalog.Catalog, AppClient]
) -> None:
    cat, client = pipeline
    sent: dict[str, tuple[str, Any]] = {}
    for i, (event, path) in enumerate(github_corpus()):
        payload = json.loads(path.read_text())
        delivery = github_delivery(event, payload, delivery=f"delivery-{i}")
        status, answer, _ = client.post(delivery)
        assert status == 200, (path.name, answer)
        if event != "ping":
            sent[f"delivery-{i}"] = (event, payload)
    topic = cat.topic("github.events").name
    found = {m.value() and json.loads(m.value())["id"]: m for m in consume(kafka_broker, topic, len(sent))}
    assert sorted(found) == sorted(sent)
    for delivery_id, (event_name, payload) in sent.items():
        event = _check_envelope(found[delivery_id], topic)
        expected = github_attributes(event_name, payload)
        assert (event["type"], event["source"], event.get("subject")) == (
            expected.type,
            expected.source,
            expected.subject,
        )
        assert event["partitionkey"] == expected.partitionkey
        assert event["data"] == payload
    # The corpus has ping deliveries: answered, never published.
    assert not any(json.loads(m.value())["type"].startswith("com.github.ping") for m in found.values())


def test_every_circleci_corpus_payload_lands_on_ci_events(
    kafka_broker: SelectedBroker, pipeline: tuple[catalog.Catalog, AppClient]
) -> None:
    cat, client = pipeline
    sent = {}
    for path in circleci_corpus():
        try:
            payload = json.loads(path.read_text())
        except ValueError:
            continue  # the corpus keeps one invalid docs sample verbatim
        status, answer, _ = client.post(circleci_delivery(payload))
        assert status == 200, (path.name, answer)
        if payload["type"] != "ping":
            sent[payload["id"]] = payload
    topic = cat.topic("ci.events").name
    found = {json.loads(m.value())["id"]: m for m in consume(kafka_broker, topic, len(sent))}
    assert sorted(found) == sorted(sent)
    for delivery_id, payload in sent.items():
        event = _check_envelope(found[delivery_id], topic)
        expected = circleci_attributes(payload)
        assert (event["type"], event["source"], event.get("subject")) == (
            expected.type,
            expected.source,
            expected.subject,
        )
        assert event["data"] == payload
    github_oauth = sent["3888f21b-eaa7-38e3-8f3d-75a63bba8895"]
    assert found[github_oauth["id"]].key() == b"github.com/circleci/webhook-service"


def test_signature_vectors_against_the_running_server(
    kafka_broker: SelectedBroker, pipeline: tuple[catalog.Catalog, AppClient]
) -> None:
    """GitHub's published vector, sent as-is: the signature checks, and the non-JSON body is then refused."""
    vector = json.loads((FIXTURES / "github" / "signature-test-vectors.json").read_text())["vectors"][0]
    server = WebhookServer(
        webhook_settings(github_secrets=(vector["secret"].encode(),)), pipeline[0], kafka_broker.producer("webhooks")
    )
    own = AppClient(server.app())
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "v-1",
        "X-Hub-Signature-256": vector["header_value"],
    }
    status, answer, _ = own.request("POST", "/webhooks/github", vector["body"].encode(), headers)
    assert (status, "JSON" in answer["error"]) == (400, True)  # past the signature, refused as not JSON
    status, _, _ = own.request("POST", "/webhooks/github", vector["body"].encode() + b"!", headers)
    assert status == 401
    own.close()


def test_cloudevents_producers_in_all_three_modes(
    kafka_broker: SelectedBroker, pipeline: tuple[catalog.Catalog, AppClient]
) -> None:
    cat, client = pipeline
    cdevent = json.loads(
        (FIXTURES / "cdevents" / "spec-v0.5.1" / "conformance" / "pipelinerun_finished.json").read_text()
    )
    cdevent["customData"] = {"repository": "github.com/Acme/Shop", "commit": "a" * 40}
    auth = {"Authorization": f"Bearer {EVENTS_TOKEN.decode()}"}
    base = {"specversion": "1.0", "type": "dev.cdevents.pipelinerun.finished.0.3.0", "source": "https://ci.example/x"}
    structured = {**base, "id": "s-1", "datacontenttype": "application/json", "data": cdevent}
    status, answer, _ = client.request(
        "POST", "/events", json.dumps(structured).encode(), {**auth, "Content-Type": "application/cloudevents+json"}
    )
    assert status == 200, answer
    binary_headers = {
        **auth,
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-type": base["type"],
        "ce-source": base["source"],
        "ce-partitionkey": "github.com/acme/shop",
    }
    status, answer, _ = client.request("POST", "/events", json.dumps(cdevent).encode(), binary_headers)
    assert status == 200, answer
    batch = [{**structured, "id": "batch-1"}, {**structured, "id": "batch-2"}]
    status, answer, _ = client.request(
        "POST", "/events", json.dumps(batch).encode(), {**auth, "Content-Type": "application/cloudevents-batch+json"}
    )
    assert status == 200 and len(answer["stored"]) == 2

    undeclared = {**structured, "id": "u-1", "type": "com.example.unknown"}
    status, answer, _ = client.request(
        "POST", "/events", json.dumps(undeclared).encode(), {**auth, "Content-Type": "application/cloudevents+json"}
    )
    assert status == 400 and "not declared" in answer["error"]
    bad_data = {**structured, "id": "x-1", "data": {**cdevent, "subject": {"id": 5}}}
    status, answer, _ = client.request(
        "POST", "/events", json.dumps(bad_data).encode(), {**auth, "Content-Type": "application/cloudevents+json"}
    )
    assert status == 400 and "does not match" in answer["error"]
    status, _, _ = client.request(
        "POST", "/events", json.dumps(structured).encode(), {"Content-Type": "application/cloudevents+json"}
    )
    assert status == 401

    topic = cat.topic("ci.events").name
    found = {json.loads(m.value())["id"]: m for m in consume(kafka_broker, topic, 4)}
    assert sorted(found) == ["b-1", "batch-1", "batch-2", "s-1"]
    for message in found.values():
        event = _check_envelope(message, topic)
        assert message.key() == b"github.com/acme/shop"
        assert event["data"] == cdevent
