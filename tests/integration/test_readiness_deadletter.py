"""Records the worker cannot use go to autodeploy.deadletter with the reason; the worker neither crashes nor stalls."""

from __future__ import annotations

import json
from datetime import datetime

from confluent_kafka import Producer

from streams import catalog
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.scenario import History, sha
from tests.support.webhooks import AppClient
from tests.support.worker import Worker, decisions, send, summary

ZERO = "0" * 40
GOOD = sha("deadletter-good")


def test_bad_records_are_dead_lettered_with_reasons_and_the_good_ones_still_decide(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    cat, worker, client = worker_pipeline
    github, ci = cat.topic("github.events").name, cat.topic("ci.events").name
    producer = Producer(kafka_broker.config({"partitioner": "murmur2_random"}))
    key = b"github.com/acme/shop"
    structured = [("content-type", b"application/cloudevents+json")]
    bad_push = {
        "specversion": "1.0",
        "id": "bad-push",
        "source": "https://api.github.com/repos/acme/shop",
        "type": "com.github.push",
        "data": {"ref": "refs/heads/main", "repository": {"full_name": "acme/shop"}},
    }
    undeclared = {"specversion": "1.0", "id": "odd", "source": "/x", "type": "com.example.unknown", "data": {}}
    producer.produce(github, key=key, value=b"\x00not json at all", headers=structured)
    producer.produce(github, key=key, value=json.dumps(bad_push).encode(), headers=structured)
    producer.produce(ci, key=key, value=json.dumps(undeclared).encode(), headers=structured)
    producer.produce(github, key=key, value=b"", headers=structured)
    assert producer.flush(30) == 0

    worker.start()
    good = History().push(ZERO, GOOD).circleci(GOOD, "success").actions(GOOD, "success")
    send(client, good)
    found = decisions(kafka_broker, cat, 2, worker)
    assert summary(found) == {("ready", GOOD)}

    letters = consume(kafka_broker, cat.topic("autodeploy.deadletter").name, 4, timeout=30)
    reasons = {dict(m.headers())["deadletter_reason"].decode(): m for m in letters}
    assert len(letters) == 4, sorted(reasons)
    assert any(r.startswith("not a CloudEvent") for r in reasons)
    assert any(
        "com.github.push: data does not match its schema" in r and '"before" is a required property' in r
        for r in reasons
    )
    assert any("'com.example.unknown' is not declared" in r for r in reasons)
    assert any("empty record value" in r for r in reasons)
    for message in letters:
        headers = dict(message.headers())
        # The scheme every process writes (topics/catalog.yaml, autodeploy.deadletter), the record's own headers kept.
        assert headers["content-type"] == b"application/cloudevents+json"
        assert headers["deadletter_origin"] == b"worker"
        assert headers["deadletter_topic"].decode() in (github, ci)
        assert 0 <= int(headers["deadletter_partition"]) < cat.topic("github.events").partitions
        assert int(headers["deadletter_offset"]) >= 0
        assert datetime.fromisoformat(headers["deadletter_time"].decode()).tzinfo is not None
        assert message.key() == key
    assert b"\x00not json at all" in {m.value() for m in letters}, "the bytes are kept as read"
