"""Approvals as CloudEvents on deploy.gates: a person's "this commit may go to this environment", signed with their
own key, whose id the worker takes as the approver's name (streams.worker.event_facts)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from cloudevents.core.v1.event import CloudEvent

from streams.adapters.kafka_producer import Record
from streams.domain.cdevents import SPEC_VERSION, rfc3339
from streams.domain.gate_extract import APPROVAL_TYPE
from streams.domain.readiness import NAMESPACE
from streams.events.dsse_keys import SigningKey
from streams.events.signing import signed_record

__all__ = ["SOURCE", "Approval", "approval_record"]

SOURCE: Final = "/autodeploy/approvals"


@dataclass(frozen=True)
class Approval:
    service: str
    environment: str
    repository: str
    commit: str
    approver: str  # the signing key's id when signed (the worker names the approver by it)
    comment: str = ""

    @property
    def event_id(self) -> str:
        # Approving twice is one fact: the same id, a duplicate the worker counts once.
        name = f"{self.service}/{self.environment}/{self.commit}/approved/{self.approver}"
        return str(uuid.uuid5(NAMESPACE, name))

    @property
    def chain_id(self) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{self.repository}@{self.commit}"))  # the commit's chain, as readiness's


def approval_record(
    approval: Approval, topic: str, now: datetime | None = None, signer: SigningKey | None = None
) -> Record:
    moment = now or datetime.now(UTC)
    content: dict[str, Any] = {
        "service": approval.service,
        "environment": approval.environment,
        "repository": approval.repository,
        "commit": approval.commit,
        "approver": approval.approver,
    }
    if approval.comment:
        content["comment"] = approval.comment
    subject = f"{approval.service}/{approval.environment}/{approval.commit}"
    data = {
        "context": {
            "specversion": SPEC_VERSION,
            "id": approval.event_id,
            "source": SOURCE,
            "type": APPROVAL_TYPE,
            "timestamp": rfc3339(moment),
            "chainId": approval.chain_id,
        },
        "subject": {
            "id": subject,
            "source": SOURCE,
            "content": content,
        },
    }
    event = CloudEvent(
        {
            "specversion": "1.0",
            "id": approval.event_id,
            "source": SOURCE,
            "type": APPROVAL_TYPE,
            "subject": subject,
            "time": moment,
            "datacontenttype": "application/json",
            "partitionkey": approval.repository,
        },
        orjson.dumps(data),
    )
    return signed_record(event, topic, signer)
