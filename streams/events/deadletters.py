"""The headers of a record on autodeploy.deadletter: one scheme for every process (see topics/catalog.yaml).

A dead letter keeps the bytes as they were read. Its headers say why they could not be used, which process gave up on
them, when, and where they were read: a Kafka record's topic, partition and offset (its own headers kept first), or
an HTTP delivery's endpoint (the request headers that describe the body kept as `http_<name>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from streams.events.decoding import RawRecord

__all__ = [
    "ENDPOINT",
    "KEPT_HTTP_HEADERS",
    "OFFSET",
    "ORIGIN",
    "PARTITION",
    "REASON",
    "TIME",
    "TOPIC",
    "HttpDelivery",
    "Origin",
    "deadletter_headers",
]

# The `autodeploy` command that runs the process which dead-lettered the record.
Origin = Literal["webhooks", "worker", "deploy-agent"]

REASON: Final = "deadletter_reason"
ORIGIN: Final = "deadletter_origin"
TIME: Final = "deadletter_time"
TOPIC: Final = "deadletter_topic"
PARTITION: Final = "deadletter_partition"
OFFSET: Final = "deadletter_offset"
ENDPOINT: Final = "deadletter_endpoint"

# Request headers that say what the body is and who sent it; the rest (auth, proxies) is no one's business later.
KEPT_HTTP_HEADERS: Final = ("content-", "x-github-", "circleci-event")


@dataclass(frozen=True)
class HttpDelivery:
    """A body received over HTTP: the endpoint's path and the request's headers."""

    endpoint: str
    headers: Mapping[str, str]


def deadletter_headers(
    reason: str, origin: Origin, read_from: RawRecord | HttpDelivery, now: datetime | None = None
) -> tuple[tuple[str, bytes], ...]:
    """The headers of the dead letter of what was `read_from`: the ones it came with, then the deadletter_* ones."""
    common = (
        (REASON, reason.encode()),
        (ORIGIN, origin.encode()),
        (TIME, (now or datetime.now(UTC)).isoformat().encode()),
    )
    if isinstance(read_from, HttpDelivery):
        kept = tuple(
            (f"http_{name.lower()}", value.encode())
            for name, value in read_from.headers.items()
            if name.lower().startswith(KEPT_HTTP_HEADERS)
        )
        return (*kept, *common, (ENDPOINT, read_from.endpoint.encode()))
    return (
        *read_from.headers,
        *common,
        (TOPIC, read_from.topic.encode()),
        (PARTITION, str(read_from.partition).encode()),
        (OFFSET, str(read_from.offset).encode()),
    )
