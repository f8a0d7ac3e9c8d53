"""Batches a crash interrupted: they wrote their states (with their outboxes) but their source offsets are not
committed, so their publication may not have been acknowledged. Found in the table after a recovery; the next batch
of each partition publishes their outboxes again and writes their states whole (see app and state_store)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from streams.worker.state_store import Outbox, Recovered


class UnfinishedBatches:
    def __init__(self) -> None:
        self._outboxes: dict[int, dict[str, Outbox]] = {}  # partition -> repository -> outbox

    def __bool__(self) -> bool:
        return bool(self._outboxes)

    def __len__(self) -> int:
        return sum(map(len, self._outboxes.values()))

    def partitions(self) -> list[int]:
        return sorted(self._outboxes)

    def clear(self) -> None:
        self._outboxes.clear()

    def note(self, found: Recovered, committed: Mapping[tuple[str, int], int] | None, topic: str) -> None:
        """Keep `found`'s outbox if its batch may not have finished; `committed` None: the offsets are unknown, and
        every outbox that publishes something counts (published again, with the same ids)."""
        if found.outbox is None:
            return
        outbox = Outbox.from_json(found.outbox, topic)
        if outbox.records if committed is None else outbox.unacknowledged(found.partition, committed):
            self._outboxes.setdefault(found.partition, {})[found.repository] = outbox

    def take(self, partition: int) -> dict[str, Outbox]:
        return self._outboxes.pop(partition, {})

    def forget(self, partitions: Collection[int]) -> None:
        """Partitions this worker lost: their new owner finds the outboxes in the table."""
        for partition in partitions:
            self._outboxes.pop(partition, None)
