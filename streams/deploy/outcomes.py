"""Rollout outcomes as CDEvents 0.5 in structured CloudEvents on deploy.events, chained to the readiness decision.

Ids are uuid5 of (decision id, outcome kind): a redelivered decision that ends the same way publishes the same event
id, which consumers drop as a duplicate (catalog rule: `source` + `id` identifies an event).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import orjson
from cloudevents.core.v1.event import CloudEvent

from streams.adapters.kafka_producer import Record
from streams.deploy.decisions import OutcomeKind, Ready
from streams.domain.cdevents import SPEC_VERSION, rfc3339
from streams.events.dsse_keys import SigningKey
from streams.events.signing import signed_record

SOURCE: Final = "/autodeploy/deploy-agent"
TYPES: Final[dict[OutcomeKind, str]] = {
    "deployed": "dev.cdevents.service.deployed.0.3.0",
    "upgraded": "dev.cdevents.service.upgraded.0.3.0",
    "rolledback": "dev.cdevents.service.rolledback.0.3.0",
    "failed": "dev.cdeventsx.autodeploy-deployment.failed.0.1.0",
    "blocked": "dev.cdeventsx.autodeploy-deployment.blocked.0.1.0",
    "skipped": "dev.cdeventsx.autodeploy-deployment.skipped.0.1.0",
}
UNBLOCKED_TYPE: Final = "dev.cdeventsx.autodeploy-deployment.unblocked.0.1.0"
# CloudEvents extension names are lowercase letters and digits only.
DRY_RUN_EXTENSION: Final = "autodeploydryrun"
_NAMESPACE: Final = uuid.UUID("3b0c9f52-6d1e-5a7b-9c2d-8e4f1a6b7c90")  # for outcome ids; never change it


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    ready: Ready
    namespace: str
    deployment: str
    environment: str
    artifact: str  # the image running (or that would run, or was refused)
    reason: str | None = None
    dry_run: bool = False
    # One decision can end in two outcomes of one kind (blocked by a freeze, then by the circuit breaker when the
    # window ends): the variant keeps their ids apart. "" for the usual one.
    variant: str = ""

    @property
    def event_id(self) -> str:
        return outcome_id(self.ready.event_id, self.kind, dry_run=self.dry_run, variant=self.variant)


def outcome_id(decision_id: str, kind: OutcomeKind, *, dry_run: bool = False, variant: str = "") -> str:
    # A dry run's outcome is a different fact from the real one: it must not shadow it as a "duplicate".
    suffix = (f"/{variant}" if variant else "") + ("/dry-run" if dry_run else "")
    return str(uuid.uuid5(_NAMESPACE, f"{decision_id}/{kind}{suffix}"))


def purl(image: str) -> str:
    """An OCI image reference as a package URL: `pkg:oci/<name>@<tag-or-digest>?repository_url=<registry>/<path>`."""
    name_part, _, digest = image.partition("@")
    colon = name_part.rfind(":")
    tag = ""
    if colon > name_part.rfind("/"):  # "host:5000/app" has a port, not a tag
        name_part, tag = name_part[:colon], name_part[colon + 1 :]
    version = digest or tag or "latest"
    name = name_part.rsplit("/", 1)[-1]
    url = f"pkg:oci/{name}@{quote(version, safe='')}?repository_url={quote(name_part, safe='/:')}"
    return f"{url}&tag={quote(tag, safe='')}" if digest and tag else url


def cdevent(outcome: Outcome, now: datetime | None = None) -> dict[str, Any]:
    ready = outcome.ready
    context = {
        "specversion": SPEC_VERSION,
        "id": outcome.event_id,
        "source": SOURCE,
        "type": TYPES[outcome.kind],
        "timestamp": rfc3339(now or datetime.now(UTC)),
        "chainId": ready.chain_id,
        "links": [{"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": ready.event_id}}],
    }
    subject_id = f"{outcome.namespace}/{outcome.deployment}"
    details = {
        "service": ready.service,
        "repository": ready.repository,
        "commit": ready.commit,
        "branch": ready.branch,
        "environment": outcome.environment,
    }
    if outcome.kind in ("failed", "blocked", "skipped"):
        content: dict[str, Any] = {**details, "reason": outcome.reason or "unknown"}
        if outcome.kind == "failed":
            content |= {"image": outcome.artifact, "namespace": outcome.namespace, "deployment": outcome.deployment}
        return {"context": context, "subject": {"id": subject_id, "source": SOURCE, "content": content}}
    # Service events allow only environment and artifactId in content: the rest goes into customData.
    custom: dict[str, Any] = {**details, "image": outcome.artifact, "readinessEvent": ready.event_id}
    if outcome.reason:
        custom["reason"] = outcome.reason
    if outcome.kind == "rolledback":
        custom["failedImage"] = ready.image
    if outcome.dry_run:
        custom["dryRun"] = True
    return {
        "context": context,
        "subject": {
            "id": subject_id,
            "source": SOURCE,
            "content": {"environment": {"id": outcome.environment}, "artifactId": purl(outcome.artifact)},
        },
        "customData": custom,
        "customDataContentType": "application/json",
    }


def cloud_event(outcome: Outcome, now: datetime | None = None) -> CloudEvent:
    moment = now or datetime.now(UTC)
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": outcome.event_id,
        "source": SOURCE,
        "type": TYPES[outcome.kind],
        "subject": outcome.ready.service,
        "time": moment,
        "datacontenttype": "application/json",
        "partitionkey": outcome.ready.service,
    }
    if outcome.dry_run:
        attributes[DRY_RUN_EXTENSION] = "true"
    # bytes: what travels is what is signed (encoding.RawJsonDataFormat writes them as they are)
    return CloudEvent(attributes, orjson.dumps(cdevent(outcome, moment)))


def outcome_record(
    outcome: Outcome, topic: str, now: datetime | None = None, signer: SigningKey | None = None
) -> Record:
    """The outcome's record, signed by the deploy agent's key when it has one."""
    return signed_record(cloud_event(outcome, now), topic, signer)


@dataclass(frozen=True)
class Unblocked:
    """`autodeploy unblock`: the circuit breaker opened by decision `opened_by` was cleared by hand."""

    service: str
    namespace: str
    deployment: str
    environment: str
    opened_by: str  # the readiness decision whose failed rollout opened the circuit
    chain_id: str  # that decision's chain
    failures: int

    @property
    def event_id(self) -> str:
        # One clearing per opening: running unblock twice publishes a duplicate, not a second fact.
        return str(uuid.uuid5(_NAMESPACE, f"{self.opened_by}/unblocked"))


def unblocked_record(
    unblocked: Unblocked, topic: str, now: datetime | None = None, signer: SigningKey | None = None
) -> Record:
    """The `unblocked` event's record, signed like the outcomes when there is a key."""
    moment = now or datetime.now(UTC)
    data = {
        "context": {
            "specversion": SPEC_VERSION,
            "id": unblocked.event_id,
            "source": SOURCE,
            "type": UNBLOCKED_TYPE,
            "timestamp": rfc3339(moment),
            "chainId": unblocked.chain_id,
            "links": [{"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": unblocked.opened_by}}],
        },
        "subject": {
            "id": f"{unblocked.namespace}/{unblocked.deployment}",
            "source": SOURCE,
            "content": {
                "service": unblocked.service,
                "environment": unblocked.environment,
                "reason": f"circuit breaker cleared by hand after {unblocked.failures} consecutive failed rollouts",
            },
        },
    }
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": unblocked.event_id,
        "source": SOURCE,
        "type": UNBLOCKED_TYPE,
        "subject": unblocked.service,
        "time": moment,
        "datacontenttype": "application/json",
        "partitionkey": unblocked.service,
    }
    # bytes: what travels is what is signed (as the outcomes)
    return signed_record(CloudEvent(attributes, orjson.dumps(data)), topic, signer)
