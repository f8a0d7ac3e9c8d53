"""Where the merged partitions end, looked up from the broker when the merge needs to know, with when each look was
made: the merge may take an empty partition for caught up only by a look made after its head's timestamp (see
`streams.worker.merge`). The time kept is the one before the request went out, so the answer covers every record
appended until then."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from faust.types import TP

log = logging.getLogger(__name__)

LookUp = Callable[[Sequence[TP]], Awaitable[Mapping[TP, int]]]
RETRY_S = 0.2  # after a failed look: the merge meanwhile waits, up to its bound


class LookUpFailed(Exception):
    """The broker did not say where the partitions end (down, or a partition moving): asked again shortly."""


@dataclass(frozen=True)
class End:
    offset: int  # the partition's end offset (its next record's)
    looked_at_ms: int  # wall clock before the request went out


class LogEnds:
    """The partitions' ends as last looked up, and the looks the merge asked for. `end` answers from what is known and
    asks for a new look when that is too old; `run` makes the looks, all wanted partitions in one request."""

    def __init__(self, look_up: LookUp, *, clock: Callable[[], float] = time.time) -> None:
        self._look_up = look_up
        self._clock = clock
        self._ends: dict[TP, End] = {}
        self._wanted: set[TP] = set()
        self._wake = asyncio.Event()
        self.looks = 0  # requests made

    def end(self, tp: TP, since_ms: int) -> int | None:
        """The partition's end offset by a look made at or after `since_ms`, or None (one is then asked for)."""
        known = self._ends.get(tp)
        if known is not None and known.looked_at_ms >= since_ms:
            return known.offset
        self._wanted.add(tp)
        self._wake.set()
        return None

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what is known of the partitions (revoked): a later owner looks again."""
        numbers = set(partitions)
        self._ends = {tp: e for tp, e in self._ends.items() if tp.partition not in numbers}
        self._wanted = {tp for tp in self._wanted if tp.partition not in numbers}

    async def run(self) -> None:
        """Look up what was asked for, as long as the caller's task runs."""
        while True:
            await self._wake.wait()
            await self.look_once()

    async def look_once(self) -> None:
        self._wake.clear()
        wanted, self._wanted = sorted(self._wanted), set()
        if not wanted:
            return
        looked_at_ms = int(self._clock() * 1000)
        self.looks += 1
        try:
            ends = await self._look_up(wanted)
        except LookUpFailed as e:  # the merge waits meanwhile, bounded
            log.warning("looking up the partitions' ends failed count=%d error=%r", len(wanted), e)
            self._wanted.update(wanted)
            await asyncio.sleep(RETRY_S)
            self._wake.set()
            return
        for tp, offset in ends.items():
            if offset is not None:
                self._ends[tp] = End(offset, looked_at_ms)
