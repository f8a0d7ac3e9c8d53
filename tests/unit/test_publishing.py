"""Outboxes saved while an earlier batch's publication is unacknowledged carry that batch's records and offsets: a
crash before the acknowledgement publishes both again, never neither."""

from __future__ import annotations

from streams.adapters.kafka_producer import Record
from streams.worker.publishing import Publishing


def record(value: str) -> Record:
    return Record("deploy.readiness", b"svc", value.encode())


A1, A2, B1 = record("a1"), record("a2"), record("b1")


def test_an_outbox_carries_the_unacknowledged_records_and_offsets_of_its_repository_oldest_first() -> None:
    publishing = Publishing()
    first = publishing.start({"a": (A1,), "b": (B1,)}, {"a": {"github": 10}, "b": {"github": 11}})
    outbox = publishing.outbox("a", {"ci": 4}, (A2,))
    assert outbox.records == (A1, A2)
    assert outbox.read == {"ci": 4, "github": 10}
    assert publishing.outbox("c", {"ci": 5}, ()).records == ()
    assert len(publishing) == 2
    publishing.done(first)
    assert publishing.outbox("a", {"ci": 4}, (A2,)).records == (A2,)
    assert len(publishing) == 0


def test_batches_acknowledged_in_order_release_only_their_own_records() -> None:
    publishing = Publishing()
    first = publishing.start({"a": (A1,)}, {"a": {"github": 10}})
    second = publishing.start({"a": (A2,)}, {"a": {"github": 12}})
    assert publishing.outbox("a", {"github": 13}, ()).records == (A1, A2)
    publishing.done(first)
    outbox = publishing.outbox("a", {"github": 13}, ())
    assert (outbox.records, outbox.read) == ((A2,), {"github": 13})
    publishing.done(second)
    assert publishing.outbox("a", {"github": 14}, ()).records == ()


def test_a_batch_that_publishes_nothing_for_a_repository_leaves_nothing_pending() -> None:
    publishing = Publishing()
    number = publishing.start({"a": ()}, {"a": {"github": 1}})
    assert len(publishing) == 0
    publishing.done(number)
    publishing.done(number)  # twice: nothing left to release
    assert len(publishing) == 0
