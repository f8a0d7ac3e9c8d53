"""The readiness join run over retained records with no side effects: the decisions a worker would make from the same
log (the same merge, the same log clock, the same verification and fold), and how they differ from the decisions
`deploy.readiness` holds. With another policy, what it would have decided differently (shadow mode)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.adapters.kafka_reader import LogRecord
from streams.catalog.model import TopicSpec
from streams.domain.fold import Decided, fold_fact, fold_time
from streams.domain.policy import Policies
from streams.domain.readiness import RepositoryState, empty_state
from streams.events.decoding import RawRecord, Undecodable
from streams.events.signing import DirectoryVerifier
from streams.worker.deadlines import Deadlines
from streams.worker.event_facts import verified_facts
from streams.worker.log_clock import LogClock
from streams.worker.merge import Lag, TimeOrderedMerge
from streams.worker.output import TYPES

_KINDS = {type_: kind for kind, type_ in TYPES.items()}
_EVERYTHING_RECEIVED = 2**62  # a clock past every timestamp: the records alone order the merge


@dataclass(frozen=True)
class Outcome:
    """A decision as it is compared: its id is uuid5(service/commit/kind)."""

    decision_id: str
    kind: str
    service: str
    commit: str
    superseded_by: str | None

    def document(self) -> dict[str, Any]:
        return {
            "id": self.decision_id,
            "kind": self.kind,
            "service": self.service,
            "commit": self.commit,
            "superseded_by": self.superseded_by,
        }


@dataclass
class Replay:
    decisions: list[Decided] = field(default_factory=list)
    deadletters: list[tuple[RawRecord, str]] = field(default_factory=list)
    records: int = 0


def replay(
    records: Iterable[LogRecord],
    inputs: Mapping[str, TopicSpec],
    policies: Policies,
    verifier: DirectoryVerifier | None,
    *,
    until: datetime,
    skew_ms: int,
) -> Replay:
    """Fold `records` (of the input topics named in `inputs`, in their rank order for ties) as the worker would, then
    let the clock run to `until` (the live worker's ticks would have expired what was due by then)."""
    merge = TimeOrderedMerge[LogRecord]({name: rank for rank, name in enumerate(inputs)}, skew_ms=skew_ms, idle_ms=1)
    for record in records:
        merge.add(record.topic, record.partition, record.offset, record.timestamp_ms, record)
    fold = _Fold(inputs, policies, verifier, LogClock(skew_ms, wall_clock=lambda: until))
    for record in merge.release(_EVERYTHING_RECEIVED, lambda *_: Lag.NONE).items:
        fold.record(record)
    fold.expire_all(until)
    return fold.out


class _Fold:
    def __init__(
        self, inputs: Mapping[str, TopicSpec], policies: Policies, verifier: DirectoryVerifier | None, clock: LogClock
    ) -> None:
        self.inputs, self.policies, self.verifier, self.clock = inputs, policies, verifier, clock
        self.states: dict[str, RepositoryState] = {}
        self.deadlines = Deadlines()
        self.out = Replay()

    def record(self, log: LogRecord) -> None:
        self.out.records += 1
        received = datetime.fromtimestamp(log.timestamp_ms / 1000, UTC) if log.timestamp_ms > 0 else None
        at = self.clock.at(log.partition, received)
        self._expire(log.partition, at)
        headers = tuple((k, v or b"") for k, v in log.headers)
        raw = RawRecord(log.topic, log.partition, log.offset, log.key, log.value, headers)
        try:
            facts = verified_facts(raw, self.inputs[log.topic], received, self.verifier)
        except Undecodable as e:
            self.out.deadletters.append((raw, str(e)))
            return
        for fact in facts:
            services = self.policies.for_repository(fact.repository)
            if services:
                self._fold(
                    log.partition,
                    fact.repository,
                    services,
                    fold_fact(self._state(fact.repository), fact, services, at),
                )

    def _state(self, repository: str) -> RepositoryState:
        return self.states.get(repository) or empty_state(repository)

    def _fold(
        self, partition: int, repository: str, services: Sequence[Any], result: tuple[RepositoryState, list[Decided]]
    ) -> None:
        state, decisions = result
        replaced = self.states.get(repository)
        self.states[repository] = state
        self.deadlines.track(partition, repository, state, services, replaced=replaced)
        self.out.decisions.extend(decisions)

    def _expire(self, partition: int, now: datetime) -> None:
        if not self.deadlines.has_due(partition, now):
            return
        for repository in self.deadlines.due(partition, now):
            services = self.policies.for_repository(repository)
            self._fold(partition, repository, services, fold_time(self._state(repository), services, now))

    def expire_all(self, until: datetime) -> None:
        for partition in self.deadlines.partitions():
            self._expire(partition, until)


def outcome_of(decision: Decided) -> Outcome:
    return Outcome(decision.decision_id, decision.kind, decision.service, decision.commit, decision.superseded_by)


def outcome_of_record(value: bytes | None) -> Outcome | None:
    """A decision record of deploy.readiness as compared; None for one that is no readiness decision."""
    try:
        event = json.loads(value or b"")
        content = event["data"]["subject"]["content"]
        kind = _KINDS[event["type"]]
        return Outcome(event["id"], kind, content["service"], content["commit"], content.get("superseded_by"))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Difference:
    same: list[Outcome]
    only_replayed: list[Outcome]  # the replay decides it; the log does not hold it
    only_logged: list[Outcome]  # the log holds it; the replay does not decide it
    changed: list[tuple[Outcome, Outcome]]  # same id, another superseded-by: (logged, replayed)

    @property
    def identical(self) -> bool:
        return not (self.only_replayed or self.only_logged or self.changed)


def compare(replayed: Iterable[Outcome], logged: Iterable[Outcome]) -> Difference:
    """By decision id; a decision published twice (after a crash) counts once."""
    mine = {o.decision_id: o for o in replayed}
    theirs = {o.decision_id: o for o in logged}
    same = [o for i, o in mine.items() if theirs.get(i) == o]
    changed = [(theirs[i], o) for i, o in mine.items() if i in theirs and theirs[i] != o]
    return Difference(
        same=same,
        only_replayed=[o for i, o in mine.items() if i not in theirs],
        only_logged=[o for i, o in theirs.items() if i not in mine],
        changed=changed,
    )
