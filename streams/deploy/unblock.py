"""`autodeploy unblock <service>`: close an open circuit breaker and say so on deploy.events."""

from __future__ import annotations

import logging
from collections.abc import Callable

from streams.adapters.kafka_producer import Record
from streams.adapters.kubernetes_deployments import DeploymentsClient
from streams.deploy.decisions import CHAIN_ID, CIRCUIT_OPEN, FAILED_ROLLOUTS, failed_rollouts
from streams.deploy.outcomes import Unblocked, unblocked_record
from streams.domain.policy import ServicePolicy
from streams.events.dsse_keys import SigningKey

log = logging.getLogger(__name__)


def unblock(
    policy: ServicePolicy,
    deployments: DeploymentsClient,
    publish: Callable[[Record], None],
    topic: str,
    *,
    signer: SigningKey | None = None,
) -> Unblocked | None:
    """Clear the circuit of `policy`'s Deployment; None when it was not open (nothing changes, nothing published).
    The `unblocked` event is signed with `signer` (the deploy agent's key) when there is one.

    The annotations go first: a crash between the two leaves deploys resumed and unannounced, and a second run
    finds nothing to do; the other order could announce a circuit that is still open.
    """
    target = policy.target
    view = deployments.get(target.namespace, target.deployment, target.container)
    opened_by = view.annotations.get(CIRCUIT_OPEN)
    if opened_by is None:
        return None
    cleared = Unblocked(
        policy.name,
        target.namespace,
        target.deployment,
        policy.environment,
        opened_by,
        view.annotations.get(CHAIN_ID, opened_by),
        failed_rollouts(view.annotations),
    )
    deployments.annotate(view, {CIRCUIT_OPEN: None, FAILED_ROLLOUTS: None})
    publish(unblocked_record(cleared, topic, signer=signer))
    log.info("circuit cleared service=%s opened_by=%s event_id=%s", policy.name, opened_by, cleared.event_id)
    return cleared
