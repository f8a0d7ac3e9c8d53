"""Stop the broker while 16 clients post signed webhooks to the real webhook server: only 503s while it is down,
and every 2xx-acknowledged event is on Kafka afterwards, as sent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from streams.demo.deliveries import NULL_SHA, Payloads
from streams.local import kafka
from tests.chaos.conftest import figures
from tests.support.brokers import SelectedBroker, local_broker
from tests.support.kafka_io import read_all
from tests.support.topics import apply_topics
from tests.support.webhook_process import webhook_server
from tests.support.webhooks import github_delivery

pytestmark = pytest.mark.timeout(900)

CLIENTS = 16


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> Iterator[SelectedBroker]:
    # A broker of this test's own, since it gets stopped; the session broker has cached the jars already.
    monkeypatch.setenv("AUTODEPLOY_STATE_DIR", str(tmp_path / "state"))
    yield local_broker(kafka.up())
    kafka.down()


class Phases:
    """before -> down -> restarting -> after; a request that straddles a change belongs to none."""

    def __init__(self) -> None:
        self.now = "before"
        self.stop = threading.Event()

    def run_outage(self, up_s: float = 8, down_s: float = 10, after_s: float = 8) -> None:
        time.sleep(up_s)
        kafka.down()
        self.now = "down"
        time.sleep(down_s)
        self.now = "restarting"
        kafka.up()
        self.now = "after"
        time.sleep(after_s)
        self.stop.set()


async def _post_until_stopped(url: str, phases: Phases) -> list[tuple[str, str, int, dict[str, object]]]:
    results: list[tuple[str, str, int, dict[str, object]]] = []  # (phase, delivery id, status, payload)
    counter = iter(range(10**9))

    async def client(session: aiohttp.ClientSession) -> None:
        while not phases.stop.is_set():
            i = next(counter)
            payload: dict[str, object] = Payloads(f"acme/repo{i % 50}").push(NULL_SHA, f"{i:040x}", datetime.now(UTC))
            payload["seq"] = i
            delivery = github_delivery("push", payload, delivery=f"outage-{i}")
            seen = phases.now
            async with session.post(url + delivery.path, data=delivery.body, headers=dict(delivery.headers)) as answer:
                await answer.read()
                if answer.status == 503:
                    assert answer.headers["Retry-After"]
                    await asyncio.sleep(0.05)  # as a sender honouring Retry-After would, only shorter
            ended = phases.now
            results.append((seen if seen == ended else "transition", f"outage-{i}", answer.status, payload))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    return results


def test_broker_outage_under_16_clients_gives_only_503s_and_loses_no_acknowledged_event(
    own_broker: SelectedBroker, tmp_path: Path
) -> None:
    cat = apply_topics(own_broker, "outage-")
    phases = Phases()
    with webhook_server(
        own_broker.bootstrap_servers, "outage-", tmp_path / "webhooks.log", AUTODEPLOY_PUBLISH_TIMEOUT_S="1"
    ) as url:
        outage = threading.Thread(target=phases.run_outage)
        outage.start()
        try:
            results = asyncio.run(_post_until_stopped(url, phases))
        finally:
            phases.stop.set()
            outage.join()

    statuses = {p: Counter(s for ph, _, s, _ in results if ph == p) for p in ("before", "down", "transition", "after")}
    acknowledged = {d: p for _, d, s, p in results if s == 200}
    topic = cat.topic("github.events").name
    found = read_all(own_broker, [topic], lambda m: len(m) >= len(acknowledged), 120)
    on_kafka = {json.loads(m.value())["id"]: json.loads(m.value())["data"] for m in found}
    missing = sorted(set(acknowledged) - set(on_kafka))
    figures(
        "broker outage (16 clients, real server)",
        sent=len(results),
        acknowledged=len(acknowledged),
        answered_503_while_down=statuses["down"][503],
        found=len(set(on_kafka) & set(acknowledged)),
        on_kafka_after_a_503=len(set(on_kafka) - set(acknowledged)),
        lost=len(missing),
        statuses={p: dict(c) for p, c in statuses.items()},
    )
    assert set(statuses["before"]) == {200}
    assert set(statuses["down"]) == {503} and statuses["down"][503] >= CLIENTS, statuses
    assert 200 in statuses["after"]
    assert {s for _, _, s, _ in results} <= {200, 503}, "never anything but stored or retry-later"
    assert missing == [], f"{len(missing)} acknowledged deliveries missing"
    assert all(on_kafka[d] == p for d, p in acknowledged.items())
