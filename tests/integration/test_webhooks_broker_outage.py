"""Stop the real broker mid-stream: only 503s while it is down, and every 2xx is on Kafka afterwards, as sent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.demo.deliveries import NULL_SHA, Payloads
from streams.local import kafka
from streams.webhooks.server import WebhookServer
from tests.integration.test_webhooks_kafka import webhook_settings
from tests.support.brokers import SelectedBroker, local_broker
from tests.support.kafka_io import consume
from tests.support.topics import apply_topics
from tests.support.webhooks import AppClient, github_delivery


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> Iterator[SelectedBroker]:
    # A broker of this test's own, since it gets stopped; the session broker has cached the jars already.
    monkeypatch.setenv("AUTODEPLOY_STATE_DIR", str(tmp_path))
    yield local_broker(kafka.up())
    kafka.down()


def test_broker_outage_gives_only_503s_and_loses_no_acknowledged_event(own_broker: SelectedBroker) -> None:
    cat = apply_topics(own_broker, "outage-")
    producer = own_broker.producer("webhooks", {"message.timeout.ms": 20_000})
    client = AppClient(WebhookServer(webhook_settings(publish_timeout_s=2.0), cat, producer).app())
    phase = "before"
    results: list[tuple[str, str, int, dict[str, object]]] = []  # (phase, delivery id, status, payload)
    stop = threading.Event()

    def outage() -> None:
        nonlocal phase
        time.sleep(3)
        kafka.down()
        phase = "down"
        time.sleep(6)
        phase = "restarting"
        kafka.up()
        phase = "after"
        time.sleep(4)
        stop.set()

    # The first publish also fetches the idempotent producer's id, which can outlast the timeout on a busy machine.
    warm = github_delivery("push", {"repository": {"full_name": "acme/shop"}}, delivery="outage-warmup")
    deadline = time.monotonic() + 30
    while client.post(warm)[0] != 200:
        assert time.monotonic() < deadline, "the producer never got ready"
    thread = threading.Thread(target=outage)
    thread.start()
    i = 0
    try:
        while not stop.is_set():
            seen = phase
            payload = {**Payloads("acme/shop").push(NULL_SHA, f"{i:040x}", datetime.now(UTC)), "seq": i}
            status, _, headers = client.post(github_delivery("push", payload, delivery=f"outage-{i}"))
            ended = phase
            # A request that straddled a transition belongs to neither side.
            results.append((seen if seen == ended else "transition", f"outage-{i}", status, payload))
            if status == 503:
                assert headers["Retry-After"]
            i += 1
    finally:
        thread.join()
        client.close()
        producer.close(5)

    statuses = {p: sorted({s for ph, _, s, _ in results if ph == p}) for p in ("before", "down", "after")}
    assert statuses["before"] == [200]
    assert statuses["down"] == [503], statuses
    assert 200 in statuses["after"]
    assert {s for _, _, s, _ in results} <= {200, 503}, "never anything but stored or retry-later"

    acknowledged = {d: p for _, d, s, p in results if s == 200}
    found = consume(own_broker, cat.topic("github.events").name, len(acknowledged))
    on_kafka = {json.loads(m.value())["id"]: json.loads(m.value())["data"] for m in found}
    missing = sorted(set(acknowledged) - set(on_kafka))
    assert missing == [], f"{len(missing)} acknowledged deliveries missing"
    assert all(on_kafka[d] == p for d, p in acknowledged.items())
    down_count = sum(1 for ph, *_ in results if ph == "down")
    print(
        f"\nsent {len(results)}, acknowledged {len(acknowledged)}, 503 while down {down_count}, "
        f"found {len(set(on_kafka) & set(acknowledged))}, lost 0"
    )
