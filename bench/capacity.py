"""The measured part of the capacity model (docs/capacity.md): events per commit by provider mix, and the join's
events/s with 1, 2 and 3 worker processes in one consumer group over the same backlog.

Events per commit are counted, not measured: each webhook type a commit causes is looked up in the fixtures
(tests/fixtures, real deliveries) and put through the mapping code (webhook_mapping, circleci_mapping, extract), which
says whether it becomes a fact (a state write in the worker) or is only read, verified and dropped. The mixes' shape
(workflows per commit, jobs per workflow) is an assumption, printed with them.

The throughput runs produce one backlog (bench.join's records: a push and two checks per commit), then run the worker
group over it once per group size, each run a group of its own (its own changelog), its workers started one after
the other as soon as the previous one's web port answers, named and kept as the StatefulSet's pods are (the pod name
as static member id, a data directory each). The rate is the group's committed offsets between 20 % and 90 % of
the backlog: the group's start-up and first rebalance come before that window, and the tail, where the last
partitions finish alone, after it. Each row is a ratio to the one-worker group in the same run.

    python -m bench.capacity [--repositories 200] [--commits 8000] [--workers 1,2,3] [--mix-only]

On a machine with fewer cores than workers (plus the broker), more workers only share the same cores: the group's
ratio then says what a rebalance and a group cost, and the CPU per event is the figure that carries to a machine
with a core per worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, process, record
from bench.join import Offsets, Pipeline, events, pipeline, produce, worker_env
from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.extract import facts_from_event
from streams.domain.webhook_mapping import UnmappableDelivery, github_attributes
from streams.local import kafka
from streams.local.processes import free_port
from tests.support.fixtures import FIXTURES

WINDOW = (0.2, 0.9)  # the share of the backlog between which the rate is taken


# ---------------------------------------------------------------------------------------------------------------
# Events per commit


def fixture_types() -> dict[str, tuple[int, int]]:
    """CloudEvent type -> (fixture deliveries of that type, how many of them the mapping turns into facts)."""
    found: dict[str, tuple[int, int]] = {}

    def count(ce_type: str, payload: Mapping[str, Any], partitionkey: str) -> None:
        facts = facts_from_event(ce_type, "fixture", "fixture", datetime.now(UTC), payload, partitionkey=partitionkey)
        seen, with_facts = found.get(ce_type, (0, 0))
        found[ce_type] = (seen + 1, with_facts + bool(facts))

    for path in sorted((FIXTURES / "github").rglob("*.json")):
        if path.name.endswith("headers.json") or path.name.startswith("signature"):
            continue
        payload = json.loads(path.read_text())
        event = path.name.split(".")[0].split("__")[0]  # <event>.<action>...json, zulip's <event>__<case>.json
        with contextlib.suppress(UnmappableDelivery):
            attributes = github_attributes(event, payload)
            count(attributes.type, payload, attributes.partitionkey)
    for path in sorted((FIXTURES / "circleci").rglob("*.json")):
        payload = json.loads(path.read_text())
        if isinstance(payload, dict) and "type" in payload:
            attributes = circleci_attributes(payload)
            count(attributes.type, payload, attributes.partitionkey)
    return found


WORKFLOWS, JOBS = 2, 3  # per commit, and per workflow: the mixes' assumed shape


@dataclass(frozen=True)
class Mix:
    name: str
    per_commit: Mapping[str, int]  # CloudEvent type -> deliveries per commit, everything the provider sends
    read: tuple[str, ...]  # type prefixes of the webhook subscriptions enough for the mix's policies


def mixes(workflows: int = WORKFLOWS, jobs: int = JOBS) -> list[Mix]:
    """Per commit pushed to a deploy branch, what each provider sends (GitHub's `check_suite.requested` and
    `check_run.requested_action` go to GitHub Apps only, so a repository or organisation webhook does not see them)."""
    w, wj = workflows, workflows * jobs
    actions = {
        "com.github.push": 1,
        "com.github.workflow_run.requested": w,
        "com.github.workflow_run.in_progress": w,
        "com.github.workflow_run.completed": w,
        "com.github.check_suite.completed": w,
        "com.github.workflow_job.queued": wj,
        "com.github.workflow_job.in_progress": wj,
        "com.github.workflow_job.completed": wj,
        "com.github.check_run.created": wj,
        "com.github.check_run.completed": wj,
    }
    # CircleCI's GitHub OAuth integration also posts a commit status per job (pending, then the result), which
    # GitHub sends on as `status` deliveries when the webhook subscribes to them.
    circleci = {
        "com.github.push": 1,
        "com.circleci.workflow-completed": w,
        "com.circleci.job-completed": wj,
        "com.github.status": 2 * wj,
    }
    half = {k: v // 2 or 1 for k, v in actions.items()}
    both = {**{k: v // 2 or 1 for k, v in circleci.items()}, **half}
    return [
        Mix("GitHub Actions", actions, ("com.github.push", "com.github.workflow_run")),
        Mix("CircleCI (GitHub OAuth project)", circleci, ("com.github.push", "com.circleci.workflow")),
        Mix("half and half", both, ("com.github.push", "com.github.workflow_run", "com.circleci.workflow")),
    ]


def mix_rows(types: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
    def facts(ce_type: str) -> bool:
        if ce_type not in types:
            raise RuntimeError(f"no fixture of {ce_type}: add one to tests/fixtures before counting it")
        return types[ce_type][1] > 0

    rows = []
    for mix in mixes():
        # Subscribing to fewer events: a GitHub webhook subscribes per event (workflow_run, not per action), a
        # CircleCI webhook to workflow-completed and/or job-completed.
        kept = {t: n for t, n in mix.per_commit.items() if t.startswith(mix.read)}
        rows.append(
            {
                "mix": mix.name,
                "events per commit": sum(mix.per_commit.values()),
                "facts per commit": sum(n for t, n in mix.per_commit.items() if facts(t)),
                "events, only what the policies read": sum(kept.values()),
                "facts, only what the policies read": sum(n for t, n in kept.items() if facts(t)),
            }
        )
    return rows


def type_rows(types: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
    return [
        {"CloudEvent type": t, "fixtures": seen, "become facts": with_facts}
        for t, (seen, with_facts) in sorted(types.items())
    ]


# ---------------------------------------------------------------------------------------------------------------
# Events/s per worker and per partition


@dataclass(frozen=True)
class GroupRun:
    workers: int
    startup_s: float  # the first worker started -> the group's first commit
    window_events: int
    window_s: float
    total_s: float  # the first worker started -> everything committed
    cpu_s: float  # the workers' CPU time (all threads) over the window
    broker_cpu_s: float | None  # the local broker's over the window (None: KAFKA_BOOTSTRAP_SERVERS, not ours)

    @property
    def rate(self) -> float:
        return self.window_events / self.window_s

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.window_events * 1e6

    @property
    def broker_us_per_event(self) -> float | None:
        return None if self.broker_cpu_s is None else self.broker_cpu_s / self.window_events * 1e6


@contextlib.contextmanager
def group(p: Pipeline, name: str, n: int) -> Iterator[list[int]]:
    """`n` workers in consumer group `name`, named and kept as the StatefulSet's pods are; yields their pids."""
    with contextlib.ExitStack() as stack:
        pids = []
        for ordinal in range(n):
            port = free_port()
            env = {
                **worker_env(p, name, port),
                "AUTODEPLOY_WORKER_DATADIR": str(p.work / f"{name}-{ordinal}"),
                "AUTODEPLOY_WORKER_INSTANCE_ID": f"{name}-{ordinal}",
            }
            argv = [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"]
            log = p.work / f"{name}-{ordinal}.log"
            pids.append(stack.enter_context(process(argv, log, f"http://127.0.0.1:{port}/", env)).pid)
        yield pids


def _broker_cpu() -> float | None:
    """The local broker's CPU time: on a shared machine the broker is one more process the workers wait for."""
    info = kafka.status()
    return cpu_seconds(info.pid) if info is not None else None


def run_group(p: Pipeline, n: int, timeout: float = 900) -> GroupRun:
    name = f"bench-capacity-{n}w-{free_port()}"
    offsets = Offsets(p, name)
    low, high = (int(offsets.end * share) for share in WINDOW)
    start = time.perf_counter()
    with group(p, name, n) as pids:
        first_at: float | None = None
        marks: dict[str, tuple[float, int, float, float | None]] = {}
        deadline = time.monotonic() + timeout
        while True:
            done = offsets.committed()
            now = time.perf_counter()
            if done and first_at is None:
                first_at = now
            for mark, target in (("low", low), ("high", high)):
                if mark not in marks and done >= target:
                    marks[mark] = (now, done, sum(cpu_seconds(pid) for pid in pids), _broker_cpu())
            if done >= offsets.end:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} workers committed {done} of {offsets.end} in {timeout} s")
            time.sleep(0.1)
    assert first_at is not None
    (t0, c0, cpu0, broker0), (t1, c1, cpu1, broker1) = marks["low"], marks["high"]
    broker = broker1 - broker0 if broker0 is not None and broker1 is not None else None
    return GroupRun(n, first_at - start, c1 - c0, t1 - t0, now - start, cpu1 - cpu0, broker)


def throughput_rows(runs: list[GroupRun], partitions: int) -> list[dict[str, Any]]:
    base = runs[0]

    def row(metric: str, value: float, baseline: float | None) -> dict[str, Any]:
        return {"metric": metric, "value": value, "baseline": baseline, "ratio": value / baseline if baseline else None}

    rows = []
    for run in runs:
        label = f"{run.workers} worker{'s' if run.workers > 1 else ''}"
        rows += [
            row(f"group events/s, {label} (baseline: 1 worker)", run.rate, base.rate),
            row(f"events/s per worker, {label}", run.rate / run.workers, base.rate),
            row(f"events/s per partition pair ({partitions}), {label}", run.rate / partitions, base.rate / partitions),
            row(f"worker CPU us per event, {label}", run.cpu_us_per_event, base.cpu_us_per_event),
            row(f"cores busy in the workers, {label}", run.cpu_s / run.window_s, base.cpu_s / base.window_s),
            row(f"start to first commit s, {label}", run.startup_s, base.startup_s),
            row(f"start to all committed s, {label}", run.total_s, base.total_s),
        ]
        if run.broker_us_per_event is not None and base.broker_us_per_event is not None:
            rows.append(row(f"broker CPU us per event, {label}", run.broker_us_per_event, base.broker_us_per_event))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=200)
    parser.add_argument("--commits", type=int, default=8000, help="in all; three events each (push, two checks)")
    parser.add_argument("--workers", default="1,2,3", help="group sizes, the first is the baseline")
    parser.add_argument("--mix-only", action="store_true", help="only the events per commit (no broker)")
    args = parser.parse_args()
    types = fixture_types()
    print(f"events per commit, counted with {WORKFLOWS} workflows per commit and {JOBS} jobs per workflow")
    record("capacity-mix", mix_rows(types))
    record("capacity-types", type_rows(types))
    if args.mix_only:
        return 0
    sizes = [int(n) for n in args.workers.split(",")]
    load = os.getloadavg()[0]  # other work on the machine takes cores from the workers: say how busy it was
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp, pipeline(Path(tmp), args.repositories) as p:
        total = produce(p, events(args.repositories, args.commits // args.repositories, checks=2))
        partitions = p.catalog.topic("github.events").partitions
        print(f"capacity: {total} events on {partitions} partitions per input topic; groups of {sizes} workers")
        runs = []
        for n in sizes:
            runs.append(run_group(p, n))
            print(
                f"{n} workers: {runs[-1].rate:,.0f} events/s, {runs[-1].cpu_us_per_event:.0f} us CPU per event",
                flush=True,
            )
    rows = throughput_rows(runs, partitions)
    rows.append({"metric": "events", "value": total, "baseline": total, "ratio": 1.0})
    rows.append({"metric": f"load average (1 min) at start, {os.cpu_count()} cores", "value": load})
    record("capacity", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
