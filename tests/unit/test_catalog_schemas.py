"""The catalog's data schemas accept what providers really send: otherwise the worker would dead-letter them."""

from __future__ import annotations

import json

import pytest

from streams import catalog
from streams.catalog import schemas
from streams.config import REPO_ROOT
from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.webhook_mapping import github_attributes
from tests.support.fixtures import FIXTURES
from tests.support.webhooks import circleci_corpus, github_corpus

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")


@pytest.mark.parametrize(("event", "path"), github_corpus(), ids=lambda v: getattr(v, "name", v))
def test_every_github_corpus_payload_fits_its_declared_schema(event: str, path: object) -> None:
    payload = json.loads(path.read_text())  # type: ignore[attr-defined]
    ce_type = github_attributes(event, payload).type
    declared = CAT.topic("github.events").event_type(ce_type)
    assert declared is not None, ce_type
    assert schemas.data_errors(declared, payload) == []


def test_every_circleci_corpus_payload_fits_its_declared_schema() -> None:
    checked = 0
    for path in circleci_corpus():
        try:
            payload = json.loads(path.read_text())
        except ValueError:
            continue
        declared = CAT.topic("ci.events").event_type(circleci_attributes(payload).type)
        if declared is None:  # ping: answered by the server, never published
            continue
        assert schemas.data_errors(declared, payload) == [], path.name
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    ("name", "ce_type"),
    [
        ("pipelinerun_finished", "dev.cdevents.pipelinerun.finished.0.3.0"),
        ("artifact_published", "dev.cdevents.artifact.published.0.3.0"),
        ("service_deployed", "dev.cdevents.service.deployed.0.3.0"),
        ("service_upgraded", "dev.cdevents.service.upgraded.0.3.0"),
        ("service_rolledback", "dev.cdevents.service.rolledback.0.3.0"),
    ],
)
def test_cdevents_conformance_examples_fit_and_a_broken_one_does_not(name: str, ce_type: str) -> None:
    example = json.loads((FIXTURES / "cdevents" / "spec-v0.5.1" / "conformance" / f"{name}.json").read_text())
    topic = (
        "ci.events" if ce_type.startswith(("dev.cdevents.pipelinerun", "dev.cdevents.artifact")) else "deploy.events"
    )
    declared = CAT.topic(topic).event_type(ce_type)
    assert declared is not None
    assert schemas.data_errors(declared, example) == []
    broken = {**example, "subject": {**example["subject"], "id": 7}}
    assert any("subject/id" in e for e in schemas.data_errors(declared, broken))
