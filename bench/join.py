"""Join throughput: events/s through the readiness worker (consume, fold, table write, emit) against raw aiokafka
consumption of the same records, measured in the same run.

Records are produced before the worker starts, so it works through a backlog. Its progress is its consumer group's
committed offsets; the time until its first commit (startup, group join, recovery) is reported apart.

    python -m bench.join [--repositories 200] [--commits 17000] [--rounds 1] [--quix .venv-quix/bin/python]

The worker runs twice over the same backlog (each its own consumer group): as deployed, verifying every input
against the key directory (the tests' Ed25519 key), then with verification off (no key directory,
AUTODEPLOY_INSECURE_NO_SIGNATURES=1; it still signs its decisions), --rounds times each in alternating order;
the cost of verification is the median of the rounds' ratios.

With --quix, the same fold written with Quix Streams (bench/quix.py, in its own virtualenv) reads the same records
after the worker, and the join is also reported as a ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Producer
from confluent_kafka import TopicPartition as ConfluentTP
from confluent_kafka.admin import AdminClient, OffsetSpec

from bench.common import ROOT, broker, cpu_seconds, process, record, signing_algorithm
from streams import catalog
from streams.adapters.kafka_admin import TopicAdmin
from streams.adapters.kafka_offsets import KafkaOffsets, OffsetsUnavailable
from streams.adapters.kafka_producer import Record
from streams.catalog.plan import make_plan
from streams.demo.deliveries import Payloads
from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.webhook_mapping import github_attributes
from streams.events.dsse_keys import SigningKey
from streams.events.signing import signed_record
from streams.local.processes import free_port
from streams.webhooks.provider_events import provider_event
from tests.support.signing import TEST_KEY

_ZERO = "0" * 40


@dataclass(frozen=True)
class Pipeline:
    work: Path
    bootstrap: str
    catalog: catalog.Catalog
    prefix: str
    policy: Path

    @property
    def inputs(self) -> list[tuple[str, int]]:
        """(topic, partition) of every input partition."""
        topics = [self.catalog.topic("github.events"), self.catalog.topic("ci.events")]
        return [(t.name, i) for t in topics for i in range(t.partitions)]


@contextlib.contextmanager
def pipeline(work: Path, repositories: int, checks: int = 2) -> Iterator[Pipeline]:
    """A broker, the catalog's topics under a prefix of their own, and a policy: one service per repository."""
    with broker(work) as bootstrap:
        prefix = f"bench{free_port()}-"
        cat = catalog.load(ROOT / "topics" / "catalog.yaml").with_prefix(prefix)
        admin = TopicAdmin(bootstrap)
        admin.apply(make_plan(cat, admin.describe(t.name for t in cat.topics), admin.broker_count()))
        policy = work / "policy.yaml"
        policy.write_text(policy_yaml(repositories, checks))
        try:
            yield Pipeline(work, bootstrap, cat, prefix, policy)
        finally:
            admin.delete(t.name for t in cat.topics)


def policy_yaml(repositories: int, checks: int = 2) -> str:
    """The benchmarks' policy file: service svc<r> per repository github.com/acme/repo<r>, branch main, `checks`
    required checks (CircleCI build-test, GitHub Actions lint), its own image and namespace."""
    required = ["{circleci: build-test}", "{github_actions: lint}"][:checks]
    return "services:\n" + "".join(
        f"  svc{r}:\n    repository: github.com/acme/repo{r}\n    branch: main\n"
        f"    required_checks: [{', '.join(required)}]\n    image: ghcr.io/acme/repo{r}:{{sha}}\n"
        f"    kubernetes: {{namespace: repo{r}, deployment: app, container: app}}\n"
        for r in range(repositories)
    )


def events(
    repositories: int, commits: int, checks: int, start: datetime | None = None, key: SigningKey = TEST_KEY
) -> Iterator[Record]:
    """Per commit of each repository, in rounds over the repositories: its push, then `checks` successful checks
    (CircleCI build-test on ci.events, GitHub Actions lint on github.events), built by the demo's payload builder
    and signed by `key` as the webhook server signs them."""
    moment = start or datetime.now(UTC) - timedelta(minutes=30)
    heads = [_ZERO] * repositories
    for i in range(commits):
        for r in range(repositories):
            payloads, commit = bench_repository(r), hashlib.sha1(f"{r}/{i}".encode(), usedforsecurity=False).hexdigest()
            yield _github("push", payloads.push(heads[r], commit, moment), moment, key)
            heads[r] = commit
            if checks > 1:
                yield _github(
                    "workflow_run", payloads.workflow_run(commit, "success", moment, name="lint"), moment, key
                )
            c = payloads.circleci_workflow(
                commit, "success", moment, name="build-test", delivery=f"{r}-{i}", workflow=f"w{r}-{i}"
            )
            body = orjson.dumps(c)
            yield signed_record(provider_event(circleci_attributes(c), c["id"], body, moment), "ci.events", key)
            moment += timedelta(milliseconds=1)


def bench_repository(r: int) -> Payloads:
    """Payloads of bench repository number `r`: github.com/acme/repo<r>, branch main."""
    return Payloads(f"acme/repo{r}")


def _github(event: str, payload: dict[str, Any], received: datetime, key: SigningKey) -> Record:
    body = orjson.dumps(payload)
    delivery = hashlib.sha1(body, usedforsecurity=False).hexdigest()
    cloud_event = provider_event(github_attributes(event, payload), delivery, body, received)
    return signed_record(cloud_event, "github.events", key)


def produce(p: Pipeline, records: Iterator[Record]) -> int:
    """Write `records` (logical topic names) to the pipeline's topics, keyed as the webhook server keys them."""
    producer = Producer({"bootstrap.servers": p.bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})
    count = 0
    for r in records:
        while True:
            try:
                producer.produce(p.catalog.topic(r.topic).name, r.value, r.key, headers=list(r.headers))
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("records not delivered")
    return count


class Offsets:
    """The worker group's committed offsets against the inputs' end offsets."""

    def __init__(self, p: Pipeline, group: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": p.bootstrap})
        self.offsets = KafkaOffsets(p.bootstrap)
        self.group = group
        self.partitions = [ConfluentTP(t, i) for t, i in p.inputs]
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # confluent-kafka's stub lacks a return type
        ends = self.admin.list_offsets({tp: latest for tp in self.partitions})
        self.end = sum(f.result().offset for f in ends.values())

    def committed(self) -> int:
        """Through KafkaOffsets: the admin API's offset fetch can crash the process (see there)."""
        try:
            answer = self.offsets.committed([self.group], [(tp.topic, tp.partition) for tp in self.partitions])
        except OffsetsUnavailable:  # a coordinator still loading: the caller polls
            return 0
        return sum(answer[self.group].values())


@dataclass(frozen=True)
class WorkerRun:
    startup_s: float  # start to the first commit of the group
    steady_s: float  # first commit to all committed
    total_s: float
    processed_after_start: int  # records committed after the first commit
    pid: int
    steady_cpu_s: float = 0.0  # the worker process's CPU time (all threads) from its first commit to the last


def _cpu_us_per_event(run: WorkerRun) -> float:
    return run.steady_cpu_s / run.processed_after_start * 1e6


def worker_env(p: Pipeline, group: str, port: int) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": p.bootstrap,
        "AUTODEPLOY_TOPIC_PREFIX": p.prefix,
        "AUTODEPLOY_CONFIG": str(p.policy),
        "AUTODEPLOY_WORKER_ID": group,
        "AUTODEPLOY_WORKER_STORE": "rocksdb://",
        "AUTODEPLOY_WORKER_DATADIR": str(p.work / group),
        "AUTODEPLOY_WORKER_PORT": str(port),
        "AUTODEPLOY_WORKER_LAG": "0",  # as deployed (k8s/): the lag exporter, not each worker, reads lag
    }


def worker(p: Pipeline, group: str, port: int | None = None, **env: str) -> contextlib.AbstractContextManager[Any]:
    """`autodeploy worker` on the pipeline, as operators run it; yields its process once its web port answers."""
    port = port or free_port()
    argv = [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"]
    return process(argv, p.work / f"{group}.log", f"http://127.0.0.1:{port}/", {**worker_env(p, group, port), **env})


def wait_committed(offsets: Offsets, timeout: float = 1800, pid: int | None = None) -> tuple[float, int, float]:
    """(when, committed, the CPU time of process `pid` then) at the group's first commit; returns once everything up
    to the end is committed."""
    deadline = time.monotonic() + timeout
    first: tuple[float, int, float] | None = None
    while time.monotonic() < deadline:
        done = offsets.committed()
        if done and first is None:
            first = (time.perf_counter(), done, cpu_seconds(pid) if pid else 0.0)
        if done >= offsets.end:
            assert first is not None
            return first
        time.sleep(0.1)
    raise TimeoutError(f"the worker committed {offsets.committed()} of {offsets.end} in {timeout}s")


def run_worker(p: Pipeline, **env: str) -> WorkerRun:
    group = f"bench-join-{free_port()}"
    offsets = Offsets(p, group)
    start = time.perf_counter()
    with worker(p, group, **env) as proc:
        first_at, first_done, first_cpu = wait_committed(offsets, pid=proc.pid)
        end = time.perf_counter()
        cpu = cpu_seconds(proc.pid) - first_cpu
    return WorkerRun(first_at - start, end - first_at, end - start, offsets.end - first_done, proc.pid, cpu)


async def _raw(p: Pipeline, total: int) -> float:
    """Seconds for a plain consumer to read `total` records of the inputs from the beginning (no decoding)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=p.bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, i) for t, i in p.inputs]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, start = 0, time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(b) for b in batches.values())
        return time.perf_counter() - start
    finally:
        await consumer.stop()


def faust_floor(p: Pipeline, total: int) -> float:
    """Events/s of a Faust agent that only counts the same records: the most any Faust worker reaches here."""
    topics = ",".join(sorted({t for t, _ in p.inputs}))
    out = p.work / "faust-floor.json"
    argv = [sys.executable, "-m", "bench.faust_floor", "--bootstrap", p.bootstrap, "--topics", topics]
    argv += ["--total", str(total), "--out", str(out)]
    with (p.work / "faust-floor.log").open("wb") as log:
        subprocess.run(argv, stdout=log, stderr=log, timeout=900, check=True)
    return float(json.loads(out.read_text())["events_per_s"])


def run_quix(p: Pipeline, python: str, total: int) -> dict[str, float]:
    """bench/quix.py on the pipeline's records; its JSON line: events, steady_s, total_s."""
    argv = [python, "-m", "bench.quix", "--bootstrap", p.bootstrap, "--prefix", p.prefix, "--policy", str(p.policy)]
    argv += ["--expected", str(total), "--state-dir", str(p.work / "quix")]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.quix failed: {done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _steady(run: WorkerRun) -> float:
    return run.processed_after_start / run.steady_s


def _measure(p: Pipeline, args: argparse.Namespace) -> list[dict[str, Any]]:
    total = produce(p, events(args.repositories, args.commits // args.repositories, checks=2))
    raw_s = min(asyncio.run(_raw(p, total)) for _ in range(2))  # the second read is warm
    floor = faust_floor(p, total)
    algorithm = signing_algorithm()
    print(f"join: the worker verifies with {algorithm}, then runs again with verification off", flush=True)
    off = {"AUTODEPLOY_INSECURE_NO_SIGNATURES": "1", "AUTODEPLOY_KEY_DIRECTORY": ""}
    pairs: list[tuple[WorkerRun, WorkerRun]] = []
    for round_ in range(1, args.rounds + 1):  # the order alternates: neither setting always runs second
        if round_ % 2:
            on_run, off_run = run_worker(p), run_worker(p, **off)
        else:
            off_run, on_run = run_worker(p, **off), run_worker(p)
        pairs.append((on_run, off_run))
        on_s, off_s = _steady(on_run), _steady(off_run)
        on_cpu, off_cpu = _cpu_us_per_event(on_run), _cpu_us_per_event(off_run)
        print(
            f"round {round_}: join events/s verification on {on_s:,.0f}, off {off_s:,.0f}, on/off {on_s / off_s:.3f};"
            f" worker CPU per event on {on_cpu:.0f} us, off {off_cpu:.0f} us",
            flush=True,
        )
    runs = sorted(pairs, key=lambda pair: _steady(pair[0]))
    run = runs[len(runs) // 2][0]  # the median verifying run
    raw, steady, overall = total / raw_s, _steady(run), total / run.total_s
    steady_off = statistics.median(_steady(off_run) for _, off_run in pairs)
    on_off = statistics.median(_steady(on_run) / _steady(off_run) for on_run, off_run in pairs)
    cpu_on = statistics.median(_cpu_us_per_event(on_run) for on_run, _ in pairs)
    cpu_off = statistics.median(_cpu_us_per_event(off_run) for _, off_run in pairs)
    cpu_on_off = statistics.median(_cpu_us_per_event(on_run) / _cpu_us_per_event(off_run) for on_run, off_run in pairs)

    def row(metric: str, value: float, baseline: float | None, goal: str = "") -> dict[str, Any]:
        ratio = value / baseline if baseline else None
        return {
            "metric": metric,
            "autodeploy": value,
            "baseline": baseline,
            "ratio": ratio,
            "goal": goal,
        }

    rows = []
    if args.quix:
        quix = run_quix(p, args.quix, total)
        quix_steady = quix["events"] / quix["steady_s"]
        rows += [
            row("join events/s vs Quix Streams (same fold and records; baseline: Quix)", steady, quix_steady, ">= 1.0"),
            row("Quix Streams events/s (incl. startup)", quix["events"] / quix["total_s"], None),
        ]
    return [
        row("join events/s (after first commit; baseline: raw aiokafka)", steady, raw, ">= 0.5"),
        row("join events/s (baseline: a Faust agent that only counts)", steady, floor),
        row("Faust counting agent events/s (Faust's ceiling; baseline: raw aiokafka)", floor, raw),
        row("join events/s (incl. startup)", overall, raw),
        {
            **row(f"join events/s, verification on ({algorithm}) / off (baseline)", steady, steady_off, ">= 0.9"),
            "ratio": on_off,  # the median of the rounds' ratios
        },
        row("join events/s, verification off (baseline: raw aiokafka)", steady_off, raw),
        {
            # The worker process's CPU time (all threads) per event: what verification costs wherever it runs.
            **row("worker CPU us per event, verification on / off (baseline)", cpu_on, cpu_off),
            "ratio": cpu_on_off,
        },
        row("worker startup s (to first commit)", run.startup_s, None),
        row("events", total, total),
        *rows,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--commits", type=int, default=17000, help="in all; three events each (push, two checks)")
    parser.add_argument("--rounds", type=int, default=1, help="worker runs with verification on and off, each")
    parser.add_argument("--quix", metavar="PYTHON", help="also run bench/quix.py with this interpreter (.venv-quix)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp, pipeline(Path(tmp), args.repositories) as p:
        rows = _measure(p, args)
    record("join", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
