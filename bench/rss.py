"""Worker memory and recovery with many tracked commits, against the same worker with an empty table in the same run.

Folding 1M commits through a worker takes longer than a benchmark should, so the states are built with the pure rules
(pushes and one of the two required checks: every commit waits, none is pruned) and written to the worker's changelog
topic as the worker itself would write them. Then, per size:

- a fresh worker (no local RocksDB) recovers the table from the changelog; recovery time = process start to the first
  decision on a new event (the missing check of one commit), RSS after it;
- the worker is killed with SIGKILL and started again on the same data directory: the same measure, from local
  RocksDB plus the changelog's tail.

With `--faust-replay`, a fresh worker is first timed without the bulk restore (Faust's own record-by-record replay),
then its data directory is removed and the two runs above follow.

    python -m bench.rss [--sizes 100000,1000000] [--per-repository 50] [--faust-replay] [--settle 20]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.common import process, record
from bench.join import Pipeline, bench_repository, pipeline, worker_env
from streams.adapters.kafka_admin import TopicAdmin
from streams.adapters.policy_file import load_policies
from streams.domain.facts import BranchPushed, CheckFinished, CheckId, CheckKind, EventRef, Outcome
from streams.domain.readiness import apply
from streams.domain.readiness_state import empty_state
from streams.domain.webhook_mapping import github_attributes
from streams.events.signing import signed_record
from streams.local.processes import free_port
from streams.webhooks.provider_events import provider_event
from streams.worker.state_store import StateStore
from tests.support.signing import TEST_KEY

MB = 1024 * 1024


def memory(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024 / MB  # kB
    return found


def commit_of(app_id: str, repository: int, index: int) -> str:
    """Commits of their own per size: a fresh group reads the input topics from the beginning, and an earlier
    size's event for the same commit would decide it before this run's own (or make this run's a duplicate)."""
    return hashlib.sha1(f"{app_id}/{repository}/{index}".encode(), usedforsecurity=False).hexdigest()


def seed(p: Pipeline, app_id: str, repositories: int, per_repository: int, partitions: int) -> int:
    """Write the states of `repositories` x `per_repository` waiting commits into the worker's changelog topic."""
    policies = load_policies(p.policy)
    table: dict[bytes, bytes] = {}
    store = StateStore(table, cache_commits=0)  # write-through: nothing kept once written
    changelog = f"{app_id}-readiness-changelog"
    TopicAdmin(p.bootstrap).ensure(changelog, partitions, {"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": p.bootstrap, "linger.ms": 50, "compression.type": "lz4"})
    now = datetime.now(UTC)
    for r in range(repositories):
        repository = f"github.com/acme/repo{r}"
        services = policies.for_repository(repository)
        state, before = empty_state(repository), "0" * 40
        for i in range(per_repository):
            commit = commit_of(app_id, r, i)
            pushed = EventRef(f"https://api.github.com/repos/acme/repo{r}", f"p{r}-{i}", "com.github.push", now)
            state, _ = apply(
                state, BranchPushed(repository, "main", before, commit, False, False, pushed), services, now
            )
            built = EventRef("https://circleci.com/acme", f"c{r}-{i}", "com.circleci.workflow-completed", now)
            build = CheckId(CheckKind.CIRCLECI, "build-test")
            state, _ = apply(state, CheckFinished(repository, commit, build, 1, Outcome.SUCCESS, built), services, now)
            before = commit
        partition = (murmur2(repository.encode()) & 0x7FFFFFFF) % partitions
        store.save(repository, state, partition)
        for key, value in table.items():
            _produce(producer, changelog, key, value, partition)
        table.clear()
    if producer.flush(120):
        raise RuntimeError("changelog records not delivered")
    return repositories * per_repository


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, partition: int) -> None:
    while True:
        try:
            producer.produce(topic, value, key, partition=partition)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.1)


def lint_passed(repository: int, commit: str) -> tuple[str, bytes, bytes, list[tuple[str, str | bytes | None]]]:
    """The missing check of `commit`, as the webhook server would have written it: (topic, key, value, headers).
    The headers say the record is a structured CloudEvent: without them the worker reads a binary-mode event with
    no attributes and dead-letters it (the bench then timed out waiting for its decision)."""
    payload = bench_repository(repository).workflow_run(commit, "success", datetime.now(UTC), name="lint")
    body = orjson.dumps(payload)
    event = provider_event(github_attributes("workflow_run", payload), f"lint-{commit}", body, datetime.now(UTC))
    out = signed_record(event, "github.events", TEST_KEY)
    return out.topic, out.key or b"", out.value, list(out.headers)


class Decisions:
    """Reads deploy.readiness from where it ends now: only this run's decisions count (when every size seeded the
    same commit names and this read from the beginning, the 1M runs were timed at the 100k run's decision, before
    their worker had recovered anything)."""

    def __init__(self, p: Pipeline) -> None:
        topic = p.catalog.topic("deploy.readiness")
        self.consumer = Consumer({"bootstrap.servers": p.bootstrap, "group.id": f"bench-rss-{free_port()}"})
        starts = []
        for i in range(topic.partitions):
            _, end = self.consumer.get_watermark_offsets(TopicPartition(topic.name, i), timeout=10)
            starts.append(TopicPartition(topic.name, i, end))
        self.consumer.assign(starts)

    def wait_for(self, commit: str, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.consumer.consume(100, 0.5):
                if message.error() is None and commit.encode() in (message.value() or b""):
                    return time.perf_counter()
        raise TimeoutError(f"no decision for {commit} within {timeout}s")


def measure(p: Pipeline, args: argparse.Namespace, commits: int) -> list[dict[str, Any]]:
    repositories = commits // args.per_repository
    app_id = f"bench-rss-{free_port()}"
    partitions = p.catalog.topic("github.events").partitions
    started = time.perf_counter()
    seeded = seed(p, app_id, repositories, args.per_repository, partitions)
    seed_s = time.perf_counter() - started
    producer = Producer({"bootstrap.servers": p.bootstrap, "partitioner": "murmur2_random"})
    rows: list[dict[str, Any]] = []
    port = free_port()  # the same web address across restarts, as a StatefulSet pod keeps its name
    runs: list[tuple[str, int, dict[str, str]]] = [
        ("fresh worker (changelog)", 0, {}),
        ("after kill -9 (local RocksDB)", 1, {}),
    ]
    if args.faust_replay:  # first, then its table is dropped: the fresh run after it starts from nothing again
        runs.insert(0, ("fresh worker, Faust's replay only", 2, {"AUTODEPLOY_WORKER_BULK_RESTORE": "0"}))
    for run, target, env in runs:
        if target == 0:  # a fresh worker: no data directory (a pod rescheduled without its volume)
            shutil.rmtree(p.work / app_id, ignore_errors=True)
        decisions = Decisions(p)
        topic, key, value, headers = lint_passed(target, commit_of(app_id, target, args.per_repository - 1))
        start = time.perf_counter()
        with worker_process(p, app_id, port, env) as proc:
            producer.produce(p.catalog.topic(topic).name, value, key, headers=headers)
            producer.flush(30)
            recovered = decisions.wait_for(commit_of(app_id, target, args.per_repository - 1)) - start
            time.sleep(2)  # let the decision's own writes land
            used = memory(proc.pid)
            if args.settle:  # RocksDB compacts what a fresh worker restored for a while yet
                time.sleep(args.settle)
                settled = memory(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
        decisions.consumer.close()
        rows.append(_row(f"recovery s, {seeded:,} commits, {run}", recovered, None, "< 30"))
        rows.append(_row(f"worker RSS MB, {seeded:,} commits, {run}", used["VmRSS"], None, "< 400"))
        if args.settle:
            rows.append(
                _row(f"worker RSS MB {args.settle:.0f} s later, {seeded:,} commits, {run}", settled["VmRSS"], None)
            )
    rows.append(_row(f"seeding s, {seeded:,} commits (pure rules, then the changelog)", seed_s, None))
    return rows


def worker_process(p: Pipeline, app_id: str, port: int, extra: dict[str, str] | None = None) -> Any:
    # A static member id, as k8s/ gives each StatefulSet pod: the restarted worker takes the killed one's place at
    # once instead of waiting out its session timeout.
    env = {**worker_env(p, app_id, port), "AUTODEPLOY_WORKER_INSTANCE_ID": f"{app_id}-0", **(extra or {})}
    argv = [
        sys.executable,
        "-m",
        "streams.cli",
        "worker",
        "--loglevel",
        os.environ.get("BENCH_WORKER_LOGLEVEL", "warning"),
    ]
    return process(argv, p.work / f"{app_id}.log", f"http://127.0.0.1:{port}/", env)


def idle(p: Pipeline) -> dict[str, float]:
    app_id = f"bench-rss-idle-{free_port()}"
    with worker_process(p, app_id, free_port()) as proc:
        time.sleep(15)  # joined its group, recovered its empty table
        return memory(proc.pid)


def _row(metric: str, value: float, baseline: float | None, goal: str = "") -> dict[str, Any]:
    ratio = value / baseline if baseline else None
    return {"metric": metric, "autodeploy": value, "baseline (idle worker)": baseline, "ratio": ratio, "goal": goal}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="tracked commits, comma-separated")
    parser.add_argument("--per-repository", type=int, default=50)
    parser.add_argument("--settle", type=float, default=0, help="also the RSS this many seconds after the first")
    parser.add_argument(
        "--faust-replay",
        action="store_true",
        help="also time a fresh worker without the bulk restore (AUTODEPLOY_WORKER_BULK_RESTORE=0), in the same run",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    repositories = max(sizes) // args.per_repository
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp, pipeline(Path(tmp), repositories) as p:
        baseline = idle(p)
        rows = [_row("worker RSS MB, empty table", baseline["VmRSS"], None)]
        for size in sizes:
            for row in measure(p, args, size):
                if row["metric"].startswith("worker RSS"):
                    row["baseline (idle worker)"] = baseline["VmRSS"]
                    row["ratio"] = row["autodeploy"] / baseline["VmRSS"]
                rows.append(row)
    record("rss", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
