"""The worker makes a Faust event current through Faust's private `_current_event` (worker/batch.py): these tests
pin what that relies on, so a Faust upgrade that changes it fails here rather than writing tables to the wrong
partition."""

from __future__ import annotations

from dataclasses import dataclass, field

import faust

from streams.worker.batch import current


@dataclass
class Message:
    topic: str = "github.events"
    partition: int = 3
    offset: int = 41


@dataclass(eq=False)  # Faust holds a weak reference to the current event
class Event:
    message: Message = field(default_factory=Message)


def test_faust_public_reader_sees_the_event_made_current_and_then_the_one_before() -> None:
    outer, inner = Event(), Event(Message(partition=5))
    assert faust.current_event() is None
    with current(outer):
        assert faust.current_event() is outer
        with current(inner):
            assert faust.current_event() is inner
        assert faust.current_event() is outer
    assert faust.current_event() is None


def test_a_table_write_goes_to_the_partition_of_the_current_event() -> None:
    app = faust.App("pin-current-event", broker="kafka://localhost:1", store="memory://")
    table = app.Table("readiness", default=None, partitions=6, key_type=bytes, value_type=bytes)
    for partition in (0, 3, 5):
        with current(Event(Message(partition=partition))):
            # Table.on_key_set sends the changelog record to this partition; the RocksDB store also reads the
            # current event to choose the partition's database.
            assert table.partition_for_key(b"github.com/acme/shop") == partition
