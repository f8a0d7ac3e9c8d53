"""The deploy agent (`autodeploy deploy-agent`, its own process) under faults, against the local control plane:
kill -9 it while it rolls out the readiness output of a chaos scenario (exactly one patch per (service, commit)), and
kill -9 the API server in the middle of a rollout (the agent resumes and finishes)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from kubernetes import client

from streams import catalog
from streams.adapters.kubernetes_deployments import DeploymentsClient
from streams.adapters.policy_file import load_policies
from streams.deploy.decisions import READINESS_EVENT
from streams.domain.readiness import Decision
from streams.worker.output import readiness_record
from tests.chaos.conftest import figures
from tests.cluster_fixture import ClusterHandle
from tests.support import chaos
from tests.support.agent_process import AgentProcess, DeploymentChanges, api_server_killed
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import GroupProgress, read_to_end
from tests.support.kube import eventually
from tests.support.signing import TEST_KEY
from tests.support.topics import apply_topics, delete_topics, grant_acls

pytestmark = pytest.mark.timeout(1500)

SERVICES, COMMITS, KILLS = 3, 25, 5


@pytest.fixture
def topics(kafka_broker: SelectedBroker, unique: str) -> Iterator[catalog.Catalog]:
    cat = apply_topics(kafka_broker, f"a{unique}-")
    yield cat
    delete_topics(kafka_broker, cat)


def create_deployment(admin: Any, namespace: str, name: str, image: str, **strategy: Any) -> None:
    labels = {"app": name}
    rolling = client.V1RollingUpdateDeployment(max_surge=strategy.get("max_surge", 1), max_unavailable=0)
    client.AppsV1Api(admin).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1DeploymentSpec(
                replicas=strategy.get("replicas", 2),
                progress_deadline_seconds=600,  # controllers reconnect with their own backoff after an outage
                min_ready_seconds=strategy.get("min_ready_seconds", 0),
                revision_history_limit=100,
                strategy=client.V1DeploymentStrategy(type="RollingUpdate", rolling_update=rolling),
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]),
                ),
            ),
        ),
    )


def agent_env(broker: SelectedBroker, cat: catalog.Catalog, policy: Path, kubeconfig: Path) -> dict[str, str]:
    """The agent's environment, with a deploy group of its own, which its principal is granted."""
    prefix = cat.topic("deploy.readiness").name.removesuffix("deploy.readiness")
    group = f"deploy-{uuid.uuid4().hex[:8]}"
    grant_acls(broker, cat, deploy_group=group)
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "AUTODEPLOY_TOPIC_PREFIX": prefix,
        "AUTODEPLOY_CONFIG": str(policy),
        "AUTODEPLOY_DEPLOY_GROUP": group,
        "KUBECONFIG": str(kubeconfig),
        "AUTODEPLOY_ROLLOUT_TIMEOUT_S": "300",
    }


def produce_decisions(broker: SelectedBroker, cat: catalog.Catalog, decisions: list[tuple[Decision, str]]) -> None:
    """Decisions on deploy.readiness, written as the worker writes them."""
    config = {"partitioner": "murmur2_random", "enable.idempotence": True}
    producer = Producer(broker.config(config, role="worker"))
    for decision, environment in decisions:
        record = readiness_record(decision, environment, cat.topic("deploy.readiness").name, TEST_KEY)
        producer.produce(record.topic, record.value, record.key, headers=list(record.headers))
    assert producer.flush(30) == 0


def outcomes(broker: SelectedBroker, cat: catalog.Catalog) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_to_end(broker, [cat.topic("deploy.events").name], 30)]


def test_kill_9_the_agent_five_times_patches_each_service_commit_exactly_once(
    kafka_broker: SelectedBroker,
    topics: catalog.Catalog,
    k8s_cluster: ClusterHandle,
    admin: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    scenario = chaos.build(SERVICES, COMMITS, seed=86)
    targets = {chaos.service(r): (namespace, f"app{r}") for r in range(SERVICES)}
    policy = chaos.write_policy(tmp_path / "policy.yaml", scenario.policy_yaml(targets))
    policies = load_policies(policy)
    decided = chaos.expected(scenario, topics, policies)
    # In the order the worker emits them (each service's decisions in order), re-emitting some as a crash would.
    stream = [(d, policies.service(d.service).environment) for d in decided.values()]
    stream += stream[-6:]
    replays = [stream[i : i + 1] for i in range(0, len(stream), 3)]
    for r in range(SERVICES):
        create_deployment(admin, namespace, f"app{r}", f"registry.example/repo{r}:initial")
    ready = [d for d, _ in stream if d.kind == "ready"]
    newest = {d.service: d.image for d in ready}
    agent = AgentProcess(agent_env(kafka_broker, topics, policy, k8s_cluster.kubeconfig), tmp_path / "agent.log")
    readiness = topics.topic("deploy.readiness")
    progress = GroupProgress(
        kafka_broker,
        agent.env["AUTODEPLOY_DEPLOY_GROUP"],
        [(readiness.name, p) for p in range(readiness.partitions)],
    )

    def feed() -> None:  # paced, so that rollouts, new decisions and kills overlap
        for i in range(0, len(stream), 3):
            produce_decisions(kafka_broker, topics, stream[i : i + 3] + replays[i // 3])
            time.sleep(1.5)

    sent = len(stream) + sum(len(r) for r in replays)
    feeder = threading.Thread(target=feed)
    with DeploymentChanges(admin, namespace) as changes:
        agent.start()
        feeder.start()
        try:
            for _ in range(KILLS):
                time.sleep(8)
                assert agent.alive(), agent.log.read_text()[-3000:]
                agent.kill()
                agent.start()
            feeder.join()
            eventually(lambda: progress.committed() >= sent, 300, "the agent committing every decision")
            apps = DeploymentsClient(admin)
            for r in range(SERVICES):
                eventually(
                    lambda r=r: (
                        (apps.get(namespace, f"app{r}", "app").image, apps.get(namespace, f"app{r}", "app").rollout)
                        == (newest[chaos.service(r)], "complete")
                    ),
                    120,
                    f"app{r} at its newest ready image",
                )
        finally:
            agent.kill(signal.SIGTERM)
            feeder.join()
        time.sleep(1)  # the watch catches up
    found = outcomes(kafka_broker, topics)

    patches: Counter[tuple[str, str]] = Counter()
    missed_generations = 0
    for r in range(SERVICES):
        by_generation = changes.images_by_generation(f"app{r}")
        first, last = min(by_generation), max(by_generation)
        missed_generations += (last - first + 1) - len(by_generation)
        for generation in range(first + 1, last + 1):
            patches[(chaos.service(r), by_generation.get(generation, "?"))] += 1
    ready_images = {(d.service, d.image) for d in ready}
    twice = sorted(k for k, n in patches.items() if n > 1)
    not_ready = sorted(k for k in patches if k not in ready_images)
    kinds = Counter(o["type"].split(".")[3] for o in {o["id"]: o for o in found}.values())
    ids_per_subject: dict[tuple[str, str], set[str]] = defaultdict(set)
    for o in found:
        ids_per_subject[(o["data"]["context"]["chainId"], o["type"])].add(o["id"])
    figures(
        "deploy agent kill -9 x5",
        decisions_sent=sent,
        ready=len({(d.service, d.commit) for d in ready}),
        re_emitted=sent - len(decided),
        kills=KILLS,
        patches=sum(patches.values()),
        patched_twice=len(twice),
        patched_not_ready=len(not_ready),
        skipped_as_superseded_while_waiting=len({(d.service, d.image) for d in ready}) - len(patches),
        outcomes=len(found),
        distinct_outcomes=dict(kinds),
    )
    assert missed_generations == 0, "the watch saw every spec change"
    assert twice == [], twice
    assert not_ready == [], not_ready
    assert all(len(ids) == 1 for ids in ids_per_subject.values()), "a re-published outcome carries the same id"
    assert set(kinds) <= {"deployed", "upgraded", "skipped"}, kinds


def test_kill_9_the_api_server_during_a_rollout_and_the_agent_resumes_and_finishes(
    kafka_broker: SelectedBroker,
    topics: catalog.Catalog,
    k8s_cluster: ClusterHandle,
    admin: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    if not k8s_cluster.local:
        pytest.skip("kills the kube-apiserver: only on the local control plane")
    scenario = chaos.build(1, 1)
    policy = chaos.write_policy(tmp_path / "policy.yaml", scenario.policy_yaml({"svc0": (namespace, "slow")}))
    # A slow rollout: six replicas one at a time, each ready for 3 s before the next one starts.
    create_deployment(admin, namespace, "slow", "registry.example/repo0:initial", replicas=6, min_ready_seconds=3)
    apps = DeploymentsClient(admin)
    eventually(lambda: apps.get(namespace, "slow", "app").rollout == "complete", 120, "the first rollout")
    commit = chaos.commit_id(0, 0)
    decision = Decision(
        "ready",
        "svc0",
        "github.com/chaos/repo0",
        "main",
        commit,
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        (),
        image=f"registry.example/repo0:{commit}",
        decided_at=datetime.now(UTC),
    )
    agent = AgentProcess(agent_env(kafka_broker, topics, policy, k8s_cluster.kubeconfig), tmp_path / "agent.log")
    with DeploymentChanges(admin, namespace) as changes:
        agent.start()
        try:
            produce_decisions(kafka_broker, topics, [(decision, "production")])
            patched = eventually(
                lambda: (
                    (v := apps.get(namespace, "slow", "app")).annotations.get(READINESS_EVENT) == decision.decision_id
                    and v
                ),
                120,
                "the agent's patch",
            )
            assert patched.rollout == "progressing", "the outage must hit a rollout in progress"
            with api_server_killed(k8s_cluster.kubeconfig, admin):
                down_at = time.monotonic()
                time.sleep(10)
                assert agent.alive()
            back_at = time.monotonic()
            found = eventually(
                lambda: outcomes(kafka_broker, topics) or None,
                300,
                "the agent's outcome",
            )
            done_at = time.monotonic()
            view = apps.get(namespace, "slow", "app")
        finally:
            agent.kill(signal.SIGTERM)
    by_generation = changes.images_by_generation("slow")
    figures(
        "API server kill -9 during a rollout",
        api_server_down_s=round(back_at - down_at, 1),
        outcome_after_back_s=round(done_at - back_at, 1),
        outcomes=[o["type"] for o in found],
        patches=max(by_generation) - min(by_generation),
        lost=0 if found else 1,
    )
    assert [o["type"].split(".")[3] for o in found] in (["deployed"], ["upgraded"])
    assert (view.image, view.rollout) == (decision.image, "complete")
    assert max(by_generation) - min(by_generation) == 1, "patched once, not again after the outage"
