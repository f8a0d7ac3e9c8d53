"""When each repository's next waiting commit expires, per partition: so a tick finds due work without scanning the
table. Held in memory and rebuilt from the table after recovery."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import datetime

from streams.domain.policy import ServicePolicy
from streams.domain.readiness import RepositoryState, next_deadline


class Deadlines:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[datetime, str]]] = {}
        self._current: dict[str, datetime] = {}
        # The waiting sets each deadline was computed from: a deadline only changes with them (a waiting commit's
        # first fact never moves), and most facts leave them alone (identity: states are copied on write).
        self._computed_from: dict[str, object] = {}

    def clear(self) -> None:
        self._heaps.clear()
        self._current.clear()
        self._computed_from.clear()

    def track(self, partition: int, repository: str, state: RepositoryState, services: Sequence[ServicePolicy]) -> None:
        if self._computed_from.get(repository) is state.waiting:
            return
        self._computed_from[repository] = state.waiting
        deadline = next_deadline(state, services)
        if deadline is None:
            self._current.pop(repository, None)
            return
        if self._current.get(repository) != deadline:
            self._current[repository] = deadline
            heapq.heappush(self._heaps.setdefault(partition, []), (deadline, repository))

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
