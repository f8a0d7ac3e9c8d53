"""Signed requests for the webhook endpoints, and an in-memory publisher for tests that need no broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.adapters.kafka_producer import Acknowledged, PublishUnavailable, Record
from streams.demo import deliveries
from streams.demo.deliveries import Delivery
from tests.support.fixtures import fixtures

GITHUB_SECRET = b"github-test-secret"
CIRCLECI_SECRET = b"circleci-test-secret"
EVENTS_TOKEN = b"events-test-token"


def github_delivery(event: str, payload: Any, secret: bytes = GITHUB_SECRET, delivery: str | None = None) -> Delivery:
    return deliveries.github_delivery(event, payload, secret, delivery=delivery)


def circleci_delivery(payload: Any, secret: bytes = CIRCLECI_SECRET) -> Delivery:
    return deliveries.circleci_delivery(payload, secret)


def github_corpus() -> list[tuple[str, Path]]:
    """(event name, file) for every GitHub payload in the shared corpus."""
    found = []
    for path in fixtures("github", recursive=True):
        if path.name == "signature-test-vectors.json" or path.name.endswith(".headers.json"):
            continue
        event = path.name.split("__")[0] if path.parent.name == "zulip" else path.name.split(".")[0]
        found.append((event, path))
    return found


def circleci_corpus() -> list[Path]:
    paths = fixtures("circleci/docs") + fixtures("circleci/zulip")
    return [p for p in paths if p.name != "signature-test-vectors.json"]


@dataclass
class MemoryPublisher:
    """Acknowledges every record at once, or refuses all while `down` is set."""

    records: list[Record] = field(default_factory=list)
    down: bool = False

    async def publish(self, record: Record, timeout: float) -> Acknowledged:
        await asyncio.sleep(0)
        if self.down:
            raise PublishUnavailable("broker down (test)")
        self.records.append(record)
        return Acknowledged(record.topic, 0, len(self.records) - 1)

    def reachable(self, timeout: float) -> bool:
        return not self.down


class AppClient:
    """An aiohttp test client on an event loop of its own, so synchronous tests (and hypothesis) can call it."""

    def __init__(self, app: Any) -> None:
        from aiohttp.test_utils import TestClient, TestServer  # noqa: PLC0415 - test-only import

        self._loop = asyncio.new_event_loop()
        self._client = TestClient(TestServer(app), loop=self._loop)
        self._loop.run_until_complete(self._client.start_server())

    def post(self, delivery: Delivery) -> tuple[int, Any, Mapping[str, str]]:
        return self.request("POST", delivery.path, delivery.body, delivery.headers)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, Any, Mapping[str, str]]:
        async def go() -> tuple[int, Any, Mapping[str, str]]:
            response = await self._client.request(method, path, data=body, headers=dict(headers or {}))
            text = await response.text()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text
            return response.status, parsed, dict(response.headers)

        return self._loop.run_until_complete(go())

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()
