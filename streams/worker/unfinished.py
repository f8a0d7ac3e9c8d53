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
        doc = found.outbox
        if doc is None:
            return
        # Decoded only if kept: a recovery reads every repository's outbox, and most batches finished.
        if doc["publish"] if committed is None else Outbox(doc["read"]).unacknowledged(found.partition, committed):
            self._outboxes.setdefault(found.partition, {})[found.repository] = Outbox.from_json(doc, topic)

    def take(self, partition: int) -> dict[str, Outbox]:
        return self._outboxes.pop(partition, {})

    def forget(self, partitions: Collection[int]) -> None:
        """Partitions this worker lost: their new owner finds the outboxes in the table."""
        for partition in partitions:
            self._outboxes.pop(partition, None)
