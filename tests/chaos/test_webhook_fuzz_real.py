""">= 10k generated requests against the real webhook server and the real broker: never a 5xx, nothing published
from a forged request, and exactly what was acknowledged is on Kafka."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streams.domain.signatures import circleci_signature, github_signature
from tests.chaos.conftest import figures
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import read_all
from tests.support.topics import apply_topics, delete_topics
from tests.support.webhook_process import webhook_server
from tests.support.webhooks import (
    CIRCLECI_SECRET,
    EVENTS_TOKEN,
    GITHUB_SECRET,
    circleci_corpus,
    github_corpus,
)

pytestmark = pytest.mark.timeout(900)

REQUESTS = 10_000
FORGED = "forged-"  # in every forged request's ids, and in no other request
_CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "multipart/form-data"]
_CI_TYPES = ["dev.cdevents.pipelinerun.finished.0.3.0", "dev.cdevents.artifact.published.0.3.0", "com.github.push"]


class Generator:
    """Seeded: corpus payloads, mutated or not, signed right or forged, in the envelopes each endpoint takes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.github = [(event, json.loads(path.read_text())) for event, path in github_corpus()]
        self.circleci = [json.loads(path.read_text()) for path in circleci_corpus()]
        self.github = [(e, p) for e, p in self.github if isinstance(p, dict)]
        self.circleci = [p for p in self.circleci if isinstance(p, dict)]

    def mutate_value(self, value: Any) -> Any:
        rng = self.rng
        if isinstance(value, dict) and value and rng.random() < 0.7:
            key = rng.choice(list(value))
            out = dict(value)
            choice = rng.random()
            if choice < 0.3:
                del out[key]
            elif choice < 0.8:
                out[key] = self.mutate_value(value[key])
            else:
                out[rng.choice(["", "\u0000", "é" * 3, "id", "type"])] = rng.choice([None, 1, "x", [], {}])
            return out
        return rng.choice([None, True, -1, 2**70, 1.5e308, "", "\ud7ff" * 5, "0" * 40, [], {}, [value], "A" * 300])

    def body(self, payload: Any) -> bytes:
        rng = self.rng
        if rng.random() < 0.4:
            payload = self.mutate_value(payload)
        raw = json.dumps(payload).encode()
        roll = rng.random()
        if roll < 0.1:
            raw = raw[: rng.randrange(len(raw) + 1)]
        elif roll < 0.15:
            i = rng.randrange(len(raw)) if raw else 0
            raw = raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]
        elif roll < 0.18:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        return raw

    def request(self, n: int) -> tuple[str, str, bytes, dict[str, str], bool]:
        """(method, path, body, headers, forged)."""
        rng = self.rng
        forged = rng.random() < 0.3
        tag = f"{FORGED}{n}" if forged else f"fuzz-{n}"
        roll = rng.random()
        if roll < 0.02:
            path = rng.choice(["/webhooks/github", "/events", "/webhooks/nope", "/", "/metrics/../webhooks/github"])
            return rng.choice(["GET", "PUT", "DELETE", "POST"]), path, b"{}", {}, False
        if roll < 0.45:
            event, payload = rng.choice(self.github)
            if forged:
                payload = {**payload, "forged": tag}
            body = self.body(payload)
            if rng.random() < 0.1:
                body = b"payload=" + body
            headers = {
                "Content-Type": "application/x-www-form-urlencoded"
                if body.startswith(b"payload=")
                else "application/json",
                "X-GitHub-Event": event if rng.random() < 0.9 else rng.choice(["", "push ", "\u00e9", "x" * 300]),
                "X-GitHub-Delivery": tag,
            }
            secret = GITHUB_SECRET if not forged else rng.choice([b"wrong", b""])
            headers["X-Hub-Signature-256"] = github_signature(secret, body) if secret else rng.choice(["", "sha256=zz"])
            if forged and rng.random() < 0.3:
                headers["X-Hub-Signature-256"] = github_signature(GITHUB_SECRET, body + b" ")  # another body's
            return "POST", "/webhooks/github", body, headers, forged
        if roll < 0.8:
            payload = dict(rng.choice(self.circleci))
            payload["id"] = tag
            body = self.body(payload)
            headers = {"Content-Type": rng.choice(["application/json", *_CONTENT_TYPES])}
            if forged:
                headers["circleci-signature"] = rng.choice(["", "v1=00", circleci_signature(b"wrong", body)])
            else:
                headers["circleci-signature"] = circleci_signature(CIRCLECI_SECRET, body)
            return "POST", "/webhooks/circleci", body, headers, forged
        event = {
            "specversion": "1.0",
            "id": tag,
            "source": f"/ci/{tag}",
            "type": rng.choice(_CI_TYPES),
            "partitionkey": rng.choice(["github.com/acme/shop", "", "x"]),
            "subject": tag,
            "data": self.mutate_value({"subject": {"id": tag}, "customData": {"commit": "a" * 40}}),
        }
        batch = rng.random() < 0.2
        body = self.body([event, {**event, "id": f"{tag}-b"}] if batch else event)
        headers = {
            "Content-Type": "application/cloudevents-batch+json" if batch else "application/cloudevents+json",
            "Authorization": f"Bearer {EVENTS_TOKEN.decode()}" if not forged else rng.choice(["", "Bearer nope"]),
        }
        return "POST", "/events", body, headers, forged


async def _send(url: str, requests: list[tuple[str, str, bytes, dict[str, str], bool]]) -> list[tuple[int, Any]]:
    answers: list[tuple[int, Any]] = [(0, None)] * len(requests)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(requests)):
        queue.put_nowait(i)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            method, path, body, headers, _ = requests[i]
            async with session.request(method, url + path, data=body, headers=headers) as response:
                text = await response.read()
                try:
                    answers[i] = (response.status, json.loads(text))
                except ValueError:
                    answers[i] = (response.status, text)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(client(session) for _ in range(16)))
    return answers


def test_10k_fuzzed_requests_to_the_real_server_never_500_and_forged_ones_publish_nothing(
    kafka_broker: SelectedBroker, unique: str, tmp_path: Path
) -> None:
    prefix = f"f{unique}-"
    cat = apply_topics(kafka_broker, prefix)
    generator = Generator(seed=8)
    requests = [generator.request(n) for n in range(REQUESTS)]
    topics = [cat.topic(n).name for n in ("github.events", "ci.events", "autodeploy.deadletter")]
    try:
        with webhook_server(kafka_broker.bootstrap_servers, prefix, tmp_path / "webhooks.log"):
            pass
        with webhook_server(kafka_broker.bootstrap_servers, prefix, tmp_path / "webhooks.log") as url:
            answers = asyncio.run(_send(url, requests))
        acknowledged = {
            (s["topic"], s["partition"], s["offset"])
            for status, answer in answers
            if status == 200 and isinstance(answer, dict) and isinstance(answer.get("stored"), list)
            for s in answer["stored"]
        }
        deadlettered = sum(
            1 for status, a in answers if status == 200 and isinstance(a, dict) and a.get("stored") == "deadletter"
        )
        found = read_all(kafka_broker, topics, lambda m: len(m) >= len(acknowledged) + deadlettered, 120)
    finally:
        delete_topics(kafka_broker, cat)

    statuses = Counter(status for status, _ in answers)
    forged_statuses = Counter(status for (status, _), r in zip(answers, requests, strict=True) if r[4])
    on_inputs = {(m.topic(), m.partition(), m.offset()) for m in found if m.topic() != topics[2]}
    from_forged = [m for m in found if FORGED.encode() in (m.value() or b"") + repr(m.headers()).encode()]
    figures(
        "webhook fuzz (real server, real broker)",
        requests=len(requests),
        forged=sum(forged_statuses.values()),
        statuses=dict(sorted(statuses.items())),
        acknowledged=len(acknowledged) + deadlettered,
        found=len(found),
        published_from_forged=len(from_forged),
        lost=len(acknowledged - on_inputs),
    )
    assert not [s for s in statuses if s >= 500 or s == 0], statuses
    assert set(forged_statuses) <= {400, 401, 404, 405, 413, 415}, forged_statuses
    assert from_forged == []
    assert on_inputs == acknowledged, "on Kafka: exactly the acknowledged events"
    assert len(found) - len(on_inputs) == deadlettered
    # The generator must get past the signature check and through to Kafka, or this proves little.
    assert statuses[401] > 0 and statuses[400] > 0 and statuses[200] > 1000, statuses
