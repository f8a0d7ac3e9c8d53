"""The records a commit page shows in full: each fact's webhook, read from the log where its decision says it is
(topic, partition, offset), verified, and remembered (records never change)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.board.entries import Position
from streams.board.feed import Verifier, event_of, raw_record
from streams.events.verification_errors import VerificationFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    event: dict[str, Any] | None  # None: not read (see `problem`)
    signed_by: str | None = None
    problem: str = ""  # why it could not be read or trusted

    @property
    def link(self) -> str | None:
        return provider_link(self.event) if self.event is not None else None


def _get(data: Any, *path: str) -> str | None:
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data if isinstance(data, str) and data.startswith("https://") else None


def provider_link(event: Mapping[str, Any]) -> str | None:  # noqa: PLR0911 - one return per provider's field
    """The provider's page for the event, taken from its payload (GitHub, CircleCI, CDEvents)."""
    type_, data = str(event.get("type", "")), event.get("data")
    if type_ == "com.github.push":
        return _get(data, "head_commit", "url") or _get(data, "compare")
    for name in ("workflow_run", "check_run", "pull_request"):
        if type_.startswith(f"com.github.{name}"):
            return _get(data, name, "html_url")
    if type_ == "com.github.status":
        return _get(data, "target_url") or _get(data, "commit", "html_url")
    if type_.startswith(("com.github.package", "com.github.registry_package")):
        return _get(data, "package", "package_version", "html_url") or _get(data, "package", "html_url")
    if type_.startswith("com.circleci."):
        return _get(data, "workflow", "url") or _get(data, "job", "url") or _get(data, "pipeline", "trigger", "url")
    if type_.startswith("dev.cdevents."):
        return _get(data, "subject", "content", "url")
    return None


class RecordFetcher:
    def __init__(self, config: Mapping[str, Any], verifier: Verifier | None, cache_size: int = 4096) -> None:
        self._config = {
            **config,
            "group.id": config.get("group.id") or "autodeploy-board",  # never joined nor committed
            "enable.auto.commit": False,
        }
        self._verifier = verifier
        self._cache: OrderedDict[Position, Fetched] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None

    def fetch(self, position: Position, timeout_s: float = 5.0) -> Fetched:
        """Blocking: call it from a thread."""
        with self._lock:
            cached = self._cache.get(position)
            if cached is not None:
                return cached
            fetched = self._read(position, timeout_s)
            if fetched.event is not None:  # a failure is not remembered: the broker may be back next time
                self._cache[position] = fetched
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return fetched

    def _read(self, position: Position, timeout_s: float) -> Fetched:
        try:
            if self._consumer is None:
                self._consumer = Consumer(self._config)
            consumer = self._consumer
            consumer.assign([TopicPartition(position.topic, position.partition, position.offset)])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for message in consumer.consume(1, 0.5):
                    if message.error() is None and message.offset() == position.offset:
                        return self._verified(message, position)
            return Fetched(None, problem="not read in time (retention may have removed it, or the broker is down)")
        except KafkaException as e:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            return Fetched(None, problem=f"broker: {e}")

    def _verified(self, message: Any, position: Position) -> Fetched:
        record = raw_record(message)
        at = record.timestamp or datetime.now(UTC)
        try:
            verified = self._verifier.verify_record(record, at) if self._verifier is not None else None
        except VerificationFailed as e:
            return Fetched(None, problem=f"signature not verified: {e}")
        try:
            event = event_of(record)
        except ValueError as e:
            return Fetched(None, problem=f"not a CloudEvent: {e}")
        return Fetched(event, verified.key_id if verified is not None else None)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
