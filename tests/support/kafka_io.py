"""Read back what landed on a topic, for assertions against the real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streams.adapters.kafka_offsets import KafkaOffsets, OffsetsUnavailable
from tests.support.brokers import SelectedBroker


def consume(
    broker: SelectedBroker,
    topic: str,
    expected: int,
    timeout: float = 30.0,
    keep_going: Callable[[], bool] = lambda: True,
) -> list[Message]:
    """Every record of `topic` from the beginning, waiting until at least `expected` arrived, the timeout passed, or
    `keep_going` says there is no point (the producing process died)."""
    consumer = Consumer(
        broker.config(
            {
                "group.id": f"test-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
    )
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline and keep_going():
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    found.append(message)
        # Anything beyond `expected` (a duplicate, say) must show up too: drain briefly.
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < quiet_until:
            batch = [m for m in consumer.consume(500, 0.2) if m.error() is None]
            found.extend(batch)
    finally:
        consumer.close()
    return found


def read_to_end(broker: SelectedBroker, topics: Iterable[str], timeout: float) -> list[Message]:
    """Every record of `topics`, from each partition's beginning to its end offset when the read starts: for what
    is known to be on the broker already. A read that stops after a quiet second cannot tell records that are not
    there from records not fetched yet."""
    consumer = Consumer(broker.config({"group.id": f"test-reader-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    try:
        metadata = consumer.list_topics(timeout=10)
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p in metadata.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), 10)
                if high > low:
                    ends[(topic, p)] = high
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        while ends:
            assert time.monotonic() < deadline, f"partitions not read to their end within {timeout} s: {ends}"
            found += [m for m in consumer.consume(1000, 0.5) if m.error() is None]
            # The position, not the last record's offset: it also steps over transaction markers.
            for tp in consumer.position([TopicPartition(t, p) for t, p in ends]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    del ends[(tp.topic, tp.partition)]
    finally:
        consumer.close()
    return found


class GroupProgress:
    """How many records of `partitions` a consumer group has committed (0 for a partition without a commit); one
    client for all the polls (KafkaOffsets: the admin API's offset fetch can crash the process, see there)."""

    def __init__(self, broker: SelectedBroker, group: str, partitions: Iterable[tuple[str, int]]) -> None:
        self._offsets = KafkaOffsets(broker.bootstrap_servers, security=broker.security)
        self._partitions = list(partitions)
        self._group = group

    def committed(self) -> int:
        try:
            answer = self._offsets.committed([self._group], self._partitions)
        except OffsetsUnavailable:  # e.g. the coordinator still loading on a fresh broker: callers poll
            return 0
        return sum(answer[self._group].values())


def read_all(
    broker: SelectedBroker, topics: Iterable[str], done: Callable[[list[Message]], bool], timeout: float
) -> list[Message]:
    """Every record of `topics` from the beginning, read until `done(records so far)` holds and a second passes
    quietly (late duplicates show up too), or the timeout passes."""
    consumer = Consumer(
        broker.config(
            {
                "group.id": f"test-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe(list(topics))
    found: list[Message] = []
    deadline, quiet_since = time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(1000, 0.5) if m.error() is None]
            found += batch
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 1.0 and done(found):
                break
    finally:
        consumer.close()
    return found
