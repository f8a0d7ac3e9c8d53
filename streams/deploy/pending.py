"""What waits to be handled: records fetched but not yet handled, and which of them a newer one supersedes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloudevents.core.base import BaseCloudEvent

from streams.deploy.decisions import READY_TYPE
from streams.events.decoding import RawRecord, Undecodable


@dataclass(frozen=True)
class Pending:
    message: Any  # the consumer's message, committed once handled
    record: RawRecord
    event: BaseCloudEvent | Undecodable


def ready_content(event: BaseCloudEvent | Undecodable) -> dict[str, Any] | None:
    """The subject content of a ready decision, None for anything else."""
    if isinstance(event, Undecodable) or event.get_type() != READY_TYPE:
        return None
    data: Any = event.get_data()
    try:
        content = data["subject"]["content"]
    except (KeyError, TypeError):
        return None
    return content if isinstance(content, dict) and isinstance(content.get("service"), str) else None


def newer_ready(events: Sequence[BaseCloudEvent | Undecodable], index: int) -> str | None:
    """The commit of a ready decision for the same service and environment after `events[index]`, if there is one
    (the newest).

    The worker only goes forward on a branch and keys deploy.readiness by service, so later in the partition means
    newer; the agent's queue keeps each partition's order.
    """
    content = ready_content(events[index])
    if content is None:
        return None
    where = (content["service"], content.get("environment"))
    newest: str | None = None
    for later in events[index + 1 :]:
        other = ready_content(later)
        if other is not None and (other["service"], other.get("environment")) == where:
            newest = str(other.get("commit", "?"))
    return newest


def has_ready_for(events: Sequence[BaseCloudEvent | Undecodable], service: str, environment: str = "") -> bool:
    """Whether a ready decision of the service (in `environment`, when given) is among `events`."""
    return any(
        (c := ready_content(e)) is not None
        and c["service"] == service
        and (not environment or c.get("environment") in (environment, None))
        for e in events
    )
