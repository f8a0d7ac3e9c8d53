"""One ready decision rolled out: read the Deployment, then patch, watch and (on a failed rollout) roll back, step by
step as decisions.decide says, until an outcome is due. Compare-and-set throughout: a lost race is re-read once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from streams.adapters.kubernetes_deployments import (
    Conflict,
    DeploymentsClient,
    DeploymentView,
    Permanent,
    Temporary,
)
from streams.config import DeployAgentSettings
from streams.deploy import decisions
from streams.deploy.decisions import (
    Action,
    Blocked,
    Nothing,
    Patch,
    Report,
    Rollback,
    Watch,
    after_conflict,
    against_policy,
    circuit_open_reason,
    decide,
    failed_rollouts,
    timed_out,
    verification_failed,
)
from streams.deploy.jobs import Handled, Job, ReportOutcome
from streams.deploy.metrics import DeployMetrics
from streams.deploy.verification import Verification
from streams.domain.environments import EnvironmentPolicy
from streams.events.decoding import RawRecord

log = logging.getLogger(__name__)


class Rollouts:
    def __init__(
        self,
        settings: DeployAgentSettings,
        deployments: DeploymentsClient,
        metrics: DeployMetrics,
        outcome: ReportOutcome,
        dead_letter: Callable[[RawRecord, str], Handled],
        *,
        verify: Callable[[Job, EnvironmentPolicy], Verification] | None = None,
    ) -> None:
        """`verify`: evaluates an environment's verify queries after a rollout there completed (and publishes the
        result); None: nothing is verified."""
        self._settings, self._k8s, self._metrics = settings, deployments, metrics
        self._outcome, self._dead_letter, self._verify = outcome, dead_letter, verify

    def _decide(self, job: Job, view: DeploymentView) -> Action:
        return decide(job.ready, view, job.policy.max_failed_rollouts)

    def deploy(self, job: Job) -> Handled:
        # The agent refuses such decisions as they arrive; this also covers one read back from a Deployment's
        # `waiting` annotation after a freeze (which anyone who may annotate the Deployment could have written).
        refused = against_policy(job.ready, job.policy)
        if refused is not None:
            why = f"policy: {refused}; decision refused, nothing deployed"
            return self._outcome(job, "blocked", job.ready.image, why, variant="policy")
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

    def _finish(self, job: Job, action: Action, view: DeploymentView) -> Handled | tuple[Action, DeploymentView] | None:
        """The steps that end the record's handling without changing the Deployment's spec."""
        if self._settings.dry_run and isinstance(action, Watch | Rollback):
            # A real agent started this rollout; a dry run must not touch it.
            return Handled("dry run: leaving a rollout of this decision alone")
        if isinstance(action, Nothing):
            log.info("nothing to do %s reason=%s", job.context, action.reason)
            return Handled(action.reason)
        if isinstance(action, Blocked):
            if decisions.CIRCUIT_OPEN in view.annotations:
                self._metrics.circuit(job.ready.service, True)
            return self._outcome(job, "blocked", view.image, action.reason)
        if isinstance(action, Report):
            if action.annotations and not self._settings.dry_run:
                self._k8s.annotate(view, action.annotations)
            handled = self._outcome(job, action.kind, action.artifact, action.reason)
            if action.circuit_opened:
                reason = circuit_open_reason(job.ready.service, failed_rollouts(view.annotations))
                self._outcome(job, "blocked", action.artifact, reason, variant="circuit")
                self._metrics.circuit(job.ready.service, True)
            if action.kind in ("deployed", "upgraded"):
                return self._verified(job, view, handled)
            return handled
        return None

    def _verified(self, job: Job, view: DeploymentView, completed: Handled) -> Handled | tuple[Action, DeploymentView]:
        """After a completed rollout in an environment with verify queries: a failed one rolls back like a failed
        rollout (its reason names the query and the value); passed or inconclusive leave the rollout as it is."""
        environment = job.policy.environment_named(job.policy.environment)
        if self._verify is None or environment is None or not environment.verify or self._settings.dry_run:
            return completed
        result = self._verify(job, environment)
        if result.verdict == "failed":
            log.warning("verification failed %s reason=%s", job.context, result.reason)
            return verification_failed(job.ready, view, result.reason, job.policy.max_failed_rollouts), view
        if result.verdict == "inconclusive":
            # Held: neither passed (no later environment takes it) nor rolled back. A redelivery verifies again.
            log.warning("verification inconclusive, holding %s reason=%s", job.context, result.reason)
        return completed

    def _advance(self, job: Job, action: Action, view: DeploymentView) -> Handled | tuple[Action, DeploymentView]:
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
                try:
                    view = self._k8s.get(target.namespace, target.deployment, target.container)
                except Temporary:  # the API server is gone too: nothing can be rolled back now
                    return self._outcome(job, "failed", job.ready.image, str(e))
                bound = self._settings.rollout_timeout_s
                log.warning("rollout timed out %s timeout_s=%s", job.context, bound)
                return timed_out(job.ready, view, bound, job.policy.max_failed_rollouts), view
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
