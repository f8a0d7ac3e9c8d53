"""One repository's state, folded fact by fact and by time: the readiness rules, then promotion. Pure, no I/O.

What the worker calls: a provider or CI fact goes through the readiness rules (streams.domain.readiness), and each
commit they decide ready becomes a candidate of its service's later environments (streams.domain.promotion); a gate
fact goes to promotion alone; time expires waiting commits and ends soaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from streams.domain import promotion
from streams.domain.facts import Approved, Fact, GateFact, RolledBack, RolloutCompleted, VerificationPassed
from streams.domain.policy import ServicePolicy
from streams.domain.promotion import EnvironmentDecision
from streams.domain.readiness import Decision, RepositoryState, apply, expire, next_deadline

__all__ = ["Decided", "fold_fact", "fold_time", "next_due"]

Decided = Decision | EnvironmentDecision
_GATES = (RolloutCompleted, VerificationPassed, RolledBack, Approved)


def fold_fact(
    state: RepositoryState, fact: Fact | GateFact, services: Sequence[ServicePolicy], now: datetime
) -> tuple[RepositoryState, list[Decided]]:
    """Add one fact of the repository; returns the new state and the decisions it caused, readiness's first."""
    if isinstance(fact, _GATES):
        service = next((s for s in services if s.name == fact.service and s.promotion), None)
        if service is None or fact.repository != state.repository:
            return state, []
        current = state.promotions.get(service.name) or promotion.empty(service.name, state.repository)
        updated, made = promotion.on_gate(current, service, fact, now)
        return _with(state, service.name, current, updated), list(made)
    state, decisions = apply(state, fact, services, now)
    out: list[Decided] = list(decisions)
    for decision in decisions:
        service = next((s for s in services if s.name == decision.service and s.promotion), None)
        if decision.kind != "ready" or service is None:
            continue
        current = state.promotions.get(service.name) or promotion.empty(service.name, state.repository)
        updated, made = promotion.on_ready(current, service, decision, now)
        state = _with(state, service.name, current, updated)
        out += made
    return state, out


def fold_time(
    state: RepositoryState, services: Sequence[ServicePolicy], now: datetime
) -> tuple[RepositoryState, list[Decided]]:
    """What time alone decides at `now`: expiries (readiness), then soaks that ended (promotion)."""
    state, decisions = expire(state, services, now)
    out: list[Decided] = list(decisions)
    for service in services:
        current = state.promotions.get(service.name)
        if current is None:
            continue
        updated, made = promotion.on_time(current, service, now)
        state = _with(state, service.name, current, updated)
        out += made
    return state, out


def next_due(state: RepositoryState, services: Sequence[ServicePolicy]) -> datetime | None:
    """When `fold_time` will next decide something (may be in the past)."""
    dues = [next_deadline(state, services)]
    for service in services:
        current = state.promotions.get(service.name)
        if current is not None:
            dues.append(promotion.next_soak_end(current, service))
    return min((d for d in dues if d is not None), default=None)


def _with(
    state: RepositoryState,
    service: str,
    current: promotion.ServicePromotion,
    updated: promotion.ServicePromotion,
) -> RepositoryState:
    if updated is current:  # most facts change nothing here: keep the state (the store compares by identity)
        return state
    return replace(state, promotions={**state.promotions, service: updated})
