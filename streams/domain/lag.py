"""Consumer lag per group, topic and partition, and the stalled signal. Pure: offsets and times in, rows out.

Lag in messages is end offset minus committed offset. Lag in seconds is the age of the oldest record the group has
not consumed: the record at its committed offset (the next one it will read), whose Kafka timestamp the webhook
server's producer set at receipt. It is exact where interpolating end offsets over time is only as good as the
sampling, needs no history (right from the first poll), and costs one fetch per lagging partition, once per committed
offset (the adapter caches it). A caught-up partition has 0 s of lag.

Stalled (Burrow's STOP/STALL, simplified): the partition has lag and its committed offset has not moved for
`stall_after_s`. The clock starts when the offset last moved or the lag was last zero, so a consumer that was idle
because there was nothing to read is not stalled the moment a new record arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

PartitionKey = tuple[str, str, int]  # (group, topic, partition)


@dataclass(frozen=True)
class Position:
    """What the broker says about one partition of one group."""

    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def key(self) -> PartitionKey:
        return (self.group, self.topic, self.partition)

    @property
    def lag(self) -> int:
        # A committed offset past the end (a truncated or recreated topic) is no lag, not a negative one.
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class LagRow:
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag_messages: int
    lag_seconds: float | None  # None: lagging, but the oldest unconsumed record could not be read
    stalled: bool
    unmoved_s: float  # how long the committed offset has not moved while lagging


@dataclass(frozen=True)
class _Seen:
    committed: int
    since: datetime  # when the offset last moved or the lag was last zero


class StallTracker:
    """Remembers, per partition, since when its committed offset has not moved while it lagged."""

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._seen: dict[PartitionKey, _Seen] = {}

    def rows(
        self,
        positions: Iterable[Position],
        oldest_unconsumed: Mapping[PartitionKey, datetime],
        now: datetime,
    ) -> list[LagRow]:
        """One row per position; `oldest_unconsumed` holds the timestamp of the record at the committed offset of the
        lagging partitions whose record could be read. Partitions not seen in this poll are forgotten."""
        rows = []
        seen: dict[PartitionKey, _Seen] = {}
        for p in sorted(positions, key=lambda p: p.key):
            before = self._seen.get(p.key)
            moved = p.lag == 0 or before is None or before.committed != p.committed
            since = now if moved or before is None else before.since
            seen[p.key] = _Seen(p.committed, since)
            unmoved = (now - since).total_seconds()
            rows.append(
                LagRow(
                    group=p.group,
                    topic=p.topic,
                    partition=p.partition,
                    committed=p.committed,
                    end=p.end,
                    lag_messages=p.lag,
                    lag_seconds=_lag_seconds(p, oldest_unconsumed.get(p.key), now),
                    stalled=p.lag > 0 and unmoved >= self.stall_after_s,
                    unmoved_s=unmoved,
                )
            )
        self._seen = seen
        return rows


def _lag_seconds(position: Position, oldest: datetime | None, now: datetime) -> float | None:
    if position.lag == 0:
        return 0.0
    if oldest is None:
        return None
    return max(0.0, (now - oldest).total_seconds())  # clocks of producer and exporter may differ a little
