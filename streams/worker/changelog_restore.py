"""The table's changelog read in bulk into RocksDB, before Faust's own recovery replays it record by record.

Faust recovers a table through its consumer and streams, one record at a time: ~6,300 records/s on 2 cores, 115 s
for the ~720k changelog records of 1M tracked commits (docs/performance.md). This reads the same partitions with a
librdkafka consumer, thousands of records per call, and writes them into the same RocksDB databases with one write
batch per partition per call, then records the last offset written where Faust's store keeps it
(`set_persisted_offset`). Faust's recovery starts after that offset and finds only what was written since.

The table ends as Faust's replay would leave it: the same records, in the changelog's order, into the same databases,
a tombstone deleting its key. A failure or a stop part way leaves a prefix of each partition with its offset, which is
what Faust's own recovery leaves when interrupted: the rest is replayed (by Faust now, or by the next start).

`RestoringTable.on_rebalance` runs it after the store has opened the newly assigned partitions' databases and before
Faust's recovery reads their persisted offsets; tests/unit/test_faust_internals.py fails if Faust changes that order
or the store's methods used here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
import rocksdict
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from streams.config import KafkaSecurity
from streams.worker.heap import trim_heap

log = logging.getLogger(__name__)

# Below this many records left, Faust's replay takes about as long as starting a consumer: left to it.
MIN_RECORDS = 5_000
CONSUME_RECORDS = 5_000  # records per consume call, and so at most per write batch
# librdkafka prefetches up to this much per consumer (64 MiB by default): the worker's memory, for a few seconds.
QUEUED_KBYTES = 16 * 1024
# How long librdkafka waits to fetch again once that prefetch is full (1 s by default): with a smaller prefetch than
# its default, the default wait made the restore 5x slower (bench.restore; docs/performance.md).
QUEUE_BACKOFF_MS = 10
STALLED_S = 30.0  # no record for this long while some are missing: give up, and Faust replays the rest


class RestoreStalled(RuntimeError):
    """The changelog stopped delivering before its end offsets were reached."""


@dataclass(frozen=True, slots=True)
class Restored:
    records: int
    partitions: tuple[int, ...]
    elapsed_s: float
    write_s: float = 0.0  # of which in RocksDB's writes


@dataclass(frozen=True, slots=True)
class ChangelogRestore:
    """How to reach the changelog: the worker's bootstrap servers, Kafka identity and group (its id: never joined nor
    committed to here, but librdkafka asks for a group's coordinator and the worker may describe its own)."""

    bootstrap_servers: str
    security: KafkaSecurity
    group: str
    min_records: int = MIN_RECORDS

    def consumer(self, **overrides: Any) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "queued.max.messages.kbytes": QUEUED_KBYTES,
                "fetch.queue.backoff.ms": QUEUE_BACKOFF_MS,
                **self.security.librdkafka(),
                **overrides,
            }
        )


class RocksDBTarget:
    """Faust's RocksDB store of one table as the restore writes it (the store's partition databases, opened by it)."""

    def __init__(self, store: RocksDBStore, topic: str, options: rocksdict.WriteOptions | None = None) -> None:
        self.store = store
        self.topic = topic
        self.options = options  # RocksDB's write options; None: its defaults (bench.restore tries others)

    def persisted_offset(self, partition: int) -> int | None:
        offset: int | None = self.store.persisted_offset(TP(self.topic, partition))
        return offset

    def write(self, partition: int, records: Iterable[tuple[bytes, bytes | None]], last_offset: int) -> None:
        """Apply `records` (key, value; None deletes) in order, and record `last_offset` as restored, at once."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        # Where `set_persisted_offset` puts it, in the same batch: no crash separates the two.
        batch.put(self.store.offset_key, str(last_offset).encode())
        # Private: the database Faust's store opened for the partition (a second handle would find it locked).
        db = self.store._db_for_partition(partition)
        if self.options is None:
            db.write(batch)
        else:
            db.write(batch, self.options)

    def finish(self, partition: int) -> None:
        """Flush the memtables the restore filled: their memory (up to two write buffers per partition) would stay
        taken until the worker's own writes filled them again."""
        self.store._db_for_partition(partition).flush(True)


def restore(
    source: ChangelogRestore,
    target: RocksDBTarget,
    partitions: Iterable[int],
    should_stop: Callable[[], bool] = lambda: False,
) -> Restored:
    """Read each partition from after its persisted offset (or its first record) to its end offset as of now, into
    `target`. Partitions with fewer than `source.min_records` records left are left to Faust. Blocking: run it in a
    thread."""
    started = time.monotonic()
    consumer = source.consumer()
    try:
        starts, ends = _ranges(consumer, source, target, partitions)
        records, write_s = _read(consumer, target, starts, ends, should_stop) if starts else (0, 0.0)
    finally:
        consumer.close()
    for partition in starts:
        target.finish(partition)
    return Restored(records, tuple(sorted(starts)), time.monotonic() - started, write_s)


def _ranges(
    consumer: Consumer, source: ChangelogRestore, target: RocksDBTarget, partitions: Iterable[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition worth restoring, the first offset to read and the end offset (exclusive)."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for partition in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(target.topic, partition), timeout=10)
        persisted = target.persisted_offset(partition)
        start = max(low, persisted + 1 if persisted is not None else 0)
        if high - start >= source.min_records:
            starts[partition], ends[partition] = start, high
    return starts, ends


def _read(
    consumer: Consumer,
    target: RocksDBTarget,
    starts: Mapping[int, int],
    ends: Mapping[int, int],
    should_stop: Callable[[], bool],
) -> tuple[int, float]:
    """(records written, seconds spent writing them)."""
    consumer.assign([TopicPartition(target.topic, p, offset) for p, offset in starts.items()])
    pending = set(starts)
    records, write_s = 0, 0.0
    last_record = time.monotonic()
    while pending and not should_stop():
        messages = consumer.consume(CONSUME_RECORDS, 0.5)
        if not messages:
            if time.monotonic() - last_record > STALLED_S:
                raise RestoreStalled(f"no changelog record for {STALLED_S:.0f} s, partitions={sorted(pending)}")
            continue
        last_record = time.monotonic()
        batches: dict[int, list[tuple[bytes, bytes | None]]] = {}
        last: dict[int, int] = {}
        for message in messages:
            error = message.error()
            partition = message.partition()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                pending.discard(partition)  # at its end (a compacted tail may end before `ends` - 1)
                continue
            if partition not in pending:
                continue  # written after the end offset read at the start: Faust's recovery reads it
            offset = cast(int, message.offset())  # None only in a produced message's delivery report
            key = message.key()
            if key is not None:  # Faust writes none without a key, and could not replay one
                batches.setdefault(partition, []).append((key, message.value()))
            last[partition] = offset
            if offset >= ends[partition] - 1:
                pending.discard(partition)
        writing = time.monotonic()
        for partition, offset in last.items():
            target.write(partition, batches.get(partition, ()), offset)
            records += len(batches.get(partition, ()))
        write_s += time.monotonic() - writing
    return records, write_s


class RestoringTable(faust.Table[bytes, bytes]):
    """Faust's table, restored in bulk from its changelog (`restore`) as partitions are assigned to it, when its
    store is RocksDB through rocksdict (the worker's); any other store is left to Faust's recovery."""

    def __init__(self, *args: Any, restore_from: ChangelogRestore | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._restore_from = restore_from

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)  # opens the databases first
        store = self.data
        if self._restore_from is None or not isinstance(store, RocksDBStore) or not store.use_rocksdict:
            return
        topic = self.changelog_topic.get_topic_name()
        standbys = self.app.assignor.assigned_standbys()
        partitions = sorted(tp.partition for tp in newly_assigned if tp.topic == topic and tp not in standbys)
        if not partitions:
            return
        target = RocksDBTarget(store, topic)
        try:
            restored = await asyncio.to_thread(
                restore, self._restore_from, target, partitions, lambda: bool(self.app.should_stop)
            )
        except (KafkaException, RestoreStalled):
            # Whatever was written is a prefix with its offset: Faust's recovery replays the rest.
            log.warning("bulk restore of the table failed, Faust's recovery replays the rest", exc_info=True)
            return
        if restored.records:
            log.info(
                "table restored in bulk records=%d partitions=%s elapsed_s=%.2f write_s=%.2f rate=%.0f/s",
                restored.records,
                ",".join(map(str, restored.partitions)),
                restored.elapsed_s,
                restored.write_s,
                restored.records / max(restored.elapsed_s, 1e-9),
            )
            trim_heap()  # the consumer's buffers are freed: give their pages back
