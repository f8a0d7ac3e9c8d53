"""What a decoded CloudEvent tells the readiness fold, as domain facts."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.core.base import BaseCloudEvent

from streams.domain.extract import facts_from_event
from streams.domain.facts import Fact
from streams.events.decoding import RawRecord


def facts_of(event: BaseCloudEvent, record: RawRecord, received: datetime | None = None) -> list[Fact]:
    """The domain facts a decoded event states, remembering where in Kafka it was (and when it was received)."""
    return facts_from_event(
        event.get_type(),
        event.get_source(),
        event.get_id(),
        event.get_time() or received or datetime.now(UTC),
        event.get_data(),
        partitionkey=event.get_extension("partitionkey"),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        received=received,
    )
