"""Decision records written into an outbox whose publication is not acknowledged yet.

The worker folds a batch while the one before it is still being published (`ReadinessWorker._fold_batch`). A state
saved meanwhile replaces its repository's outbox, which is what a restart publishes again: it must carry the earlier
batch's records as well, or a crash before their acknowledgement would lose them.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.adapters.kafka_producer import Record
from streams.worker.state_store import Outbox


class Publishing:
    """Per repository, the records of batches saved but not yet acknowledged, oldest first."""

    def __init__(self) -> None:
        self._pending: dict[str, list[tuple[int, tuple[Record, ...], dict[str, int]]]] = {}
        self._repositories: dict[int, list[str]] = {}  # batch number -> repositories it left pending
        self._next = 0

    def outbox(self, repository: str, read: dict[str, int], records: tuple[Record, ...]) -> Outbox:
        """The outbox of a state saved now: the unacknowledged records of its repository first, then `records`;
        the source offsets of every batch it carries, so a restart publishes them all while any is uncommitted."""
        earlier = self._pending.get(repository)
        if not earlier:
            return Outbox(read, records)
        merged = dict(read)
        for _, _, offsets in earlier:
            for topic, offset in offsets.items():
                merged[topic] = max(merged.get(topic, -1), offset)
        return Outbox(merged, tuple(r for _, pending, _ in earlier for r in pending) + records)

    def start(self, outgoing: Mapping[str, tuple[Record, ...]], read: Mapping[str, dict[str, int]]) -> int:
        """Note a batch's records as sent but unacknowledged; returns the number `done` takes."""
        number = self._next
        self._next += 1
        repositories = [repository for repository, records in outgoing.items() if records]
        for repository in repositories:
            self._pending.setdefault(repository, []).append((number, outgoing[repository], read[repository]))
        self._repositories[number] = repositories
        return number

    def done(self, number: int) -> None:
        """Batch `number` is acknowledged (batches are published in order)."""
        for repository in self._repositories.pop(number, ()):
            pending = self._pending.get(repository)
            if not pending:
                continue
            while pending and pending[0][0] <= number:
                pending.pop(0)
            if not pending:
                del self._pending[repository]

    def __len__(self) -> int:
        """Repositories with unacknowledged records."""
        return len(self._pending)
