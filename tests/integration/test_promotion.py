"""Promotion end to end, every piece real: webhooks -> the worker -> staging on the local control plane -> the deploy
agent's verify query against a real Prometheus (Debian's) scraping the "application's" metrics -> gate facts on
deploy.gates -> the worker's soak and approval -> production. A good commit goes staging -> soak -> approval ->
production; a bad one fails verification in staging, is rolled back there and never reaches production."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from streams.demo.deliveries import History, Secrets, sha
from streams.demo.play import http_post
from streams.local.prometheus import Prometheus
from tests.cluster_fixture import ClusterHandle
from tests.support.app_metrics import AppMetrics
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.pipeline import Pipeline, running_pipeline
from tests.support.webhooks import CIRCLECI_SECRET, GITHUB_SECRET

pytestmark = pytest.mark.timeout(600)

NULL = "0" * 40
SOAK_S = 4
POLICY = """
services:
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
            window: 3s
      - name: production
        kubernetes: {{namespace: {namespace}, deployment: shop, container: app}}
        after: staging
        soak: {soak}s
        approval: required
"""


def image(commit: str) -> str:
    return f"registry.example/shop:{commit}"


@pytest.fixture
def app_metrics() -> Iterator[AppMetrics]:
    metrics = AppMetrics()
    yield metrics
    metrics.close()


@pytest.fixture
def prometheus(tmp_path: Path, app_metrics: AppMetrics) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path / "prometheus", {"shop": app_metrics.address}, [])
    try:
        server.start()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    yield server
    server.stop()


class Decisions:
    """deploy.readiness as read so far: (kind, environment, commit) -> the event."""

    def __init__(self, broker: SelectedBroker, pipeline: Pipeline) -> None:
        self.broker, self.topic, self.seen = broker, pipeline.catalog.topic("deploy.readiness").name, 0
        self.events: dict[tuple[str, str, str], dict[str, Any]] = {}

    def wait(self, kind: str, environment: str, commit: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (kind, environment, commit) not in self.events:
            assert time.monotonic() < deadline, f"no {kind} for {commit[:8]} in {environment}: {sorted(self.events)}"
            self.refresh()
        return self.events[(kind, environment, commit)]

    def refresh(self) -> None:
        """Read what came since the last look (waiting up to 2 s for one more)."""
        for message in consume(self.broker, self.topic, self.seen + 1, timeout=2)[self.seen :]:
            self.seen += 1
            event = json.loads(message.value() or b"")
            content = event["data"]["subject"]["content"]
            self.events[(event["type"].split(".")[3], content["environment"], content["commit"])] = event


def deployment_image(admin: Any, namespace: str, name: str) -> str:
    deployment = client.AppsV1Api(admin).read_namespaced_deployment(name, namespace)
    return str(deployment.spec.template.spec.containers[0].image)


def eventually(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def approve(pipeline: Pipeline, commit: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "approve", "shop", commit, "--env", "production", "--comment", "ok"],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass
class Setting:
    """What each test runs in: the fixtures a promotion pipeline needs."""

    broker: SelectedBroker
    cluster: ClusterHandle
    namespace: str
    unique: str
    work: Path
    prometheus: Prometheus


@pytest.fixture
def setting(
    kafka_broker: SelectedBroker,
    k8s_cluster: ClusterHandle,
    namespace: str,
    unique: str,
    tmp_path: Path,
    prometheus: Prometheus,
) -> Setting:
    return Setting(kafka_broker, k8s_cluster, namespace, unique, tmp_path, prometheus)


@contextmanager
def promoting(setting: Setting, policy: str) -> Iterator[tuple[Pipeline, Decisions, Callable[[History], None]]]:
    """The pipeline with `policy`, asking `setting`'s Prometheus every 0.5 s and ticking every 0.5 s; yields it, its
    decisions, and a function that posts a history's webhooks."""
    settings = {
        "PROMETHEUS_URL": f"http://127.0.0.1:{setting.prometheus.port}",
        "AUTODEPLOY_VERIFY_INTERVAL_S": "0.5",
        "AUTODEPLOY_WORKER_TICK_S": "0.5",
    }
    with running_pipeline(
        setting.broker,
        setting.cluster.kubeconfig,
        setting.namespace,
        setting.unique,
        setting.work,
        policy=policy,
        env=settings,
    ) as pipeline:
        post = http_post(pipeline.url)

        def send(history: History) -> None:
            for delivery in history.deliveries:
                assert post(delivery)[0] == 200

        yield pipeline, Decisions(setting.broker, pipeline), send


def history() -> History:
    return History(Secrets(GITHUB_SECRET, CIRCLECI_SECRET))


def test_a_good_commit_is_promoted_after_soak_and_approval_and_a_bad_one_stops_in_staging(
    setting: Setting, admin: Any, app_metrics: AppMetrics
) -> None:
    namespace = setting.namespace
    good, bad = sha(f"promotion/{setting.unique}/good"), sha(f"promotion/{setting.unique}/bad")
    app_metrics.set(image(good), namespace, "shop", 0.01)
    app_metrics.set(image(bad), namespace, "shop", 0.4)
    with promoting(setting, POLICY.format(namespace=namespace, soak=SOAK_S)) as (pipeline, decisions, send):
        send(history().push(NULL, good).circleci(good, "success"))
        decisions.wait("ready", "staging", good)
        eventually(lambda: deployment_image(admin, namespace, "shop-staging") == image(good), "staging never got good")
        # Verified and soaked, it still waits for a person.
        time.sleep(3 + SOAK_S + 2)
        decisions.refresh()
        assert ("ready", "production", good) not in decisions.events
        assert deployment_image(admin, namespace, "shop") != image(good)

        approved_at = datetime.now().astimezone()
        print(approve(pipeline, good), file=sys.stderr)
        promoted = decisions.wait("ready", "production", good)
        eventually(lambda: deployment_image(admin, namespace, "shop") == image(good), "production never got good")
        kinds = [f["kind"] for f in promoted["data"]["subject"]["content"]["facts"]]
        assert "dev.cdevents.service.deployed.0.3.0" in kinds or "dev.cdevents.service.upgraded.0.3.0" in kinds
        assert "dev.cdevents.testsuiterun.finished.0.3.0" in kinds
        assert "dev.cdeventsx.autodeploy-approval.granted.0.1.0" in kinds
        assert soaked_s(promoted) >= SOAK_S
        assert datetime.fromisoformat(promoted["time"]) >= approved_at.replace(microsecond=0)

        # The bad commit: staging, its verify query fails, rolled back there; production keeps the good one.
        send(history().push(good, bad).circleci(bad, "success"))
        decisions.wait("ready", "staging", bad)
        rejected = decisions.wait("rejected", "production", bad, timeout=120)
        reason = rejected["data"]["subject"]["content"]["reason"]
        assert reason.startswith("rolled back in staging") and "error-ratio: 0.4 (needs < 0.05)" in reason
        eventually(lambda: deployment_image(admin, namespace, "shop-staging") == image(good), "staging not restored")
        assert deployment_image(admin, namespace, "shop") == image(good)
        worker = f"http://127.0.0.1:{pipeline.env['AUTODEPLOY_WORKER_PORT']}"
        why = subprocess.run(
            [sys.executable, "-m", "streams.cli", "why", "acme/shop", bad, "--worker", worker],
            env=pipeline.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        print(why.stdout, why.stderr, file=sys.stderr)
        assert "-> production: rejected (rolled back in staging" in why.stdout


def soaked_s(promoted: dict[str, Any]) -> float:
    """From the staging rollout's completion (the first service.* fact) to the production decision."""
    facts = promoted["data"]["subject"]["content"]["facts"]
    completed = min(datetime.fromisoformat(f["time"]) for f in facts if f["kind"].startswith("dev.cdevents.service."))
    return (datetime.fromisoformat(promoted["time"]) - completed).total_seconds()


def test_kill_9_of_the_worker_and_the_agent_during_the_soak_still_promote_once_after_it(
    setting: Setting, admin: Any, app_metrics: AppMetrics
) -> None:
    soak, namespace, broker = 8, setting.namespace, setting.broker
    good = sha(f"promotion/{setting.unique}/kill")
    app_metrics.set(image(good), namespace, "shop", 0.01)
    with promoting(setting, POLICY.format(namespace=namespace, soak=soak)) as (pipeline, decisions, send):
        approve(pipeline, good)  # before anything: an approval may come first
        send(history().push(NULL, good).circleci(good, "success"))
        decisions.wait("ready", "staging", good)
        gates = pipeline.catalog.topic("deploy.gates").name
        # Verified in staging: the soak runs. Both processes die in the middle of it.
        deadline = time.monotonic() + 60
        while not any(b"testsuiterun" in (m.value() or b"") for m in consume(broker, gates, 3, timeout=2)):
            assert time.monotonic() < deadline, "staging was never verified"
        pipeline.kill_and_restart("worker")
        pipeline.kill_and_restart("deploy-agent")
        promoted = decisions.wait("ready", "production", good, timeout=120)
        eventually(lambda: deployment_image(admin, namespace, "shop") == image(good), "production never got good")
        assert soaked_s(promoted) >= soak
        time.sleep(3)  # anything published twice would have come by now
        readiness = pipeline.catalog.topic("deploy.readiness").name
        production = [
            json.loads(m.value() or b"")
            for m in consume(broker, readiness, len(decisions.events), timeout=5)
            if b'"environment":"production"' in (m.value() or b"")
        ]
        assert {e["id"] for e in production} == {promoted["id"]}  # one decision (a re-emission keeps its id)
        outcomes = pipeline.catalog.topic("deploy.events").name
        events = [json.loads(m.value() or b"") for m in consume(broker, outcomes, 2, timeout=5)]
        deployed = {
            e["id"]
            for e in events
            if e["type"].startswith(("dev.cdevents.service.deployed", "dev.cdevents.service.upgraded"))
            and e["data"]["subject"]["content"]["environment"]["id"] == "production"
        }
        assert len(deployed) == 1, deployed  # one rollout to production


HELD_OR_FAILED = """
services:
  shop:
    repository: acme/shop
    branch: main
    required_checks: [{{circleci: build-test}}]
    image: registry.example/shop:{{sha}}
    environments:
      - name: staging
        kubernetes: {{namespace: {namespace}, deployment: shop-staging, container: app}}
        verify:
          - {{name: error-ratio, query: 'max(autodeploy_demo_error_ratio)', condition: "< 0.05", window: 2s}}
      - name: production
        kubernetes: {{namespace: {namespace}, deployment: shop, container: app}}
        after: staging
  shop-strict:
    repository: acme/shop
    branch: main
    required_checks: [{{circleci: build-test}}]
    image: registry.example/shop-strict:{{sha}}
    environments:
      - name: staging
        kubernetes: {{namespace: {namespace}, deployment: strict-staging, container: app}}
        verify:
          - name: error-ratio
            query: 'max(autodeploy_demo_error_ratio)'
            condition: "< 0.05"
            window: 2s
            inconclusive: fail
      - name: production
        kubernetes: {{namespace: {namespace}, deployment: strict, container: app}}
        after: staging
"""


def test_prometheus_down_during_verification_holds_or_fails_as_configured_and_never_passes(
    setting: Setting, admin: Any
) -> None:
    namespace = setting.namespace
    commit = sha(f"promotion/{setting.unique}/prometheus-down")
    with promoting(setting, HELD_OR_FAILED.format(namespace=namespace)) as (_, decisions, send):
        setting.prometheus.stop()
        send(history().push(NULL, commit).circleci(commit, "success"))
        rejected = decisions.wait("rejected", "production", commit)  # shop-strict: inconclusive counts as failed
        assert rejected["data"]["subject"]["content"]["service"] == "shop-strict"
        assert "Prometheus unreachable" in rejected["data"]["subject"]["content"]["reason"]
        strict = f"registry.example/shop-strict:{commit}"
        eventually(
            lambda: deployment_image(admin, namespace, "strict-staging") != strict, "shop-strict not rolled back"
        )
        # shop holds: still running in staging, neither passed (no production decision) nor rolled back.
        time.sleep(5)
        decisions.refresh()
        assert deployment_image(admin, namespace, "shop-staging") == image(commit)
        production = [k for k in decisions.events if k[1] == "production" and k[2] == commit]
        assert production == [("rejected", "production", commit)], production  # shop-strict's only
        assert deployment_image(admin, namespace, "shop") != image(commit)
