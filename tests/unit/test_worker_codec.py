"""The worker's edges without Faust: records in (both CloudEvents modes, and what is refused), decisions out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from streams import catalog
from streams.catalog import schemas
from streams.config import REPO_ROOT
from streams.domain.facts import EventRef
from streams.domain.readiness import Decision
from streams.events.decoding import RawRecord, Undecodable, decode
from streams.worker.output import TYPES, cdevent, readiness_record
from tests.support.fixtures import FIXTURES

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
CI = CAT.topic("ci.events")


def _record(value: bytes, headers: list[tuple[str, bytes]], topic: str = "ci.events") -> RawRecord:
    return RawRecord(topic, 0, 7, b"github.com/acme/shop", value, tuple(headers))


def test_structured_and_binary_mode_decode_to_the_same_event() -> None:
    sample = FIXTURES / "circleci" / "docs" / "workflow-completed.github-oauth-bitbucket-cloud.docs.json"
    workflow = json.loads(sample.read_text())
    attributes = {
        "specversion": "1.0",
        "id": "w-1",
        "source": "https://circleci.com/api/v2/project/gh/acme/shop",
        "type": "com.circleci.workflow-completed",
        "time": "2026-01-01T00:00:00Z",
    }
    structured = _record(
        json.dumps({**attributes, "datacontenttype": "application/json", "data": workflow}).encode(),
        [("content-type", b"application/cloudevents+json")],
    )
    binary = _record(
        json.dumps(workflow).encode(),
        [("content-type", b"application/json"), *((f"ce_{k}", v.encode()) for k, v in attributes.items())],
    )
    one, other = decode(structured, CI), decode(binary, CI)
    assert (one.get_id(), one.get_type(), one.get_data()) == (other.get_id(), other.get_type(), other.get_data())
    assert one.get_time() == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty record value"),
        (b"{", "not a CloudEvent"),
        (
            json.dumps({"specversion": "1.0", "id": "x", "source": "/s", "type": "com.example.x"}).encode(),
            "not declared",
        ),
        (json.dumps({"specversion": "1.0", "id": "x", "type": "com.circleci.workflow-completed"}).encode(), "source"),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": "x",
                    "source": "/s",
                    "type": "com.circleci.workflow-completed",
                    "data": {"id": "x"},
                }
            ).encode(),
            "does not match its schema",
        ),
    ],
)
def test_unusable_records_say_why(value: bytes, reason: str) -> None:
    with pytest.raises(Undecodable, match=reason):
        decode(_record(value, [("content-type", b"application/cloudevents+json")]), CI)


@pytest.mark.parametrize("kind", ["ready", "superseded", "expired"])
def test_decisions_are_schema_valid_cdevents_keyed_by_service(kind: str) -> None:
    ref = EventRef(
        "https://api.github.com/repos/acme/shop",
        "d-1",
        "com.github.push",
        datetime(2026, 1, 1, tzinfo=UTC),
        "github.events",
        3,
        42,
        received=datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC),
    )
    decision = Decision(
        kind=kind,
        service="shop",
        repository="github.com/acme/shop",
        branch="main",  # type: ignore[arg-type]
        commit="b" * 40,
        decision_id="dec-1",
        chain_id="chain-1",
        facts=(ref,),
        image="ghcr.io/acme/shop:" + "b" * 40 if kind == "ready" else None,
        superseded_by="c" * 40 if kind == "superseded" else None,
        missing=("check circleci:build-test (latest: none)",) if kind == "expired" else (),
        decided_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    data = cdevent(decision, "production")
    declared = CAT.topic("deploy.readiness").event_type(TYPES[kind])
    assert declared is not None
    assert schemas.data_errors(declared, data) == []
    assert data["subject"]["content"]["facts"][0]["received"] == "2026-01-01T00:00:02Z"  # the agent's latency start
    assert data["context"]["links"] == [{"linkType": "RELATION", "linkKind": "TRIGGER", "target": {"contextId": "d-1"}}]
    record = readiness_record(decision, "production", "deploy.readiness")
    assert record.key == b"shop"
    event = json.loads(record.value)
    assert (event["id"], event["type"], event["subject"]) == ("dec-1", TYPES[kind], f"shop/{'b' * 40}")
