"""The deploy agent's safety nets against a real broker and control plane: circuit breaker, freeze windows, an
API server outage, and "only the newest ready commit waits" across fetches."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from streams import catalog
from streams.adapters.kubernetes_deployments import DeploymentsClient
from streams.deploy import decisions
from streams.deploy.agent import SyncPublisher
from streams.deploy.unblock import unblock
from streams.domain.freeze import AbsoluteWindow
from streams.local import cluster
from streams.local.kwok_stages import UNREADY_IMAGE_TAG
from tests.cluster_fixture import ClusterHandle
from tests.integration import test_deploy_agent as base
from tests.integration.test_deploy_agent import (
    events,
    package_policies,
    policies,
    produce,
    ready,
    running_agent,
    wait_handled,
)
from tests.support.brokers import SelectedBroker
from tests.support.kube import V2, V3, eventually

pytestmark = pytest.mark.timeout(1800)
shop, topics = base.shop, base.topics  # the fixtures, by name

BROKEN = f"registry.example/shop:{UNREADY_IMAGE_TAG}"
BLOCKED = "dev.cdeventsx.autodeploy-deployment.blocked.0.1.0"
SKIPPED = "dev.cdeventsx.autodeploy-deployment.skipped.0.1.0"


def content(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = event["data"]["subject"]["content"]
    return found


def test_circuit_opens_after_n_failed_rollouts_survives_a_restart_and_unblock_clears_it(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    policy = package_policies(shop, max_failed_rollouts=2)  # BROKEN: see package_policies
    group = f"deploy-{uuid.uuid4().hex[:8]}"
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), policy=policy, group=group) as handled:
        produce(kafka_broker, topics, ready(BROKEN))
        first = wait_handled(handled, 1, timeout=120)
        produce(kafka_broker, topics, ready(BROKEN))  # the template's image for the commit: the same one again
        second = wait_handled(handled, 2, timeout=120)
        assert handled.agent.metrics.registry.get_sample_value("autodeploy_circuit_open", {"service": "shop"}) == 1
    assert (first.note, second.note) == ("rolledback", "rolledback")
    for h in (first, second):
        assert h.rollout_s is not None and h.restore_s is not None
        print(f"rolledback: failed after {h.rollout_s:.1f} s, restored in {h.restore_s:.2f} s", file=sys.stderr)
    view = DeploymentsClient(admin).get(shop, "shop", "app")
    assert view.annotations[decisions.FAILED_ROLLOUTS] == "2" and decisions.CIRCUIT_OPEN in view.annotations
    assert view.rollout == "complete"  # rolledback is reported once the restored image is available again

    # A restarted agent (same group) finds the open circuit on the Deployment and deploys nothing.
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), policy=policy, group=group) as handled:
        eventually(
            lambda: handled.agent.metrics.registry.get_sample_value("autodeploy_circuit_open", {"service": "shop"}),
            30,
            "the circuit gauge read back from the Deployment",
        )
        produce(kafka_broker, topics, ready(V2))
        assert wait_handled(handled, 1).note == "blocked"
        publisher = SyncPublisher(kafka_broker.producer("deploy-agent"), 10.0)
        try:
            topic = topics.topic("deploy.events").name
            cleared = unblock(policy.service("shop"), DeploymentsClient(admin), publisher, topic)
            assert unblock(policy.service("shop"), DeploymentsClient(admin), publisher, "unused") is None
        finally:
            publisher.close()
        assert cleared is not None and cleared.failures == 2
        produce(kafka_broker, topics, ready(V3))
        assert wait_handled(handled, 2).note == "upgraded"
    view = DeploymentsClient(admin).get(shop, "shop", "app")
    assert view.image == V3
    assert decisions.CIRCUIT_OPEN not in view.annotations and decisions.FAILED_ROLLOUTS not in view.annotations
    found = events(kafka_broker, topics, 6)
    assert [e["type"] for e in found] == [
        "dev.cdevents.service.rolledback.0.3.0",
        "dev.cdevents.service.rolledback.0.3.0",
        BLOCKED,  # the circuit opened
        BLOCKED,  # V2 refused while open
        "dev.cdeventsx.autodeploy-deployment.unblocked.0.1.0",
        "dev.cdevents.service.upgraded.0.3.0",
    ]
    assert content(found[2])["reason"].startswith("circuit open after 2 consecutive failed rollouts")
    assert content(found[3])["reason"] == content(found[2])["reason"]


def test_freeze_window_holds_the_newest_ready_commit_and_deploys_it_when_it_ends(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    now = datetime.now(UTC)
    window = AbsoluteWindow("release", now - timedelta(minutes=1), now + timedelta(seconds=25))
    policy = policies(shop, freeze=(window,))
    group = f"deploy-{uuid.uuid4().hex[:8]}"
    older, newer = ready(V2), ready(V3)
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), policy=policy, group=group) as handled:
        produce(kafka_broker, topics, older)
        assert wait_handled(handled, 1).note == "blocked"
        produce(kafka_broker, topics, newer)
        assert wait_handled(handled, 2).note == "blocked"
    held = DeploymentsClient(admin).get(shop, "shop", "app")
    assert held.image != V3 and newer.decision_id in held.annotations[decisions.WAITING]
    assert datetime.now(UTC) < window.end, "the window ended before the test could restart the agent"
    # A restarted agent reads what waits from the Deployment and deploys it once the window is over.
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), policy=policy, group=group) as handled:
        deployed = wait_handled(handled, 1, timeout=90)
    assert deployed.note == "deployed"
    assert datetime.now(UTC) >= window.end
    view = DeploymentsClient(admin).get(shop, "shop", "app")
    assert (view.image, view.rollout) == (V3, "complete")
    assert decisions.WAITING not in view.annotations
    found = events(kafka_broker, topics, 4)
    assert [(e["type"], content_commit(e)) for e in found] == [
        (BLOCKED, older.commit),
        (SKIPPED, older.commit),
        (BLOCKED, newer.commit),
        ("dev.cdevents.service.deployed.0.3.0", newer.commit),
    ]
    assert content(found[0])["reason"].startswith("freeze window release until ")


def content_commit(event: dict[str, Any]) -> str:
    data = event["data"]
    return str(data.get("customData", data["subject"]["content"])["commit"])


def test_only_the_newest_ready_commit_waits_across_fetches(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, admin: Any, shop: str
) -> None:
    # batch=1: every consume() returns one record, so the waiting records arrive in separate fetches.
    waiting = [ready(f"registry.example/shop:w{i}") for i in range(3)]
    packaged = package_policies(shop)  # BROKEN: see package_policies
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), batch=1, policy=packaged) as handled:
        first = ready(BROKEN)  # a rollout that lasts its progress deadline (10 s), then is rolled back
        produce(kafka_broker, topics, first)
        eventually(
            lambda: (
                DeploymentsClient(admin).get(shop, "shop", "app").annotations.get(decisions.READINESS_EVENT)
                == first.decision_id
            ),
            60,
            "the first rollout to start",
        )
        for decision in waiting:
            produce(kafka_broker, topics, decision)
            time.sleep(0.3)
        wait_handled(handled, 4, timeout=120)
        assert handled[0].rollout_s is not None and handled[0].restore_s is not None
        print(
            f"rolledback after {handled[0].rollout_s + handled[0].restore_s:.1f} s from the patch",
            file=sys.stderr,
        )
    assert [h.note for h in handled] == ["rolledback", "skipped", "skipped", "upgraded"]
    assert DeploymentsClient(admin).get(shop, "shop", "app").image == waiting[-1].image
    found = events(kafka_broker, topics, 4)
    assert [e["type"] for e in found[1:3]] == [SKIPPED, SKIPPED]
    assert content(found[1])["reason"] == f"superseded by newer ready commit {waiting[-1].commit} while waiting"


def test_api_server_outage_is_retried_with_backoff_in_order(
    kafka_broker: SelectedBroker, topics: catalog.Catalog, k8s_cluster: ClusterHandle, admin: Any, shop: str
) -> None:
    if not k8s_cluster.local:
        pytest.skip("stops the kube-apiserver: only on the local control plane")
    first, second = ready(V2), ready(V3)
    # The controllers reconnect with their own backoff after the outage: the test's 10 s progress deadline would
    # turn that delay into a rollback.
    # The same holds for the agent's rollout timeout: a loaded machine saw the ReplicaSet controller's informers
    # stale for ~100 s after the API server came back ("read version ... is not as new as written version").
    body = {"spec": {"progressDeadlineSeconds": 300}}
    client.AppsV1Api(admin).patch_namespaced_deployment("shop", shop, body)
    with running_agent(kafka_broker, topics, shop, DeploymentsClient(admin), rollout_timeout_s=280) as handled:
        time.sleep(3)  # let the agent join its group, so the outage hits the rollout, not the start
        with k8s_cluster.asked():
            cluster.stop_component("kube-apiserver")
        down_at = time.monotonic()
        try:
            produce(kafka_broker, topics, first)
            time.sleep(2)  # the first is being retried...
            produce(kafka_broker, topics, second)  # ...and the second waits behind it: it must not overtake
            time.sleep(8)
            assert handled == []
        finally:
            with k8s_cluster.asked():
                cluster.start_component("kube-apiserver")
        back_at, back_wall = time.monotonic(), datetime.now(UTC)
        wait_handled(handled, 1, timeout=300)
        first_done_at = time.monotonic()
        done = wait_handled(handled, 2, timeout=180)
        finished_at = time.monotonic()
    patch_s = handled[0].readiness_to_patch_s
    assert patch_s is not None
    patched_after_back = (first.decided_at + timedelta(seconds=patch_s) - back_wall).total_seconds()  # type: ignore[operator]
    print(
        f"API server down {back_at - down_at:.1f} s (restart included); after it was back: first patched in "
        f"{patched_after_back:.1f} s, its rollout done in {first_done_at - back_at:.1f} s, second done in "
        f"{finished_at - back_at:.1f} s",
        file=sys.stderr,
    )
    # The first was retried on the same record (never skipped although a newer one waited behind it), then the second.
    assert [h.note for h in handled] == ["deployed", "upgraded"]
    assert done.outcome is not None and done.outcome.ready.event_id == second.decision_id
    view = DeploymentsClient(admin).get(shop, "shop", "app")
    assert (view.image, view.rollout) == (V3, "complete")
