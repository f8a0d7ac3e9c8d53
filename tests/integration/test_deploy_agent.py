"""The deploy agent against a real broker and a real local control plane (kwok kubelets)."""

from __future__ import annotations

import json
import re
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from kubernetes import client

from streams import catalog
from streams.adapters.kubernetes_deployments import DeploymentsClient, DeploymentView
from streams.config import DeployAgentSettings
from streams.deploy import decisions
from streams.deploy.agent import DeployAgent, Handled, SyncPublisher
from streams.deploy.outcomes import DRY_RUN_EXTENSION
from streams.domain.freeze import FreezeWindow
from streams.domain.policy import KubernetesTarget, Policies, ServicePolicy
from streams.domain.readiness import Decision
from streams.events.dsse_keys import SigningKey
from streams.events.signing import DirectoryVerifier
from streams.local.kwok_stages import UNREADY_IMAGE_TAG
from streams.worker.output import readiness_record
from tests.cluster_fixture import ClusterHandle
from tests.support.brokers import SelectedBroker
from tests.support.decisions import REPOSITORY, ready_decision
from tests.support.kafka_io import consume
from tests.support.kube import (
    C1,
    C3,
    V1,
    V2,
    V3,
    create_deployment,
    eventually,
    grant_deployments,
    make_namespace,
    manual_set_image,
)
from tests.support.signing import TEST_KEY
from tests.support.topics import apply_topics, grant_acls

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture
def shop(admin: Any, namespace: str) -> str:
    """A complete 2-replica Deployment `shop` at V1 (progressDeadlineSeconds 10) in the test's namespace."""
    create_deployment(admin, namespace)
    assert DeploymentsClient(admin).watch_rollout(namespace, "shop", "app", timeout=60).rollout == "complete"
    return namespace


@pytest.fixture
def topics(kafka_broker: SelectedBroker, unique: str) -> catalog.Catalog:
    return apply_topics(kafka_broker, f"d{unique}-")


def policies(namespace: str, freeze: tuple[FreezeWindow, ...] = (), max_failed_rollouts: int = 3) -> Policies:
    target = KubernetesTarget(namespace, "shop", "app")
    service = ServicePolicy(
        "shop",
        REPOSITORY,
        "main",
        (),
        SHOP_TEMPLATE,
        None,
        target,
        "production",
        timedelta(hours=1),
        freeze,
        max_failed_rollouts,
    )
    return Policies((service,))


def package_policies(namespace: str, max_failed_rollouts: int = 3) -> Policies:
    """Images from the repository registry.example/shop, any tag: how a test sends the image kwok never readies
    (tag `never-ready`), which no commit's image by the template is."""
    service = policies(namespace, max_failed_rollouts=max_failed_rollouts).service("shop")
    return Policies((replace(service, image_template=None, image_from_package="registry.example/shop"),))


SHOP_TEMPLATE = "registry.example/shop:{sha}"


def ready(image: str, repository: str = REPOSITORY) -> Decision:
    """A ready decision of `shop` for `image`: the commit its tag names when that is one (the policy's template,
    `registry.example/shop:{sha}`, gives exactly that image for it, as the agent checks), else a new commit (for a
    policy whose images come from the package repository, `package_policies`)."""
    tag = image.rsplit(":", 1)[1]
    commit = tag if re.fullmatch("[0-9a-f]{40}", tag) else uuid.uuid4().hex + uuid.uuid4().hex[:8]
    return ready_decision(image, commit=commit, repository=repository)


def produce(
    broker: SelectedBroker, cat: catalog.Catalog, decision: Decision, signer: SigningKey | None = TEST_KEY
) -> None:
    """A decision on deploy.readiness, written as the worker writes it."""
    record = readiness_record(decision, "production", cat.topic("deploy.readiness").name, signer)
    producer = Producer(broker.config({"partitioner": "murmur2_random"}, role="worker"))
    producer.produce(record.topic, record.value, record.key, headers=list(record.headers))
    assert producer.flush(10) == 0


class HandledList(list[Handled]):
    """What the agent handled, in order, and the agent itself (for its metrics)."""

    agent: DeployAgent


@contextmanager
def running_agent(
    broker: SelectedBroker,
    cat: catalog.Catalog,
    namespace: str,
    deployments: DeploymentsClient,
    *,
    dry_run: bool = False,
    policy: Policies | None = None,
    group: str | None = None,
    batch: int = 100,
    rollout_timeout_s: float = 60.0,
    verifier: DirectoryVerifier | None = None,
    signer: SigningKey | None = None,
) -> Iterator[HandledList]:
    """The agent consuming in a thread, as its own principal; yields what it handled, in order. The same `group`
    resumes where a stopped agent left off (a restart); without it the agent reads the topic from the start."""
    settings = DeployAgentSettings(
        group or f"deploy-{uuid.uuid4().hex[:8]}", None, dry_run, rollout_timeout_s, 10.0, 10.0
    )
    grant_acls(broker, cat, deploy_group=settings.group_id)
    from confluent_kafka import Consumer  # noqa: PLC0415 - kept next to its one use

    consumer = Consumer(
        broker.config(
            {"group.id": settings.group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest"},
            role="deploy-agent",
        )
    )
    handled = HandledList()
    publisher = SyncPublisher(broker.producer("deploy-agent"), 10.0)
    agent = DeployAgent(
        settings,
        policy or policies(namespace),
        cat,
        consumer=consumer,
        publish=publisher,
        deployments=deployments,
        observer=handled.append,
        batch=batch,
        verifier=verifier,
        signer=signer,
    )
    handled.agent = agent
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield handled
    finally:
        stop.set()
        thread.join(30)
        publisher.close()


def wait_handled(handled: list[Handled], count: int, timeout: float = 90) -> Handled:
    eventually(lambda: len(handled) >= count, timeout, f"{count} records handled")
    return handled[count - 1]


def events(
    broker: SelectedBroker, cat: catalog.Catalog, expected: int, name: str = "deploy.events"
) -> list[dict[str, Any]]:
    return [json.loads(m.value() or b"") for m in consume(broker, cat.topic(name).name, expected, timeout=20)]


def test_ready_commit_rolls_out_then_upgrades(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin)) as handled:
        first = ready(V2)  # decided now: the latency below includes the agent joining its consumer group
        produce(kafka_broker, topics, first)
        deployed = wait_handled(handled, 1)
        second = ready(V3)  # decided while the agent runs: the steady-state latency
        produce(kafka_broker, topics, second)
        upgraded = wait_handled(handled, 2)
    for h in (deployed, upgraded):
        assert h.readiness_to_patch_s is not None and h.rollout_s is not None
        print(
            f"{h.note}: readiness->patch {h.readiness_to_patch_s * 1000:.0f} ms, rollout {h.rollout_s:.2f} s",
            file=sys.stderr,
        )
    assert (deployed.note, upgraded.note) == ("deployed", "upgraded")
    view = DeploymentsClient(admin).get(shop, "shop", "app")
    assert (view.image, view.rollout) == (V3, "complete")
    assert view.annotations[decisions.READINESS_EVENT] == second.decision_id
    assert view.annotations[decisions.PREVIOUS_IMAGE] == V2
    found = events(kafka_broker, topics, 2)
    assert [e["type"] for e in found] == ["dev.cdevents.service.deployed.0.3.0", "dev.cdevents.service.upgraded.0.3.0"]
    assert [e["data"]["context"]["chainId"] for e in found] == [first.chain_id, second.chain_id]
    assert (
        found[1]["data"]["subject"]["content"]["artifactId"]
        == f"pkg:oci/shop@{C3}?repository_url=registry.example/shop"
    )


def test_never_ready_image_is_rolled_back(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    broken = ready(f"registry.example/shop:{UNREADY_IMAGE_TAG}")
    packaged = package_policies(shop)
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), policy=packaged) as handled:
        produce(kafka_broker, topics, broken)
        outcome = wait_handled(handled, 1)
    print(f"rolled back after {outcome.rollout_s:.1f} s", file=sys.stderr)
    assert outcome.note == "rolledback"
    (event,) = events(kafka_broker, topics, 1)
    assert event["type"] == "dev.cdevents.service.rolledback.0.3.0"
    assert "ProgressDeadlineExceeded" in event["data"]["customData"]["reason"]
    assert (
        event["data"]["subject"]["content"]["artifactId"] == f"pkg:oci/shop@{C1}?repository_url=registry.example/shop"
    )
    done = DeploymentsClient(admin).watch_rollout(shop, "shop", "app", timeout=60)
    assert (done.image, done.rollout) == (V1, "complete")

    # The next good decision is an upgrade, not a rollback left over from the failed one.
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), policy=packaged) as handled:
        produce(kafka_broker, topics, ready(V2))
        after = wait_handled(handled, 2)  # a new group: the broken decision comes first and is superseded
    assert (handled[0].note, after.note) == ("skipped", "upgraded")
    view = DeploymentsClient(admin).get(shop, "shop", "app")
    assert decisions.ROLLED_BACK_FROM not in view.annotations


def test_a_rollout_past_the_agents_bound_is_rolled_back(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    # The Deployment's own progress deadline (10 s) has not passed when the agent's bound (3 s) does.
    broken = ready(f"registry.example/shop:{UNREADY_IMAGE_TAG}")
    deployments = DeploymentsClient(admin)
    packaged = package_policies(shop)
    with running_agent(kafka_broker, topics, shop, deployments, rollout_timeout_s=3.0, policy=packaged) as handled:
        produce(kafka_broker, topics, broken)
        outcome = wait_handled(handled, 1)
    assert outcome.note == "rolledback"
    (event,) = events(kafka_broker, topics, 1)
    assert event["type"] == "dev.cdevents.service.rolledback.0.3.0"
    assert "did not complete within 3 s" in event["data"]["customData"]["reason"]
    view = deployments.get(shop, "shop", "app")
    assert (view.image, view.rollout) == (V1, "complete")
    assert view.annotations[decisions.FAILED_ROLLOUTS] == "1"


def test_same_readiness_event_twice_patches_once(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    decision = ready(V2)
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin)) as handled:
        produce(kafka_broker, topics, decision)
        wait_handled(handled, 1)
        generation = DeploymentsClient(admin).get(shop, "shop", "app").generation
        produce(kafka_broker, topics, decision)
        again = wait_handled(handled, 2)
    assert again.readiness_to_patch_s is None  # no patch the second time
    assert DeploymentsClient(admin).get(shop, "shop", "app").generation == generation == 2
    found = events(kafka_broker, topics, 2)
    assert len({e["id"] for e in found}) == 1  # republished with the same id: a duplicate to consumers


def test_manual_change_is_not_overwritten(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    hotfix = "registry.example/shop:hotfix"
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin)) as handled:
        produce(kafka_broker, topics, ready(V2))
        assert wait_handled(handled, 1).note == "deployed"
        manual_set_image(admin, shop, hotfix)
        produce(kafka_broker, topics, ready(V3))
        blocked = wait_handled(handled, 2)
    assert blocked.note == "blocked"
    assert DeploymentsClient(admin).get(shop, "shop", "app").image == hotfix
    found = events(kafka_broker, topics, 2)
    reason = found[1]["data"]["subject"]["content"]["reason"]
    assert reason == f"manual change detected: image {hotfix} is not what autodeploy set ({V2})"


class HandEditedBeforePatch(DeploymentsClient):
    """Someone runs `kubectl set image` between the agent's read and its patch (once)."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        super().__init__(api_client)
        self._api, self._namespace, self._done = api_client, namespace, False

    def set_image(
        self, view: DeploymentView, image: str, annotations: Mapping[str, str], *, dry_run: bool = False
    ) -> DeploymentView:
        if not self._done:
            self._done = True
            manual_set_image(self._api, self._namespace, "registry.example/shop:hotfix")
        return super().set_image(view, image, annotations, dry_run=dry_run)


def test_change_between_read_and_patch_blocks(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    with running_agent(kafka_broker, topics, shop, HandEditedBeforePatch(admin, shop)) as handled:
        produce(kafka_broker, topics, ready(V2))
        assert wait_handled(handled, 1).note == "blocked"
    assert DeploymentsClient(admin).get(shop, "shop", "app").image == "registry.example/shop:hotfix"
    (event,) = events(kafka_broker, topics, 1)
    assert event["type"] == "dev.cdeventsx.autodeploy-deployment.blocked.0.1.0"
    assert event["data"]["subject"]["content"]["reason"].startswith("manual change detected")


def test_namespace_outside_the_grant_is_reported_once(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, k8s_cluster: ClusterHandle, admin: Any, shop: str
) -> None:
    granted = make_namespace(admin)
    try:
        token = grant_deployments(admin, granted)
        as_bot = DeploymentsClient(k8s_cluster.api_client(bearer_token=token))
        # The policy targets `shop`, which the bot's Role does not cover.
        with running_agent(kafka_broker, topics, shop, as_bot) as handled:
            produce(kafka_broker, topics, ready(V2))
            refused = wait_handled(handled, 1)
        assert (refused.note, refused.dead_letter) == ("failed", True)
        (event,) = events(kafka_broker, topics, 1)
        assert event["type"] == "dev.cdeventsx.autodeploy-deployment.failed.0.1.0"
        assert "403" in event["data"]["subject"]["content"]["reason"]
        dead = consume(kafka_broker, topics.topic("autodeploy.deadletter").name, 1, timeout=20)
        assert len(dead) == 1
        headers = dict(dead[0].headers() or [])
        reason = headers["deadletter_reason"]
        assert isinstance(reason, bytes) and b"403" in reason
        assert headers["deadletter_origin"] == b"deploy-agent"
        assert headers["deadletter_topic"] == topics.topic("deploy.readiness").name.encode()
        assert {"deadletter_partition", "deadletter_offset", "deadletter_time"} <= headers.keys()
        assert DeploymentsClient(admin).get(shop, "shop", "app").image == V1
    finally:
        client.CoreV1Api(admin).delete_namespace(granted)


def test_dry_run_changes_nothing_and_still_publishes(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    before = DeploymentsClient(admin).get(shop, "shop", "app")
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), dry_run=True) as handled:
        produce(kafka_broker, topics, ready(V2))
        assert wait_handled(handled, 1).note == "deployed"
    after = DeploymentsClient(admin).get(shop, "shop", "app")
    assert (after.image, after.generation, dict(after.annotations)) == (V1, before.generation, {})
    (event,) = events(kafka_broker, topics, 1)
    assert event["type"] == "dev.cdevents.service.deployed.0.3.0"
    assert event[DRY_RUN_EXTENSION] == "true"
