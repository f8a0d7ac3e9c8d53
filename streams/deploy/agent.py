"""The deploy agent: ready decisions from deploy.readiness rolled out on Kubernetes, outcomes on deploy.events.

A separate process, not a part of the readiness worker, because it is the only piece that holds cluster credentials:
its own ServiceAccount (k8s/base/deploy-agent-rbac.yaml: get/watch/patch on Deployments, one Role per granted
namespace) is all it can do, and the webhook server and worker, which parse untrusted input, hold none. It also fails
and restarts on its own: a stuck rollout or an unreachable API server does not stall the readiness tables.

Sequential on purpose: one record at a time, so one rollout at a time and per-service order for free (a temporary
error is retried with backoff on the same record; the next one waits). Offsets are committed by hand, each after its
outcome is acknowledged by Kafka (at-least-once); a redelivery is harmless because the Deployment's annotations say
what was done already (see decisions). "Only the newest waits": before each record the agent drains everything the
consumer has fetched meanwhile into its queue (however many fetches that takes), and a ready record with a newer one
of its service in the queue is skipped with a `skipped` outcome instead of deployed.

Freeze windows: a ready decision inside one is not deployed; `blocked` says which window and until when, and the
decision waits in the Deployment's `autodeploy.dev/waiting` annotation (waiting.py). Between records the agent checks
what waits: once no window holds, it is deployed, unless a newer ready decision of the service is queued (then it is
skipped). The circuit breaker lives in annotations too (decisions.py); `autodeploy unblock` clears it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
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
    KubernetesError,
    Permanent,
    Temporary,
)
from streams.catalog import Catalog
from streams.config import DeployAgentSettings
from streams.deploy import decisions
from streams.deploy import pending as queue
from streams.deploy.decisions import (
    READY_TYPE,
    WAITING,
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
    circuit_open_reason,
    decide,
    failed_rollouts,
    parse_ready,
)
from streams.deploy.metrics import DeployMetrics, pipeline_start
from streams.deploy.outcomes import Outcome, outcome_record
from streams.deploy.pending import Pending
from streams.deploy.waiting import Waiting, from_annotation, to_annotation
from streams.domain.cdevents import rfc3339
from streams.domain.policy import Policies, ServicePolicy
from streams.worker.decoding import RawRecord, Undecodable, decode

log = logging.getLogger(__name__)

MAX_BACKOFF_S: Final = 30.0
FIRST_BACKOFF_S: Final = 0.5
BATCH: Final = 100
MAX_QUEUED: Final = 1000  # records fetched ahead at most; beyond it the consumer's own buffer holds them

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
    restore_s: float | None = None  # after a rollback: from the restoring patch to the restored rollout settled


@dataclass(frozen=True)
class _Job:
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
        metrics: DeployMetrics | None = None,
        batch: int = BATCH,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings, self._policies, self._consumer = settings, policies, consumer
        self._publish, self._k8s, self._observer = publish, deployments, observer
        self.metrics = metrics or DeployMetrics()
        self._batch, self._clock = batch, clock
        self._readiness = catalog.topic("deploy.readiness")
        self._events = catalog.topic("deploy.events").name
        self._deadletter = catalog.topic("autodeploy.deadletter").name
        self._waiting: dict[str, _Job] = {}  # service -> the ready decision a freeze window holds back

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; the consumer is closed on the way out."""
        self._consumer.subscribe([self._readiness.name])
        log.info("deploy agent started topic=%s dry_run=%s", self._readiness.name, self._settings.dry_run)
        self._load_state()
        waiting: deque[Pending] = deque()
        try:
            while not stop.is_set():
                self._fetch(waiting)
                self._release_waiting(stop, [p.event for p in waiting])
                if not waiting:
                    continue
                events = [p.event for p in waiting]
                item = waiting.popleft()
                handled = self._dispatch(item.record, item.event, stop, newer=queue.newer_ready(events, 0))
                self._observe(handled)
                self._consumer.commit(message=item.message, asynchronous=False)
        except Stopped:
            return
        finally:
            self._consumer.close()
            log.info("deploy agent stopped")

    def handle(self, record: RawRecord, stop: threading.Event) -> Handled:
        """One record, start to end (no offset commit); raises Stopped when `stop` is set while retrying."""
        return self._dispatch(record, self._decode(record), stop, newer=None)

    def _fetch(self, waiting: deque[Pending]) -> None:
        """Everything the consumer holds now (several fetches if need be); waits up to 0.5 s only when idle."""
        timeout = 0.0 if waiting else 0.5
        while len(waiting) < MAX_QUEUED:
            messages = [m for m in self._consumer.consume(self._batch, timeout) if _usable(m)]
            if not messages:
                return
            for message in messages:
                record = _raw(message)
                waiting.append(Pending(message, record, self._decode(record)))
            timeout = 0.0

    def _observe(self, handled: Handled) -> None:
        if self._observer is not None:
            self._observer(handled)

    def _decode(self, record: RawRecord) -> BaseCloudEvent | Undecodable:
        try:
            return decode(record, self._readiness)
        except Undecodable as e:
            return e

    def _dispatch(
        self, record: RawRecord, event: BaseCloudEvent | Undecodable, stop: threading.Event, *, newer: str | None
    ) -> Handled:
        if isinstance(event, Undecodable):
            return self._retrying(stop, "dead letter", lambda: self._dead_letter(record, str(event)))
        context = f"event_id={event.get_id()} type={event.get_type()} key={record.key!r}"
        if event.get_type() != READY_TYPE:
            log.info("ignored: not a ready decision %s", context)
            return Handled(f"ignored {event.get_type()}")
        try:
            ready = parse_ready(event.get_id(), event.get_type(), event.get_data())
            policy = self._policies.service(ready.service)
        except (NotReady, KeyError) as e:
            reason = str(e)
            return self._retrying(stop, "dead letter", lambda: self._dead_letter(record, reason))
        decided = event.get_time()
        job = _Job(ready, policy, record, decided, pipeline_start(event.get_data(), decided), {})
        if newer is not None:
            log.info("skipped: superseded while waiting %s newer_commit=%s", context, newer)
            why = f"superseded by newer ready commit {newer} while waiting"
            return self._retrying(stop, ready.event_id, lambda: self._outcome(job, "skipped", ready.image, why))
        frozen = policy.frozen(self._clock())
        if frozen is not None:
            reason = f"freeze window {frozen.window} until {rfc3339(frozen.until)}"
            return self._retrying(stop, ready.event_id, lambda: self._hold(job, reason))
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

    # -- freeze windows -------------------------------------------------------------------------------------------

    def _load_state(self) -> None:
        """What the Deployments remember: decisions waiting out a freeze, and open circuit breakers (for the gauge)."""
        for policy in self._policies.services:
            target = policy.target
            try:
                view = self._k8s.get(target.namespace, target.deployment, target.container)
            except KubernetesError as e:
                log.warning("cannot read state service=%s error=%s", policy.name, e)
                continue
            self.metrics.circuit(policy.name, decisions.CIRCUIT_OPEN in view.annotations)
            text = view.annotations.get(WAITING)
            if text is None:
                continue
            try:
                held = from_annotation(text)
            except ValueError as e:
                log.warning("ignored waiting annotation service=%s error=%s", policy.name, e)
                continue
            self._waiting[policy.name] = _Job(held.ready, policy, None, held.decided, held.pipeline_start, {})
            log.info("waiting for a freeze window to end service=%s commit=%s", policy.name, held.ready.commit)

    def _hold(self, job: _Job, reason: str) -> Handled:
        """A freeze window holds `job` back: remember it (replacing an older one, which is skipped) and say so."""
        service = job.ready.service
        older = self._waiting.get(service)
        if older is not None and older.ready.event_id != job.ready.event_id:
            why = f"superseded by newer ready commit {job.ready.commit} while waiting for a freeze window"
            self._outcome(older, "skipped", older.ready.image, why)
        self._remember(job, to_annotation(job.waiting))
        self._waiting[service] = job
        log.info("held by a freeze window %s reason=%s", job.context, reason)
        return self._outcome(job, "blocked", job.ready.image, reason, variant="freeze")

    def _remember(self, job: _Job, value: str | None) -> None:
        """Write (None: clear) the waiting annotation; in a dry run, or without the right to, only memory holds it."""
        if self._settings.dry_run:
            return
        target = job.policy.target
        try:
            view = self._k8s.get(target.namespace, target.deployment, target.container)
            if value is None and view.annotations.get(WAITING) is None:
                return
            self._k8s.annotate(view, {WAITING: value})
        except Permanent as e:
            log.warning("cannot record the waiting decision %s error=%s", job.context, e)

    def _release_waiting(self, stop: threading.Event, queued: list[BaseCloudEvent | Undecodable]) -> None:
        """Deploy what waited once no freeze window holds it; skip it when a newer ready decision is queued."""
        now = self._clock()
        for service, job in list(self._waiting.items()):
            if job.policy.frozen(now) is not None:
                continue
            self._observe(self._release(stop, job, superseded=queue.has_ready_for(queued, service)))

    def _release(self, stop: threading.Event, job: _Job, *, superseded: bool) -> Handled:
        if superseded:
            why = "superseded by a newer ready commit while waiting for a freeze window"
            handled = self._retrying(
                stop, job.ready.event_id, lambda: self._outcome(job, "skipped", job.ready.image, why)
            )
        else:
            log.info("freeze window over, deploying %s", job.context)
            handled = self._retrying(stop, job.ready.event_id, lambda: self._deploy(job))
        self._retrying(stop, job.ready.event_id, lambda: self._forget(job))
        return handled

    def _forget(self, job: _Job) -> Handled:
        self._remember(job, None)
        del self._waiting[job.ready.service]
        return Handled("forgotten")

    # -- rollouts -------------------------------------------------------------------------------------------------

    def _decide(self, job: _Job, view: DeploymentView) -> Action:
        return decide(job.ready, view, job.policy.max_failed_rollouts)

    def _deploy(self, job: _Job) -> Handled:
        target = job.policy.target
        try:
            view = self._k8s.get(target.namespace, target.deployment, target.container)
            action: Action = self._decide(job, view)
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
                    action = after_conflict(job.ready, view, fresh, job.policy.max_failed_rollouts)
                    view = fresh
                    continue
                if isinstance(step, Handled):
                    return step
                action, view = step
        except Permanent as e:
            log.error("refused %s status=%s error=%s", job.context, e.status, e)
            failed = self._outcome(job, "failed", job.ready.image, str(e))
            if job.record is not None:
                self._dead_letter(job.record, str(e))
            return replace(failed, dead_letter=True)

    def _finish(self, job: _Job, action: Action, view: DeploymentView) -> Handled | None:
        """The steps that end the record's handling without changing the Deployment's spec."""
        if self._settings.dry_run and isinstance(action, Watch | Rollback):
            # A real agent started this rollout; a dry run must not touch it.
            return Handled("dry run: leaving a rollout of this decision alone")
        if isinstance(action, Nothing):
            log.info("nothing to do %s reason=%s", job.context, action.reason)
            return Handled(action.reason)
        if isinstance(action, Blocked):
            if decisions.CIRCUIT_OPEN in view.annotations:
                self.metrics.circuit(job.ready.service, True)
            return self._outcome(job, "blocked", view.image, action.reason)
        if isinstance(action, Report):
            if action.annotations and not self._settings.dry_run:
                self._k8s.annotate(view, action.annotations)
            handled = self._outcome(job, action.kind, action.artifact, action.reason)
            if action.circuit_opened:
                reason = circuit_open_reason(job.ready.service, failed_rollouts(view.annotations))
                self._outcome(job, "blocked", action.artifact, reason, variant="circuit")
                self.metrics.circuit(job.ready.service, True)
            return handled
        return None

    def _advance(self, job: _Job, action: Action, view: DeploymentView) -> Handled | tuple[Action, DeploymentView]:
        """Patch, watch or roll back; the new view and what to do next, or the published outcome."""
        target = job.policy.target
        if isinstance(action, Rollback):
            log.warning("rolling back %s reason=%s", job.context, action.reason)
            restoring = self._k8s.rollback(view, action.previous_image, action.annotations)
            job.timings["rollback_started"] = time.monotonic()
            # Reported once the restored rollout settled (decide says Watch until then), so "rolledback" means the
            # previous image runs again, not merely that it was asked for.
            return self._decide(job, restoring), restoring
        if isinstance(action, Watch):
            started = time.monotonic()
            try:
                view = self._k8s.watch_rollout(
                    target.namespace, target.deployment, target.container, timeout=self._settings.rollout_timeout_s
                )
            except Temporary as e:  # only a timeout: watch_rollout rides out API errors until its deadline
                return self._outcome(job, "failed", job.ready.image, str(e))
            if "rollback_started" in job.timings:
                job.timings["restore_s"] = time.monotonic() - job.timings["rollback_started"]
            else:
                job.timings.setdefault("rollout_s", time.monotonic() - started)
            return self._decide(job, view), view
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
        return self._decide(job, patched), patched

    def _outcome(
        self, job: _Job, kind: OutcomeKind, artifact: str, reason: str | None, *, variant: str = ""
    ) -> Handled:
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
            variant,
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
        self._count(job, kind)
        timings = job.timings
        return Handled(
            kind,
            outcome,
            False,
            timings.get("readiness_to_patch_s"),
            timings.get("rollout_s"),
            timings.get("restore_s"),
        )

    def _count(self, job: _Job, kind: OutcomeKind) -> None:
        service = job.ready.service
        self.metrics.outcome(service, kind)
        rollout_s = job.timings.get("rollout_s")
        if rollout_s is not None and "rollout_observed" not in job.timings:
            job.timings["rollout_observed"] = 1.0
            self.metrics.rollout(service, rollout_s)
        if kind in ("deployed", "upgraded") and not self._settings.dry_run:
            self.metrics.circuit(service, False)
            if job.pipeline_start is not None:
                self.metrics.rollout_complete(job.pipeline_start, datetime.now(UTC))

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
