"""What a worker's table changelog holds after folding real events: records and bytes against the live keys and
their bytes (what compaction would leave), per record kind (meta records, parts, tombstone lists).

bench.rss seeds its changelog directly, one record per key; this one lets the worker write it, batch by batch, from
bench.join's events (a push and two checks per commit, in rounds over the repositories), and reads it back.

    python -m bench.changelog [--repositories 200] [--commits 6000] [--compact-wait 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from bench.common import record
from bench.join import Offsets, events, pipeline, produce, wait_committed, worker
from streams.local.processes import free_port

CONFIGS = ("cleanup.policy", "segment.bytes", "segment.ms", "min.cleanable.dirty.ratio")


def read_all(bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-changelog-{free_port()}", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    pending = set(range(partitions))
    latest: dict[bytes, int] = {}
    records = size = 0
    kinds: dict[str, list[int]] = {}
    while pending:
        for message in consumer.consume(5000, 1.0):
            if message.error() is not None:
                pending.discard(message.partition())
                continue
            key, value = message.key() or b"", message.value() or b""
            records += 1
            size += len(value)
            latest[key] = len(value)
            kind = key.rpartition(b"\x00")[2].decode()
            kind = "part" if kind.startswith("b") else kind
            counts = kinds.setdefault(kind, [0, 0])
            counts[0] += 1
            counts[1] += len(value)
    consumer.close()
    live_kinds: dict[str, list[int]] = {}
    for key, length in latest.items():
        kind = key.rpartition(b"\x00")[2].decode()
        kind = "part" if kind.startswith("b") else kind
        counts = live_kinds.setdefault(kind, [0, 0])
        counts[0] += 1
        counts[1] += length
    return {
        "records": records,
        "bytes": size,
        "live": len(latest),
        "live_bytes": sum(latest.values()),
        "kinds": kinds,
        "live_kinds": live_kinds,
    }


def compact(bootstrap: str, admin: AdminClient, topic: str, partitions: int, wait_s: float) -> dict[str, Any]:
    """Roll every partition's active segment (segment.ms 1 s, then a tombstone of a key the table never had) and let
    the cleaner run at any dirty ratio: what the changelog holds once compaction has caught up."""
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        set_config={"segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01", "cleanup.policy": "compact"},
    )
    admin.alter_configs([resource])[resource].result(timeout=30)
    time.sleep(2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in range(partitions):
        producer.produce(topic, None, b"bench-changelog\x00roll", partition=partition)
    producer.flush(30)
    time.sleep(wait_s)
    return read_all(bootstrap, topic, partitions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--commits", type=int, default=6000, help="in all; three events each")
    parser.add_argument("--compact-wait", type=float, default=0, help="then roll the segments, wait this long, count")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp, pipeline(Path(tmp), args.repositories) as p:
        total = produce(p, events(args.repositories, args.commits // args.repositories, checks=2))
        group = f"bench-changelog-{free_port()}"
        offsets = Offsets(p, group)
        started = time.perf_counter()
        with worker(p, group):
            wait_committed(offsets)
        elapsed = time.perf_counter() - started
        topic = f"{group}-readiness-changelog"
        partitions = p.catalog.topic("github.events").partitions
        found = read_all(p.bootstrap, topic, partitions)
        print(found, flush=True)
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        admin = AdminClient({"bootstrap.servers": p.bootstrap})  # kept: a collected client fails its futures
        described = admin.describe_configs([resource])[resource].result(timeout=30)
        configs = {name: described[name].value for name in CONFIGS if name in described}
        compacted = compact(p.bootstrap, admin, topic, partitions, args.compact_wait) if args.compact_wait else None
    mb = 1024 * 1024
    rows = [
        {"metric": f"events folded ({args.commits:,} commits, {args.repositories} repositories)", "autodeploy": total},
        {"metric": "worker run s", "autodeploy": elapsed},
        {"metric": "changelog records", "autodeploy": found["records"]},
        {"metric": "changelog MB", "autodeploy": found["bytes"] / mb},
        {"metric": "live keys (what compaction leaves)", "autodeploy": found["live"]},
        {"metric": "live MB", "autodeploy": found["live_bytes"] / mb},
    ]
    for kind, (count, size) in sorted(found["kinds"].items()):
        live_count, live_size = found["live_kinds"].get(kind, [0, 0])
        rows.append(
            {
                "metric": f"{kind} records / MB, live / MB",
                "autodeploy": f"{count:,} / {size / mb:.1f}, {live_count:,} / {live_size / mb:.1f}",
            }
        )
    rows.append({"metric": f"changelog topic configs {configs}", "autodeploy": ""})
    if compacted is not None:
        rows.append(
            {"metric": "records once compacted (segments rolled, cleaner run)", "autodeploy": compacted["records"]}
        )
        rows.append({"metric": "MB once compacted", "autodeploy": compacted["bytes"] / mb})
    record("changelog", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
