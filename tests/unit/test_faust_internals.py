"""What the worker's time-ordered merge relies on inside Faust (not public API): these fail on an upgrade that
changes it, rather than the merge waiting on partitions it thinks are still being read, or a rebalance hanging."""

from __future__ import annotations

import inspect

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.base import Collection
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import ConsumerRebalanceListener

from streams.worker.app import ReadinessApp


def test_the_consumer_tracks_the_offset_it_last_handed_towards_the_agents() -> None:
    assert "self._read_offset = defaultdict(lambda: None)" in inspect.getsource(Consumer.__init__)
    assert "set_read_offset(tp, offset)" in inspect.getsource(Consumer._drain_messages)


def test_a_rebalance_starts_with_app_on_rebalance_start_and_waits_only_for_referenced_records() -> None:
    assert "thread.app.on_rebalance_start()" in inspect.getsource(ConsumerRebalanceListener.on_partitions_revoked)
    # wait_empty collects garbage before it looks again: records the merge dropped stop counting.
    waiting = inspect.getsource(Consumer.wait_empty)
    assert "gc.collect()" in waiting
    assert "_unacked_messages" in waiting


def test_the_readiness_app_overrides_what_faust_calls() -> None:
    assert ReadinessApp.on_rebalance_start.__qualname__.startswith("ReadinessApp")
    assert hasattr(faust.App, "on_rebalance_start")
    assert inspect.iscoroutinefunction(faust.App.on_stop)


def test_a_table_is_rebalanced_its_store_opening_the_databases_before_recovery_reads_their_persisted_offsets() -> None:
    """The bulk restore (streams/worker/changelog_restore.py) runs first in the table's on_rebalance, before its store
    opens the newly assigned partitions' databases and the recovery reads where to start from each."""
    manager = inspect.getsource(TableManager.on_rebalance)
    assert manager.index("T(table.on_rebalance)(") < manager.index("T(self.recovery.on_rebalance)(")
    assert "self.data.on_rebalance(" in inspect.getsource(Collection.on_rebalance)
    assert "self._db_for_partition(" in inspect.getsource(RocksDBStore._try_open_db_for_partition)
    assert "persisted_offset = table.persisted_offset(tp)" in inspect.getsource(Recovery._add)
    assert "self.conf.Table(" in inspect.getsource(faust.App.Table)


def test_the_rocksdb_store_opens_a_partition_by_its_path_with_its_options_and_keeps_the_last_offset_applied() -> None:
    """The child opens each database as the store does (its path, `RocksDBOptions` from the table's options) and
    writes the offset record as the store's replay does (the recovery reads that record again and goes on after)."""
    assert "self.rocksdb_options.open(" in inspect.getsource(RocksDBStore._open_for_partition)
    assert "path = self.partition_path(partition)" in inspect.getsource(RocksDBStore._open_for_partition)
    assert "RocksDBOptions(\n            **self.options, use_rocksdict=self.use_rocksdict" in inspect.getsource(
        RocksDBStore.__init__
    )
    applied = inspect.getsource(RocksDBStore.apply_changelog_batch)
    assert "max(offset, tp_offsets[tp])" in applied
    assert "self.set_persisted_offset(tp, offset)" in applied
    assert "rocksdict.WriteBatch(raw_mode=True)" in applied
    assert "put(self.offset_key, str(offset).encode())" in inspect.getsource(RocksDBStore.set_persisted_offset)
    assert "int(offset)" in inspect.getsource(RocksDBStore.persisted_offset)
    assert "offset = 0" in inspect.getsource(Recovery._seek_offsets)  # seeks to the persisted offset itself
    assert "self._dbs.pop(tp.partition, None)" in inspect.getsource(RocksDBStore.revoke_partitions)


def test_the_rocksdb_store_iterates_the_databases_of_its_active_partitions() -> None:
    """The recovery's meta scan (streams/worker/table_scan.py) reads the databases the table's own iteration reads."""
    assert "self._dbs_for_actives()" in inspect.getsource(RocksDBStore._iteritems)
    assert "it.seek_to_first()" in inspect.getsource(RocksDBStore._visible_keys)  # raw keys, in order


def test_a_table_creates_its_changelog_with_its_extra_topic_configs() -> None:
    """The worker's changelog configs (changelog_restore.CHANGELOG_CONFIGS) reach the topic Faust declares."""
    assert "config=self.extra_topic_configs," in inspect.getsource(Collection._new_changelog_topic)
