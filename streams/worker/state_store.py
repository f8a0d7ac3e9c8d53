"""Readiness states in the worker's table, split so that a fact writes what it changed rather than its repository.

Table layout (every key starts with the repository, so all of a repository's keys live on its partition):

    <repo>\\x00meta   {"meta": meta_to_json(state), "delta": {part: json, ...}, "batch": {...}}: the commit point
    <repo>\\x00bNN    the commits whose crc32 % 64 is NN, {commit: record}  (NN = 00..63)
    <repo>\\x00tomb   the tombstones (decisions of pruned commits), changed only by pruning
    <repo>\\x00prom   promotion's state (services with environments after their first), changed by its facts

Parts are chosen by crc32, not by the StrMap's own buckets: those follow `hash()`, which differs between processes.

One fact writes several records, and a crash can keep any prefix of them (the source offset is then not committed
and the fact is read again). So the meta record goes first and carries, in `delta`, every part the fact changed; the
part keys after it are copies, and a read prefers the delta. Any prefix then reads back as the old state or the new.

The meta record also says which batch wrote it (`Outbox`): the source offsets it read and the decisions it is about
to publish. The worker writes states, waits for the changelog's acks, and only then publishes, so a published
decision is always in the table; a crash before the publication's ack leaves the outbox and uncommitted source
offsets, and the restarted worker publishes the outbox again (`recover`) instead of deciding anew from a replay
that may interleave the two input streams differently.

Decoded states stay in memory with their parts, so that a fact costs the parts it touched: the fold copies only the
StrMap buckets it changes, and `StrMap.changes` compares by identity. Memory is a cache, not the store: at most
`cache_commits` commits stay decoded (least recently used out first); an evicted state is read back from the table,
which always holds every saved state, so a worker's memory does not grow with the commits it tracks.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

import msgspec
import orjson

from streams.adapters.kafka_producer import Record
from streams.domain.promotion_state import promotions_from_json, promotions_to_json
from streams.domain.readiness_state import (
    CommitRecord,
    RepositoryState,
    bucket_from_json,
    bucket_to_json,
    empty_state,
    meta_to_json,
    state_from_parts,
    tombstones_from_json,
    tombstones_to_json,
    waiting_first_facts,
)

PARTS = 64
DEFAULT_CACHE_COMMITS = 50_000
META, TOMBSTONES, PROMOTIONS = "meta", "tomb", "prom"
_SEP = b"\x00"


def part_of(commit: str) -> int:
    return zlib.crc32(commit.encode()) % PARTS


def key(repository: str, part: str) -> bytes:
    return repository.encode() + _SEP + part.encode()


def _part_name(index: int) -> str:
    return f"b{index:02d}"


@dataclass(frozen=True, slots=True)
class Outbox:
    """What the batch that saved a state read (source topic -> highest offset of the repository's events; the
    partition is the repository's) and what it publishes for the repository once the state is on the changelog."""

    read: dict[str, int]
    records: tuple[Record, ...] = ()  # without their topic: the worker's output topic

    def to_json(self) -> dict[str, Any]:
        records = [
            [r.key.decode() if r.key else None, r.value.decode(), [[k, v.decode()] for k, v in r.headers]]
            for r in self.records
        ]
        return {"read": self.read, "publish": records}

    @classmethod
    def from_json(cls, doc: dict[str, Any], topic: str) -> Outbox:
        records = tuple(
            Record(
                topic,
                key.encode() if key is not None else None,
                value.encode(),
                tuple((k, v.encode()) for k, v in headers),
            )
            for key, value, headers in doc["publish"]
        )
        return cls(doc["read"], records)

    def unacknowledged(self, partition: int, committed: Mapping[tuple[str, int], int]) -> bool:
        """Whether the batch may not have finished: a source offset it read is not committed yet."""
        return any(offset >= committed.get((topic, partition), 0) for topic, offset in self.read.items())


@dataclass(frozen=True, slots=True)
class Recovered:
    repository: str
    partition: int
    first_facts: dict[str, list[datetime]]  # per service, its waiting commits' first facts: the deadline's inputs
    promoting: bool  # it has promotion state: its soaks' ends need the state and the policy (`load` it)
    outbox: dict[str, Any] | None  # the last batch's `Outbox.to_json()`, None in states stored without one


@dataclass(slots=True)
class _Entry:
    state: RepositoryState  # as stored
    partition: int
    parts: list[dict[str, CommitRecord]]  # state.commits by part: what a part's key holds
    unflushed: dict[str, bytes]  # parts whose latest value only the meta record's delta holds (see `defer_bytes`)


class StateStore:
    """`load`/`save` of repository states through a bytes table (a Faust table, or a dict in tests)."""

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        defer_bytes: int = 0,
        cache_commits: int = DEFAULT_CACHE_COMMITS,
        *,
        table_sorted: bool = False,
        meta_records: Callable[[], Iterable[tuple[bytes, bytes]]] | None = None,
    ) -> None:
        """`defer_bytes` > 0: a save writes only the meta record, its delta carrying every part changed since the
        parts were last written, until the delta outgrows `defer_bytes`; then the parts are written after it. Any
        prefix still reads back as the old state or the new, in one record per save instead of one per part."""
        self.table = table
        self.defer_bytes = defer_bytes
        self.cache_commits = cache_commits
        self.table_sorted = table_sorted  # iterates in key order: RocksDB (see `recover`)
        self.meta_records = meta_records  # every meta record of the table, and no other (see `recover`)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._cached_commits = 0

    @property
    def cached_commits(self) -> int:
        return self._cached_commits

    def load(self, repository: str, partition: int) -> RepositoryState:
        return self._entry(repository, partition).state

    def _entry(self, repository: str, partition: int) -> _Entry:
        entry = self._entries.get(repository)
        if entry is None:  # never read, evicted, or forgotten (a rebalance): the table has the latest copy
            entry = self._entries[repository] = _read(repository, partition, self.table.get)
            self._cached_commits += len(entry.state.commits)
            self._evict(keep=repository)
        else:
            self._entries.move_to_end(repository)
        return entry

    def _evict(self, keep: str) -> None:
        while self._cached_commits > self.cache_commits and len(self._entries) > 1:
            repository, entry = next(iter(self._entries.items()))
            if repository == keep:
                self._entries.move_to_end(repository)
                continue
            del self._entries[repository]
            self._cached_commits -= len(entry.state.commits)

    def save(
        self,
        repository: str,
        state: RepositoryState,
        partition: int,
        outbox: Outbox | None = None,
        *,
        rewrite: bool = False,
    ) -> RepositoryState:
        """Store `state` with the `outbox` of the batch that made it; returns the state it replaced. `rewrite` writes
        every part as well, whatever changed: after a crash the local store can hold records its changelog lacks."""
        entry = self._entry(repository, partition)
        old = entry.state
        if state is old and not rewrite and (outbox is None or not outbox.records):  # a duplicate, nothing to do
            return old
        delta: dict[str, bytes] = {}
        if state.commits is not old.commits:
            sets, deletes = state.commits.changes(old.commits)
            touched = set()
            for commit in deletes:
                index = part_of(commit)
                entry.parts[index].pop(commit, None)
                touched.add(index)
            for commit, record in sets.items():
                index = part_of(commit)
                entry.parts[index][commit] = record
                touched.add(index)
            for index in sorted(touched):
                delta[_part_name(index)] = _dumps_kept(bucket_to_json(entry.parts[index].items()))
        if state.tombstones is not old.tombstones:
            delta[TOMBSTONES] = _dumps_kept(tombstones_to_json(state.tombstones))
        if state.promotions is not old.promotions:
            delta[PROMOTIONS] = _dumps_kept(promotions_to_json(state.promotions))
        unflushed = entry.unflushed
        unflushed.update(delta)
        meta: dict[str, Any] = {
            "meta": meta_to_json(state),
            "delta": {name: orjson.Fragment(raw) for name, raw in unflushed.items()},
        }
        if outbox is not None:
            meta["batch"] = outbox.to_json()
        meta["first_waiting"] = _first_waiting(state)
        meta["promoting"] = bool(state.promotions)
        self.table[key(repository, META)] = orjson.dumps(meta)  # first: the commit point
        if rewrite:
            for index, part in enumerate(entry.parts):
                self.table[key(repository, _part_name(index))] = _dumps_kept(bucket_to_json(part.items()))
            self.table[key(repository, TOMBSTONES)] = _dumps_kept(tombstones_to_json(state.tombstones))
            self.table[key(repository, PROMOTIONS)] = _dumps_kept(promotions_to_json(state.promotions))
            entry.unflushed = {}
        elif sum(map(len, unflushed.values())) > self.defer_bytes:
            for name, raw in unflushed.items():
                self.table[key(repository, name)] = raw
            entry.unflushed = {}
        entry.state, entry.partition = state, partition
        self._cached_commits += len(state.commits) - len(old.commits)
        self._evict(keep=repository)
        return old

    def forget(self, partitions: Collection[int]) -> None:
        """Drop the states of partitions this worker no longer owns: another worker may change them meanwhile."""
        for repository in [r for r, e in self._entries.items() if e.partition in partitions]:
            self._cached_commits -= len(self._entries.pop(repository).state.commits)

    def recover(self, partition_of: Callable[[str], int]) -> Iterator[Recovered]:
        """Per repository in the table (after a table recovery): its partition, per service its waiting commits'
        first facts (`waiting_first_facts`), which is all the deadlines need, and its last batch's outbox (the worker
        publishes it again if that batch's offsets are not committed); no record is decoded and the cache
        starts empty (states are read on use). Decoding every state here made a restart's time grow with every
        tracked commit (docs/performance.md has the figures).

        A meta record written by this version carries its waiting commits' earliest first fact per service
        (`first_waiting`): with `meta_records`, only those records are read (1M tracked commits: 20k records instead
        of 720k, and no part decoded). A table with any meta record from before falls back to the scan below.

        One pass over the table's records, a repository at a time: its keys share its prefix, so in key order they
        come together. RocksDB iterates each partition in key order (`table_sorted`); other tables are sorted here
        first. One scan, not 64 lookups per repository (Faust's store looks for an absent key in every partition)."""
        self._entries.clear()
        self._cached_commits = 0
        if self.meta_records is not None:
            summaries = _summaries(self.meta_records(), partition_of)
            if summaries is not None:
                yield from summaries
                return
        items = self.table.items()
        for prefix, records in groupby(items if self.table_sorted else sorted(items), key=_repository_prefix):
            found = dict(records)
            raw = found.get(prefix + _SEP + META.encode())
            if raw is None:
                continue
            repository = prefix.decode()
            doc = orjson.loads(raw)
            record_of = _record_reader(_part_reader(repository, doc["delta"], found.get))
            first_facts = waiting_first_facts(doc["meta"], record_of)
            promoting = bool(doc.get("promoting"))
            yield Recovered(repository, partition_of(repository), first_facts, promoting, doc.get("batch"))


def _first_waiting(state: RepositoryState) -> dict[str, str]:
    """Per service, the earliest first fact of its waiting commits: all a recovery needs of them for the deadlines
    (`earliest_expiry` adds each service's TTL to its earliest), kept in the meta record so that it reads no part."""
    out: dict[str, str] = {}
    get = state.commits.get
    for service, commits in state.waiting.items():
        firsts = [r.first_fact for r in map(get, commits) if r is not None and r.first_fact is not None]
        if firsts:
            out[service] = min(firsts).isoformat()
    return out


class _Summary(msgspec.Struct):
    """What a recovery reads of a meta record; msgspec skips the rest (the state and its delta) without building it."""

    first_waiting: dict[str, str] | None = None  # None: written before the summary existed
    promoting: bool = False
    batch: dict[str, Any] | None = None


_read_summary = msgspec.json.Decoder(_Summary).decode


def _summaries(records: Iterable[tuple[bytes, bytes]], partition_of: Callable[[str], int]) -> list[Recovered] | None:
    """`Recovered` from the meta records alone; None if one predates `first_waiting` (the full scan is needed)."""
    found = []
    suffix = len(_SEP) + len(META)
    for meta_key, raw in records:
        summary = _read_summary(raw)
        if summary.first_waiting is None:
            return None
        repository = meta_key[:-suffix].decode()
        first_facts = {s: [datetime.fromisoformat(t)] for s, t in summary.first_waiting.items()}
        found.append(Recovered(repository, partition_of(repository), first_facts, summary.promoting, summary.batch))
    return found


def _repository_prefix(record: tuple[bytes, bytes]) -> bytes:
    return record[0].partition(_SEP)[0]


def _read(repository: str, partition: int, get: Callable[[bytes], bytes | None]) -> _Entry:
    raw = get(key(repository, META))
    if not raw:
        return _Entry(empty_state(repository), partition, [{} for _ in range(PARTS)], {})
    doc = orjson.loads(raw)
    delta: dict[str, Any] = doc["delta"]
    part = _part_reader(repository, delta, get)
    parts = [bucket_from_json(part(_part_name(i), {})) for i in range(PARTS)]
    commits = {c: r for p in parts for c, r in p.items()}
    promotions = promotions_from_json(part(PROMOTIONS, {}))
    state = state_from_parts(doc["meta"], commits, tombstones_from_json(part(TOMBSTONES, [])), promotions)
    return _Entry(state, partition, parts, {name: _dumps_kept(value) for name, value in delta.items()})


def _part_reader(
    repository: str, delta: dict[str, Any], get: Callable[[bytes], bytes | None]
) -> Callable[[str, Any], Any]:
    """A part's latest document: the meta record's delta copy if it has one (see the module's docstring)."""

    def part(name: str, missing: Any) -> Any:
        if name in delta:
            return delta[name]
        stored = get(key(repository, name))
        return orjson.loads(stored) if stored else missing

    return part


def _record_reader(part: Callable[[str, Any], Any]) -> Callable[[str], dict[str, Any] | None]:
    """A commit's record document, parsing each part at most once."""
    parts: dict[int, dict[str, Any]] = {}

    def record_of(commit: str) -> dict[str, Any] | None:
        index = part_of(commit)
        if index not in parts:
            parts[index] = part(_part_name(index), {})
        return parts[index].get(commit)

    return record_of


def _dumps_kept(value: Any) -> bytes:
    """JSON bytes that stay in the cache: orjson hands back its whole growth buffer (4 KiB at least, however short
    the JSON), so a part kept as it came would hold that buffer in the cache; a copy of the exact length does not."""
    return bytes(memoryview(orjson.dumps(value)))
