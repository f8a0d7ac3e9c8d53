"""The bulk restore of the table's changelog into RocksDB (streams/worker/changelog_restore.py): databases opened by
path as the child opens them, read back by Faust's own store, and a consumer that hands out prepared records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import faust
import pytest
from confluent_kafka import KafkaError, KafkaException
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from streams.config import KafkaSecurity, WorkerSettings
from streams.worker.changelog_restore import ChangelogRestore, RestoringTable, RocksDBTarget, _ranges, _read

TOPIC = "t-readiness-changelog"


@dataclass
class Message:
    partition_: int
    offset_: int | None
    key_: bytes | None
    value_: bytes | None
    code: int | None = None

    def error(self) -> KafkaError | None:
        return None if self.code is None else KafkaError(self.code)

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int | None:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_


def eof(partition: int) -> Message:
    return Message(partition, None, None, None, KafkaError._PARTITION_EOF)


class FakeConsumer:
    """Hands out `batches` one consume call at a time; offsets per partition as a broker's watermarks."""

    def __init__(self, batches: list[list[Message]], watermarks: dict[int, tuple[int, int]] | None = None) -> None:
        self.batches = iter(batches)
        self.watermarks = watermarks or {}
        self.assigned: list[tuple[int, int]] = []

    def assign(self, partitions: list[object]) -> None:
        self.assigned = [(tp.partition, tp.offset) for tp in partitions]  # type: ignore[attr-defined]

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return next(self.batches, [])

    def get_watermark_offsets(self, tp: object, timeout: float) -> tuple[int, int]:
        return self.watermarks[tp.partition]  # type: ignore[attr-defined]


OPTIONS = {"block_cache_size": 1024 * 1024, "write_buffer_size": 1024 * 1024, "max_write_buffer_number": 2}


def faust_store(datadir: Path) -> RocksDBStore:
    """Faust's store of a table as the worker builds it, over `datadir`."""
    app = faust.App("t", broker="kafka://localhost:1", store="rocksdb://", datadir=str(datadir))
    table = app.Table("readiness", key_type=bytes, value_type=bytes, partitions=2, options=dict(OPTIONS))
    store = table.data
    assert isinstance(store, RocksDBStore) and store.use_rocksdict
    return store


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RocksDBTarget]:
    paths = {p: str(faust_store(tmp_path).partition_path(p)) for p in (0, 1)}
    target = RocksDBTarget(TOPIC, paths, OPTIONS)
    yield target
    target.close()


def test_records_are_applied_in_order_a_tombstone_deletes_and_faust_reads_them_and_the_offset(
    tmp_path: Path, target: RocksDBTarget
) -> None:
    consumer = FakeConsumer(
        [
            [Message(0, 0, b"a", b"1"), Message(1, 0, b"b", b"1"), Message(0, 1, b"a", b"2")],
            [Message(0, 2, b"c", b"1"), Message(0, 3, b"c", None), Message(1, 1, b"b", b"2")],
        ]
    )
    records, _ = _read(consumer, target, {0: 0, 1: 0}, {0: 4, 1: 2}, lambda: False)  # type: ignore[arg-type]
    assert records == 6
    target.close()
    # Faust's store, as the worker opens it after the child: the records, and where its recovery starts (it reads
    # the last applied record again, as after its own replay).
    store = faust_store(tmp_path)
    db0, db1 = store._db_for_partition(0), store._db_for_partition(1)
    assert (db0.get(b"a"), db0.get(b"c"), db1.get(b"b")) == (b"2", None, b"2")
    assert store.persisted_offset(TP(TOPIC, 0)) == 3
    assert store.persisted_offset(TP(TOPIC, 1)) == 1
    assert sorted(k for k, _ in store._visible_items(db0)) == [b"a"]  # the offset record stays Faust's own


def test_a_restore_cut_short_by_a_kill_goes_on_in_bulk_and_faust_opens_it_under_its_name_once_closed(
    tmp_path: Path, target: RocksDBTarget
) -> None:
    _read(FakeConsumer([[Message(0, 0, b"a", b"1")]]), target, {0: 0}, {0: 1}, lambda: False)  # type: ignore[arg-type]
    path = Path(target.paths[0])
    assert not path.exists()  # the worker's store has nothing there: the next start restores it in bulk again
    target.db(0).close()  # as a kill leaves it, without the rename
    target._dbs.clear()
    again = RocksDBTarget(TOPIC, target.paths, OPTIONS)
    assert again.persisted_offset(0) == 0  # goes on from there
    again.write(0, [(b"b", b"2")], 1)
    again.close()
    store = faust_store(tmp_path)
    assert store.persisted_offset(TP(TOPIC, 0)) == 1
    assert (store._db_for_partition(0).get(b"a"), store._db_for_partition(0).get(b"b")) == (b"1", b"2")


def test_a_partition_ends_at_its_end_offset_or_at_eof_and_later_records_are_left_to_faust(
    target: RocksDBTarget,
) -> None:
    consumer = FakeConsumer(
        [
            [Message(0, 5, b"a", b"1"), eof(1)],
            [Message(0, 6, b"a", b"2")],  # after the end offset read at the start
            [Message(0, 7, b"never", b"read")],
        ]
    )
    records, _ = _read(consumer, target, {0: 5, 1: 3}, {0: 6, 1: 4}, lambda: False)  # type: ignore[arg-type]
    assert records == 1
    assert target.db(0).get(b"a") == b"1"
    assert target.persisted_offset(0) == 5
    assert target.persisted_offset(1) is None
    assert consumer.assigned == [(0, 5), (1, 3)]


def test_an_error_stops_the_restore_leaving_what_was_written_with_its_offset(target: RocksDBTarget) -> None:
    consumer = FakeConsumer(
        [[Message(0, 0, b"a", b"1")], [Message(0, None, None, None, KafkaError.TOPIC_AUTHORIZATION_FAILED)]]
    )
    with pytest.raises(KafkaException):
        _read(consumer, target, {0: 0}, {0: 10}, lambda: False)  # type: ignore[arg-type]
    assert target.db(0).get(b"a") == b"1"
    assert target.persisted_offset(0) == 0


def test_a_stop_ends_the_restore_between_batches(target: RocksDBTarget) -> None:
    consumer = FakeConsumer([[Message(0, 0, b"a", b"1")], [Message(0, 1, b"a", b"2")]])
    calls = iter([False, True])
    assert _read(consumer, target, {0: 0}, {0: 10}, lambda: next(calls))[0] == 1  # type: ignore[arg-type]


def test_it_reads_from_after_the_persisted_offset_and_leaves_short_tails_to_faust(target: RocksDBTarget) -> None:
    target.write(0, [], 99)
    consumer = FakeConsumer([], {0: (0, 200), 1: (40, 45)})
    source = ChangelogRestore("localhost:1", {}, "t", min_records=10)
    starts, ends = _ranges(consumer, source, target, [0, 1])  # type: ignore[arg-type]
    assert (starts, ends) == ({0: 100}, {0: 200})


def test_the_childs_request_carries_what_the_worker_knows_and_its_answer_decodes() -> None:
    source = ChangelogRestore.of("k:9092", KafkaSecurity(), "app")
    assert json.loads(json.dumps(asdict(source))) == asdict(source)
    assert source.security == {"security.protocol": "PLAINTEXT"}


def test_the_bulk_restore_is_on_unless_turned_off() -> None:
    assert WorkerSettings.from_env({}).bulk_restore
    assert not WorkerSettings.from_env({"AUTODEPLOY_WORKER_BULK_RESTORE": "0"}).bulk_restore
    assert issubclass(RestoringTable, faust.Table)
