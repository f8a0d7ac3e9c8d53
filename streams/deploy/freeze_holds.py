"""Freeze windows in the deploy agent: a ready decision inside one waits, in the Deployment's `autodeploy.dev/waiting`
annotation (waiting.py) so a restarted agent still knows it, and is deployed once no window holds, unless a newer
ready decision of its service is queued by then (it is skipped). One waits per service and environment: a newer one
replaces it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from cloudevents.core.base import BaseCloudEvent

from streams.adapters.kubernetes_deployments import DeploymentsClient, KubernetesError, Permanent
from streams.config import DeployAgentSettings
from streams.deploy import decisions
from streams.deploy import pending as queue
from streams.deploy.decisions import WAITING
from streams.deploy.jobs import Handled, Job, ReportOutcome, Retrying
from streams.deploy.metrics import DeployMetrics
from streams.deploy.waiting import from_annotation, to_annotation
from streams.domain.policy import Policies, ServicePolicy
from streams.events.decoding import Undecodable

log = logging.getLogger(__name__)


class FreezeHolds:
    def __init__(
        self,
        settings: DeployAgentSettings,
        policies: Policies,
        deployments: DeploymentsClient,
        metrics: DeployMetrics,
        *,
        outcome: ReportOutcome,
        retrying: Retrying,
        deploy: Callable[[Job], Handled],
        observe: Callable[[Handled], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._settings, self._policies, self._k8s, self._metrics = settings, policies, deployments, metrics
        self._outcome, self._retrying, self._deploy, self._observe = outcome, retrying, deploy, observe
        self._clock = clock
        # (service, environment) -> the ready decision a freeze window holds back
        self._waiting: dict[tuple[str, str], Job] = {}

    def load_state(self) -> None:
        """What the Deployments remember: decisions waiting out a freeze, and open circuit breakers (for the gauge)."""
        for service in self._policies.services:
            for environment in service.environments:
                self._load(replace(service, target=environment.target, environment=environment.name))

    def _load(self, policy: ServicePolicy) -> None:
        """One Deployment's state: `policy` is its service's policy in one environment."""
        if policy.target.context is not None:
            return  # another cluster's: this agent does not serve it (see DeployAgent)
        target = policy.target
        try:
            view = self._k8s.get(target.namespace, target.deployment, target.container)
        except KubernetesError as e:
            log.warning("cannot read state service=%s error=%s", policy.name, e)
            return
        self._metrics.circuit(policy.name, decisions.CIRCUIT_OPEN in view.annotations)
        text = view.annotations.get(WAITING)
        if text is None:
            return
        try:
            held = from_annotation(text)
        except ValueError as e:
            log.warning("ignored waiting annotation service=%s error=%s", policy.name, e)
            return
        self._waiting[(policy.name, policy.environment)] = Job(
            held.ready, policy, None, held.decided, held.pipeline_start, {}
        )
        log.info("waiting for a freeze window to end service=%s commit=%s", policy.name, held.ready.commit)

    def hold(self, job: Job, reason: str) -> Handled:
        """A freeze window holds `job` back: remember it (replacing an older one, which is skipped) and say so."""
        service = (job.ready.service, job.policy.environment)
        older = self._waiting.get(service)
        if older is not None and older.ready.event_id != job.ready.event_id:
            why = f"superseded by newer ready commit {job.ready.commit} while waiting for a freeze window"
            self._outcome(older, "skipped", older.ready.image, why)
        self._remember(job, to_annotation(job.waiting))
        self._waiting[service] = job
        log.info("held by a freeze window %s reason=%s", job.context, reason)
        return self._outcome(job, "blocked", job.ready.image, reason, variant="freeze")

    def _remember(self, job: Job, value: str | None) -> None:
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

    def release_waiting(self, stop: threading.Event, queued: list[BaseCloudEvent | Undecodable]) -> None:
        """Deploy what waited once no freeze window holds it; skip it when a newer ready decision is queued."""
        now = self._clock()
        for (service, environment), job in list(self._waiting.items()):
            if job.policy.frozen(now) is not None:
                continue
            superseded = queue.has_ready_for(queued, service, environment)
            self._observe(self._release(stop, job, superseded=superseded))

    def _release(self, stop: threading.Event, job: Job, *, superseded: bool) -> Handled:
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

    def _forget(self, job: Job) -> Handled:
        self._remember(job, None)
        del self._waiting[(job.ready.service, job.policy.environment)]
        return Handled("forgotten")
