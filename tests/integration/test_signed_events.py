"""Signed events on the real broker: the worker (as `autodeploy worker` runs it) verifies every input event against
the key directory at the record's log time, and only verified ones become facts; it signs its decisions."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer

from streams import catalog
from streams.adapters.kafka_producer import Record
from streams.config import REPO_ROOT
from streams.events.decoding import RawRecord
from streams.events.signing import DirectoryVerifier
from streams.webhooks.server import WebhookServer
from tests.integration.test_webhooks_kafka import webhook_settings
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.scenario import History, sha
from tests.support.signing import FORGER, TEST_KEY, write_directory
from tests.support.webhooks import AppClient, MemoryPublisher
from tests.support.worker import Worker, decisions, summary

ZERO = "0" * 40
CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")


def records(history: History, *, signed_by: object = TEST_KEY) -> list[Record]:
    """The records the webhook server writes for `history`'s deliveries (logical topic names), signed by
    `signed_by` (None: unsigned)."""
    publisher = MemoryPublisher()
    client = AppClient(WebhookServer(webhook_settings(), CAT, publisher, signer=signed_by).app())  # type: ignore[arg-type]
    try:
        for delivery in history.deliveries:
            status, answer, _ = client.post(delivery)
            assert status == 200, answer
    finally:
        client.close()
    return list(publisher.records)


def produce(broker: SelectedBroker, cat: catalog.Catalog, out: list[Record]) -> None:
    producer = Producer(broker.config({"partitioner": "murmur2_random"}))
    for record in out:
        producer.produce(cat.topic(record.topic).name, record.value, record.key, headers=list(record.headers))
    assert producer.flush(30) == 0


def complete(commit: str) -> History:
    return History().push(ZERO, commit).circleci(commit, "success").actions(commit, "success")


def worker_metric(worker: Worker, name: str, **labels: str) -> float:
    port = worker.env["AUTODEPLOY_WORKER_PORT"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_unsigned_forged_and_tampered_events_decide_nothing_and_replays_change_nothing(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient], tmp_path: Path
) -> None:
    cat, worker, _ = worker_pipeline
    unsigned, forged, tampered, good = (sha(f"signed-{x}") for x in ("unsigned", "forged", "tampered", "good"))
    # Each bad commit has good CI events: only its push is bad, so without the push there is nothing to decide.
    bad_pushes = [
        records(History().push(ZERO, unsigned), signed_by=None)[0],
        records(History().push(ZERO, forged), signed_by=FORGER)[0],
    ]
    push = records(History().push(ZERO, tampered))[0]
    value = push.value.replace(b'"removed": []', b'"removed": ["SECURITY.md"]', 1)
    assert value != push.value
    bad_pushes.append(Record(push.topic, push.key, value, push.headers))
    checks = [r for c in (unsigned, forged, tampered) for r in records(complete(c))[1:]]
    produce(kafka_broker, cat, [*bad_pushes, *checks])
    worker.start()
    good_records = records(complete(good))
    produce(kafka_broker, cat, good_records)
    found = decisions(kafka_broker, cat, 2, worker)  # two services on the repository
    assert summary(found) == {("ready", good)}

    letters = consume(kafka_broker, cat.topic("autodeploy.deadletter").name, 3, timeout=30)
    reasons = sorted(dict(m.headers())["deadletter_reason"].decode() for m in letters)
    assert len(reasons) == 3, reasons
    assert all(r.startswith("signature: ") for r in reasons)
    assert [r.split(":")[1].strip() for r in reasons] == ["core_digest_mismatch", "unknown_key", "unsigned"]
    assert worker_metric(worker, "autodeploy_worker_deadletters_total", reason="signature") == 3

    # The decisions are signed by the worker's key (the tests' key here) and verify against the directory.
    verifier = DirectoryVerifier(write_directory(tmp_path / "d.yaml"))
    for message in consume(kafka_broker, cat.topic("deploy.readiness").name, 2):
        raw = RawRecord(message.topic(), 0, 0, message.key(), message.value(), message.headers() or [])
        verified = verifier.verify_record(raw, datetime.now(UTC))
        assert verified is not None and verified.key_id == TEST_KEY.key_id

    # A signed event replayed (the same source + id, signature and all) is a duplicate: nothing new is decided.
    produce(kafka_broker, cat, good_records)
    again = consume(kafka_broker, cat.topic("deploy.readiness").name, 3, timeout=15, keep_going=worker.alive)
    assert len(again) == 2, [json.loads(m.value())["id"] for m in again]
    assert worker_metric(worker, "autodeploy_worker_deadletters_total", reason="signature") == 3
