"""Consumer group offsets, end offsets and record timestamps: end offsets through confluent-kafka's AdminClient,
committed offsets through a consumer per group that never joins it, and timestamps through a consumer that only reads
single records at given offsets (it never joins a group or commits)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.config import KafkaSecurity
from streams.domain.lag import PartitionKey, Position

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
# The record reader's group.id: the client needs one, and librdkafka asks for its coordinator, so a principal needs
# DESCRIBE on it (topics/acls.yaml); it is never joined nor committed.
READER_GROUP = "autodeploy-lag-reader"


class OffsetsUnavailable(RuntimeError):
    """The broker did not answer an offsets request."""


class KafkaOffsets:
    def __init__(self, bootstrap_servers: str, timeout: float = 10.0, security: KafkaSecurity | None = None) -> None:
        self._bootstrap = bootstrap_servers
        self._timeout = timeout
        self._security = (security or KafkaSecurity()).librdkafka()
        self._admin = AdminClient(
            {"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": int(timeout * 1000), **self._security}
        )
        self._reader: Consumer | None = None
        self._group_readers: dict[str, Consumer] = {}
        self._group_readers_lock = threading.Lock()  # the worker asks from its lag thread and its event loop's threads
        self._timestamps: dict[tuple[str, int, int], datetime] = {}  # (topic, partition, offset): records never change

    def committed(
        self, groups: Iterable[str], partitions: Iterable[TopicPartitionKey] | None = None
    ) -> dict[str, dict[TopicPartitionKey, int]]:
        """Per group, its committed offset of each of `partitions` (default: every partition of every topic but
        Kafka's own) that it has committed; a group unknown to the broker (or with nothing committed) has none.

        Asked through a consumer bound to the group (never subscribed: it does not join), not the admin API:
        librdkafka's admin ListConsumerGroupOffsets dereferences a null group handle when the broker answers
        NOT_COORDINATOR (a coordinator still loading or moving; confluentinc/librdkafka#5040, open in 2.16) and the
        process dies of a segfault. A consumer's group handle re-queries the coordinator instead."""
        wanted = [TopicPartition(t, p) for t, p in (self._all_partitions() if partitions is None else partitions)]
        result: dict[str, dict[TopicPartitionKey, int]] = {}
        for group in groups:
            if not wanted:
                result[group] = {}
                continue
            try:
                answer = self._group_reader(group).committed(wanted, timeout=self._timeout)
            except KafkaException as e:
                raise OffsetsUnavailable(f"committed offsets of group {group}: {e}") from e
            result[group] = {
                (tp.topic, tp.partition): tp.offset for tp in answer if tp.error is None and tp.offset >= 0
            }
        return result

    def _all_partitions(self) -> list[TopicPartitionKey]:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout)
        except KafkaException as e:
            raise OffsetsUnavailable(f"topic metadata: {e}") from e
        return [
            (name, partition)
            for name, topic in metadata.topics.items()
            if not name.startswith("__") and topic.error is None
            for partition in topic.partitions
        ]

    def _group_reader(self, group: str) -> Consumer:
        with self._group_readers_lock:
            reader = self._group_readers.get(group)
            if reader is None:
                reader = self._group_readers[group] = Consumer(
                    {
                        "bootstrap.servers": self._bootstrap,
                        "group.id": group,  # only to ask its coordinator: never subscribed, so it never joins
                        "enable.auto.commit": False,
                        "socket.timeout.ms": int(self._timeout * 1000),
                        **self._security,
                    }
                )
            return reader

    def end_offsets(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The log end offset (the offset the next record will get) of each partition that still exists."""
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # the stubs leave it untyped
        request = {TopicPartition(t, p): latest for t, p in set(partitions)}
        if not request:
            return {}
        futures = self._admin.list_offsets(request, request_timeout=self._timeout)
        ends = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result(timeout=self._timeout + 5).offset
            except KafkaException as e:  # a deleted topic: leave it out, the others still count
                log.warning("end offset unavailable topic=%s partition=%s error=%s", tp.topic, tp.partition, e)
            except TimeoutError as e:
                raise OffsetsUnavailable(f"end offsets: {e}") from e
        return ends

    def positions(self, groups: Iterable[str]) -> list[Position]:
        committed = self.committed(groups)
        ends = self.end_offsets(tp for offsets in committed.values() for tp in offsets)
        return [
            Position(group, topic, partition, offset, ends[(topic, partition)])
            for group, offsets in committed.items()
            for (topic, partition), offset in offsets.items()
            if (topic, partition) in ends
        ]

    def timestamps(self, positions: Iterable[Position], wait_s: float = 3.0) -> dict[PartitionKey, datetime]:
        """The timestamp of the record at each lagging position's committed offset (the oldest the group has not
        consumed; past a retention gap, the oldest that still exists). Positions whose record is not read within
        `wait_s` are left out."""
        lagging = [p for p in positions if p.lag > 0]
        wanted = {(p.topic, p.partition, p.committed) for p in lagging} - self._timestamps.keys()
        if wanted:
            self._read(wanted, wait_s)
        found = {}
        for p in lagging:
            moment = self._timestamps.get((p.topic, p.partition, p.committed))
            if moment is not None:
                found[p.key] = moment
        self._forget_except({(p.topic, p.partition, p.committed) for p in lagging})
        return found

    def _read(self, wanted: set[tuple[str, int, int]], wait_s: float) -> None:
        reader = self._reader or self._new_reader()
        at = {(t, p): o for t, p, o in wanted}
        reader.assign([TopicPartition(t, p, o) for (t, p), o in at.items()])
        deadline = time.monotonic() + wait_s
        try:
            while at and time.monotonic() < deadline:
                for message in reader.consume(num_messages=len(at), timeout=0.2):
                    if message.error() is not None:
                        continue
                    topic, partition = message.topic() or "", message.partition() or 0
                    requested = at.pop((topic, partition), None)
                    if requested is None:
                        continue
                    kind, millis = message.timestamp()
                    if kind != TIMESTAMP_NOT_AVAILABLE:
                        self._timestamps[(topic, partition, requested)] = datetime.fromtimestamp(millis / 1000, UTC)
        except KafkaException as e:
            raise OffsetsUnavailable(f"reading records at committed offsets: {e}") from e
        finally:
            reader.unassign()  # stop prefetching between polls
        for (topic, partition), offset in at.items():
            log.info("oldest unconsumed record not read topic=%s partition=%s offset=%s", topic, partition, offset)

    def _new_reader(self) -> Consumer:
        self._reader = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": READER_GROUP,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # Past a retention gap the oldest record that still exists is the oldest unconsumed one.
                "auto.offset.reset": "earliest",
                "queued.min.messages": 1,
                "fetch.max.bytes": 1024 * 1024,
                "max.partition.fetch.bytes": 64 * 1024,
                "socket.timeout.ms": int(self._timeout * 1000),
                **self._security,
            }
        )
        return self._reader

    def _forget_except(self, keep: set[tuple[str, int, int]]) -> None:
        self._timestamps = {k: v for k, v in self._timestamps.items() if k in keep}

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        for reader in self._group_readers.values():
            reader.close()
        self._group_readers.clear()
