"""The deploy agent: ready decisions from deploy.readiness rolled out on Kubernetes, outcomes on deploy.events.

A separate process, not a part of the readiness worker, because it is the only piece that holds cluster credentials:
its own ServiceAccount (k8s/base/deploy-agent-rbac.yaml: get/watch/patch on Deployments, one Role per granted
namespace) is all it can do, and the webhook server and worker, which parse untrusted input, hold none. It also fails
and restarts on its own: a stuck rollout or an unreachable API server does not stall the readiness tables.

Sequential on purpose: one record at a time, so one rollout at a time and per-service order for free (a temporary
error is retried with backoff on the same record; the next one waits). Offsets are committed by hand, each after its
outcome is acknowledged by Kafka (at-least-once); a redelivery is harmless because the Deployment's annotations say
what was done already (see decisions). "Only the newest waits": of the ready records fetched in one batch, an older
one of a service that has a newer one in the batch is skipped ("superseded while waiting"); records that arrive while
a rollout runs are fetched together once it ends, so the batch holds everything that waited.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.base import BaseCloudEvent

from streams.adapters.kafka_producer import DurableProducer, PublishUnavailable, Record
from streams.adapters.kubernetes_deployments import (
    Conflict,
    DeploymentsClient,
    DeploymentView,
    Permanent,
    Temporary,
)
from streams.catalog import Catalog
from streams.config import DeployAgentSettings
from streams.deploy.decisions import (
    READY_TYPE,
    Action,
    Blocked,
    Nothing,
    NotReady,
    OutcomeKind,
    Patch,
    Ready,
    Report,
    Rollback,
    Watch,
    after_conflict,
    decide,
    parse_ready,
)
from streams.deploy.outcomes import Outcome, outcome_record
from streams.domain.policy import Policies, ServicePolicy
from streams.worker.decoding import RawRecord, Undecodable, decode

log = logging.getLogger(__name__)

MAX_BACKOFF_S: Final = 30.0
FIRST_BACKOFF_S: Final = 0.5
BATCH: Final = 100

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


@dataclass(frozen=True)
class _Job:
    ready: Ready
    policy: ServicePolicy
    record: RawRecord
    decided: datetime | None  # the readiness event's time
    timings: dict[str, float]  # filled in as the rollout goes

    @property
    def context(self) -> str:
        return f"service={self.ready.service} commit={self.ready.commit} event_id={self.ready.event_id}"


class DeployAgent:
    def __init__(
        self,
        settings: DeployAgentSettings,
        policies: Policies,
        catalog: Catalog,
        *,
        consumer: Any,
        publish: Publish,
        deployments: DeploymentsClient,
        observer: Callable[[Handled], None] | None = None,
    ) -> None:
        self._settings, self._policies, self._consumer = settings, policies, consumer
        self._publish, self._k8s, self._observer = publish, deployments, observer
        self._readiness = catalog.topic("deploy.readiness")
        self._events = catalog.topic("deploy.events").name
        self._deadletter = catalog.topic("autodeploy.deadletter").name

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; the consumer is closed on the way out."""
        self._consumer.subscribe([self._readiness.name])
        log.info("deploy agent started topic=%s dry_run=%s", self._readiness.name, self._settings.dry_run)
        try:
            while not stop.is_set():
                messages = [m for m in self._consumer.consume(BATCH, 0.5) if _usable(m)]
                records = [_raw(m) for m in messages]
                decoded = [self._decode(r) for r in records]
                superseded = _superseded(decoded)
                for index, (message, record, event) in enumerate(zip(messages, records, decoded, strict=True)):
                    try:
                        handled = self._dispatch(record, event, stop, skip=index in superseded)
                    except Stopped:
                        return
                    if self._observer is not None:
                        self._observer(handled)
                    self._consumer.commit(message=message, asynchronous=False)
        finally:
            self._consumer.close()
            log.info("deploy agent stopped")

    def handle(self, record: RawRecord, stop: threading.Event) -> Handled:
        """One record, start to end (no offset commit); raises Stopped when `stop` is set while retrying."""
        return self._dispatch(record, self._decode(record), stop, skip=False)

    def _decode(self, record: RawRecord) -> BaseCloudEvent | Undecodable:
        try:
            return decode(record, self._readiness)
        except Undecodable as e:
            return e

    def _dispatch(
        self, record: RawRecord, event: BaseCloudEvent | Undecodable, stop: threading.Event, *, skip: bool
    ) -> Handled:
        if isinstance(event, Undecodable):
            return self._retrying(stop, "dead letter", lambda: self._dead_letter(record, str(event)))
        context = f"event_id={event.get_id()} type={event.get_type()} key={record.key!r}"
        if event.get_type() != READY_TYPE:
            log.info("ignored: not a ready decision %s", context)
            return Handled(f"ignored {event.get_type()}")
        if skip:
            log.info("skipped: superseded while waiting %s", context)
            return Handled("superseded while waiting")
        try:
            ready = parse_ready(event.get_id(), event.get_type(), event.get_data())
            policy = self._policies.service(ready.service)
        except (NotReady, KeyError) as e:
            reason = str(e)
            return self._retrying(stop, "dead letter", lambda: self._dead_letter(record, reason))
        job = _Job(ready, policy, record, event.get_time(), {})
        return self._retrying(stop, ready.event_id, lambda: self._deploy(job))

    def _retrying(self, stop: threading.Event, what: str, attempt: Callable[[], Handled]) -> Handled:
        """`attempt` until it does not fail temporarily. Attempts are idempotent: each re-reads the Deployment."""
        delay = FIRST_BACKOFF_S
        while True:
            try:
                return attempt()
            except (Temporary, Conflict, PublishUnavailable) as e:
                log.warning("temporary failure, retrying what=%s delay_s=%.1f error=%s", what, delay, e)
            if stop.wait(delay):
                raise Stopped(what)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _deploy(self, job: _Job) -> Handled:
        target = job.policy.target
        try:
            view = self._k8s.get(target.namespace, target.deployment, target.container)
            action: Action = decide(job.ready, view)
            conflicts = 0
            while True:
                log.info(
                    "step %s action=%s image=%s rollout=%s",
                    job.context,
                    type(action).__name__,
                    view.image,
                    view.rollout,
                )
                try:
                    step = self._finish(job, action, view) or self._advance(job, action, view)
                except Conflict:
                    conflicts += 1
                    if conflicts > 1 or not isinstance(action, Patch):
                        raise  # lost again, or a rollback refused: back off, then start over from a fresh read
                    fresh = self._k8s.get(target.namespace, target.deployment, target.container)
                    action, view = after_conflict(job.ready, view, fresh), fresh
                    continue
                if isinstance(step, Handled):
                    return step
                action, view = step
        except Permanent as e:
            log.error("refused %s status=%s error=%s", job.context, e.status, e)
            failed = self._outcome(job, "failed", job.ready.image, str(e))
            self._dead_letter(job.record, str(e))
            return replace(failed, dead_letter=True)

    def _finish(self, job: _Job, action: Action, view: DeploymentView) -> Handled | None:
        """The steps that end the record's handling without changing the Deployment."""
        if self._settings.dry_run and isinstance(action, Watch | Rollback):
            # A real agent started this rollout; a dry run must not touch it.
            return Handled("dry run: leaving a rollout of this decision alone")
        if isinstance(action, Nothing):
            log.info("nothing to do %s reason=%s", job.context, action.reason)
            return Handled(action.reason)
        if isinstance(action, Blocked):
            return self._outcome(job, "blocked", view.image, action.reason)
        if isinstance(action, Report):
            return self._outcome(job, action.kind, action.artifact, action.reason)
        return None

    def _advance(self, job: _Job, action: Action, view: DeploymentView) -> Handled | tuple[Action, DeploymentView]:
        """Patch, watch or roll back; the new view and what to do next, or the published outcome."""
        target = job.policy.target
        if isinstance(action, Rollback):
            self._k8s.rollback(view, action.previous_image, action.annotations)
            return self._outcome(job, "rolledback", action.previous_image, action.reason)
        if isinstance(action, Watch):
            started = time.monotonic()
            try:
                view = self._k8s.watch_rollout(
                    target.namespace, target.deployment, target.container, timeout=self._settings.rollout_timeout_s
                )
            except Temporary as e:  # only a timeout: watch_rollout rides out API errors until its deadline
                return self._outcome(job, "failed", job.ready.image, str(e))
            job.timings.setdefault("rollout_s", time.monotonic() - started)
            return decide(job.ready, view), view
        if not isinstance(action, Patch):
            raise AssertionError(f"unexpected action {action}")
        patched = self._k8s.set_image(view, job.ready.image, action.annotations, dry_run=self._settings.dry_run)
        if job.decided is not None:
            job.timings["readiness_to_patch_s"] = (datetime.now(UTC) - job.decided).total_seconds()
        log.info(
            "patched %s image=%s dry_run=%s timings=%s",
            job.context,
            job.ready.image,
            self._settings.dry_run,
            job.timings,
        )
        if self._settings.dry_run:
            return self._outcome(job, action.completed, job.ready.image, None)
        return decide(job.ready, patched), patched

    def _outcome(self, job: _Job, kind: OutcomeKind, artifact: str, reason: str | None) -> Handled:
        target = job.policy.target
        outcome = Outcome(
            kind,
            job.ready,
            target.namespace,
            target.deployment,
            job.policy.environment,
            artifact,
            reason,
            self._settings.dry_run,
        )
        self._publish(outcome_record(outcome, self._events))
        log.info(
            "published outcome=%s %s outcome_id=%s reason=%s dry_run=%s",
            kind,
            job.context,
            outcome.event_id,
            reason,
            outcome.dry_run,
        )
        timings = job.timings
        return Handled(kind, outcome, False, timings.get("readiness_to_patch_s"), timings.get("rollout_s"))

    def _dead_letter(self, record: RawRecord, reason: str) -> Handled:
        headers = (
            *record.headers,
            ("deadletter_reason", reason.encode()),
            ("deadletter_topic", record.topic.encode()),
            ("deadletter_partition", str(record.partition).encode()),
            ("deadletter_offset", str(record.offset).encode()),
            ("deadletter_time", datetime.now(UTC).isoformat().encode()),
        )
        self._publish(Record(self._deadletter, record.key, record.value or b"", headers))
        log.warning(
            "dead letter topic=%s partition=%d offset=%d reason=%s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        return Handled(f"dead letter: {reason}", dead_letter=True)


def _usable(message: Any) -> bool:
    if message.error() is not None:
        log.warning("consumer error error=%s", message.error())
        return False
    return True


def _raw(message: Any) -> RawRecord:
    return RawRecord(
        message.topic(), message.partition(), message.offset(), message.key(), message.value(), message.headers() or []
    )


def _service_of(event: BaseCloudEvent | Undecodable) -> str | None:
    if isinstance(event, Undecodable) or event.get_type() != READY_TYPE:
        return None
    data: Any = event.get_data()
    try:
        return str(data["subject"]["content"]["service"])
    except (KeyError, TypeError):
        return None


def _superseded(decoded: list[BaseCloudEvent | Undecodable]) -> frozenset[int]:
    """Indexes of ready decisions with a newer one of their service later in the batch (the worker only goes
    forward on a branch, so later in the partition is newer)."""
    services = [_service_of(event) for event in decoded]
    newest = {service: index for index, service in enumerate(services) if service is not None}
    return frozenset(i for i, service in enumerate(services) if service is not None and newest[service] != i)
