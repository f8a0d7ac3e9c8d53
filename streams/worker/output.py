"""Readiness decisions as CDEvents 0.5 custom events (`dev.cdeventsx.autodeploy-readiness.*`) in CloudEvents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from cloudevents.core.v1.event import CloudEvent

from streams.adapters.kafka_producer import Record
from streams.domain.cdevents import SPEC_VERSION, rfc3339
from streams.domain.facts import EventRef
from streams.domain.fold import Decided
from streams.domain.promotion import EnvironmentDecision
from streams.events.dsse_keys import SigningKey
from streams.events.signing import signed_record

SOURCE = "/autodeploy/readiness"
TYPES = {
    "ready": "dev.cdeventsx.autodeploy-readiness.ready.0.1.0",
    "superseded": "dev.cdeventsx.autodeploy-readiness.superseded.0.1.0",
    "expired": "dev.cdeventsx.autodeploy-readiness.expired.0.1.0",
    "rejected": "dev.cdeventsx.autodeploy-readiness.rejected.0.1.0",
}


def _fact(ref: EventRef) -> dict[str, Any]:
    fact: dict[str, Any] = {
        "kind": ref.type,
        "event_id": ref.id,
        "source": ref.source,
        "topic": ref.topic,
        "partition": ref.partition,
        "offset": ref.offset,
        "time": rfc3339(ref.time),
    }
    if ref.received is not None:  # the webhook's receipt: where the deploy agent starts its rollout latency
        fact["received"] = rfc3339(ref.received)
    return fact


def cdevent(decision: Decided, environment: str) -> dict[str, Any]:
    """The CDEvent: context chained to the webhooks that decided it (links), subject the (service, commit)."""
    decided = decision.decided_at or datetime.now(UTC)
    content: dict[str, Any] = {
        "service": decision.service,
        "repository": decision.repository,
        "commit": decision.commit,
        "branch": decision.branch,
        "environment": environment,
        "facts": [_fact(ref) for ref in decision.facts],
    }
    if decision.image:
        content["image"] = decision.image
    if decision.superseded_by:
        content["superseded_by"] = decision.superseded_by
    if isinstance(decision, EnvironmentDecision):
        if decision.reason:
            content["reason"] = decision.reason
    elif decision.kind == "expired":
        content["missing"] = list(decision.missing)
    return {
        "context": {
            "specversion": SPEC_VERSION,
            "id": decision.decision_id,
            "source": SOURCE,
            "type": TYPES[decision.kind],
            "timestamp": rfc3339(decided),
            "chainId": decision.chain_id,
            "links": [
                {"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": ref.id}}
                for ref in decision.facts
            ],
        },
        "subject": {"id": f"{decision.service}/{decision.commit}", "source": decision.repository, "content": content},
    }


def readiness_record(decision: Decided, environment: str, topic: str, signer: SigningKey | None = None) -> Record:
    data = cdevent(decision, environment)
    event = CloudEvent(
        {
            "specversion": "1.0",
            "id": decision.decision_id,
            "source": SOURCE,
            "type": TYPES[decision.kind],
            "subject": data["subject"]["id"],
            "time": decision.decided_at or datetime.now(UTC),
            "datacontenttype": "application/json",
            "partitionkey": decision.service,
        },
        orjson.dumps(data),  # bytes: written into the envelope as they are (encoding.RawJsonDataFormat)
    )
    return signed_record(event, topic, signer)
