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

Defense in depth: a verified signature says who decided, not that the decision is allowed. Each ready decision is
also held against the agent's own copy of the policy (decisions.against_policy: the service's repository and branch,
and its image: the template filled with the commit, or one from its image repository); one that is not allowed gets a
`blocked` outcome and nothing is patched, whoever signed it. The target always comes from the policy.

Freeze windows: a ready decision inside one is not deployed; `blocked` says which window and until when, and the
decision waits in the Deployment's `autodeploy.dev/waiting` annotation (waiting.py). Between records the agent checks
what waits: once no window holds, it is deployed, unless a newer ready decision of the service is queued (then it is
skipped). The circuit breaker lives in annotations too (decisions.py); `autodeploy unblock` clears it.

Here: the consume loop, the queue and the outcomes. The rollout steps are in rollouts.py, freeze windows in
freeze_holds.py, what they share in jobs.py.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.base import BaseCloudEvent

from streams.adapters.kafka_producer import PublishUnavailable, Record
from streams.adapters.kubernetes_deployments import Conflict, DeploymentsClient, Temporary
from streams.adapters.prometheus_api import PrometheusAPI, PrometheusUnreachable
from streams.catalog import Catalog
from streams.config import DeployAgentSettings
from streams.deploy import pending as queue
from streams.deploy.decisions import (
    READY_TYPE,
    NotReady,
    OutcomeKind,
    Ready,
    against_policy,
    in_environment,
    parse_ready,
)
from streams.deploy.freeze_holds import FreezeHolds
from streams.deploy.gates import gate_record, verification_record
from streams.deploy.jobs import Handled, Job, Publish, Stopped, SyncPublisher
from streams.deploy.metrics import DeployMetrics, pipeline_start
from streams.deploy.outcomes import Outcome, outcome_record
from streams.deploy.pending import Pending
from streams.deploy.rollouts import Rollouts
from streams.deploy.verification import Query, Verification, Verifier
from streams.domain.cdevents import rfc3339
from streams.domain.environments import EnvironmentPolicy
from streams.domain.policy import Policies, ServicePolicy
from streams.events.deadletters import deadletter_headers
from streams.events.decoding import RawRecord, Undecodable, decode
from streams.events.dsse_keys import SigningKey
from streams.events.signing import DirectoryVerifier
from streams.events.verification_errors import VerificationFailed

__all__ = ["DeployAgent", "Handled", "Publish", "Stopped", "SyncPublisher"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S: Final = 30.0
FIRST_BACKOFF_S: Final = 0.5
BATCH: Final = 100
TIMESTAMP_NOT_AVAILABLE: Final = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE, without importing the client here
MAX_QUEUED: Final = 1000  # records fetched ahead at most; beyond it the consumer's own buffer holds them


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
        verifier: DirectoryVerifier | None = None,
        signer: SigningKey | None = None,
        verify_query: Query | None = None,
    ) -> None:
        """`verify_query` asks Prometheus (default: PrometheusAPI at PROMETHEUS_URL, if set)."""
        self._settings, self._policies, self._consumer = settings, policies, consumer
        # Each decision is verified before it can touch the cluster (None: AUTODEPLOY_INSECURE_NO_SIGNATURES), and
        # each outcome is signed with the agent's key.
        self._verifier, self._signer = verifier, signer
        self._publish, self._k8s, self._observer = publish, deployments, observer
        self.metrics = metrics or DeployMetrics()
        self._batch, self._clock = batch, clock
        self._readiness = catalog.topic("deploy.readiness")
        self._events = catalog.topic("deploy.events").name
        self._gates = catalog.topic("deploy.gates").name
        self._deadletter = catalog.topic("autodeploy.deadletter").name
        self._rollouts = Rollouts(
            settings, deployments, self.metrics, self._outcome, self._dead_letter, verify=self._verify_environment
        )
        prometheus = settings.prometheus_url
        # A request must not outlast the interval: a hanging Prometheus would push the window's end late.
        timeout = min(10.0, settings.verify_interval_s)
        ask = verify_query or (PrometheusAPI(prometheus, timeout).query if prometheus else _no_prometheus)
        self._verification = Verifier(ask, settings.verify_interval_s)
        self._stop = threading.Event()  # the running loop's, for verifications (set by `run`)
        self._holds = FreezeHolds(
            settings,
            policies,
            deployments,
            self.metrics,
            outcome=self._outcome,
            retrying=self._retrying,
            deploy=self._rollouts.deploy,
            observe=self._observe,
            clock=clock,
        )

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; the consumer is closed on the way out."""
        self._stop = stop
        self._consumer.subscribe([self._readiness.name])
        log.info("deploy agent started topic=%s dry_run=%s", self._readiness.name, self._settings.dry_run)
        self._holds.load_state()
        waiting: deque[Pending] = deque()
        try:
            while not stop.is_set():
                self._fetch(waiting)
                self._holds.release_waiting(stop, [p.event for p in waiting])
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
            # Idle, ask for one message: consume(n, timeout) can wait out its timeout for n to arrive, and a ready
            # commit would wait with it. The rest of a burst comes with the next, non-blocking, call.
            count = self._batch if timeout == 0.0 else 1
            messages = [m for m in self._consumer.consume(count, timeout) if _usable(m)]
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
        """The decision, checked against the catalog and its signature; an unverified one is `Unverified`, so that
        it can neither be deployed nor make a verified decision queued with it look superseded."""
        try:
            event = decode(record, self._readiness)
        except Undecodable as e:
            return e
        if self._verifier is not None:
            try:
                self._verifier.verify_record(record, record.timestamp or self._clock())
            except VerificationFailed as e:
                return Unverified(f"signature: {e.reason}: {e}", event)
        return self._against_policy(event)

    def _against_policy(self, event: BaseCloudEvent) -> BaseCloudEvent | Undecodable:
        """A ready decision of a known service that its policy does not allow is `Refused`: like an unverified one, it
        can neither be deployed nor make an allowed decision queued with it look superseded."""
        try:
            ready = parse_ready(event.get_id(), event.get_type(), event.get_data())
            policy = self._policy(ready)
        except (NotReady, KeyError):
            return event  # not a ready decision, or not one of a known service: _dispatch says what it is
        why = against_policy(ready, policy)
        return event if why is None else Refused(f"policy: {why}", event)

    def _dispatch(
        self, record: RawRecord, event: BaseCloudEvent | Undecodable, stop: threading.Event, *, newer: str | None
    ) -> Handled:
        if isinstance(event, Undecodable):
            return self._unusable(record, event, stop)
        context = f"event_id={event.get_id()} type={event.get_type()} key={record.key!r}"
        if event.get_type() != READY_TYPE:
            log.info("ignored: not a ready decision %s", context)
            return Handled(f"ignored {event.get_type()}")
        try:
            ready = parse_ready(event.get_id(), event.get_type(), event.get_data())
            policy = self._policy(ready)
        except (NotReady, KeyError) as e:
            reason = str(e)
            return self._retrying(stop, "dead letter", lambda: self._dead_letter(record, reason))
        decided = event.get_time()
        job = Job(ready, policy, record, decided, pipeline_start(event.get_data(), decided), {})
        if newer is not None:
            log.info("skipped: superseded while waiting %s newer_commit=%s", context, newer)
            why = f"superseded by newer ready commit {newer} while waiting"
            return self._retrying(stop, ready.event_id, lambda: self._outcome(job, "skipped", ready.image, why))
        held = self._held_back(job, stop)
        if held is not None:
            return held
        return self._retrying(stop, ready.event_id, lambda: self._rollouts.deploy(job))

    def _held_back(self, job: Job, stop: threading.Event) -> Handled | None:
        """A `blocked` outcome for a decision that may not be deployed now: its environment is another cluster's, or a
        freeze window holds it (it then waits, see freeze_holds)."""
        policy, ready = job.policy, job.ready
        if policy.target.context is not None:
            # Patching this agent's cluster instead would deploy to the wrong place.
            why = f"environment {policy.environment} is in kubeconfig context {policy.target.context}"
            why += ", which this agent does not serve"
            return self._retrying(
                stop, ready.event_id, lambda: self._outcome(job, "blocked", ready.image, why, variant="context")
            )
        frozen = policy.frozen(self._clock())
        if frozen is not None:
            reason = f"freeze window {frozen.window} until {rfc3339(frozen.until)}"
            return self._retrying(stop, ready.event_id, lambda: self._holds.hold(job, reason))
        return None

    def _refused(self, record: RawRecord, refused: Refused, stop: threading.Event) -> Handled:
        """A ready decision its service's policy does not allow (repository, branch or image): a `blocked` outcome says
        why, whoever signed it; the cluster is neither read nor touched, and the decision is not dead-lettered (it is
        well-formed and verified: the outcome is its record)."""
        event = refused.event
        ready = parse_ready(event.get_id(), event.get_type(), event.get_data())
        job = Job(ready, self._policy(ready), record, event.get_time(), None, {})
        why = f"{refused}; decision refused, nothing deployed"
        log.error("refused: against the policy %s reason=%s", job.context, refused)
        return self._retrying(
            stop, ready.event_id, lambda: self._outcome(job, "blocked", ready.image, why, variant="policy")
        )

    def _unusable(self, record: RawRecord, unusable: Undecodable, stop: threading.Event) -> Handled:
        """Dead-lettered. A decision whose signature does not verify, if it is a ready decision of a known service,
        gets a `blocked` outcome that says why too; the cluster is neither read nor touched. A refused one, see
        `_refused`."""
        if isinstance(unusable, Refused):
            return self._refused(record, unusable, stop)
        reason = str(unusable)
        letter = self._retrying(stop, "dead letter", lambda: self._dead_letter(record, reason))
        if not isinstance(unusable, Unverified):
            return letter
        event = unusable.event
        try:
            ready = parse_ready(event.get_id(), event.get_type(), event.get_data())
            policy = self._policy(ready)
        except (NotReady, KeyError):
            return letter
        job = Job(ready, policy, record, event.get_time(), None, {})
        why = f"{reason}; decision refused, nothing deployed"
        return self._retrying(
            stop, ready.event_id, lambda: self._outcome(job, "blocked", ready.image, why, variant="signature")
        )

    def _verify_environment(self, job: Job, environment: EnvironmentPolicy) -> Verification:
        """The environment's verify queries over their window, the result published as a gate fact. Stopping meanwhile
        leaves the record uncommitted (Stopped): a redelivery verifies again, never "passed" by default."""
        target, ready = job.policy.target, job.ready
        fields = {
            "service": ready.service,
            "environment": environment.name,
            "namespace": target.namespace,
            "commit": ready.commit,
            "image": ready.image,
        }
        log.info("verifying %s environment=%s checks=%d", job.context, environment.name, len(environment.verify))
        result = self._verification.verify(environment, fields, self._stop)
        if self._stop.is_set():
            raise Stopped(ready.event_id)
        outcome = {"passed": "success", "failed": "failure", "inconclusive": "error"}[result.verdict]
        record = verification_record(
            ready, environment.name, outcome, result.reason, topic=self._gates, signer=self._signer
        )
        self._retrying(self._stop, ready.event_id, lambda: self._published(record))
        log.info(
            "verified %s environment=%s verdict=%s reason=%s",
            job.context,
            environment.name,
            result.verdict,
            result.reason,
        )
        return result

    def _published(self, record: Record) -> Handled:
        self._publish(record)
        return Handled("published")

    def _policy(self, ready: Ready) -> ServicePolicy:
        """The service's policy in the decision's environment (KeyError: no such service; NotReady: no such
        environment)."""
        return in_environment(ready, self._policies.service(ready.service))

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

    # -- outcomes -----------------------------------------------------------------------------------------------

    def _outcome(self, job: Job, kind: OutcomeKind, artifact: str, reason: str | None, *, variant: str = "") -> Handled:
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
        self._publish(outcome_record(outcome, self._events, signer=self._signer))
        gate = gate_record(outcome, self._gates, signer=self._signer) if job.policy.promotion else None
        if gate is not None:  # a service promoted through environments: the worker joins it as a fact of the commit
            self._publish(gate)
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

    def _count(self, job: Job, kind: OutcomeKind) -> None:
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
        headers = deadletter_headers(reason, "deploy-agent", record)
        self._publish(Record(self._deadletter, record.key, record.value or b"", headers))
        log.warning(
            "dead letter topic=%s partition=%d offset=%d reason=%s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        return Handled(f"dead letter: {reason}", dead_letter=True)


class ConsumeForbidden(RuntimeError):
    """Permanent: the broker's ACLs do not let the agent's principal read its topic or use its group."""


_FORBIDDEN = {"TOPIC_AUTHORIZATION_FAILED": "topic", "GROUP_AUTHORIZATION_FAILED": "group"}


class Unverified(Undecodable):
    """A decision that decoded but whose signature did not verify; `event` is what it claims (never acted on)."""

    def __init__(self, message: str, event: BaseCloudEvent) -> None:
        super().__init__(message, "signature")
        self.event = event


class Refused(Undecodable):
    """A ready decision (verified, if signatures are on) that its service's policy does not allow; never acted on."""

    def __init__(self, message: str, event: BaseCloudEvent) -> None:
        super().__init__(message, "policy")
        self.event = event


def _usable(message: Any) -> bool:
    error = message.error()
    if error is None:
        return True
    resource = _FORBIDDEN.get(error.name())
    if resource is not None:  # no retry helps: stop, saying what is missing
        name = message.topic() if resource == "topic" else "of the agent"
        raise ConsumeForbidden(f"may not READ the {resource} {name}: no ACL allows it ({error.name()})")
    log.warning("consumer error error=%s", error)
    return False


def _raw(message: Any) -> RawRecord:
    kind, millis = message.timestamp()
    appended = datetime.fromtimestamp(millis / 1000, UTC) if kind != TIMESTAMP_NOT_AVAILABLE else None
    return RawRecord(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        message.value(),
        message.headers() or [],
        appended,
    )


def _no_prometheus(_query: str) -> list[dict[str, Any]]:
    raise PrometheusUnreachable("PROMETHEUS_URL is not set")
