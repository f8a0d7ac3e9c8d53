"""Meta records read straight from RocksDB (streams/worker/table_scan.py): each repository's, no part, not Faust's
offset key, whatever the repositories' names."""

from __future__ import annotations

from pathlib import Path

import rocksdict

from streams.worker.table_scan import _metas


def test_only_the_meta_records_are_read_in_key_order(tmp_path: Path) -> None:
    db = rocksdict.Rdict(str(tmp_path / "db"), options=rocksdict.Options(raw_mode=True))
    names = [b"shop", b"shop-api", b"shop\x01x", b"a", b"z" * 300]
    for name in names:
        for part in (b"b00", b"b07", b"b63", b"meta", b"tomb"):
            db[name + b"\x00" + part] = name + b"/" + part
    db[b"__faust\x00offset__"] = b"41"
    db[b"nometa\x00b01"] = b"part without a meta record"
    db[b"no-separator"] = b"x"
    found = list(_metas(db, b"meta"))
    assert found == [(n + b"\x00meta", n + b"/meta") for n in sorted(names)]
    db.close()
