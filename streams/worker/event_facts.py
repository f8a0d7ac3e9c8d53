"""What a decoded CloudEvent tells the readiness fold, as domain facts (gate facts too, from deploy.gates)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from cloudevents.core.base import BaseCloudEvent

from streams.catalog.model import TopicSpec
from streams.domain.extract import facts_from_event
from streams.domain.facts import Approved, Fact, GateFact
from streams.events.decoding import RawRecord, Undecodable, decode
from streams.events.signing import DirectoryVerifier
from streams.events.verification_errors import VerificationFailed


def verified_facts(
    record: RawRecord, topic: TopicSpec, received: datetime | None, verifier: DirectoryVerifier | None
) -> list[Fact | GateFact]:
    """The facts of an input record, once it decodes and (unless `verifier` is None: signatures off) its signature
    verifies against the key directory at the time the record entered the log (docs/verifiability.md: never the
    event's own `time`). Undecodable (reason `signature` for a failed verification) otherwise."""
    decoded = decode(record, topic)
    if verifier is None:
        return facts_of(decoded, record, received)
    try:
        verified = verifier.verify_record(record, received or datetime.now(UTC))
    except VerificationFailed as e:
        raise Undecodable(f"signature: {e.reason}: {e}", "signature") from e
    facts = facts_of(decoded, record, received)
    if any(isinstance(f, Approved) for f in facts):
        if verified is None:  # a type the directory lets through unsigned: nobody can be named as its approver
            raise Undecodable("signature: an approval must be signed by the approver's key", "signature")
        # The key says who approved, not the event's own words: a signer cannot approve in another's name.
        return [replace(f, approver=verified.key_id) if isinstance(f, Approved) else f for f in facts]
    return facts


def facts_of(event: BaseCloudEvent, record: RawRecord, received: datetime | None = None) -> list[Fact | GateFact]:
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
