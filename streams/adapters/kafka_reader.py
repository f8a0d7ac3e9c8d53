"""Whole stretches of topics, read once: every record of the named topics from a start (the beginning, or the
first record at or after a time) up to each partition's end offset when the read started. Never joins a group nor
commits: an audit that reads the log changes nothing in it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.config import KafkaSecurity

T = TypeVar("T")


class ReadFailed(RuntimeError):
    """The broker did not answer, or a partition could not be read to its end in time."""


@dataclass(frozen=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def read_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    since_ms: int | None = None,
    security: KafkaSecurity | None = None,
    timeout_s: float = 60.0,
) -> list[LogRecord]:
    """Every record of `topics` from `since_ms` (None: from the beginning) to the ends as they are now, per
    partition in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"autodeploy-read-{uuid.uuid4().hex}",  # never joined nor committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            **(security or KafkaSecurity()).librdkafka(),
        }
    )
    try:
        return _read(consumer, list(topics), since_ms, timeout_s)
    except KafkaException as e:
        raise ReadFailed(f"could not read {', '.join(topics)}: {e}") from e
    finally:
        consumer.close()


def _read(consumer: Consumer, topics: list[str], since_ms: int | None, timeout_s: float) -> list[LogRecord]:
    metadata = consumer.list_topics(timeout=timeout_s)
    partitions = []
    for topic in topics:
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise ReadFailed(f"topic {topic} does not exist (or may not be described)")
        partitions += [TopicPartition(topic, p) for p in sorted(found.partitions)]
    ends = {}
    assigned = []
    for tp in _retried(lambda: _starts(consumer, partitions, since_ms, timeout_s), timeout_s):
        low, high = _retried(partial(consumer.get_watermark_offsets, tp, timeout=timeout_s), timeout_s)
        start = low if tp.offset == OFFSET_BEGINNING else tp.offset
        if start != OFFSET_END and start < high:
            ends[(tp.topic, tp.partition)] = high
            assigned.append(TopicPartition(tp.topic, tp.partition, start))
    consumer.assign(assigned)
    records: list[LogRecord] = []
    deadline = time.monotonic() + timeout_s
    while ends:
        if time.monotonic() > deadline:
            raise ReadFailed(f"not read to their ends within {timeout_s:.0f}s: {sorted(ends)}")
        for message in consumer.consume(1000, 0.5):
            error = message.error()
            if error is not None:
                raise ReadFailed(f"reading {message.topic()}[{message.partition()}]: {error.str()}")
            record = _record(message)
            where = (record.topic, record.partition)
            end = ends.get(where)
            if end is None or record.offset >= end:
                continue
            records.append(record)
            if record.offset + 1 >= end:
                del ends[where]
    return records


def _retried(ask: Callable[[], T], timeout_s: float) -> T:
    """`ask()`, again while the broker answers with a retriable error (a topic just created has no leader yet)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            return ask()
        except KafkaException as e:
            error = e.args[0] if e.args else None
            if not (isinstance(error, KafkaError) and error.retriable()) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _starts(
    consumer: Consumer, partitions: list[TopicPartition], since_ms: int | None, timeout_s: float
) -> list[TopicPartition]:
    if since_ms is None:
        return [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions]
    wanted = [TopicPartition(tp.topic, tp.partition, since_ms) for tp in partitions]
    found = consumer.offsets_for_times(wanted, timeout=timeout_s)
    # No record at or after the time: nothing to read there (OFFSET_END).
    return [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END) for tp in found]


def _record(message: Message) -> LogRecord:
    _kind, timestamp = message.timestamp()
    return LogRecord(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        timestamp,
        message.key(),
        message.value(),
        _headers(message),
    )


def _headers(message: Message) -> tuple[tuple[str, bytes | None], ...]:
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)
