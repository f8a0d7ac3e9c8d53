"""The bulk restore alone (streams/worker/changelog_restore.py), without a worker: bench.rss's seeded changelog read
into fresh RocksDB databases opened with the worker's options, timed as a whole and without its writes (consume
only), with the RSS it leaves in the process that ran it.

    python -m bench.restore [--commits 1000000] [--per-repository 50] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rocksdict
from confluent_kafka import Consumer, TopicPartition

from bench.common import record
from bench.join import pipeline
from bench.rss import seed
from streams.config import KafkaSecurity
from streams.local.processes import free_port
from streams.worker import changelog_restore
from streams.worker.changelog_restore import ChangelogRestore, RocksDBTarget, restore
from streams.worker.heap import trim_heap

OPTIONS = {"block_cache_size": 16 * 1024 * 1024, "write_buffer_size": 8 * 1024 * 1024, "max_write_buffer_number": 2}


def consume_only(bootstrap: str, topic: str, partitions: int, config: dict[str, Any]) -> tuple[int, float, float]:
    """(records, seconds, this process's CPU seconds): how fast librdkafka alone hands the changelog over."""
    source = ChangelogRestore.of(bootstrap, KafkaSecurity(), f"bench-restore-{free_port()}")
    consumer: Consumer = source.consumer(**config)
    started, cpu = time.monotonic(), time.process_time()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    pending, records = set(range(partitions)), 0
    while pending:
        for message in consumer.consume(changelog_restore.CONSUME_RECORDS, 0.5):
            if message.error() is not None:
                pending.discard(message.partition())
            else:
                records += 1
                message.key(), message.value()
    consumer.close()
    return records, time.monotonic() - started, time.process_time() - cpu


# librdkafka settings tried against the restore's own (see changelog_restore.ChangelogRestore.consumer).
CONSUMER_VARIANTS: dict[str, dict[str, Any]] = {
    "the restore's": {},
    "16 MiB prefetch, librdkafka's 1 s backoff when it is full": {"fetch.queue.backoff.ms": 1000},
    "librdkafka's default prefetch (64 MiB) and backoff": {
        "queued.max.messages.kbytes": 65536,
        "fetch.queue.backoff.ms": 1000,
    },
}


def _no_wal() -> rocksdict.WriteOptions:
    options = rocksdict.WriteOptions()
    setattr(options, "disable_wal", True)  # noqa: B010 - a property at run time; the stub declares a method
    return options


# RocksDB write options tried for the restore's write batches.
WRITE_VARIANTS: dict[str, Callable[[], rocksdict.WriteOptions | None]] = {
    "the restore's": lambda: None,
    "without the write-ahead log": _no_wal,
}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=1_000_000)
    parser.add_argument("--per-repository", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="only the restore's own consumer settings")
    args = parser.parse_args()
    repositories = args.commits // args.per_repository
    rows = []
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp, pipeline(Path(tmp), repositories) as p:
        partitions = p.catalog.topic("github.events").partitions
        app_id = f"bench-restore-{free_port()}"
        seed(p, app_id, repositories, args.per_repository, partitions)
        topic = f"{app_id}-readiness-changelog"
        for round_ in range(args.rounds):
            for name, config in list(CONSUMER_VARIANTS.items())[: 1 if args.quick else None]:
                records, elapsed, cpu = consume_only(p.bootstrap, topic, partitions, config)
                rows.append(
                    {
                        "metric": f"consume only ({name}), records/s (round {round_ + 1})",
                        "autodeploy": records / elapsed,
                        "seconds": elapsed,
                        "cpu seconds": cpu,
                    }
                )
                print(rows[-1], flush=True)
            for name, options in WRITE_VARIANTS.items():
                paths = {n: str(Path(tmp) / f"restore-{round_}-{len(rows)}" / f"{n}.db") for n in range(partitions)}
                source = ChangelogRestore.of(p.bootstrap, KafkaSecurity(), app_id)
                before = rss_mb()
                restored = restore(source, RocksDBTarget(topic, paths, OPTIONS, options()), range(partitions))
                after = rss_mb()
                trim_heap()
                time.sleep(5)  # RocksDB's background compactions
                trim_heap()
                rows.append(
                    {
                        "metric": f"restore into RocksDB ({name}), records/s (round {round_ + 1})",
                        "records": restored.records,
                        "autodeploy": restored.records / restored.elapsed_s,
                        "seconds": restored.elapsed_s,
                        "RSS MB growth": after - before,
                        "RSS MB growth, 5 s later, trimmed": rss_mb() - before,
                    }
                )
                print(rows[-1], flush=True)
    record("restore", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
