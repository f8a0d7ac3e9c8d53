"""The table's changelog read in bulk into RocksDB, in a process of its own, before Faust's recovery replays it.

Faust recovers a table through its consumer and streams, one record at a time: ~6,300-11,000 records/s on 2 cores,
80-126 s for the ~720k changelog records of 1M tracked commits (docs/performance.md). This reads the same partitions
with a librdkafka consumer, thousands of records per call, and writes them into the partitions' RocksDB databases
with one write batch per partition per call, the last offset written in the same batch, where Faust's store keeps it
(`Store.offset_key`). Faust's recovery then starts from that offset and finds only what was written since.

The table ends as Faust's replay would leave it: the same records, in the changelog's order, into the same databases,
a tombstone deleting its key. A failure or a kill part way leaves a prefix of each partition with its offset, which is
what Faust's own recovery leaves when interrupted: the rest is replayed (by Faust now, or by the next start).

A child process does it (`python -m streams.worker.changelog_restore`, its request on stdin), before the store opens
the newly assigned partitions' databases: the restore's buffers (the consumer's, the memtables, ~200 MB at 1M
commits) would otherwise stay in the worker's heap and thread arenas after it (+86-120 MB of RSS measured in the
worker). `RestoringTable.on_rebalance` starts it; tests/unit/test_faust_internals.py fails if Faust changes what
this relies on (the order of a rebalance, the offset record, the databases' paths and options).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import faust
import rocksdict
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from streams.config import KafkaSecurity

log = logging.getLogger(__name__)

# Partitions with fewer records left are left to Faust's replay (the child only restores partitions that have no
# database yet: all of their changelog is left).
MIN_RECORDS = 1
CONSUME_RECORDS = 5_000  # records per consume call, and so at most per write batch
# librdkafka prefetches up to this much per consumer (64 MiB by default): the worker's memory, for a few seconds.
QUEUED_KBYTES = 16 * 1024
# How long librdkafka waits to fetch again once that prefetch is full (1 s by default): with a smaller prefetch than
# its default, the default wait made the restore 5x slower (bench.restore; docs/performance.md).
QUEUE_BACKOFF_MS = 10
STALLED_S = 30.0  # no record for this long while some are missing: give up, and Faust replays the rest
OFFSET_KEY: bytes = RocksDBStore.offset_key  # the key of the last changelog offset a partition's database holds
# The changelog as Faust creates it (compacted; the rest the broker's defaults): the worker writes a meta record per
# repository per batch, and Kafka never compacts a partition's active segment (1 GiB or 7 days by default), so a fresh
# worker read ~20 records per live key (bench.changelog: 4,015 records, 68 MB, for 200 live keys, 6.5 MB; 206 once
# compacted). Smaller segments that roll hourly, cleaned at 10 % dirty, bound what a restore reads to about the live
# keys plus a segment per partition. Faust applies these when it creates the topic only (docs/reference/worker.md).
CHANGELOG_CONFIGS = {
    "segment.bytes": str(64 * 1024 * 1024),
    "segment.ms": str(60 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}


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
    """How to reach the changelog: the worker's bootstrap servers, Kafka identity (`KafkaSecurity.librdkafka()`) and
    group (its id: never joined nor committed to here, but librdkafka asks for a group's coordinator and the worker
    may describe its own)."""

    bootstrap_servers: str
    security: dict[str, str]
    group: str
    min_records: int = MIN_RECORDS

    @classmethod
    def of(cls, bootstrap_servers: str, security: KafkaSecurity, group: str) -> ChangelogRestore:
        return cls(bootstrap_servers, security.librdkafka(), group)

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
                **self.security,
                **overrides,
            }
        )


class RocksDBTarget:
    """The table's partition databases, opened by path with the options Faust's store opens them with (the same
    `RocksDBOptions`), in the restoring process."""

    def __init__(
        self,
        topic: str,
        paths: Mapping[int, str],
        options: Mapping[str, Any],
        write_options: rocksdict.WriteOptions | None = None,
    ) -> None:
        self.topic = topic
        self.paths = paths
        self.options = RocksDBOptions(**options, use_rocksdict=True)
        self.write_options = write_options  # None: RocksDB's defaults (bench.restore tries others)
        self._dbs: dict[int, rocksdict.Rdict] = {}

    def db(self, partition: int) -> rocksdict.Rdict:
        if partition not in self._dbs:
            self._dbs[partition] = self.options.open(_restoring(self.paths[partition]))
        return self._dbs[partition]

    def persisted_offset(self, partition: int) -> int | None:
        raw = self.db(partition).get(OFFSET_KEY)
        return None if raw is None else int(raw)

    def write(self, partition: int, records: Iterable[tuple[bytes, bytes | None]], last_offset: int) -> None:
        """Apply `records` (key, value; None deletes) in order, and record `last_offset` as restored, at once."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        # Where Faust's store keeps it (`set_persisted_offset`), in the same batch: no crash separates the two.
        batch.put(OFFSET_KEY, str(last_offset).encode())
        db = self.db(partition)
        if self.write_options is None:
            db.write(batch)
        else:
            db.write(batch, self.write_options)

    def close(self) -> None:
        """Close the databases (flushing their memtables) and give them their names: the worker then replays their
        tail, if any. A restore killed before this leaves them under their `.restoring` names, and the next one goes
        on from their offsets in bulk instead of Faust replaying the rest record by record."""
        for partition, db in self._dbs.items():
            db.close()
            _restoring(self.paths[partition]).rename(self.paths[partition])
        self._dbs.clear()


def _restoring(path: str) -> Path:
    return Path(f"{path}.restoring")


def restore(
    source: ChangelogRestore,
    target: RocksDBTarget,
    partitions: Iterable[int],
    should_stop: Callable[[], bool] = lambda: False,
) -> Restored:
    """Read each partition from after its persisted offset (or its first record) to its end offset as of now, into
    `target`. Partitions with fewer than `source.min_records` records left are left to Faust."""
    started = time.monotonic()
    consumer = source.consumer()
    try:
        starts, ends = _ranges(consumer, source, target, partitions)
        records, write_s = _read(consumer, target, starts, ends, should_stop) if starts else (0, 0.0)
    finally:
        consumer.close()
        target.close()
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
    """Faust's table, restored in bulk from its changelog by a child process (`main`) as partitions are assigned to
    it, when its store is RocksDB through rocksdict (the worker's); any other store is left to Faust's recovery."""

    def __init__(self, *args: Any, restore_from: ChangelogRestore | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._restore_from = restore_from

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        store = self.data
        if self._restore_from is not None and isinstance(store, RocksDBStore) and store.use_rocksdict:
            topic = self.changelog_topic.get_topic_name()
            standbys = self.app.assignor.assigned_standbys()
            # Only partitions without a database yet (a fresh worker, a partition new to this one): one with its
            # database has the changelog up to its last write, and Faust replays the tail at once; waiting ~1 s for a
            # child first made its recovery's offset requests wait behind the consumer's 1.5 s fetches (+3 s after a
            # kill -9, measured). Private: the databases the store has open, which the child could not open either.
            partitions = sorted(
                tp.partition
                for tp in newly_assigned
                if tp.topic == topic
                and tp not in standbys
                and tp.partition not in store._dbs
                and not store.partition_path(tp.partition).exists()
            )
            if partitions:
                await self._restore(store, topic, partitions)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)  # then the store opens them

    async def _restore(self, store: RocksDBStore, topic: str, partitions: list[int]) -> None:
        source = self._restore_from
        assert source is not None
        request = {
            "source": asdict(source),
            "topic": topic,
            "paths": {p: str(store.partition_path(p)) for p in partitions},
            "options": dict(store.options or {}),  # what Faust's store opens its databases with
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await child.communicate(json.dumps(request).encode())
        except asyncio.CancelledError:
            child.kill()
            raise
        if child.returncode != 0:
            # Whatever was written is a prefix with its offset: Faust's recovery replays the rest.
            tail = err.decode(errors="replace").strip().splitlines()[-5:]
            log.warning(
                "bulk restore of the table failed, Faust's recovery replays it rc=%s %s", child.returncode, tail
            )
            return
        restored = Restored(**json.loads(out.decode().strip().splitlines()[-1]))
        if restored.records:
            log.info(
                "table restored in bulk records=%d partitions=%s elapsed_s=%.2f write_s=%.2f rate=%.0f/s",
                restored.records,
                ",".join(map(str, restored.partitions)),
                restored.elapsed_s,
                restored.write_s,
                restored.records / max(restored.elapsed_s, 1e-9),
            )


def main() -> int:
    """The child: a request (see `RestoringTable._restore`) on stdin, the `Restored` as JSON on stdout."""
    _die_with_parent()
    request = json.load(sys.stdin)
    source = ChangelogRestore(**request["source"])
    paths = {int(p): path for p, path in request["paths"].items()}
    target = RocksDBTarget(request["topic"], paths, request["options"])
    restored = restore(source, target, sorted(paths))
    print(json.dumps(asdict(restored)), flush=True)
    return 0


def _die_with_parent() -> None:
    """A worker killed during its restore must not leave the child holding the databases' locks (the restarted
    worker's store waits for them): Linux's parent-death signal; elsewhere, the child finishes on its own."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return


_PR_SET_PDEATHSIG = 1

if __name__ == "__main__":
    sys.exit(main())
