"""Defense in depth in the deploy agent: a correctly signed ready decision is still held against the agent's own copy
of the policy (repository, branch, image), and one that the policy does not allow patches nothing."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import catalog
from streams.adapters.kafka_producer import Record
from streams.adapters.kubernetes_deployments import DeploymentView
from streams.cli import main
from streams.commands.keys_cmds import signer_of
from streams.config import DeployAgentSettings, KeySettings
from streams.deploy import decisions as d
from streams.deploy.agent import DeployAgent
from streams.deploy.decisions import Ready
from streams.deploy.outcomes import outcome_id
from streams.deploy.unblock import unblock
from streams.domain.policy import KubernetesTarget, Policies, ServicePolicy
from streams.domain.readiness import Decision
from streams.events.decoding import RawRecord
from streams.events.signing import DirectoryVerifier
from streams.worker.output import readiness_record
from tests.support.decisions import ready_decision
from tests.support.signing import TEST_KEY, write_directory

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMIT = "c" * 40
TARGET = KubernetesTarget("shop", "shop", "app")
TEMPLATED = ServicePolicy(
    "shop",
    "github.com/acme/shop",
    "main",
    (),
    "registry.example/shop:{sha}",
    None,
    TARGET,
    "production",
    timedelta(hours=1),
)
PACKAGED = replace(TEMPLATED, image_template=None, image_from_package="ghcr.io/acme/shop")
GOOD = Ready("evt", "chain", "shop", "github.com/acme/shop", COMMIT, "main", f"registry.example/shop:{COMMIT}")


# -- the pure check ------------------------------------------------------------------------------------------------


def test_the_templates_image_for_the_commit_is_allowed() -> None:
    assert d.against_policy(GOOD, TEMPLATED) is None
    short = replace(TEMPLATED, image_template="registry.example/shop:{short_sha}")
    assert d.against_policy(replace(GOOD, image=f"registry.example/shop:{COMMIT[:7]}"), short) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"image": "registry.example/shop:v2"}, "image registry.example/shop:v2 is not the service's image"),
        ({"image": f"evil.example/shop:{COMMIT}"}, "is not the service's image for commit"),
        ({"image": f"registry.example/shop:{'d' * 40}"}, f"(registry.example/shop:{COMMIT})"),
        ({"repository": "github.com/evil/shop"}, "repository github.com/evil/shop is not the service's repository"),
        ({"branch": "feature"}, "branch feature is not the service's deploy branch main"),
    ],
)
def test_anything_else_is_refused_with_the_reason(change: dict[str, str], expected: str) -> None:
    why = d.against_policy(replace(GOOD, **change), TEMPLATED)
    assert why is not None and expected in why


@pytest.mark.parametrize(
    "image",
    ["ghcr.io/acme/shop:1.2.3", "ghcr.io/acme/shop@sha256:" + "a" * 64, "ghcr.io/acme/shop:1@sha256:" + "b" * 64],
)
def test_an_image_from_the_services_image_repository_is_allowed(image: str) -> None:
    assert d.against_policy(replace(GOOD, image=image), PACKAGED) is None


@pytest.mark.parametrize("image", ["ghcr.io/acme/shop-evil:1", "ghcr.io/evil/shop:1", "evil.io/ghcr.io/acme/shop:1"])
def test_an_image_from_another_repository_is_refused(image: str) -> None:
    why = d.against_policy(replace(GOOD, image=image), PACKAGED)
    assert why is not None and "is not from the service's image repository ghcr.io/acme/shop" in why


def test_image_name_keeps_a_registry_port() -> None:
    assert d.image_name("host:5000/app") == "host:5000/app"
    assert d.image_name("host:5000/app:1@sha256:ab") == "host:5000/app"


# -- the agent, with fakes -----------------------------------------------------------------------------------------


class FakeDeployments:
    """A Deployment at V1 whose patches complete at once; counts every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.view = DeploymentView(
            "shop", "shop", "app", "registry.example/shop:v1", "1", 1, 1, 1, 1, 1, 1, 1, 0, "True", None, {}, "complete"
        )

    def get(self, namespace: str, name: str, container: str) -> DeploymentView:
        self.calls.append("get")
        return self.view

    def set_image(
        self, view: DeploymentView, image: str, annotations: Mapping[str, str | None], *, dry_run: bool = False
    ) -> DeploymentView:
        self.calls.append("set_image")
        notes = {k: v for k, v in {**view.annotations, **annotations}.items() if v is not None}
        self.view = replace(view, image=image, annotations=notes)
        return self.view

    def annotate(self, view: DeploymentView, annotations: Mapping[str, str | None]) -> DeploymentView:
        self.calls.append("annotate")
        return view


def agent(tmp_path: Path, deployments: FakeDeployments, published: list[Record], policy: ServicePolicy) -> DeployAgent:
    settings = DeployAgentSettings("deploy-test", None, False, 60.0, 10.0, 10.0)
    cat = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
    verifier = DirectoryVerifier(write_directory(tmp_path / "directory.yaml"))
    fake: Any = deployments
    return DeployAgent(
        settings,
        Policies((policy,)),
        cat,
        consumer=None,
        publish=published.append,
        deployments=fake,
        verifier=verifier,
        signer=TEST_KEY,
    )


def signed(image: str, commit: str = COMMIT, repository: str = "github.com/acme/shop") -> tuple[Decision, RawRecord]:
    decision = ready_decision(image, commit=commit, repository=repository)
    record = readiness_record(decision, "production", "deploy.readiness", TEST_KEY)
    raw = RawRecord(record.topic, 0, 0, record.key, record.value, list(record.headers), datetime.now(UTC))
    return decision, raw


def outcome_of(record: Record) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(record.value)
    return event


@pytest.mark.parametrize(
    ("image", "repository", "reason"),
    [
        ("registry.example/shop:v2", "github.com/acme/shop", "is not the service's image for commit"),
        (f"evil.example/shop:{COMMIT}", "github.com/acme/shop", "is not the service's image for commit"),
        (f"registry.example/shop:{COMMIT}", "github.com/evil/shop", "is not the service's repository"),
    ],
)
def test_a_signed_decision_against_the_policy_is_blocked_and_patches_nothing(
    tmp_path: Path, image: str, repository: str, reason: str
) -> None:
    deployments, published = FakeDeployments(), list[Record]()
    decision, record = signed(image, repository=repository)
    handled = agent(tmp_path, deployments, published, TEMPLATED).handle(record, threading.Event())
    assert handled.note == "blocked" and handled.outcome is not None and not handled.dead_letter
    assert deployments.calls == [], "the cluster is neither read nor touched"
    assert [r.topic for r in published] == ["deploy.events"], "the outcome only, no dead letter"
    event = outcome_of(published[0])
    assert event["type"] == "dev.cdeventsx.autodeploy-deployment.blocked.0.1.0"
    assert event["id"] == outcome_id(decision.decision_id, "blocked", variant="policy")
    text = event["data"]["subject"]["content"]["reason"]
    assert text.startswith("policy: ") and reason in text and text.endswith("decision refused, nothing deployed")


def test_the_same_decision_with_the_templates_image_deploys(tmp_path: Path) -> None:
    deployments, published = FakeDeployments(), list[Record]()
    _, record = signed(f"registry.example/shop:{COMMIT}")
    handled = agent(tmp_path, deployments, published, TEMPLATED).handle(record, threading.Event())
    assert handled.note == "deployed"
    assert "set_image" in deployments.calls and deployments.view.image == f"registry.example/shop:{COMMIT}"


def test_a_refused_decision_does_not_supersede_an_allowed_one(tmp_path: Path) -> None:
    """Queued after an allowed decision, a refused one must not make it look superseded (skipped)."""
    from streams.deploy import pending  # noqa: PLC0415 - only here

    deployments, published = FakeDeployments(), list[Record]()
    the_agent = agent(tmp_path, deployments, published, TEMPLATED)
    _, good = signed(f"registry.example/shop:{COMMIT}")
    _, bad = signed("registry.example/shop:latest")
    events = [the_agent._decode(good), the_agent._decode(bad)]
    assert pending.newer_ready(events, 0) is None


def test_a_decision_waiting_out_a_freeze_is_held_against_the_policy_again(tmp_path: Path) -> None:
    """One read back from a Deployment's waiting annotation (which whoever may annotate it could have written)."""
    from streams.deploy.jobs import Job  # noqa: PLC0415 - only here

    deployments, published = FakeDeployments(), list[Record]()
    the_agent = agent(tmp_path, deployments, published, TEMPLATED)
    forged = replace(GOOD, image="registry.example/shop:latest")
    handled = the_agent._rollouts.deploy(Job(forged, TEMPLATED, None, None, None, {}))
    assert handled.note == "blocked" and deployments.calls == []
    assert (
        "policy: image registry.example/shop:latest" in outcome_of(published[0])["data"]["subject"]["content"]["reason"]
    )


# -- autodeploy unblock signs what it publishes ---------------------------------------------------------------------


def test_unblock_publishes_a_signed_unblocked_event_that_verifies(tmp_path: Path) -> None:
    deployments, published = FakeDeployments(), list[Record]()
    notes = {d.CIRCUIT_OPEN: "evt-open", d.FAILED_ROLLOUTS: "3", d.CHAIN_ID: "chain-open"}
    deployments.view = replace(deployments.view, annotations=notes)
    fake: Any = deployments
    cleared = unblock(TEMPLATED, fake, published.append, "deploy.events", signer=TEST_KEY)
    assert cleared is not None and cleared.failures == 3
    (record,) = published
    raw = RawRecord(record.topic, 0, 0, record.key, record.value, list(record.headers), datetime.now(UTC))
    verified = DirectoryVerifier(write_directory(tmp_path / "directory.yaml")).verify_record(raw, datetime.now(UTC))
    assert verified is not None and verified.key_id == TEST_KEY.key_id
    assert outcome_of(record)["type"] == "dev.cdeventsx.autodeploy-deployment.unblocked.0.1.0"


def test_autodeploy_unblock_needs_the_signing_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AUTODEPLOY_SIGNING_KEY", "AUTODEPLOY_INSECURE_NO_SIGNATURES"):
        monkeypatch.delenv(name, raising=False)
    calls: list[str] = []
    monkeypatch.setattr("streams.deploy.unblock.unblock", lambda *a, **k: calls.append("unblock"))
    assert main(["unblock", "shop"]) == 1
    assert "no signing key: set AUTODEPLOY_SIGNING_KEY" in capsys.readouterr().err
    assert calls == [], "refused before anything is cleared or published"


def test_autodeploy_unblock_signs_with_the_configured_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    main(["keys", "generate", "agent-1", "--out", str(tmp_path / "agent-1.pem")])
    monkeypatch.setenv("AUTODEPLOY_SIGNING_KEY", str(tmp_path / "agent-1.pem"))
    monkeypatch.delenv("AUTODEPLOY_SIGNING_KEY_ID", raising=False)
    signer = signer_of(KeySettings.from_env())
    assert signer is not None and signer.key_id == "agent-1"  # the file's stem
