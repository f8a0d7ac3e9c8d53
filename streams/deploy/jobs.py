"""What the deploy agent's parts share: the job of one ready decision, what became of it, and how outcomes are sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from streams.adapters.kafka_producer import DurableProducer, Record
from streams.deploy.decisions import OutcomeKind, Ready
from streams.deploy.outcomes import Outcome
from streams.deploy.waiting import Waiting
from streams.domain.policy import ServicePolicy
from streams.events.decoding import RawRecord

Publish = Callable[[Record], None]


class Stopped(Exception):
    """The agent was asked to stop while retrying: the record stays uncommitted and is redelivered."""


class SyncPublisher:
    """`DurableProducer.publish` for blocking code: returns once Kafka acknowledged (acks=all) the record."""

    def __init__(self, producer: DurableProducer, timeout: float) -> None:
        self._producer, self._timeout = producer, timeout
        self._loop = asyncio.new_event_loop()

    def __call__(self, record: Record) -> None:
        self._loop.run_until_complete(self._producer.publish(record, self._timeout))

    def close(self) -> None:
        self._loop.run_until_complete(self._producer.stop_polling())
        self._producer.close()
        self._loop.close()


@dataclass(frozen=True)
class Handled:
    """What became of one record: the outcome published (None: none was due) and a note for logs and tests."""

    note: str
    outcome: Outcome | None = None
    dead_letter: bool = False
    readiness_to_patch_s: float | None = None  # from the readiness event's time to the acknowledged patch
    rollout_s: float | None = None  # from the patch to a settled rollout
    restore_s: float | None = None  # after a rollback: from the restoring patch to the restored rollout settled


@dataclass(frozen=True)
class Job:
    ready: Ready
    policy: ServicePolicy
    record: RawRecord | None  # None: a decision that waited out a freeze (read back from the Deployment)
    decided: datetime | None  # the readiness event's time
    pipeline_start: datetime | None  # the newest deciding fact's time, for autodeploy_pipeline_latency_seconds
    timings: dict[str, float]  # filled in as the rollout goes

    @property
    def waiting(self) -> Waiting:
        return Waiting(self.ready, self.decided, self.pipeline_start)

    @property
    def context(self) -> str:
        return f"service={self.ready.service} commit={self.ready.commit} event_id={self.ready.event_id}"


class ReportOutcome(Protocol):
    """Publish `kind` for `job` (acknowledged by Kafka), count it, and say what became of the job."""

    def __call__(
        self, job: Job, kind: OutcomeKind, artifact: str, reason: str | None, *, variant: str = ""
    ) -> Handled: ...


# Run an attempt until it does not fail temporarily (with backoff); raises Stopped when asked to stop meanwhile.
Retrying = Callable[[threading.Event, str, Callable[[], Handled]], Handled]
