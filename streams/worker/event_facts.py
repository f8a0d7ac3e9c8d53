"""What a decoded CloudEvent tells the readiness fold, as domain facts."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.core.base import BaseCloudEvent

from streams.catalog.model import TopicSpec
from streams.domain.extract import facts_from_event
from streams.domain.facts import Fact
from streams.events.decoding import RawRecord, Undecodable, decode
from streams.events.signing import DirectoryVerifier
from streams.events.verification_errors import VerificationFailed


def verified_facts(
    record: RawRecord, topic: TopicSpec, received: datetime | None, verifier: DirectoryVerifier | None
) -> list[Fact]:
    """The facts of an input record, once it decodes and (unless `verifier` is None: signatures off) its signature
    verifies against the key directory at the time the record entered the log (docs/verifiability.md: never the
    event's own `time`). Undecodable (reason `signature` for a failed verification) otherwise."""
    decoded = decode(record, topic)
    if verifier is not None:
        try:
            verifier.verify_record(record, received or datetime.now(UTC))
        except VerificationFailed as e:
            raise Undecodable(f"signature: {e.reason}: {e}", "signature") from e
    return facts_of(decoded, record, received)


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
