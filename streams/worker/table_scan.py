"""The meta records of the worker's table, read straight from Faust's RocksDB store without its parts.

A recovery needs one record per repository (state_store's `<repo>\\x00meta`); iterating the table hands over every
record, ~36 per repository at 50 commits, and at 1M tracked commits reading their values (~1 GB) was most of a
restart's scan. RocksDB keeps each partition's keys in order and a repository's keys share its prefix, so the
iterator seeks to each repository's meta key, then past the repository: two seeks per repository, one value read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from faust.stores.rocksdb import Store as RocksDBStore

_SEP = b"\x00"
_AFTER_SEP = b"\x01"  # the first byte after every key of a prefix: seeking to prefix + it skips them all


def meta_records(table: Any, meta: bytes) -> Callable[[], Iterator[tuple[bytes, bytes]]] | None:
    """A reader of `table`'s meta records (key suffix `meta`, after the separator), for the partitions this worker
    actively owns; None unless the table's store is RocksDB through rocksdict (others: iterate the table)."""

    def read() -> Iterator[tuple[bytes, bytes]]:
        store = table.data
        # Private: the databases of the partitions this worker is active for, as the table's own iteration uses.
        for db in store._dbs_for_actives():
            yield from _metas(db, meta)

    store = table.data
    if not isinstance(store, RocksDBStore) or not store.use_rocksdict:
        return None
    return read


def _metas(db: Any, meta: bytes) -> Iterator[tuple[bytes, bytes]]:
    suffix = _SEP + meta
    it = db.iter()
    it.seek_to_first()
    while it.valid():
        prefix = bytes(it.key()).partition(_SEP)[0]  # a repository, or Faust's own offset key ("__faust")
        wanted = prefix + suffix
        it.seek(wanted)
        if it.valid() and it.key() == wanted:
            yield wanted, it.value()
        it.seek(prefix + _AFTER_SEP)
