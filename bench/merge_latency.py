"""Readiness latency with and without the time-ordered merge: the last required check's webhook sent -> its ready
decision on deploy.readiness, through the webhook server and the worker as processes.

Two workers (each its own group and topics) run side by side, one folding in the log's time order, the other in
fetch order (AUTODEPLOY_WORKER_ORDERED_MERGE=0); each ready commit is posted to both webhook servers in turn, the
order alternating. A commit is its push, its CircleCI result and its GitHub Actions result (the start): two input
topics, so the merge has something to wait for. The cost of the merge is the ratio of the percentiles.

    python -m bench.merge_latency [--commits 60] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from bench.common import ROOT, broker, process, record
from streams import catalog
from streams.adapters.kafka_admin import TopicAdmin
from streams.catalog.plan import make_plan
from streams.demo.deliveries import NULL_SHA, History, Secrets, sha
from streams.demo.play import http_post
from streams.local import processes


class Decided:
    """Stamps when each commit's ready decision for `shop` appears on a readiness topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"bench-{secrets.token_hex(4)}", "auto.offset.reset": "latest"}
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(100, 0.1):
                now = time.time()
                if message.error() is not None:
                    continue
                event = json.loads(message.value() or b"{}")
                content = event.get("data", {}).get("subject", {}).get("content", {})
                if event.get("type", "").endswith(".ready.0.1.0") and content.get("service") == "shop":
                    self.seen.setdefault(content["commit"], now)
        self._consumer.close()

    def wait(self, commit: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while commit not in self.seen and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.seen.get(commit)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@contextlib.contextmanager
def pipeline(bootstrap: str, work: Path, name: str, ordered: bool, key: str) -> Iterator[tuple[str, Decided]]:
    """Topics of its own, a webhook server and a worker; yields the server's URL and the decision watcher."""
    prefix = f"bench-merge-{name}-{secrets.token_hex(3)}-"
    cat = catalog.load(ROOT / "topics" / "catalog.yaml").with_prefix(prefix)
    admin = TopicAdmin(bootstrap)
    admin.apply(make_plan(cat, admin.describe(t.name for t in cat.topics), admin.broker_count()))
    ports = {p: processes.free_port() for p in ("webhooks", "worker")}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTODEPLOY_TOPIC_PREFIX": prefix,
        "AUTODEPLOY_CONFIG": str(ROOT / "autodeploy.yaml"),
        "GITHUB_WEBHOOK_SECRETS": key,
        "CIRCLECI_WEBHOOK_SECRETS": key,
        "AUTODEPLOY_WORKER_ID": f"{prefix}readiness",
        "AUTODEPLOY_WORKER_DATADIR": str(work / name),
        "AUTODEPLOY_WORKER_PORT": str(ports["worker"]),
        "AUTODEPLOY_WORKER_LAG": "0",
        "AUTODEPLOY_WORKER_ORDERED_MERGE": "1" if ordered else "0",
    }
    cli = [sys.executable, "-m", "streams.cli"]
    url = f"http://127.0.0.1:{ports['webhooks']}"
    worker_url = f"http://127.0.0.1:{ports['worker']}/"
    with (
        process([*cli, "webhooks", "--port", str(ports["webhooks"])], work / f"{name}-webhooks.log", url, env),
        process([*cli, "worker", "--loglevel", "warning"], work / f"{name}-worker.log", worker_url, env),
    ):
        decided = Decided(bootstrap, cat.topic("deploy.readiness").name)
        try:
            yield url, decided
        finally:
            decided.stop()


def run(commits: int, interval: float) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="bench-merge-"))
    key = secrets.token_hex(16)
    latencies: dict[str, list[float]] = {"ordered": [], "fetch order": []}
    with (
        broker(work) as bootstrap,
        pipeline(bootstrap, work, "ordered", True, key) as ordered,
        pipeline(bootstrap, work, "fetch", False, key) as fetch,
    ):
        targets = {"ordered": ordered, "fetch order": fetch}
        history = History(Secrets(key.encode(), key.encode()), repository="acme/shop")
        previous = NULL_SHA
        for i in range(-1, commits):  # -1: the warm-up (groups joined, caches warm), not counted
            commit = sha(f"{work.name}/{i}")
            start = len(history.deliveries)
            history.push(previous, commit).circleci(commit, "success", name="build-test")
            history.actions(commit, "success", name="lint")
            previous = commit
            *first, last = history.deliveries[start:]
            names = list(targets) if i % 2 == 0 else list(reversed(targets))
            for name in names:
                url, decided = targets[name]
                post = http_post(url)
                for delivery in first:
                    post(delivery)
                sent = time.time()
                post(last)
                seen = decided.wait(commit, 60)
                if seen is None:
                    raise RuntimeError(f"{name}: commit {i} never decided")
                if i >= 0:
                    latencies[name].append((seen - sent) * 1000)
            time.sleep(interval)
    rows = []
    for name, values in latencies.items():
        rows.append(
            {
                "benchmark": f"readiness latency, {name}",
                "commits": len(values),
                "p50_ms": statistics.median(values),
                "p99_ms": percentile(values, 99),
                "max_ms": max(values),
            }
        )
    ordered_row, fetch_row = rows
    rows.append(
        {
            "benchmark": "ordered / fetch order",
            "commits": commits,
            "p50_ms": ordered_row["p50_ms"] / fetch_row["p50_ms"],
            "p99_ms": ordered_row["p99_ms"] / fetch_row["p99_ms"],
            "max_ms": None,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=60, help="ready commits per worker (default 60)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between commits (default 0.5)")
    args = parser.parse_args()
    record("merge_latency", run(args.commits, args.interval))


if __name__ == "__main__":
    main()
