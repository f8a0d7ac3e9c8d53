"""The deploy agent's gate facts on deploy.gates: what its rollouts and verifications did to a commit in one
environment, keyed by repository so that the worker's join reads them with the commit's other facts.

Each is an event of its own (its id derived from the outcome's, which it links), carrying the outcome's CDEvent: a
record on deploy.events says the same for the service's audit trail, keyed by service.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from cloudevents.core.v1.event import CloudEvent

from streams.adapters.kafka_producer import Record
from streams.deploy.decisions import OutcomeKind, Ready
from streams.deploy.outcomes import SOURCE, TYPES, Outcome, cdevent
from streams.domain.cdevents import SPEC_VERSION, rfc3339
from streams.events.dsse_keys import SigningKey
from streams.events.signing import signed_record

__all__ = ["VERIFICATION_TYPE", "gate_record", "verification_record"]

VERIFICATION_TYPE: Final = "dev.cdevents.testsuiterun.finished.0.3.0"
_NAMESPACE: Final = uuid.UUID("1b0e1c6e-3d0a-5a7e-9f43-6a2b8c1d7e90")
# A failed rollout is reported as rolled back: for promotion both take the commit out of the environment.
_GATE_KINDS: Final[dict[str, OutcomeKind]] = {
    "deployed": "deployed",
    "upgraded": "upgraded",
    "rolledback": "rolledback",
    "failed": "rolledback",
}


def _envelope(event_id: str, type_: str, repository: str, moment: datetime, data: dict[str, Any]) -> CloudEvent:
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": SOURCE,
            "type": type_,
            "subject": repository,
            "time": moment,
            "datacontenttype": "application/json",
            "partitionkey": repository,
        },
        orjson.dumps(data),  # bytes: what travels is what is signed
    )


def gate_record(
    outcome: Outcome, topic: str, now: datetime | None = None, signer: SigningKey | None = None
) -> Record | None:
    """The gate fact of an outcome: a completed rollout, or the commit taken out of the environment. None for outcomes
    that are no gate fact (blocked, skipped) and for a dry run, which changed nothing."""
    kind = _GATE_KINDS.get(outcome.kind)
    if kind is None or outcome.dry_run:
        return None
    moment = now or datetime.now(UTC)
    as_gate = replace(outcome, kind=kind)
    data = cdevent(as_gate, moment)
    event_id = str(uuid.uuid5(_NAMESPACE, f"{outcome.event_id}/gate"))
    data["context"]["id"] = event_id
    data["context"]["links"] = [
        {"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": outcome.event_id}}
    ]
    if kind == "rolledback":
        data.setdefault("customData", {})["reason"] = outcome.reason or f"{outcome.kind} in {outcome.environment}"
    envelope = _envelope(event_id, TYPES[kind], outcome.ready.repository, moment, data)
    return signed_record(envelope, topic, signer)


def verification_record(
    ready: Ready,
    environment: str,
    outcome: str,
    reason: str,
    *,
    topic: str,
    now: datetime | None = None,
    signer: SigningKey | None = None,
) -> Record:
    """The environment's verify queries for the commit: `outcome` success, failure or error (inconclusive)."""
    moment = now or datetime.now(UTC)
    event_id = str(uuid.uuid5(_NAMESPACE, f"{ready.event_id}/{environment}/verification/{outcome}"))
    data = {
        "context": {
            "specversion": SPEC_VERSION,
            "id": event_id,
            "source": SOURCE,
            "type": VERIFICATION_TYPE,
            "timestamp": rfc3339(moment),
            "chainId": ready.chain_id,
            "links": [{"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": ready.event_id}}],
        },
        "subject": {
            "id": f"{ready.service}/{environment}/{ready.commit}",
            "source": SOURCE,
            "content": {
                "environment": {"id": environment},
                "testSuite": {"id": f"{ready.service}/{environment}", "name": "verify"},
                "outcome": outcome,
                "reason": reason,
            },
        },
        "customData": {
            "service": ready.service,
            "repository": ready.repository,
            "commit": ready.commit,
            "image": ready.image,
        },
        "customDataContentType": "application/json",
    }
    return signed_record(_envelope(event_id, VERIFICATION_TYPE, ready.repository, moment, data), topic, signer)
