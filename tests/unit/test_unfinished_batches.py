"""Which outboxes a recovery publishes again: those of batches whose source offsets are not committed."""

from __future__ import annotations

from streams.worker.state_store import Recovered
from streams.worker.unfinished import UnfinishedBatches
from tests.unit.test_state_store import outbox


def found(repository: str, partition: int, read: dict[str, int], records: int = 1) -> Recovered:
    return Recovered(repository, partition, {}, False, outbox(read, records).to_json())


def test_only_batches_past_the_committed_offsets_of_their_own_partition_are_unfinished() -> None:
    committed = {("gh", 0): 10, ("ci", 0): 5, ("gh", 1): 3}
    unfinished = UnfinishedBatches()
    unfinished.note(found("done", 0, {"gh": 9, "ci": 4}), committed, "out")
    unfinished.note(found("crashed", 0, {"gh": 9, "ci": 5}), committed, "out")
    unfinished.note(found("other-partition", 1, {"gh": 9}), committed, "out")
    unfinished.note(Recovered("before-outboxes", 0, {}, False, None), committed, "out")
    unfinished.note(found("no-decision", 2, {"gh": 0}, records=0), committed, "out")  # rewritten, nothing to send
    assert len(unfinished) == 3 and unfinished.partitions() == [0, 1, 2]
    taken = unfinished.take(0)
    assert list(taken) == ["crashed"] and taken["crashed"].records[0].topic == "out"
    assert unfinished.take(0) == {}
    unfinished.forget([1])
    assert unfinished.partitions() == [2]


def test_with_the_offsets_unknown_every_outbox_that_publishes_something_is_sent_again() -> None:
    unfinished = UnfinishedBatches()
    unfinished.note(found("decided", 0, {"gh": 1}), None, "out")
    unfinished.note(found("changed-only", 0, {"gh": 1}, records=0), None, "out")
    assert list(unfinished.take(0)) == ["decided"]
