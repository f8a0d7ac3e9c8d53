"""What the readiness rules remember about one repository, its bounds, and its JSON form. Pure data, no I/O.

The worker keeps one `RepositoryState` per repository and replaces it after every fact, so the state is immutable and
a change must not copy it whole: commits live in a `StrMap`, which copies one of 64 buckets per change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from streams.domain.event_ref_json import ref_from_json as _ref
from streams.domain.event_ref_json import ref_to_json as _ref_json
from streams.domain.facts import CheckId, CheckKind, EventRef, Outcome
from streams.domain.promotion_state import ServicePromotion, promotions_from_json, promotions_to_json

__all__ = [
    "HARD_MAX_COMMITS",
    "MAX_COMMITS",
    "BranchState",
    "CheckResult",
    "CommitRecord",
    "DecisionKind",
    "ImageSeen",
    "Position",
    "ReadyHead",
    "RepositoryState",
    "StrMap",
    "Verdict",
    "bucket_from_json",
    "bucket_to_json",
    "empty_state",
    "from_json",
    "meta_to_json",
    "prune",
    "state_from_parts",
    "to_json",
    "tombstones_from_json",
    "tombstones_to_json",
    "waiting_first_facts",
]

DecisionKind = Literal["ready", "superseded", "expired"]
Position = tuple[int, int]  # (epoch, seq) on one branch; compared as a tuple, higher is newer
MAX_COMMITS = 2000  # decided commits are pruned beyond this
HARD_MAX_COMMITS = 4000  # beyond this, even commits still waiting are dropped (and counted)
_PRUNE_BATCH = 200  # prune this far below a bound so that sorting the commits happens once per 200 new commits
_WIDTH = 64
_EMPTY_BUCKET: dict[str, Any] = {}
V = TypeVar("V")


def _slot(key: str) -> int:
    # hash() differs between processes, but a StrMap never leaves its process: JSON rebuilds it. str caches its hash.
    return hash(key) % _WIDTH


class StrMap(Generic[V]):
    """An immutable map from str, split into 64 buckets: `updated` copies only the buckets it changes."""

    __slots__ = ("_buckets", "_size")
    __hash__ = None  # type: ignore[assignment]  # mutable-looking values inside; equality only

    def __init__(self, items: Mapping[str, V] | None = None) -> None:
        # Empty buckets are one shared dict, never written (`updated` copies a bucket before writing it): a map of a
        # few keys (a service's waiting commits) would otherwise hold 64 dicts.
        buckets: list[dict[str, V]] = [_EMPTY_BUCKET] * _WIDTH
        for key, value in (items or {}).items():
            i = _slot(key)
            if buckets[i] is _EMPTY_BUCKET:
                buckets[i] = {}
            buckets[i][key] = value
        self._buckets: tuple[dict[str, V], ...] = tuple(buckets)
        self._size = sum(len(b) for b in buckets)

    def get(self, key: str) -> V | None:
        return self._buckets[_slot(key)].get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._buckets[_slot(key)]

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[str]:
        for bucket in self._buckets:
            yield from bucket

    def items(self) -> Iterator[tuple[str, V]]:
        for bucket in self._buckets:
            yield from bucket.items()

    def updated(self, sets: Mapping[str, V] | None = None, deletes: Iterable[str] = ()) -> StrMap[V]:
        buckets = list(self._buckets)
        copied: set[int] = set()
        size = self._size

        def writable(i: int) -> dict[str, V]:
            if i not in copied:  # copy on first write: the old map shares every other bucket with the new one
                buckets[i] = dict(buckets[i])
                copied.add(i)
            return buckets[i]

        for key in deletes:
            i = _slot(key)
            if key in buckets[i]:
                del writable(i)[key]
                size -= 1
        for key, value in (sets or {}).items():
            bucket = writable(_slot(key))
            size += key not in bucket
            bucket[key] = value
        new: StrMap[V] = StrMap.__new__(StrMap)
        new._buckets, new._size = tuple(buckets), size
        return new

    def changes(self, old: StrMap[V]) -> tuple[dict[str, V], list[str]]:
        """(set, deleted) since `old`, by identity: O(buckets `updated` copied) when derived from `old` by `updated`,
        else every key of both (a superset of the real change, never less)."""
        sets: dict[str, V] = {}
        deletes: list[str] = []
        for before, after in zip(old._buckets, self._buckets, strict=True):
            if before is not after:
                sets.update((k, v) for k, v in after.items() if before.get(k) is not v)
                deletes.extend(k for k in before if k not in after)
        return sets, deletes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StrMap) and self._size == other._size and self._buckets == other._buckets

    def __repr__(self) -> str:
        return f"StrMap({dict(self.items())!r})"


@dataclass(frozen=True, slots=True)
class CheckResult:
    attempt: int
    outcome: Outcome
    ref: EventRef

    def order(self) -> tuple[int, datetime, int, bool, str, str]:
        """Later sorts higher: (attempt, time, offset); on a tie a finished result beats a pending one, then the event
        id decides, so that ties are broken the same whatever the arrival order."""
        ref = self.ref
        return (self.attempt, ref.time, ref.offset, self.outcome is not Outcome.PENDING, ref.source, ref.id)


@dataclass(frozen=True, slots=True)
class ImageSeen:
    image: str
    ref: EventRef


@dataclass(frozen=True, slots=True)
class Verdict:
    """A final decision about a commit for one service."""

    kind: DecisionKind
    superseded_by: str | None
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """Everything known about one commit. The refs stored here are also how a duplicate fact is recognised."""

    seq: int  # first-seen order within the repository: the pruning order
    first_fact: datetime | None = None  # earliest receipt (else ref.time) of its facts: expiry counts from here
    heads: Mapping[str, tuple[EventRef, ...]] = field(default_factory=dict)  # deploy branch -> pushes/merges of it
    positions: Mapping[str, Position] = field(default_factory=dict)  # deploy branch -> place in its history
    checks: Mapping[CheckId, tuple[CheckResult, ...]] = field(default_factory=dict)  # sorted by CheckResult.order
    images: tuple[ImageSeen, ...] = ()
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)  # service -> final decision


@dataclass(frozen=True, slots=True)
class BranchState:
    epoch: int = 0  # raised by every forced push
    next_seq: int = 0
    epoch_head: str | None = None  # the commit the latest forced push put on the branch


@dataclass(frozen=True, slots=True)
class ReadyHead:
    """The newest commit decided ready for a service; kept apart from the commits so that pruning cannot lose it."""

    commit: str
    position: Position


@dataclass(frozen=True, slots=True)
class RepositoryState:
    repository: str
    commits: StrMap[CommitRecord] = field(default_factory=StrMap)
    branches: Mapping[str, BranchState] = field(default_factory=dict)  # deploy branches only
    ready_heads: Mapping[str, ReadyHead] = field(default_factory=dict)  # service -> newest ready
    waiting: Mapping[str, StrMap[bool]] = field(default_factory=dict)  # service -> commits waiting for a decision
    # Decisions of pruned commits (oldest first, at most MAX_COMMITS): a late fact about one must not decide again.
    tombstones: Mapping[str, Mapping[str, Verdict]] = field(default_factory=dict)
    next_seq: int = 0
    prune_at: int = MAX_COMMITS + 1
    dropped_undecided: int = 0  # commits dropped beyond HARD_MAX_COMMITS before they were decided
    # Per service with environments after its first: promotion's state (streams.domain.promotion), stored apart.
    promotions: Mapping[str, ServicePromotion] = field(default_factory=dict)


def empty_state(repository: str) -> RepositoryState:
    return RepositoryState(repository=repository)


def prune(state: RepositoryState) -> RepositoryState:
    """Keep at most MAX_COMMITS commits by dropping the oldest decided ones; beyond HARD_MAX_COMMITS, any oldest.

    "Decided" means: has a verdict and no service is still waiting for it. Runs in batches (see _PRUNE_BATCH).
    """
    size = len(state.commits)
    if size < state.prune_at:
        return state
    waiting = {c for commits in state.waiting.values() for c in commits}
    oldest = sorted(state.commits.items(), key=lambda item: item[1].seq)
    dropped: dict[str, CommitRecord] = {}
    excess = size - (MAX_COMMITS - _PRUNE_BATCH)
    for commit, record in oldest:
        if len(dropped) >= excess:
            break
        if record.verdicts and commit not in waiting:
            dropped[commit] = record
    undecided = 0
    excess = size - len(dropped) - (HARD_MAX_COMMITS - _PRUNE_BATCH)
    for commit, record in oldest:
        if undecided >= excess:
            break
        if commit not in dropped:
            dropped[commit] = record
            undecided += 1
    tombstones = dict(state.tombstones)
    tombstones.update({c: r.verdicts for c, r in dropped.items() if r.verdicts})
    kept = len(state.commits) - len(dropped)
    return RepositoryState(
        repository=state.repository,
        commits=state.commits.updated(deletes=dropped),
        branches=state.branches,
        ready_heads=state.ready_heads,
        waiting={
            s: commits.updated(deletes=[c for c in dropped if c in commits]) for s, commits in state.waiting.items()
        },
        tombstones=dict(list(tombstones.items())[-MAX_COMMITS:]),
        next_seq=state.next_seq,
        prune_at=max(MAX_COMMITS + 1, kept + _PRUNE_BATCH),
        dropped_undecided=state.dropped_undecided + undecided,
        promotions=state.promotions,
    )


# ---------------------------------------------------------------------------------------------------------------
# JSON: str keys, ISO times, event refs as arrays [source, id, type, time, topic, partition, offset, received?] to stay
# small; `received` is left out when unknown, so states written before it existed read as they were.


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _verdicts_json(verdicts: Mapping[str, Verdict]) -> dict[str, Any]:
    return {s: [v.kind, v.superseded_by, v.decided_at.isoformat()] for s, v in verdicts.items()}


def _verdicts(doc: dict[str, Any]) -> dict[str, Verdict]:
    return {s: Verdict(v[0], v[1], datetime.fromisoformat(v[2])) for s, v in doc.items()}


def _record_json(r: CommitRecord) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "first": None if r.first_fact is None else r.first_fact.isoformat(),
        "heads": {b: [_ref_json(x) for x in refs] for b, refs in r.heads.items()},
        "pos": {b: list(p) for b, p in r.positions.items()},
        "checks": {
            f"{c.kind.value}:{c.name}": [[x.attempt, x.outcome.value, _ref_json(x.ref)] for x in results]
            for c, results in r.checks.items()
        },
        "images": [[i.image, _ref_json(i.ref)] for i in r.images],
        "verdicts": _verdicts_json(r.verdicts),
    }


def _check_id(key: str) -> CheckId:
    kind, _, name = key.partition(":")  # kinds have no ':', names may
    return CheckId(CheckKind(kind), name)


def _record(doc: dict[str, Any]) -> CommitRecord:
    return CommitRecord(
        seq=doc["seq"],
        first_fact=_time(doc["first"]),
        heads={b: tuple(_ref(x) for x in refs) for b, refs in doc["heads"].items()},
        positions={b: (p[0], p[1]) for b, p in doc["pos"].items()},
        checks={
            _check_id(c): tuple(CheckResult(x[0], Outcome(x[1]), _ref(x[2])) for x in results)
            for c, results in doc["checks"].items()
        },
        images=tuple(ImageSeen(i[0], _ref(i[1])) for i in doc["images"]),
        verdicts=_verdicts(doc["verdicts"]),
    )


def meta_to_json(state: RepositoryState) -> dict[str, Any]:
    """Everything but the commits and the tombstones: what most facts change, small."""
    return {
        "version": 1,
        "repository": state.repository,
        "next_seq": state.next_seq,
        "prune_at": state.prune_at,
        "dropped_undecided": state.dropped_undecided,
        "branches": {b: [s.epoch, s.next_seq, s.epoch_head] for b, s in state.branches.items()},
        "ready_heads": {s: [h.commit, list(h.position)] for s, h in state.ready_heads.items()},
        "waiting": {s: sorted(commits) for s, commits in state.waiting.items()},
    }


def tombstones_to_json(tombstones: Mapping[str, Mapping[str, Verdict]]) -> list[Any]:
    return [[c, _verdicts_json(v)] for c, v in tombstones.items()]  # a list: the order matters


def tombstones_from_json(doc: list[Any]) -> dict[str, Mapping[str, Verdict]]:
    return {c: _verdicts(v) for c, v in doc}


def bucket_to_json(commits: Iterable[tuple[str, CommitRecord]]) -> dict[str, Any]:
    """Some of the commits (any subset: the worker stores them in buckets of its own)."""
    return {c: _record_json(r) for c, r in commits}


def bucket_from_json(doc: dict[str, Any]) -> dict[str, CommitRecord]:
    return {c: _record(r) for c, r in doc.items()}


def state_from_parts(
    meta: dict[str, Any],
    commits: Mapping[str, CommitRecord],
    tombstones: Mapping[str, Mapping[str, Verdict]],
    promotions: Mapping[str, ServicePromotion] | None = None,
) -> RepositoryState:
    _check_version(meta)
    return RepositoryState(
        repository=meta["repository"],
        commits=StrMap(commits),
        branches={b: BranchState(s[0], s[1], s[2]) for b, s in meta["branches"].items()},
        ready_heads={s: ReadyHead(h[0], (h[1][0], h[1][1])) for s, h in meta["ready_heads"].items()},
        waiting={s: StrMap(dict.fromkeys(commits, True)) for s, commits in meta["waiting"].items()},
        tombstones=tombstones,
        next_seq=meta["next_seq"],
        prune_at=meta["prune_at"],
        dropped_undecided=meta["dropped_undecided"],
        promotions=promotions or {},
    )


def waiting_first_facts(
    meta: dict[str, Any], record_of: Callable[[str], dict[str, Any] | None]
) -> dict[str, list[datetime]]:
    """Per service, the first facts of its waiting commits, read from the stored JSON (`record_of`: a commit's
    record document) without decoding any record: all a recovery needs to know when a repository next expires."""
    _check_version(meta)
    found: dict[str, list[datetime]] = {}
    for service, commits in meta["waiting"].items():
        firsts = found[service] = []
        for commit in commits:
            doc = record_of(commit)
            if doc is not None and doc["first"] is not None:
                firsts.append(datetime.fromisoformat(doc["first"]))
    return found


def to_json(state: RepositoryState) -> dict[str, Any]:
    return {
        **meta_to_json(state),
        "tombstones": tombstones_to_json(state.tombstones),
        "commits": bucket_to_json(state.commits.items()),
        "promotions": promotions_to_json(state.promotions),
    }


def _check_version(doc: dict[str, Any]) -> None:
    if doc.get("version") != 1:
        raise ValueError(f"unknown readiness state version {doc.get('version')!r}")


def from_json(doc: dict[str, Any]) -> RepositoryState:
    _check_version(doc)
    promotions = promotions_from_json(doc.get("promotions", {}))  # absent in states written before promotion
    return state_from_parts(doc, bucket_from_json(doc["commits"]), tombstones_from_json(doc["tombstones"]), promotions)
