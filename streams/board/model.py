"""The board's picture of the pipeline, folded from the entries as they arrive: per (service, environment) what runs,
what is ready and what waits; per commit its decisions and outcomes; the last entries in time order. Pure: no I/O.

Each cell keeps its own list of waiting commits, updated as entries arrive (a push for a first environment, a ready
decision in the environment before for a later one; a decision here ends the wait), and a version that changes with
anything the cell shows, so that a page can reuse what it rendered. Retention is bounded: the oldest entries beyond
`retain` leave the timeline and the commit index (what runs stays).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from streams.board.entries import RUNNING_KINDS, Entry, Push
from streams.domain.policy import Policies, ServicePolicy

Target = tuple[str, str]  # (service, environment)
CommitKey = tuple[str, str]  # (repository, commit)
WAITING_SHOWN = 5  # per cell: the newest waiting commits
WAITING_KEPT = 1000  # per cell: commits that never get a decision (the worker was down) leave after this many


def _rollouts() -> deque[Entry]:
    return deque(maxlen=8)


@dataclass(eq=False)  # a cell is a place on the board: compared by identity, hashable
class Cell:
    service: ServicePolicy
    environment: str
    index: int  # of the environment in the service's list
    running: Entry | None = None  # the rollout of what runs now (a rollback restores the one before)
    rolled_back: Entry | None = None  # the last rollback, while nothing newer rolled out
    rolled_out: deque[Entry] = field(default_factory=_rollouts)  # the last rollouts: what a rollback restores
    newest_ready: Entry | None = None
    last_outcome: Entry | None = None
    circuit_open: str = ""  # the reason, while the circuit breaker holds the service's deploys here
    decided: dict[str, str] = field(default_factory=dict)  # commit -> decision kind
    pending: OrderedDict[str, datetime] = field(default_factory=OrderedDict)  # waiting commit -> since, oldest first
    version: int = 0  # changes whenever what the cell shows may have

    @property
    def dom_id(self) -> str:
        return f"cell-{self.service.name}-{self.environment}"


class Board:
    def __init__(self, policies: Policies, retain: int = 50_000) -> None:
        self.policies = policies
        self.retain = retain
        self.cells: dict[Target, Cell] = {
            (s.name, e.name): Cell(s, e.name, i) for s in policies.services for i, e in enumerate(s.environments)
        }
        self.timeline: deque[Entry] = deque()
        self.by_commit: dict[CommitKey, list[Entry]] = {}
        self.by_id: dict[str, Entry] = {}
        self.pushes: dict[CommitKey, Push] = {}  # pushes retained, for the commit page

    # -- folding -------------------------------------------------------------------------------------------------

    def apply(self, entry: Entry) -> list[Cell]:
        """Fold one entry in; the cells whose view changed."""
        if entry.event_id in self.by_id:
            return []  # at-least-once: a redelivered event is the same fact
        self.timeline.append(entry)
        self.by_id[entry.event_id] = entry
        self.by_commit.setdefault((entry.repository, entry.commit), []).append(entry)
        while len(self.timeline) > self.retain:
            self._forget(self.timeline.popleft())
        cell = self.cells.get(entry.target)
        if cell is None:
            return []  # a service or environment the policy no longer has: in the timeline only
        changed = [cell]
        if entry.stream == "decision":
            cell.decided[entry.commit] = entry.kind
            cell.pending.pop(entry.commit, None)
            if entry.kind == "ready" and _newer(entry, cell.newest_ready):
                cell.newest_ready = entry
            following = self._following(cell)
            if following is not None and entry.kind == "ready" and entry.commit not in following.decided:
                _wait(following, entry.commit, entry.time)
                changed.append(following)
        else:
            self._outcome(cell, entry)
        return self.touch(changed)

    def _outcome(self, cell: Cell, entry: Entry) -> None:
        if _newer(entry, cell.last_outcome):
            cell.last_outcome = entry
        if entry.kind in RUNNING_KINDS and _newer(entry, cell.running):
            if entry.kind == "rolledback":
                cell.rolled_back = entry
                restored = [e for e in cell.rolled_out if e.image == entry.image]
                # An image the board saw no rollout of (older than what it retains): the image is all it knows.
                cell.running = restored[-1] if restored else entry
            else:
                cell.running, cell.rolled_back = entry, None
                cell.rolled_out.append(entry)
            cell.circuit_open = ""  # a rollout went through: nothing holds the service
        if entry.kind == "blocked" and entry.reason.startswith("circuit open"):
            cell.circuit_open = entry.reason
        if entry.kind == "unblocked":
            cell.circuit_open = ""

    def add_push(self, push: Push) -> list[Cell]:
        """A pushed head; the first cells of the services it may deploy to that have not decided it."""
        self.pushes[(push.repository, push.commit)] = push
        while len(self.pushes) > self.retain:
            self.pushes.pop(next(iter(self.pushes)))
        firsts = [
            self.cells[(s.name, s.environments[0].name)]
            for s in self.policies.for_repository(push.repository)
            if s.branch == push.branch
        ]
        waiting = [cell for cell in firsts if push.commit not in cell.decided]
        for cell in waiting:
            _wait(cell, push.commit, push.time)
        return self.touch(waiting)

    def touch(self, cells: Iterable[Cell]) -> list[Cell]:
        """Say that what these cells show changed (e.g. what the worker says of a commit waiting there)."""
        touched = list(dict.fromkeys(cells))
        for cell in touched:
            cell.version += 1
        return touched

    def _forget(self, entry: Entry) -> None:
        self.by_id.pop(entry.event_id, None)
        cell = self.cells.get(entry.target)
        if entry.stream == "decision" and cell is not None and cell.decided.get(entry.commit) == entry.kind:
            del cell.decided[entry.commit]
        key = (entry.repository, entry.commit)
        remaining = [e for e in self.by_commit.get(key, []) if e.event_id != entry.event_id]
        if remaining:
            self.by_commit[key] = remaining
        else:
            self.by_commit.pop(key, None)

    def _following(self, cell: Cell) -> Cell | None:
        environments = cell.service.environments
        if cell.index + 1 >= len(environments):
            return None
        return self.cells[(cell.service.name, environments[cell.index + 1].name)]

    # -- reading -------------------------------------------------------------------------------------------------

    def waiting(self, cell: Cell, now: datetime) -> list[tuple[str, datetime]]:
        """The newest commits waiting for this cell, newest first: (commit, since). In a first environment, a push
        older than the readiness TTL waits no more (the worker expires it)."""
        ttl = cell.service.readiness_ttl if cell.index == 0 else None
        found = []
        for commit, since in reversed(cell.pending.items()):
            if ttl is not None and now - since >= ttl:
                break  # oldest first: every one before is older still
            found.append((commit, since))
            if len(found) == WAITING_SHOWN:
                break
        return found

    def commit_entries(self, repository: str, commit: str) -> list[Entry]:
        return sorted(self.by_commit.get((repository, commit), []), key=lambda e: (e.time, e.stream == "outcome"))

    def push_of(self, repository: str, commit: str) -> Push | None:
        return self.pushes.get((repository, commit))

    def find_commit(self, repository: str, prefix: str) -> list[str]:
        """The commits of `repository` the board knows that start with `prefix`."""
        known = {c for r, c in self.by_commit if r == repository} | {c for r, c in self.pushes if r == repository}
        return sorted(c for c in known if c.startswith(prefix))

    def recent(self, service: str | None = None, kind: str | None = None, limit: int = 200) -> Iterator[Entry]:
        """The newest entries first, filtered."""
        shown = 0
        for entry in reversed(self.timeline):
            if shown >= limit:
                return
            if (service and entry.service != service) or (kind and entry.kind != kind):
                continue
            shown += 1
            yield entry


def _wait(cell: Cell, commit: str, since: datetime) -> None:
    cell.pending[commit] = since
    cell.pending.move_to_end(commit)
    while len(cell.pending) > WAITING_KEPT:
        cell.pending.popitem(last=False)


def _newer(entry: Entry, than: Entry | None) -> bool:
    return than is None or entry.time >= than.time
