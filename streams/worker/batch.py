"""One batch of the readiness agent: what it folded, and how a Faust event is made current for table access."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Private: Faust offers no public way to make an event current (Stream._set_current_event is private too), only
# `faust.current_event()` to read it. tests/unit/test_faust_current_event.py fails if the two part ways.
from faust.streams import _current_event
from faust.types import EventT

from streams.adapters.kafka_producer import Record
from streams.domain.fold import Decided
from streams.domain.readiness import RepositoryState
from streams.events.decoding import RawRecord


@contextlib.contextmanager
def current(event: EventT[Any]) -> Iterator[None]:
    """Make `event` Faust's current event: a table read or write goes to (the changelog of) its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def received(message: Any) -> datetime | None:
    """The Kafka record timestamp (seconds; the webhook server's producer sets it at receipt)."""
    timestamp = message.timestamp
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


@dataclass(frozen=True)
class Cause:
    """The record a decision was made on, for the decision's log line."""

    event_id: str | None  # the CloudEvent's id; None for a clock tick (an expiry)
    topic: str
    partition: int
    offset: int


class Batch:
    """What a batch of events folded: the latest state of each repository it changed, with an event of that
    repository's partition (to write it under), and the decisions and dead letters to send, in order."""

    def __init__(self) -> None:
        self.states: dict[str, RepositoryState] = {}
        self.events: dict[str, EventT[Any]] = {}
        self.read: dict[str, dict[str, int]] = {}  # repository -> source topic -> highest offset folded into it
        self.decisions: list[Decided] = []
        self.causes: list[Cause] = []  # of each decision, in the same order
        self.republish: dict[str, tuple[Record, ...]] = {}  # a crashed batch's outbox, published again first
        self.deadletters: list[tuple[RawRecord, str]] = []
        self.deadletter_reasons: list[tuple[str, str]] = []  # (topic, reason code) for metrics

    def fold(
        self,
        repository: str,
        state: RepositoryState,
        event: EventT[Any],
        decisions: list[Decided],
        event_id: str | None = None,
    ) -> None:
        self.states[repository] = state
        self.events[repository] = event
        message = event.message
        read = self.read.setdefault(repository, {})
        read[message.topic] = max(read.get(message.topic, -1), message.offset)
        self.decisions.extend(decisions)
        cause = Cause(event_id, message.topic, message.partition, message.offset)
        self.causes.extend(cause for _ in decisions)
