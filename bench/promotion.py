"""Promotion through environments: how soon production is patched once its last gate opens, and what gate facts in
the stream cost the join.

    python -m bench.promotion [--commits 20] [--repositories 200] [--join-commits 12000] [--rounds 2]
                              [--skip-latency | --skip-join]

**Approval -> production patched.** The whole pipeline as bench/e2e.py runs it (webhook server, readiness worker and
deploy agent as processes, the local broker and control plane), plus a real Prometheus (Debian's) scraping an
"application's" /metrics (tests/support/app_metrics.py: a good error ratio for every commit's image). One service,
`shop`: staging takes the commits ready by its rules and verifies them (one query, window 1s); production comes
`after: staging` with `approval: required`, no soak. Commits go one at a time: each is made ready (push, CircleCI
success), rolled out in staging and verified there (its verification seen on deploy.gates); then it is approved
in-process as `autodeploy approve` does it (`approval_record`, signed with the approver's key, published through
a `SyncPublisher`): the start is the moment Kafka acknowledged the approval (acks=all), the last gate opening. The
end is the moment a watch on production's Deployment sees its image become the commit's (the patch landed; the
rollout is not included). The next commit starts only once production finished rolling out this one, so the
agent's "skip superseded" never applies and the agent is idle at each approval. Goal: p99 < 1000 ms. A consumer of
deploy.readiness also stamps when the production decision appeared, to split the latency into worker and agent.

**Join with gate facts.** bench/join.py's machinery (its records, producer, worker runs and Faust counting agent)
with a policy whose services have environments (staging, then production `after: staging`), over two backlogs of
the same commits on the same broker: without gate facts, and with one staging rollout completed (the deploy agent's
`gate_record`, signed, keyed by repository like github.events) on deploy.gates after each commit's last check.
Each completion makes a production decision. Events/s count every input record (the gate facts too).

Reported, not asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer
from confluent_kafka import TopicPartition as ConfluentTP
from kubernetes import config
from tests.support.prometheus import Prometheus

from bench import join
from bench.common import ROOT, broker, process, record
from bench.e2e import PatchWatch, control_plane, percentile
from streams import brokers, catalog
from streams.adapters.kafka_admin import TopicAdmin
from streams.adapters.kafka_producer import DurableProducer, Record
from streams.adapters.policy_file import load_policies
from streams.catalog.plan import make_plan
from streams.commands.keys_cmds import signer_of
from streams.config import KeySettings, Settings
from streams.demo.deliveries import NULL_SHA, History, Secrets, sha
from streams.demo.play import Post, http_post
from streams.deploy.decisions import Ready
from streams.deploy.gates import gate_record
from streams.deploy.jobs import SyncPublisher
from streams.deploy.outcomes import Outcome
from streams.events.approvals import Approval, approval_record
from streams.local import processes
from streams.local.demo_deployments import ensure_demo_deployments
from tests.support.app_metrics import AppMetrics
from tests.support.signing import TEST_KEY

GOAL_P99_MS = 1000.0
SERVICE, REPOSITORY = "shop", "acme/shop"
POLICY = """services:
  shop:
    repository: acme/shop
    branch: main
    required_checks: [{{circleci: build-test}}]
    image: registry.example/shop:{{sha}}
    environments:
      - name: staging
        kubernetes: {{namespace: {namespace}, deployment: shop-staging, container: app}}
        verify:
          - name: error-ratio
            query: 'max(autodeploy_demo_error_ratio{{image="$image", service="$service"}})'
            condition: "< 0.05"
            window: 1s
      - name: production
        kubernetes: {{namespace: {namespace}, deployment: shop, container: app}}
        after: staging
        approval: required
"""
COMPLETED = ("dev.cdevents.service.deployed.0.3.0", "dev.cdevents.service.upgraded.0.3.0")
VERIFIED = "dev.cdevents.testsuiterun.finished.0.3.0"
ROLLED_BACK = "dev.cdevents.service.rolledback.0.3.0"


class TopicWatch:
    """Reads deploy.gates and deploy.readiness from their start and stamps when each fact or decision is first seen:
    (type, environment, commit) -> (time.time(), the event's data). Readiness types are shortened to their kind
    (ready, superseded, ...)."""

    def __init__(self, bootstrap: str, gates: str, readiness: str, partitions: int) -> None:
        self.gates, self.readiness = gates, readiness
        self.seen: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"bench-promotion-{uuid.uuid4()}", "enable.auto.commit": False}
        )
        self._consumer.assign(
            [ConfluentTP(t, p, OFFSET_BEGINNING) for t in (gates, readiness) for p in range(partitions)]
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.2)
            if message is None or message.error():
                continue
            now = time.time()
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                event = json.loads(message.value() or b"")
                data = event["data"]
                if message.topic() == self.readiness:
                    content = data["subject"]["content"]
                    key = (event["type"].split(".")[3], content["environment"], content["commit"])
                else:
                    content, custom = data["subject"]["content"], data.get("customData") or {}
                    environment = content["environment"]
                    environment = environment["id"] if isinstance(environment, dict) else environment
                    key = (event["type"], environment, custom.get("commit") or content.get("commit"))
                self.seen.setdefault(key, (now, data))

    def wait(self, keys: list[tuple[str, str, str]], timeout: float) -> tuple[str, str, str] | None:
        """The first of `keys` seen, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for key in keys:
                if key in self.seen:
                    return key
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def image(commit: str) -> str:
    return f"registry.example/shop:{commit}"


@dataclass
class Promoting:
    """The running pipeline of the latency measurement and what the bench drives it with."""

    work: Path
    run_id: str
    namespace: str
    gates_topic: str
    metrics: AppMetrics
    production: PatchWatch
    topics: TopicWatch
    post: Post
    history: History
    approve: Callable[[str], float]  # publishes the commit's approval; when Kafka acknowledged it
    previous: str = NULL_SHA


@contextlib.contextmanager
def promoting(bootstrap: str, work: Path) -> Iterator[Promoting]:
    """Topics under a prefix of their own, the policy, Prometheus and the app's metrics, the Deployments, the three
    processes, the watches; the topics are deleted after."""
    run_id = secrets.token_hex(3)
    namespace, prefix = f"bench-promo-{run_id}", f"bench-promotion-{run_id}-"
    cat = catalog.load(ROOT / "topics" / "catalog.yaml").with_prefix(prefix)
    admin = TopicAdmin(bootstrap)
    admin.apply(make_plan(cat, admin.describe(t.name for t in cat.topics), admin.broker_count()))
    policy_file = work / "promotion.yaml"
    policy_file.write_text(POLICY.format(namespace=namespace))
    with control_plane() as kubeconfig, contextlib.ExitStack() as stack:
        stack.callback(admin.delete, [t.name for t in cat.topics])
        metrics = AppMetrics()
        stack.callback(metrics.close)
        prometheus = Prometheus(work / "prometheus", {SERVICE: metrics.address}, [])
        prometheus.start()
        stack.callback(prometheus.stop)
        ensure_demo_deployments(kubeconfig, load_policies(policy_file))
        key = secrets.token_hex(16)
        ports = {name: processes.free_port() for name in ("webhooks", "worker", "agent")}
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AUTODEPLOY_TOPIC_PREFIX": prefix,
            "AUTODEPLOY_CONFIG": str(policy_file),
            "GITHUB_WEBHOOK_SECRETS": key,
            "CIRCLECI_WEBHOOK_SECRETS": key,
            "AUTODEPLOY_WORKER_ID": f"bench-promotion-readiness-{run_id}",
            "AUTODEPLOY_WORKER_DATADIR": str(work / "worker"),
            "AUTODEPLOY_WORKER_PORT": str(ports["worker"]),
            "AUTODEPLOY_WORKER_LAG": "0",
            "AUTODEPLOY_WORKER_TICK_S": "0.5",
            "KUBECONFIG": str(kubeconfig),
            "AUTODEPLOY_DEPLOY_GROUP": f"bench-promotion-agent-{run_id}",
            "AUTODEPLOY_DEPLOY_METRICS_PORT": str(ports["agent"]),
            "AUTODEPLOY_DEPLOY_METRICS_HOST": "127.0.0.1",
            "PROMETHEUS_URL": f"http://127.0.0.1:{prometheus.port}",
            "AUTODEPLOY_VERIFY_INTERVAL_S": "0.5",
        }
        cli = [sys.executable, "-m", "streams.cli"]
        url = f"http://127.0.0.1:{ports['webhooks']}"
        for name, argv, ready in (
            ("webhooks", ["webhooks", "--port", str(ports["webhooks"])], f"{url}/readyz"),
            ("worker", ["worker", "--loglevel", "warning"], f"http://127.0.0.1:{ports['worker']}/"),
            ("agent", ["deploy-agent"], f"http://127.0.0.1:{ports['agent']}/metrics"),
        ):
            stack.enter_context(process([*cli, *argv], work / f"{name}.log", ready, env))
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        production = PatchWatch(api, namespace, "shop")
        stack.callback(production.stop)
        gates, readiness = cat.topic("deploy.gates"), cat.topic("deploy.readiness")
        topics = TopicWatch(bootstrap, gates.name, readiness.name, max(gates.partitions, readiness.partitions))
        stack.callback(topics.stop)
        approve = stack.enter_context(approver({**os.environ, **env}, gates.name))
        yield Promoting(
            work,
            run_id,
            namespace,
            gates.name,
            metrics,
            production,
            topics,
            http_post(url),
            History(Secrets(key.encode(), key.encode()), repository=REPOSITORY),
            approve,
        )


@contextlib.contextmanager
def approver(env: dict[str, str], topic: str) -> Iterator[Callable[[str], float]]:
    """As `autodeploy approve` publishes (streams/commands/approve_cmds.py): signed with the approver's key, through
    a producer with the approver's role on the broker, returning once Kafka acknowledged. One producer for all."""
    settings = Settings.from_env(env)
    signer = signer_of(KeySettings.from_env(env))
    name = signer.key_id if signer is not None else "bench"
    connection = brokers.connection(settings, "approver")
    publisher = SyncPublisher(DurableProducer(connection.bootstrap_servers, security=connection.security), 10.0)

    def approve(commit: str) -> float:
        approval = Approval(SERVICE, "production", REPOSITORY, commit, name, "bench")
        publisher(approval_record(approval, topic, signer=signer))
        return time.time()

    try:
        yield approve
    finally:
        publisher.close()


def promote(p: Promoting, label: str) -> dict[str, float]:
    """One commit made ready, rolled out and verified in staging, then approved; its stamps (time.time()): approval
    acknowledged, production decision read back, production patched."""
    commit = sha(f"{p.run_id}/{label}")
    p.metrics.set(image(commit), p.namespace, SERVICE, 0.01)
    start = len(p.history.deliveries)
    p.history.push(p.previous, commit).circleci(commit, "success", name="build-test")
    p.previous = commit
    for delivery in p.history.deliveries[start:]:
        status, body = p.post(delivery)
        if status != 200:
            raise RuntimeError(f"webhook answered {status}: {body}")
    verified = p.topics.wait([(VERIFIED, "staging", commit), (ROLLED_BACK, "staging", commit)], 180)
    if verified != (VERIFIED, "staging", commit):
        raise RuntimeError(f"{label}: staging not verified ({verified}): {processes.tail(p.work / 'agent.log')}")
    content = p.topics.seen[verified][1]["subject"]["content"]
    if content["outcome"] != "success":
        raise RuntimeError(f"{label}: verification in staging: {content}")
    acked = p.approve(commit)
    patched = p.production.wait(image(commit), 60)
    if patched is None:
        raise RuntimeError(f"{label}: production never patched: {processes.tail(p.work / 'agent.log')}")
    if p.topics.wait([(kind, "production", commit) for kind in COMPLETED], 180) is None:
        raise RuntimeError(f"{label}: production's rollout never completed")  # the agent is idle again after it
    decided = p.topics.seen.get(("ready", "production", commit), (float("nan"), {}))[0]
    return {"acked": acked, "decided": decided, "patched": patched}


def latency(bootstrap: str, work: Path, commits: int) -> dict[str, Any]:
    """Approval acknowledged -> production patched, per commit; see the module's docstring."""
    with promoting(bootstrap, work) as p:
        promote(p, "warm-up")  # consumers joined, caches and connections warm
        stamps = [promote(p, str(i)) for i in range(commits)]
    total = [(s["patched"] - s["acked"]) * 1000 for s in stamps]
    worker = [(s["decided"] - s["acked"]) * 1000 for s in stamps]
    agent = [(s["patched"] - s["decided"]) * 1000 for s in stamps]
    return {
        "benchmark": "approval acknowledged -> production patched",
        "commits": commits,
        "p50_ms": statistics.median(total),
        "p99_ms": percentile(total, 99),
        "max_ms": max(total),
        "worker_p50_ms": statistics.median(worker),  # approval acknowledged -> production decision read back
        "agent_p50_ms": statistics.median(agent),  # production decision read back -> patch seen
        "goal": f"p99 < {GOAL_P99_MS:.0f} ms",
        "met": percentile(total, 99) < GOAL_P99_MS,
    }


# The join with gate facts.


@dataclass(frozen=True)
class GatedPipeline(join.Pipeline):
    """bench.join's pipeline with deploy.gates among its inputs (its offsets and the Faust agent's topics)."""

    @property
    def inputs(self) -> list[tuple[str, int]]:
        topics = [self.catalog.topic(name) for name in ("github.events", "ci.events", "deploy.gates")]
        return [(t.name, i) for t in topics for i in range(t.partitions)]


def environments_policy(repositories: int) -> str:
    """bench.join's services (svc<r>, github.com/acme/repo<r>, both checks), each with staging then production."""
    return "services:\n" + "".join(
        f"  svc{r}:\n    repository: github.com/acme/repo{r}\n    branch: main\n"
        "    required_checks: [{circleci: build-test}, {github_actions: lint}]\n"
        f"    image: ghcr.io/acme/repo{r}:{{sha}}\n"
        "    environments:\n"
        f"      - {{name: staging, kubernetes: {{namespace: repo{r}-staging, deployment: app, container: app}}}}\n"
        f"      - {{name: production, kubernetes: {{namespace: repo{r}, deployment: app, container: app}},"
        " after: staging}\n"
        for r in range(repositories)
    )


def with_gates(repositories: int, commits: int) -> Iterator[Record]:
    """bench.join's records (push, lint, build-test per commit, in rounds over the repositories), each commit's
    followed by its staging rollout completed, as the deploy agent publishes it (gate_record, signed)."""
    records = join.events(repositories, commits, checks=2)
    for i in range(commits):
        for r in range(repositories):
            yield from (next(records) for _ in range(3))
            commit = hashlib.sha1(f"{r}/{i}".encode(), usedforsecurity=False).hexdigest()
            service, repository, artifact = f"svc{r}", f"github.com/acme/repo{r}", f"ghcr.io/acme/repo{r}:{commit}"
            decision = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{service}/staging/{commit}/ready"))
            chain = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{repository}@{commit}"))
            ready = Ready(decision, chain, service, repository, commit, "main", artifact, "staging")
            outcome = Outcome("upgraded", ready, f"repo{r}-staging", "app", "staging", artifact)
            gate = gate_record(outcome, "deploy.gates", signer=TEST_KEY)
            assert gate is not None
            yield gate


def steady(run: join.WorkerRun) -> float:
    """Events/s from the worker group's first commit to its last (bench.join's measure)."""
    return run.processed_after_start / run.steady_s


def gated_join(bootstrap: str, work: Path, repositories: int, commits: int, rounds: int) -> list[dict[str, Any]]:
    per_repository = commits // repositories
    policy = work / "environments.yaml"
    policy.write_text(environments_policy(repositories))
    admin = TopicAdmin(bootstrap)
    made: list[GatedPipeline] = []
    try:
        for _ in range(2):
            prefix = f"bench{processes.free_port()}-"
            cat = catalog.load(ROOT / "topics" / "catalog.yaml").with_prefix(prefix)
            admin.apply(make_plan(cat, admin.describe(t.name for t in cat.topics), admin.broker_count()))
            made.append(GatedPipeline(work, bootstrap, cat, prefix, policy))
        plain, gated = made
        plain_total = join.produce(plain, join.events(repositories, per_repository, checks=2))
        gated_total = join.produce(gated, with_gates(repositories, per_repository))
        print(f"join: {plain_total} events without gate facts, {gated_total} with", flush=True)
        runs: list[tuple[float, float]] = []
        for round_ in range(1, rounds + 1):  # the order alternates: neither backlog always runs second
            first, second = (plain, gated) if round_ % 2 else (gated, plain)
            done = {id(first): steady(join.run_worker(first)), id(second): steady(join.run_worker(second))}
            runs.append((done[id(plain)], done[id(gated)]))
            print(
                f"round {round_}: join events/s without gate facts {runs[-1][0]:,.0f}, with {runs[-1][1]:,.0f}",
                flush=True,
            )
        floor = join.faust_floor(gated, gated_total)
    finally:
        for p in made:
            admin.delete(t.name for t in p.catalog.topics)
    plain_s = statistics.median(r[0] for r in runs)
    gated_s = statistics.median(r[1] for r in runs)
    ratio = statistics.median(with_ / without for without, with_ in runs)

    def row(metric: str, value: float, baseline: float | None) -> dict[str, Any]:
        return {
            "metric": metric,
            "autodeploy": value,
            "baseline": baseline,
            "ratio": value / baseline if baseline else None,
        }

    return [
        {
            **row("join events/s with gate facts (baseline: the same commits without)", gated_s, plain_s),
            "ratio": ratio,  # the median of the rounds' ratios
        },
        row("join events/s with gate facts (baseline: a Faust agent that only counts them)", gated_s, floor),
        row("join events/s without gate facts, policy with environments", plain_s, None),
        row("commits/s with gate facts (baseline: without)", gated_s / 4, plain_s / 3),
        row("events with gate facts (baseline: without)", gated_total, plain_total),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=20, help="commits promoted to production (default 20)")
    parser.add_argument("--repositories", type=int, default=200, help="the join's repositories (default 200)")
    parser.add_argument("--join-commits", type=int, default=12000, help="the join's commits in all (default 12000)")
    parser.add_argument("--rounds", type=int, default=2, help="the join's worker runs over each backlog (default 2)")
    parser.add_argument("--skip-latency", action="store_true", help="only the join")
    parser.add_argument("--skip-join", action="store_true", help="only the latency")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-promotion-"))
    os.environ["AUTODEPLOY_STATE_DIR"] = str(work / "state")  # our own broker and plane, never the user's
    rows, join_rows = [], []
    try:
        with broker(work) as bootstrap:
            if not args.skip_latency:
                rows.append(latency(bootstrap, work, args.commits))
            if not args.skip_join:
                join_rows = gated_join(bootstrap, work, args.repositories, args.join_commits, args.rounds)
    except BaseException:
        print(f"bench.promotion: the processes' logs are in {work}", file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)  # GBs of broker and worker state; kept above when the run failed
    if rows:
        record("promotion", rows)
    if join_rows:
        record("promotion_join", join_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
