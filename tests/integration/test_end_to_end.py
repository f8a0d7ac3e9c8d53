"""The whole pipeline, end to end: `autodeploy demo`'s signed webhooks over HTTP -> the webhook server -> Kafka -> the
readiness worker -> deploy.readiness -> the deploy agent -> the Deployments on the local control plane and the
outcomes on deploy.events; shop promoted staging -> production through its gates, its verify check asked of a real
Prometheus (Debian's) scraping the demo application. Every piece is the real process or server `autodeploy up` runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.adapters.kubernetes_deployments import DeploymentsClient
from streams.demo.deliveries import Secrets, sha
from streams.demo.scenario import build
from streams.deploy import decisions
from tests.cluster_fixture import ClusterHandle
from tests.support.brokers import SelectedBroker
from tests.support.demo_monitoring import demo_monitoring
from tests.support.kafka_io import consume
from tests.support.pipeline import running_pipeline
from tests.support.webhooks import CIRCLECI_SECRET, GITHUB_SECRET

pytestmark = pytest.mark.timeout(900)


def _read(broker: SelectedBroker, topic: str, expected: int) -> list[dict[str, Any]]:
    return [json.loads(m.value() or b"") for m in consume(broker, topic, expected, timeout=60)]


def test_demo_scenario_from_webhooks_to_deployments(
    kafka_broker: SelectedBroker,
    k8s_cluster: ClusterHandle,
    admin: Any,
    namespace: str,
    unique: str,
    tmp_path: Path,
) -> None:
    with (
        demo_monitoring(k8s_cluster.kubeconfig, tmp_path / "prometheus") as (demo_app, monitoring),
        running_pipeline(kafka_broker, k8s_cluster.kubeconfig, namespace, unique, tmp_path, env=monitoring) as pipe,
    ):
        pipe.play_demo(unique, demo_app.address)

        scenario = build(pipe.policies, Secrets(GITHUB_SECRET, CIRCLECI_SECRET), unique, bad_commit=True)
        a, b, c, d, e = (scenario.commits[name] for name in "ABCDE")
        assert a == sha(f"github.com/acme/shop/{unique}/A")  # the demo played the commits this test expects

        readiness = _read(kafka_broker, pipe.catalog.topic("deploy.readiness").name, 14)
        found = sorted(
            (content["service"], content["environment"], r["type"].split(".")[3], content["commit"])
            for r in readiness
            for content in [r["data"]["subject"]["content"]]
        )
        # The CI failure decided nothing; the late result of C changed nothing; C never got past staging; E, rolled
        # back in staging, is rejected for production; one decision per (service, environment, commit).
        first = [("ready", a), ("ready", b), ("superseded", c), ("ready", d), ("ready", e)]
        assert found == sorted(
            [("shop", "staging", kind, commit) for kind, commit in first]
            + [("shop", "production", kind, commit) for kind, commit in (("ready", a), ("ready", b), ("ready", d))]
            + [("shop", "production", "rejected", e)]
            + [("shop-worker", "production", kind, commit) for kind, commit in first]
        )
        superseded = [r for r in readiness if r["type"].split(".")[3] == "superseded"]
        assert {r["data"]["subject"]["content"]["superseded_by"] for r in superseded} == {d}
        [rejected] = [r["data"]["subject"]["content"] for r in readiness if r["type"].split(".")[3] == "rejected"]
        assert rejected["reason"].startswith("rolled back in staging: verify error-ratio: 0.4 (needs < 0.05)")

        outcomes = _read(kafka_broker, pipe.catalog.topic("deploy.events").name, 12)
        per_target: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for event in outcomes:
            details = event["data"].get("customData") or event["data"]["subject"]["content"]
            per_target.setdefault((details["service"], details["environment"]), []).append(
                (event["type"].split(".")[3], details["commit"])
            )
        # In order, nothing failed, blocked or skipped, C was never rolled out, E only where it was not stopped.
        assert per_target == {
            # E's rollout completed, then its verify check failed and it was rolled back.
            ("shop", "staging"): [
                ("deployed", a),
                ("upgraded", b),
                ("upgraded", d),
                ("upgraded", e),
                ("rolledback", e),
            ],
            ("shop", "production"): [("deployed", a), ("upgraded", b), ("upgraded", d)],
            ("shop-worker", "production"): [("deployed", a), ("upgraded", b), ("upgraded", d), ("upgraded", e)],
        }

        k8s = DeploymentsClient(admin)
        for policy in pipe.policies.services:
            for environment in policy.environments:
                target = environment.target
                view = k8s.get(namespace, target.deployment, target.container)
                assert view.image == scenario.final[(policy.name, environment.name)], (policy.name, environment.name)
                assert view.rollout == "complete"
        production = k8s.get(namespace, "shop", "app")
        assert production.image == pipe.policies.service("shop").image_for(d)
        assert production.annotations[decisions.PREVIOUS_IMAGE] == pipe.policies.service("shop").image_for(b)
