"""The time a record is folded at: the log's clock, per partition group, the same live and in a replay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class LogClock:
    """A record's timestamp, never behind what its partition already folded (the merge compares heads only; a record
    stamped earlier than its predecessor must not turn the clock back), and never ahead of the wall clock plus the
    skew (a record stamped in the future must not expire every waiting commit)."""

    def __init__(self, skew_ms: int, wall_clock: Callable[[], datetime] = _wall_clock) -> None:
        self._skew = timedelta(milliseconds=skew_ms)
        self._wall_clock = wall_clock
        self._latest: dict[int, datetime] = {}

    def at(self, partition: int, timestamp: datetime | None) -> datetime:
        limit = self._wall_clock() + self._skew
        at = limit if timestamp is None else min(timestamp, limit)
        latest = self._latest.get(partition)
        if latest is not None and latest > at:
            return latest
        self._latest[partition] = at
        return at

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._latest.pop(partition, None)
