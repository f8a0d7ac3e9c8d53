"""Promotion: per service and per environment after the first, when a commit may go there. Pure, no I/O.

The first environment of a service takes what the readiness rules decide (streams.domain.readiness). A commit they
decided ready becomes a candidate of every later environment, ranked in the order of those decisions (which go strictly
forward on the branch). Gate facts (streams.domain.facts: rollouts completed or rolled back, verifications passed,
approvals) and time then decide it, once per (service, environment, commit), finally:

- **rejected**: it was rolled back (a failed rollout or a failed verify query) in an earlier environment;
- **superseded**: a newer candidate is ready there, or passed this environment's `after` gate (a newer commit verified
  in staging supersedes an older one still soaking): the newest wins, and no environment goes backwards;
- **ready**: every gate holds: its rollout in `after` completed (and verified, where that environment verifies), the
  soak ended (counted from that completion, ended by time, not by another event), the approval is there.

Decisions are a function of the inputs in their order (the worker merges them in log order) and of `now`, which the
caller takes from the records (and the tick stream) so that a replay decides alike.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from streams.domain.environments import EnvironmentPolicy
from streams.domain.facts import Approved, EventRef, GateFact, RolledBack, RolloutCompleted, VerificationPassed
from streams.domain.policy import ServicePolicy
from streams.domain.promotion_state import CommitGates, PromotionKind, ServicePromotion, Verdict
from streams.domain.readiness import NAMESPACE, Decision

__all__ = [
    "MAX_CANDIDATES",
    "NAMESPACE",
    "CommitGates",
    "EnvironmentDecision",
    "EnvironmentStatus",
    "ServicePromotion",
    "empty",
    "explain",
    "next_soak_end",
    "on_gate",
    "on_ready",
    "on_time",
]

MAX_CANDIDATES = 200  # commits kept per service; older decided ones are dropped first


@dataclass(frozen=True)
class EnvironmentDecision:
    kind: PromotionKind
    service: str
    environment: str
    repository: str
    branch: str
    commit: str
    decision_id: str  # uuid5(NAMESPACE, "service/environment/commit/kind"): a re-emitted decision keeps its id
    chain_id: str  # uuid5(NAMESPACE, "repository@commit"): the chain of the commit's webhooks and deploys
    facts: tuple[EventRef, ...]  # the readiness decision's facts, then the gate facts that decided this one
    decided_at: datetime
    image: str | None = None  # ready: the image to deploy
    superseded_by: str | None = None
    reason: str | None = None  # rejected: where it was rolled back, and why


@dataclass(frozen=True)
class EnvironmentStatus:
    """`explain`'s answer for one environment: the decision so far, else what holds and what is missing."""

    environment: str
    status: PromotionKind | None
    holds: tuple[str, ...]
    missing: tuple[str, ...]
    soak_ends: datetime | None = None
    superseded_by: str | None = None
    reason: str | None = None


def _uuid5(name: str) -> str:
    return str(
        uuid.UUID(bytes=hashlib.sha1(NAMESPACE.bytes + name.encode(), usedforsecurity=False).digest()[:16], version=5)
    )


class _Change:
    def __init__(self, state: ServicePromotion, policy: ServicePolicy, now: datetime) -> None:
        self.state, self.policy, self.now = state, policy, now
        self.commits = dict(state.commits)
        self.next_rank, self.next_seen = state.next_rank, state.next_seen
        self.decisions: list[EnvironmentDecision] = []

    def gates(self, commit: str) -> CommitGates:
        found = self.commits.get(commit)
        if found is None:
            found = CommitGates(seen=self.next_seen)
            self.next_seen += 1
            self.commits[commit] = found
        return found

    def later(self) -> Sequence[tuple[int, EnvironmentPolicy]]:
        return list(enumerate(self.policy.environments))[1:]

    def eligible(self, commit: str, index: int) -> bool:
        """Ready by the rules, not rolled back before `index`, and through its `after` gate."""
        gates = self.commits[commit]
        if gates.rank is None or self.rejection(gates, index) is not None:
            return False
        environment = self.policy.environments[index]
        return environment.after is None or self.through(gates, environment.after)

    def through(self, gates: CommitGates, after: str) -> bool:
        before = self.policy.environment_named(after)
        return after in gates.completed and (before is None or not before.verify or after in gates.verified)

    def rejection(self, gates: CommitGates, index: int) -> str | None:
        for earlier in self.policy.environments[:index]:
            failed = gates.rolled_back.get(earlier.name)
            if failed is not None:
                return f"rolled back in {earlier.name}: {failed[0]}"
        return None

    def soak_end(self, gates: CommitGates, environment: EnvironmentPolicy) -> datetime | None:
        if environment.soak is None or environment.after is None or environment.after not in gates.completed:
            return None
        return gates.completed[environment.after].time + environment.soak

    def open(self, gates: CommitGates, environment: EnvironmentPolicy) -> bool:
        """The gates that eligibility leaves: the soak's end and the approval."""
        end = self.soak_end(gates, environment)
        if environment.soak is not None and (end is None or self.now < end):
            return False
        return not environment.approval or environment.name in gates.approved

    def opened_at(self, gates: CommitGates, environment: EnvironmentPolicy) -> datetime:
        """When the last gate opened: a ready decision is dated so, not by the input (a tick, a later fact) that found
        it, so that where the ticks fall changes nothing."""
        times = [self.soak_end(gates, environment) or self.now]
        if environment.after is not None:
            times.append(gates.completed[environment.after].time)
            if environment.after in gates.verified:
                times.append(gates.verified[environment.after].time)
        if environment.approval:
            times.append(gates.approved[environment.name][1].time)
        times += [ref.time for ref in gates.ready_facts]
        return min(self.now, max(times))

    def decide(self, commit: str, environment: str, kind: PromotionKind, **how: str | None) -> None:
        gates = self.commits[commit]
        policy = self.policy.environment_named(environment)
        decided = self.opened_at(gates, policy) if kind == "ready" and policy is not None else self.now
        verdict = Verdict(kind, decided, how.get("superseded_by"), how.get("reason"))
        self.commits[commit] = replace(gates, verdicts={**gates.verdicts, environment: verdict})
        refs = [*gates.completed.values(), *gates.verified.values(), *(r for _, r in gates.rolled_back.values())]
        refs += [r for _, r in gates.approved.values()]
        self.decisions.append(
            EnvironmentDecision(
                kind=kind,
                service=self.policy.name,
                environment=environment,
                repository=self.state.repository,
                branch=self.policy.branch,
                commit=commit,
                decision_id=_uuid5(f"{self.policy.name}/{environment}/{commit}/{kind}"),
                chain_id=_uuid5(f"{self.state.repository}@{commit}"),
                facts=(*gates.ready_facts, *sorted(refs, key=lambda r: (r.time, r.source, r.id))),
                decided_at=decided,
                image=gates.image if kind == "ready" else None,
                superseded_by=how.get("superseded_by"),
                reason=how.get("reason"),
            )
        )

    def settle(self, commit: str, index: int) -> None:
        environment = self.policy.environments[index]
        gates = self.commits[commit]
        if environment.name in gates.verdicts or gates.rank is None:
            return
        rejection = self.rejection(gates, index)
        if rejection is not None:
            self.decide(commit, environment.name, "rejected", reason=rejection)
        elif self.eligible(commit, index) and self.open(gates, environment):
            self.decide(commit, environment.name, "ready")
            self.supersede_below(index, gates.rank, commit)
        elif self.eligible(commit, index):
            self.supersede_below(index, gates.rank, commit)

    def supersede_below(self, index: int, rank: int, by: str) -> None:
        environment = self.policy.environments[index].name
        for commit, gates in sorted(self.commits.items(), key=lambda item: item[1].rank or -1):
            if gates.rank is not None and gates.rank < rank and environment not in gates.verdicts:
                self.decide(commit, environment, "superseded", superseded_by=by)

    def settle_all(self, commits: Sequence[str] | None = None) -> None:
        """Every environment after the first, oldest candidate first (decisions in a stable order)."""
        for index, _ in self.later():
            names = commits if commits is not None else self.undecided(index)
            for commit in sorted(names, key=lambda c: self.commits[c].rank or -1):
                self.settle(commit, index)

    def undecided(self, index: int) -> list[str]:
        environment = self.policy.environments[index].name
        return [c for c, g in self.commits.items() if g.rank is not None and environment not in g.verdicts]

    def result(self) -> tuple[ServicePromotion, list[EnvironmentDecision]]:
        state = ServicePromotion(
            self.state.service,
            self.state.repository,
            _pruned(self.commits, self.policy),
            self.next_rank,
            self.next_seen,
        )
        return state, self.decisions


def _pruned(commits: dict[str, CommitGates], policy: ServicePolicy) -> Mapping[str, CommitGates]:
    if len(commits) <= MAX_CANDIDATES:
        return commits
    later = [e.name for e in policy.environments[1:]]

    def order(item: tuple[str, CommitGates]) -> tuple[bool, int]:
        gates = item[1]
        decided = gates.rank is not None and all(e in gates.verdicts for e in later)
        return (not decided, gates.seen)  # decided ones first, then the oldest seen

    dropped = sorted(commits.items(), key=order)[: len(commits) - MAX_CANDIDATES]
    return {c: g for c, g in commits.items() if c not in {d for d, _ in dropped}}


def empty(service: str, repository: str) -> ServicePromotion:
    return ServicePromotion(service, repository)


def on_ready(
    state: ServicePromotion, policy: ServicePolicy, decision: Decision, now: datetime
) -> tuple[ServicePromotion, list[EnvironmentDecision]]:
    """The readiness rules decided a commit ready for the service (its first environment); other kinds change
    nothing: a commit superseded or expired there goes nowhere else."""
    if decision.kind != "ready" or decision.service != policy.name:
        return state, []
    commit = decision.commit
    change = _Change(state, policy, now)
    if commit in state.commits and state.commits[commit].rank is not None:
        return state, []  # the same decision again (a re-emitted one): nothing new
    change.settle_all()  # as in on_gate: soaks that ended before it count first
    gates = change.gates(commit)
    change.commits[commit] = replace(gates, rank=change.next_rank, image=decision.image, ready_facts=decision.facts)
    change.next_rank += 1
    change.settle_all([commit])
    return change.result()


def on_gate(
    state: ServicePromotion, policy: ServicePolicy, fact: GateFact, now: datetime
) -> tuple[ServicePromotion, list[EnvironmentDecision]]:
    """A gate fact of one of the service's commits; facts of an environment the service lacks change nothing."""
    if fact.service != policy.name or policy.environment_named(fact.environment) is None:
        return state, []
    change = _Change(state, policy, now)
    change.settle_all()  # what time decided before this fact, however late the last tick was: ticks do not matter
    gates = change.gates(fact.commit)
    env = fact.environment
    if isinstance(fact, RolloutCompleted):
        updated = replace(gates, completed={env: fact.ref, **gates.completed})
    elif isinstance(fact, VerificationPassed):
        updated = replace(gates, verified={env: fact.ref, **gates.verified})
    elif isinstance(fact, RolledBack):
        updated = replace(gates, rolled_back={env: (fact.reason, fact.ref), **gates.rolled_back})
    elif isinstance(fact, Approved):
        updated = replace(gates, approved={env: (fact.approver, fact.ref), **gates.approved})
    if updated == gates:  # the first fact of each kind counts: a duplicate (or a later repeat) changes nothing
        return change.result() if change.decisions else (state, [])
    change.commits[fact.commit] = updated
    change.settle_all()
    return change.result()


def on_time(
    state: ServicePromotion, policy: ServicePolicy, now: datetime
) -> tuple[ServicePromotion, list[EnvironmentDecision]]:
    """Decide what time alone now allows: soaks that ended."""
    change = _Change(state, policy, now)
    change.settle_all()
    return change.result() if change.decisions else (state, [])


def next_soak_end(state: ServicePromotion, policy: ServicePolicy) -> datetime | None:
    """When `on_time` may next decide something: the earliest soak end of an undecided candidate."""
    change = _Change(state, policy, datetime.max)
    ends = []
    for index, environment in change.later():
        for commit in change.undecided(index):
            end = change.soak_end(change.commits[commit], environment)
            if end is not None:
                ends.append(end)
    return min(ends, default=None)


def explain(state: ServicePromotion, policy: ServicePolicy, commit: str, now: datetime) -> list[EnvironmentStatus]:
    """Per environment after the first: the decision, or what holds and what is still missing."""
    change = _Change(state, policy, now)
    gates = state.commits.get(commit, CommitGates())
    out = []
    for index, environment in change.later():
        verdict = gates.verdicts.get(environment.name)
        holds: list[str] = []
        missing: list[str] = []
        (holds if gates.rank is not None else missing).append("ready by the service's rules")
        if environment.after is not None:
            after = environment.after
            (holds if after in gates.completed else missing).append(f"rollout completed in {after}")
            before = policy.environment_named(after)
            if before is not None and before.verify:
                (holds if after in gates.verified else missing).append(f"verification passed in {after}")
        end = change.soak_end(gates, environment)
        if environment.soak is not None:
            soaked = end is not None and now >= end
            label = f"soak {_duration(environment.soak)} in {environment.after}" + (
                "" if end is None else f" (ends {end:%Y-%m-%dT%H:%M:%SZ})"
            )
            (holds if soaked else missing).append(label)
        if environment.approval:
            approver = gates.approved.get(environment.name)
            (holds if approver else missing).append(
                f"approved by {approver[0]}" if approver else "waiting for approval"
            )
        out.append(
            EnvironmentStatus(
                environment.name,
                None if verdict is None else verdict.kind,
                tuple(holds),
                tuple(missing),
                soak_ends=end,
                superseded_by=None if verdict is None else verdict.superseded_by,
                reason=None if verdict is None else verdict.reason or change.rejection(gates, index),
            )
        )
    return out


def _duration(value: timedelta) -> str:
    """As the policy file writes it: 90s, 15m, 2h, 1d (the largest unit that divides it)."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
