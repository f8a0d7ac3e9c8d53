"""The time-ordered merge of co-partitioned inputs: the order in which the worker folds records, as a function of
the log rather than of its fetches.

Partition p of every input topic (and of the ticks topic) forms group p. Within a group, the record folded next is
the head with the smallest (timestamp, topic rank, offset) among the partitions' buffered records, as Kafka Streams
does for a task's partitions. A partition is never reordered against itself: only heads are compared. The head may
go only when no record that would sort before it can still arrive: every partition of the group has a record
buffered, or, for one that has none, the clock has passed the head's timestamp by `skew_ms` and a look at the
partition's end made after that found everything received (a record appended later carries a later broker timestamp,
up to the clock skew between brokers). An end looked at earlier proves nothing: a record stamped before the head may
have been appended since. A consumer's last fetched high watermark is such an older look: a partition with buffered
records is left out of the next fetches, and an idle one's long poll lasts 1.5 s in Faust.

A partition known to be behind (records exist that were not received), or whose end is being looked up, is waited
for, as Kafka Streams does (KIP-695), up to BEHIND_MAX_WAIT_MS; one whose position is not known, or a head stamped in
the future, up to `idle_ms`. Then the group goes on with the smallest head anyway: the merge never stalls; such a
forced step is counted, and it is the only place a live run can order differently from a replay.

No I/O and no clock of its own: the caller says what time it is and which partitions are caught up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Lag(Enum):
    """What a partition with nothing buffered has left to deliver."""

    NONE = "caught up"  # everything up to its end offset, looked at late enough, was received
    SOME = "behind"  # records are known to exist that were not received yet: they are on their way
    LOOKING = "looking"  # its end is being looked up: the answer comes within a round trip to the broker
    UNKNOWN = "unknown"  # its start or end is not known (just assigned, or its end cannot be looked up)


LagOf = Callable[[str, int, int | None, int], Lag]
"""(topic, partition, last offset received or None, since ms) -> its Lag, NONE only from a look at its end made at or
after `since`."""
BEHIND_MAX_WAIT_MS = 30_000  # a partition behind or being looked up is waited for this long at most: never a stall


@dataclass
class _Partition(Generic[T]):
    topic: str
    rank: int
    records: deque[tuple[int, int, int, T]] = field(default_factory=deque)  # (timestamp ms, rank, offset, item)
    received: int | None = None  # the last offset received (None: none yet, and the start is not known)

    def head(self) -> tuple[int, int, int]:
        timestamp, rank, offset, _ = self.records[0]
        return timestamp, rank, offset


@dataclass
class _Group(Generic[T]):
    number: int
    members: list[_Partition[T]]
    blocked_since_ms: int | None = None


@dataclass(frozen=True)
class Released(Generic[T]):
    items: list[T]
    forced: int  # how many of them went before the group could tell nothing would sort before them
    # For a forced step: the empty partitions it went on without, as (topic, partition, last offset received).
    waited_for: list[tuple[str, int, int | None]] = field(default_factory=list)


class TimeOrderedMerge(Generic[T]):
    """Buffers received records per partition and releases them in the merged order (see the module's docstring).

    `ranks` orders the topics for equal timestamps (lower first) and names the topics of every group."""

    def __init__(self, ranks: Mapping[str, int], *, skew_ms: int, idle_ms: int) -> None:
        self._topics = sorted(ranks, key=ranks.__getitem__)
        self._ranks = dict(ranks)
        self._index = {topic: i for i, topic in enumerate(self._topics)}
        self.skew_ms = skew_ms
        self.idle_ms = idle_ms
        self._groups: dict[int, _Group[T]] = {}

    def _member(self, topic: str, partition: int) -> _Partition[T]:
        group = self._groups.get(partition)
        if group is None:
            members = [_Partition[T](topic, self._ranks[topic]) for topic in self._topics]
            group = self._groups[partition] = _Group(partition, members)
        return group.members[self._index[topic]]

    def start(self, topic: str, partition: int, offset: int) -> None:
        """The partition is read from `offset` on: everything below it counts as received."""
        member = self._member(topic, partition)
        if not member.records:
            member.received = offset - 1

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int, item: T) -> list[T]:
        """Buffer a received record. One at or below the last received means the partition is read again from there
        (a seek): what it buffered from that offset on comes again and is dropped (returned)."""
        member = self._member(topic, partition)
        dropped: list[T] = []
        if member.received is not None and offset <= member.received:
            dropped = [r[3] for r in member.records if r[2] >= offset]
            member.records = deque(r for r in member.records if r[2] < offset)
        member.records.append((timestamp_ms, member.rank, offset, item))
        member.received = offset
        return dropped

    def forget(self, partitions: Iterable[int]) -> list[T]:
        """Drop the groups of `partitions` (revoked, or to be read again after a seek); returns what they held."""
        dropped: list[T] = []
        for partition in partitions:
            group = self._groups.pop(partition, None)
            if group is not None:
                dropped.extend(r[3] for member in group.members for r in member.records)
        return dropped

    def clear(self) -> list[T]:
        return self.forget(list(self._groups))

    def __len__(self) -> int:
        return sum(len(m.records) for g in self._groups.values() for m in g.members)

    def release(self, now_ms: int, lag: LagOf) -> Released[T]:
        """Every record that may go now, group by group, each group's in merged order."""
        items: list[T] = []
        forced = 0
        waited_for: list[tuple[str, int, int | None]] = []
        for group in self._groups.values():
            n = self._release_group(group, now_ms, lag, items)
            if n:
                forced += n
                empty = [m for m in group.members if not m.records]
                waited_for += [(m.topic, group.number, m.received) for m in empty]
        return Released(items, forced, waited_for)

    def _release_group(self, group: _Group[T], now_ms: int, lag: LagOf, out: list[T]) -> int:
        forced = 0
        while True:
            heads = [m for m in group.members if m.records]
            if not heads:
                group.blocked_since_ms = None
                return forced
            first = min(heads, key=_Partition.head)
            wait_ms = None if len(heads) == len(group.members) else self._wait_for(group, first, now_ms, lag)
            if wait_ms is None:
                group.blocked_since_ms = None
            else:
                # Blocked: wait up to wait_ms, then go on in forced steps until the group may go by itself again.
                if group.blocked_since_ms is None:
                    group.blocked_since_ms = now_ms
                if now_ms - group.blocked_since_ms < wait_ms:
                    return forced
                forced += 1
            out.append(first.records.popleft()[3])

    def _wait_for(self, group: _Group[T], first: _Partition[T], now_ms: int, lag: LagOf) -> int | None:
        """None when no record that sorts before `first`'s head can still arrive on the group's empty partitions;
        else how long the group may wait for one."""
        since_ms = first.records[0][0] + self.skew_ms
        if now_ms < since_ms:
            return self.idle_ms  # a record stamped before the head may still be appended (or the head is in the future)
        lags = {lag(m.topic, group.number, m.received, since_ms) for m in group.members if not m.records}
        if Lag.SOME in lags or Lag.LOOKING in lags:
            return BEHIND_MAX_WAIT_MS  # the records exist, or the answer is on its way: either comes soon
        if Lag.UNKNOWN in lags:
            return self.idle_ms
        return None
