"""Deploy readiness: per commit and per service, from facts in any arrival order, never backwards. Pure, no I/O.

A commit is ready for a service when it is a head pushed (or merged) to the service's branch, the latest result of
every required check is a success, and its image is known. Each (service, commit) gets at most one decision, final:
ready, superseded (a newer commit of the branch is ready, or a forced push rewrote the branch) or expired (it was
relevant to the service and undecided at first-fact time + TTL). Final means final: a rerun that fails after a ready
decision does not take it back, and a rerun that succeeds does not revive an expired or superseded commit.

Order on a branch comes from the GitHub stream only: positions are (epoch, seq), seqs spaced by _STEP. A push gives
its `after` the next seq (newer than everything known on the branch) unless `after` is placed already and above
`before`; a `before` not placed yet gets the seq just below `after`, so a parent's push delivered late (or after its
child's merge event) is still ordered below the child. A merged change is placed at arrival, as its push may never
come; the push moves it up only if it would otherwise sit at or below its `before`. A forced push starts a new epoch:
still-waiting commits of older epochs are superseded by its `after` at once, and so is any old-epoch commit that
becomes relevant later. Only deploy branches are tracked: pushes and merges to other branches, branch deletions and
images without a commit are ignored.

Remaining order dependence. Each stream is in order, but how the two interleave is not fixed, and decisions are
final. An older commit can be ready only while no newer commit of its branch is ready. So when A (older) and B
(newer) both complete: A completing first gives "A ready, B ready"; B completing first gives "B ready, A superseded
by B". Likewise an old-history commit completing before or after a forced push is ready or superseded. Which newer
commit supersedes a waiting one, and the facts listed in superseded and expired decisions, also follow the
interleaving. Invariant: the newest complete commit (of the newest history) is ready; ready decisions of a service go
strictly forward on its branch; the set of decided commits and the kinds of incomplete commits are the same;
duplicates change nothing; ids depend on (service, commit, kind) only. Pruning (readiness_state) follows arrival.
All event times must be timezone-aware: they are compared.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from streams.domain.facts import BranchPushed, ChangeMerged, CheckFinished, EventRef, Fact, Outcome
from streams.domain.policy import ServicePolicy
from streams.domain.readiness_state import (
    BranchState,
    CheckResult,
    CommitRecord,
    DecisionKind,
    ImageSeen,
    Position,
    ReadyHead,
    RepositoryState,
    StrMap,
    Verdict,
    empty_state,
    from_json,
    prune,
    to_json,
)

__all__ = [
    "NAMESPACE",
    "CommitExplanation",
    "Decision",
    "RepositoryState",
    "apply",
    "earliest_expiry",
    "empty_state",
    "expire",
    "explain",
    "from_json",
    "next_deadline",
    "to_json",
]

_STEP = 1024  # seqs are spaced so that a parent learnt late can be placed just below its child
_SUCCESS = Outcome.SUCCESS  # enum member lookups are slow on Python 3.11, and this one is in the hot path
NAMESPACE = uuid.UUID("6f1c2a4e-9b7d-5e3a-8c41-2d0f7a9b3e55")  # for decision and chain ids; never change it


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    service: str
    repository: str
    branch: str
    commit: str
    decision_id: str  # uuid5(NAMESPACE, "service/commit/kind"): a re-emitted decision carries the same id
    chain_id: str  # uuid5(NAMESPACE, "repository@commit"): shared with the deploy events of the commit
    facts: tuple[EventRef, ...]  # the facts that decided it
    image: str | None = None  # ready: the image to deploy
    superseded_by: str | None = None
    missing: tuple[str, ...] = ()  # expired: what it waited for
    decided_at: datetime | None = None


@dataclass(frozen=True)
class CommitExplanation:
    service: str
    commit: str
    branch: str
    status: DecisionKind | None  # None: not decided (waiting, or not relevant to the service yet)
    waiting: bool
    position: Position | None
    present: tuple[EventRef, ...]  # facts that count for the service
    other: tuple[EventRef, ...]  # facts of the commit that do not (checks not required, other images, branches)
    missing: tuple[str, ...]
    superseded_by: str | None = None
    deadline: datetime | None = None


def _uuid5(name: str) -> str:
    """str(uuid.uuid5(NAMESPACE, name)), three times faster: every decision needs two."""
    digest = bytearray(hashlib.sha1(NAMESPACE.bytes + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ref_key(ref: EventRef) -> tuple[datetime, int, str, str]:
    return (ref.time, ref.offset, ref.source, ref.id)


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name  # "host:5000/app" has no tag


def _is_null(sha: str) -> bool:
    return not sha.strip("0")  # GitHub's before of a new branch, after of a deleted one


def _latest(record: CommitRecord, service: ServicePolicy) -> list[tuple[str, CheckResult | None]]:
    out = []
    for check in service.required_checks:
        results = record.checks.get(check)
        out.append((f"{check.kind.value}:{check.name}", results[-1] if results else None))
    return out


def _image(record: CommitRecord, commit: str, service: ServicePolicy) -> tuple[str | None, EventRef | None, bool]:
    """(image, the fact that gave it, known). Of several published images the earliest counts."""
    if service.image_from_package is None:
        return service.image_for(commit), None, True
    wanted = service.image_from_package
    first = min(
        (i for i in record.images if _image_name(i.image) == wanted), key=lambda i: _ref_key(i.ref), default=None
    )
    return (None, None, False) if first is None else (first.image, first.ref, True)


def _complete(record: CommitRecord, commit: str, service: ServicePolicy) -> bool:
    """`not _missing(...)`, without building the strings: this runs for every fact of a waiting commit."""
    if not record.heads.get(service.branch):
        return False
    for check in service.required_checks:
        results = record.checks.get(check)
        if not results or results[-1].outcome is not _SUCCESS:
            return False
    return _image(record, commit, service)[2]


def _missing(record: CommitRecord, commit: str, service: ServicePolicy) -> tuple[str, ...]:
    missing = [] if record.heads.get(service.branch) else [f"push to {service.branch}"]
    for name, latest in _latest(record, service):
        if latest is None or latest.outcome is not _SUCCESS:
            missing.append(f"check {name} (latest: {'none' if latest is None else latest.outcome.value})")
    if not _image(record, commit, service)[2]:
        missing.append(f"image {service.image_from_package}")
    return tuple(missing)


def _present(record: CommitRecord, commit: str, service: ServicePolicy) -> tuple[EventRef, ...]:
    """The facts that decide for the service: its branch heads, the latest required results, the image."""
    refs = sorted(record.heads.get(service.branch, ()), key=_ref_key)
    refs += [latest.ref for _, latest in _latest(record, service) if latest is not None]
    image_ref = _image(record, commit, service)[1]
    return (*refs, *([image_ref] if image_ref else []))


def _relevant(record: CommitRecord, service: ServicePolicy) -> bool:
    return service.branch in record.heads or any(c in record.checks for c in service.required_checks)


class _Change:
    """One apply/expire call: reads through to the old state, collects changes, then builds the new state."""

    def __init__(self, state: RepositoryState, services: Sequence[ServicePolicy], now: datetime) -> None:
        self.state, self.services, self.now = state, services, now
        self.commits: dict[str, CommitRecord] = {}
        self.branches = dict(state.branches)
        self.heads = dict(state.ready_heads)
        self.waiting: dict[str, dict[str, bool]] = {}  # service -> commit -> waiting (False: no longer)
        self.tombstones = state.tombstones
        self.next_seq = state.next_seq
        self.decisions: list[Decision] = []

    def record(self, commit: str) -> CommitRecord | None:
        return self.commits.get(commit) or self.state.commits.get(commit)

    def ensure(self, commit: str) -> CommitRecord:
        record = self.record(commit)
        if record is None:
            # A pruned commit comes back with its verdicts: they stay final.
            record = CommitRecord(seq=self.next_seq, verdicts=self.tombstones.get(commit, {}))
            self.next_seq += 1
            if commit in self.tombstones:
                self.tombstones = {c: v for c, v in self.tombstones.items() if c != commit}
            self.commits[commit] = record
        return record

    def is_waiting(self, service: str, commit: str) -> bool:
        changed = self.waiting.get(service, {}).get(commit)
        if changed is not None:
            return changed
        old = self.state.waiting.get(service)
        return old is not None and commit in old

    def set_waiting(self, service: str, commit: str, waiting: bool) -> None:
        if self.is_waiting(service, commit) != waiting:  # most facts change nothing here: keep the old map then
            self.waiting.setdefault(service, {})[commit] = waiting

    def waiting_for(self, service: str) -> list[str]:
        old = self.state.waiting.get(service)
        candidates = set(old or ()) | set(self.waiting.get(service, {}))
        return sorted(c for c in candidates if self.is_waiting(service, c))  # sorted: decisions in a stable order

    def place(self, commit: str, branch: str, below: Position | None = None) -> Position:
        """Give `commit` the next position on `branch` (newer than everything known there), or the one `below`."""
        state = self.branches.get(branch, BranchState())
        if below is None:
            position = (state.epoch, state.next_seq)
            self.branches[branch] = replace(state, next_seq=state.next_seq + _STEP)
        else:
            position = (below[0], below[1] - 1)
        record = self.ensure(commit)
        self.commits[commit] = replace(record, positions={**record.positions, branch: position})
        for service in self.services:  # the ready head moved up with it
            head = self.heads.get(service.name)
            if service.branch == branch and head is not None and head.commit == commit:
                self.heads[service.name] = ReadyHead(commit, position)
        return position

    def decide(
        self, service: ServicePolicy, commit: str, kind: DecisionKind, by: str | None = None, at: datetime | None = None
    ) -> None:
        """`at`: when it was decided, if not at `now` (an expiry is dated by its deadline, whenever it is found)."""
        record = self.ensure(commit)
        image = _image(record, commit, service)[0]
        decided = at or self.now
        self.commits[commit] = replace(record, verdicts={**record.verdicts, service.name: Verdict(kind, by, decided)})
        self.set_waiting(service.name, commit, False)
        self.decisions.append(
            Decision(
                kind=kind,
                service=service.name,
                repository=self.state.repository,
                branch=service.branch,
                commit=commit,
                decision_id=_uuid5(f"{service.name}/{commit}/{kind}"),
                chain_id=_uuid5(f"{self.state.repository}@{commit}"),
                facts=_present(record, commit, service),
                image=image if kind == "ready" else None,
                superseded_by=by,
                missing=_missing(record, commit, service) if kind == "expired" else (),
                decided_at=decided,
            )
        )

    def settle(self, service: ServicePolicy, commit: str) -> None:
        """Decide ready or superseded if the facts allow, else mark waiting. Expiry is only ever decided by time."""
        record = self.record(commit)
        if record is None or service.name in record.verdicts or not _relevant(record, service):
            return
        position = record.positions.get(service.branch)
        branch = self.branches.get(service.branch)
        head = self.heads.get(service.name)
        if position is not None and branch is not None and position[0] < branch.epoch:
            self.decide(service, commit, "superseded", branch.epoch_head)
        elif position is not None and head is not None and head.position >= position:
            self.decide(service, commit, "superseded", head.commit)
        elif position is not None and _complete(record, commit, service):
            self.decide(service, commit, "ready")
            self.heads[service.name] = ReadyHead(commit, position)
            self.supersede(service, lambda p: p < position, commit)
        else:
            self.set_waiting(service.name, commit, True)

    def supersede(self, service: ServicePolicy, older: Callable[[Position], bool], by: str | None) -> None:
        for waiting in self.waiting_for(service.name):
            record = self.record(waiting)
            position = None if record is None else record.positions.get(service.branch)
            if position is not None and older(position):
                self.decide(service, waiting, "superseded", by)

    def expire(self, service: ServicePolicy, commit: str) -> None:
        record = self.record(commit)
        if record is None or record.first_fact is None or not self.is_waiting(service.name, commit):
            return
        deadline = record.first_fact + service.readiness_ttl
        if self.now >= deadline:
            self.decide(service, commit, "expired", at=deadline)

    def result(self) -> tuple[RepositoryState, list[Decision]]:
        waiting = dict(self.state.waiting)
        for service, changes in self.waiting.items():
            current = waiting.get(service)
            base = current if current is not None else StrMap[bool]()
            waiting[service] = base.updated(
                {c: True for c, w in changes.items() if w}, [c for c, w in changes.items() if not w]
            )
        old = self.state
        state = RepositoryState(
            repository=old.repository,
            commits=old.commits.updated(self.commits) if self.commits else old.commits,
            branches=self.branches,
            ready_heads=self.heads,
            waiting=waiting if self.waiting else old.waiting,
            tombstones=self.tombstones,
            next_seq=self.next_seq,
            prune_at=old.prune_at,
            dropped_undecided=old.dropped_undecided,
            promotions=old.promotions,
        )
        return prune(state), self.decisions


def _seen(record: CommitRecord, fact: Fact) -> bool:
    """A duplicate is a fact whose event (source + id) is already stored with its commit."""
    if isinstance(fact, BranchPushed | ChangeMerged):
        refs = record.heads.get(fact.branch, ())
    elif isinstance(fact, CheckFinished):
        refs = tuple(r.ref for r in record.checks.get(fact.check, ()))
    else:
        refs = tuple(i.ref for i in record.images)
    return any(r.source == fact.ref.source and r.id == fact.ref.id for r in refs)


def _learned_at(ref: EventRef) -> datetime:
    """When autodeploy learned of a fact: its receipt where known. A provider's own time can be far in the past (a
    redelivered webhook, a CI result of an old workflow, a skewed clock) and would expire a commit on its first fact."""
    return ref.received or ref.time


def _with_fact(record: CommitRecord, fact: Fact) -> CommitRecord:
    learned = _learned_at(fact.ref)
    first = learned if record.first_fact is None else min(record.first_fact, learned)
    if isinstance(fact, BranchPushed | ChangeMerged):
        heads = {**record.heads, fact.branch: (*record.heads.get(fact.branch, ()), fact.ref)}
        return replace(record, first_fact=first, heads=heads)
    if isinstance(fact, CheckFinished):
        result = CheckResult(fact.attempt, fact.outcome, fact.ref)
        results = tuple(sorted((*record.checks.get(fact.check, ()), result), key=CheckResult.order))
        return replace(record, first_fact=first, checks={**record.checks, fact.check: results})
    return replace(record, first_fact=first, images=(*record.images, ImageSeen(fact.image, fact.ref)))


def _order_push(change: _Change, push: BranchPushed) -> list[str]:
    """Place the pushed commit on its branch; returns the other commits that got a position."""
    branch, after = push.branch, push.after
    if push.forced:
        state = change.branches.get(branch, BranchState())
        epoch = state.epoch + 1
        change.branches[branch] = BranchState(epoch, state.next_seq, after)
        change.place(after, branch)
        for service in change.services:
            if service.branch == branch:
                change.supersede(service, lambda p: p[0] < epoch, after)
        return []
    record = change.record(after)
    after_pos = None if record is None else record.positions.get(branch)
    before = None if _is_null(push.before) or push.before == after else push.before
    before_record = None if before is None else change.record(before)
    before_pos = None if before_record is None else before_record.positions.get(branch)
    if after_pos is None or (before_pos is not None and after_pos <= before_pos):  # e.g. a merge placed too early
        after_pos = change.place(after, branch)
    if before is None or before_pos is not None:
        return []
    change.place(before, branch, below=after_pos)  # so that a late push of `before` is still ordered below
    return [before]


def apply(
    state: RepositoryState, fact: Fact, services: Sequence[ServicePolicy], now: datetime
) -> tuple[RepositoryState, list[Decision]]:
    """Add one fact; returns the new state and the decisions it caused (none for a duplicate)."""
    if fact.repository != state.repository:
        return state, []
    branches = {s.branch for s in services}
    if isinstance(fact, BranchPushed):
        if fact.deleted or _is_null(fact.after) or fact.branch not in branches:
            return state, []
        commit: str | None = fact.after
    elif isinstance(fact, ChangeMerged):
        commit = fact.commit if fact.branch in branches else None
    else:
        commit = fact.commit  # an image without its commit cannot be joined to anything
    if commit is None:
        return state, []
    change = _Change(state, services, now)
    old = change.record(commit)
    if old is not None and _seen(old, fact):
        return state, []
    for service in services:  # a fact arriving after the deadline finds the commit expired
        change.expire(service, commit)
    touched = [commit]
    if isinstance(fact, BranchPushed):
        touched += _order_push(change, fact)
    elif isinstance(fact, ChangeMerged) and fact.branch not in change.ensure(commit).positions:
        change.place(commit, fact.branch)  # its push may never come; if it does, it can only move it up
    change.commits[commit] = _with_fact(change.ensure(commit), fact)
    for service in services:
        for touched_commit in touched:
            change.settle(service, touched_commit)
    return change.result()


def expire(
    state: RepositoryState, services: Sequence[ServicePolicy], now: datetime
) -> tuple[RepositoryState, list[Decision]]:
    """Decide expired every commit that waited for a service since at least its readiness TTL. O(waiting commits)."""
    change = _Change(state, services, now)
    for service in services:
        for commit in change.waiting_for(service.name):
            change.expire(service, commit)
    return change.result() if change.decisions else (state, [])


def next_deadline(state: RepositoryState, services: Sequence[ServicePolicy]) -> datetime | None:
    """When `expire` will next decide something (may be in the past). O(waiting commits)."""
    firsts: dict[str, list[datetime]] = {}
    for service in services:
        records = (state.commits.get(commit) for commit in state.waiting.get(service.name, ()))
        firsts[service.name] = [r.first_fact for r in records if r is not None and r.first_fact is not None]
    return earliest_expiry(firsts, services)


def earliest_expiry(
    first_facts: Mapping[str, Sequence[datetime]], services: Sequence[ServicePolicy]
) -> datetime | None:
    """`next_deadline` from each service's waiting commits' first facts alone (a recovery reads just those)."""
    return min((f + s.readiness_ttl for s in services for f in first_facts.get(s.name, ())), default=None)


def explain(state: RepositoryState, commit: str, services: Sequence[ServicePolicy]) -> list[CommitExplanation]:
    """Per service: what counts, what else is known, what is missing, and the decision so far."""
    record = state.commits.get(commit) or CommitRecord(seq=-1, verdicts=state.tombstones.get(commit, {}))
    known = [*(r for refs in record.heads.values() for r in refs), *(i.ref for i in record.images)]
    known += [r.ref for results in record.checks.values() for r in results]
    out = []
    for service in services:
        present = _present(record, commit, service)
        verdict = record.verdicts.get(service.name)
        waiting = commit in state.waiting.get(service.name, ())
        deadline = record.first_fact + service.readiness_ttl if waiting and record.first_fact is not None else None
        out.append(
            CommitExplanation(
                service=service.name,
                commit=commit,
                branch=service.branch,
                status=None if verdict is None else verdict.kind,
                waiting=waiting,
                position=record.positions.get(service.branch),
                present=present,
                other=tuple(sorted((r for r in known if r not in present), key=_ref_key)),
                missing=_missing(record, commit, service),
                superseded_by=None if verdict is None else verdict.superseded_by,
                deadline=deadline,
            )
        )
    return out
