"""When each repository's next waiting commit expires (or a soak ends), per partition: so a tick finds due work
without scanning the table. Held in memory and rebuilt from the table after recovery."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import datetime

from streams.domain.fold import next_due
from streams.domain.policy import ServicePolicy
from streams.domain.readiness import RepositoryState


class Deadlines:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[datetime, str]]] = {}
        self._current: dict[str, datetime] = {}

    def clear(self) -> None:
        self._heaps.clear()
        self._current.clear()

    def track(
        self,
        partition: int,
        repository: str,
        state: RepositoryState,
        services: Sequence[ServicePolicy],
        *,
        replaced: RepositoryState | None = None,
    ) -> None:
        """Note `state`'s next deadline. `replaced`: the state it follows, already tracked. A deadline changes only
        with the waiting sets (a waiting commit's first fact never moves) and most facts leave them alone (states are
        copied on write, so identity says so). Nothing of a state is kept here: the store's cache bounds memory."""
        if replaced is not None and replaced.waiting is state.waiting and replaced.promotions is state.promotions:
            return
        self.set(partition, repository, next_due(state, services))

    def set(self, partition: int, repository: str, deadline: datetime | None) -> None:
        if deadline is None:
            self._current.pop(repository, None)
            return
        if self._current.get(repository) != deadline:
            self._current[repository] = deadline
            heapq.heappush(self._heaps.setdefault(partition, []), (deadline, repository))

    def partitions(self) -> list[int]:
        """The partitions with deadlines, in order."""
        return sorted(p for p, heap in self._heaps.items() if heap)

    def has_due(self, partition: int, now: datetime) -> bool:
        heap = self._heaps.get(partition)
        return bool(heap) and heap[0][0] <= now  # type: ignore[index]

    def due(self, partition: int, now: datetime) -> list[str]:
        """Repositories of `partition` whose deadline has passed; stale heap entries (superseded deadlines) drop out."""
        heap = self._heaps.get(partition, [])
        found = []
        while heap and heap[0][0] <= now:
            deadline, repository = heapq.heappop(heap)
            if self._current.get(repository) == deadline:
                del self._current[repository]
                found.append(repository)
        return found
