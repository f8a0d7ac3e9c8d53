"""Recovery after `kill -9`: the worker folds a backlog of N tracked commits, is killed with SIGKILL, new commits
arrive, and it is started again on the same data directory (state restored from RocksDB and the changelog).
Reported: restart to the first new decision, and restart to caught up (every input committed).

    python -m bench.recovery [--repositories 200] [--commits 100000]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from bench.common import record
from bench.join import Offsets, events, pipeline, produce, wait_committed, worker
from streams.local.processes import free_port


def _end(admin: AdminClient, topic: str, partitions: int) -> int:
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    answer = admin.list_offsets({TopicPartition(topic, p): latest for p in range(partitions)})
    return sum(f.result().offset for f in answer.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--commits", type=int, default=100_000, help="tracked before the kill, in all")
    args = parser.parse_args()
    per_repository = max(args.commits // args.repositories, 1)
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp, pipeline(Path(tmp), args.repositories) as p:
        start = datetime.now(UTC) - timedelta(minutes=30)
        backlog = list(events(args.repositories, per_repository, checks=2, start=start))
        produce(p, iter(backlog))
        group = f"bench-recovery-{free_port()}"
        readiness = p.catalog.topic("deploy.readiness")
        admin = AdminClient({"bootstrap.servers": p.bootstrap})
        # Static membership, as in production (the StatefulSet pod name): the restarted worker takes its partitions
        # back at once instead of waiting for the killed member's session to time out.
        # The same web port too: Faust's assignor asserts that the member's URL in the assignment is its own.
        member = {"AUTODEPLOY_WORKER_INSTANCE_ID": f"{group}-0"}
        port = free_port()
        with worker(p, group, port, **member) as proc:
            fold_started = time.perf_counter()
            wait_committed(Offsets(p, group), timeout=24 * 3600)
            fold_s = time.perf_counter() - fold_started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        # One more commit per repository, after the backlog's: the new decisions to wait for.
        fresh = list(events(args.repositories, per_repository + 1, checks=2, start=start))[len(backlog) :]
        produce(p, iter(fresh))
        decisions_before = _end(admin, readiness.name, readiness.partitions)
        offsets = Offsets(p, group)
        restarted = time.perf_counter()
        with worker(p, group, port, **member):
            first_decision_s = None
            while first_decision_s is None:
                if _end(admin, readiness.name, readiness.partitions) > decisions_before:
                    first_decision_s = time.perf_counter() - restarted
                time.sleep(0.05)
            wait_committed(offsets, timeout=3600)
            caught_up_s = time.perf_counter() - restarted

    def row(metric: str, value: float, goal: str = "") -> dict[str, Any]:
        return {"metric": metric, "autodeploy": value, "goal": goal}

    record(
        "recovery",
        [
            row(
                f"restart to first new decision s ({per_repository * args.repositories} tracked commits)",
                first_decision_s,
                "< 30",
            ),
            row("restart to caught up s", caught_up_s),
            row("backlog fold s (before the kill)", fold_s),
            row("events before the kill", len(backlog)),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
