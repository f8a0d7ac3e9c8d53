"""The whole pipeline, end to end: `autodeploy demo`'s signed webhooks over HTTP -> the webhook server -> Kafka -> the
readiness worker -> deploy.readiness -> the deploy agent -> the Deployments on the local control plane and the
outcomes on deploy.events. Every piece is the real process `autodeploy up` runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.adapters.kubernetes_deployments import DeploymentsClient
from streams.demo.deliveries import Secrets, sha
from streams.demo.scenario import build
from streams.deploy import decisions
from tests.cluster_fixture import ClusterHandle
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.pipeline import running_pipeline
from tests.support.webhooks import CIRCLECI_SECRET, GITHUB_SECRET

pytestmark = pytest.mark.timeout(900)


def _read(broker: SelectedBroker, topic: str, expected: int) -> list[dict[str, Any]]:
    return [json.loads(m.value() or b"") for m in consume(broker, topic, expected, timeout=60)]


def test_demo_scenario_from_webhooks_to_deployments(
    kafka_broker: SelectedBroker, k8s_cluster: ClusterHandle, admin: Any, namespace: str, unique: str, tmp_path: Path
) -> None:
    with running_pipeline(kafka_broker, k8s_cluster.kubeconfig, namespace, unique, tmp_path) as pipeline:
        demo = subprocess.run(
            [sys.executable, "-m", "streams.cli", "demo", "--url", pipeline.url, "--run-id", unique],
            env=pipeline.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        print(demo.stdout, demo.stderr, file=sys.stderr)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert "result: every expected outcome arrived" in demo.stdout

        scenario = build(pipeline.policies, Secrets(GITHUB_SECRET, CIRCLECI_SECRET), unique)
        a, b, c, d = (scenario.commits[name] for name in "ABCD")
        assert a == sha(f"github.com/acme/shop/{unique}/A")  # the demo played the commits this test expects
        services = ("shop", "shop-worker")

        readiness = _read(kafka_broker, pipeline.catalog.topic("deploy.readiness").name, 8)
        found = sorted(
            (
                r["data"]["subject"]["content"]["service"],
                r["type"].split(".")[3],
                r["data"]["subject"]["content"]["commit"],
            )
            for r in readiness
        )
        # The CI failure decided nothing; the late result of C changed nothing; one decision per (service, commit).
        assert found == sorted(
            (s, kind, commit)
            for s in services
            for kind, commit in (("ready", a), ("ready", b), ("superseded", c), ("ready", d))
        )
        superseded = [r for r in readiness if r["type"].split(".")[3] == "superseded"]
        assert {r["data"]["subject"]["content"]["superseded_by"] for r in superseded} == {d}

        outcomes = _read(kafka_broker, pipeline.catalog.topic("deploy.events").name, 6)
        per_service: dict[str, list[tuple[str, str]]] = {s: [] for s in services}
        for event in outcomes:
            custom = event["data"]["customData"]
            per_service[custom["service"]].append((event["type"], custom["commit"]))
        deployed, upgraded = "dev.cdevents.service.deployed.0.3.0", "dev.cdevents.service.upgraded.0.3.0"
        for service in services:
            # In order, nothing failed, blocked or skipped, and C was never rolled out.
            assert per_service[service] == [(deployed, a), (upgraded, b), (upgraded, d)], per_service

        k8s = DeploymentsClient(admin)
        for policy in pipeline.policies.services:
            view = k8s.get(namespace, policy.target.deployment, policy.target.container)
            assert view.image == scenario.final[policy.name] == policy.image_for(d)
            assert view.rollout == "complete"
            assert view.annotations[decisions.PREVIOUS_IMAGE] == policy.image_for(b)
