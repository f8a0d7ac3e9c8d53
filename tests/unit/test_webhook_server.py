"""The webhook server's HTTP contract, with an in-memory publisher (the real broker is in tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from streams import catalog
from streams.config import REPO_ROOT, WebhookSettings
from streams.webhooks.server import WebhookServer
from tests.support.fixtures import FIXTURES
from tests.support.webhooks import (
    CIRCLECI_SECRET,
    EVENTS_TOKEN,
    GITHUB_SECRET,
    AppClient,
    MemoryPublisher,
    circleci_delivery,
    github_delivery,
)

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
PUSH = json.loads((FIXTURES / "github" / "push.with-new-branch.payload.json").read_text())
WORKFLOW = json.loads(
    (FIXTURES / "circleci" / "docs" / "workflow-completed.github-oauth-bitbucket-cloud.docs.json").read_text()
)


def settings(**overrides: object) -> WebhookSettings:
    values: dict[str, object] = {
        "github_secrets": (b"rotated-out", GITHUB_SECRET),
        "circleci_secrets": (CIRCLECI_SECRET,),
        "events_tokens": (EVENTS_TOKEN,),
        "allow_unsigned": frozenset(),
        "publish_timeout_s": 1.0,
        "max_body_bytes": 25 * 1024 * 1024,
    }
    values.update(overrides)
    return WebhookSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def client(publisher: MemoryPublisher) -> Iterator[AppClient]:
    app_client = AppClient(WebhookServer(settings(), CAT, publisher).app())
    yield app_client
    app_client.close()


def test_a_signed_push_is_stored_as_a_structured_cloudevent(client: AppClient, publisher: MemoryPublisher) -> None:
    status, body, _ = client.post(github_delivery("push", PUSH, delivery="d-1"))
    assert status == 200, body
    assert body["stored"][0]["id"] == "d-1"
    [record] = publisher.records
    assert record.topic == "github.events"
    assert record.key == b"github.com/codertocat/hello-world"
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    event = json.loads(record.value)
    assert (event["id"], event["type"], event["specversion"]) == ("d-1", "com.github.push", "1.0")
    # push payloads carry the HTML URL in repository.url; the source is the API URL every other event uses
    assert event["source"] == "https://api.github.com/repos/Codertocat/Hello-World"
    assert event["subject"] == PUSH["ref"]
    assert event["partitionkey"] == "github.com/codertocat/hello-world"
    assert event["data"] == PUSH


def test_form_encoded_github_deliveries_are_accepted(client: AppClient, publisher: MemoryPublisher) -> None:
    raw = urlencode({"payload": json.dumps(PUSH)}).encode()
    delivery = github_delivery("push", raw)
    headers = {**delivery.headers, "Content-Type": "application/x-www-form-urlencoded"}
    status, body, _ = client.request("POST", delivery.path, delivery.body, headers)
    assert status == 200, body
    assert json.loads(publisher.records[0].value)["data"] == PUSH


def test_ping_is_answered_and_not_published(client: AppClient, publisher: MemoryPublisher) -> None:
    status, body, _ = client.post(github_delivery("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}))
    assert (status, body["zen"]) == (200, "Keep it logically awesome.")
    status, _, _ = client.post(circleci_delivery({"id": "p-1", "type": "ping"}))
    assert status == 200
    assert publisher.records == []


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (lambda h, b: ({**h, "X-Hub-Signature-256": "sha256=" + "0" * 64}, b), 401, "X-Hub-Signature-256"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Hub-Signature-256"}, b), 401, "missing or wrong"),
        (lambda h, b: (h, b + b" "), 401, "missing or wrong"),
        (lambda h, b: ({**h, "Content-Type": "text/plain"}, b), 415, "application/json"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-GitHub-Delivery"}, b), 400, "X-GitHub-Delivery"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-GitHub-Event"}, b), 400, "X-GitHub-Event"),
    ],
)
def test_bad_github_requests_get_clear_errors_and_publish_nothing(
    client: AppClient, publisher: MemoryPublisher, mutate: object, status: int, message: str
) -> None:
    delivery = github_delivery("push", PUSH)
    headers, body = mutate(dict(delivery.headers), delivery.body)  # type: ignore[operator]
    got, answer, _ = client.request("POST", delivery.path, body, headers)
    assert got == status
    assert message in answer["error"]
    assert publisher.records == []


def test_malformed_json_with_a_valid_signature_is_400(client: AppClient, publisher: MemoryPublisher) -> None:
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b""):
        status, answer, _ = client.post(github_delivery("push", raw))
        assert status == 400, raw
        assert "JSON" in answer["error"]
    assert publisher.records == []


def test_bodies_above_the_limit_are_413(publisher: MemoryPublisher) -> None:
    app_client = AppClient(WebhookServer(settings(max_body_bytes=1024), CAT, publisher).app())
    try:
        status, answer, _ = app_client.post(github_delivery("push", {"pad": "x" * 2048}))
        assert status == 413 and "1024" in answer["error"]
    finally:
        app_client.close()
    assert publisher.records == []


def test_broker_down_is_503_with_retry_after(client: AppClient, publisher: MemoryPublisher) -> None:
    publisher.down = True
    status, answer, headers = client.post(github_delivery("push", PUSH))
    assert status == 503 and headers["Retry-After"] == "5"
    assert "retry later" in answer["error"]
    status, _, _ = client.request("GET", "/readyz")
    assert status == 503
    publisher.down = False
    assert client.request("GET", "/readyz")[0] in (200, 503)  # cached for a second: either is honest
    assert client.request("GET", "/healthz")[0] == 200


def test_circleci_workflow_is_keyed_by_repository(client: AppClient, publisher: MemoryPublisher) -> None:
    status, answer, _ = client.post(circleci_delivery(WORKFLOW))
    assert status == 200, answer
    [record] = publisher.records
    event = json.loads(record.value)
    assert record.topic == "ci.events"
    assert (event["id"], event["type"]) == (WORKFLOW["id"], "com.circleci.workflow-completed")
    assert record.key == b"github.com/circleci/webhook-service"
    assert event["subject"] == "build-test-deploy"
    assert event["data"] == WORKFLOW


def test_circleci_types_the_contract_does_not_know_are_kept_in_the_deadletter_topic(
    client: AppClient, publisher: MemoryPublisher
) -> None:
    status, answer, _ = client.post(circleci_delivery({**WORKFLOW, "type": "pipeline-started"}))
    assert (status, answer["stored"]) == (200, "deadletter")
    [record] = publisher.records
    assert record.topic == "autodeploy.deadletter"
    assert record.key == b"github.com/circleci/webhook-service"
    assert json.loads(record.value) == {**WORKFLOW, "type": "pipeline-started"}, "the body as received"
    headers = dict(record.headers)
    assert headers["deadletter_reason"] == b"undeclared event type com.circleci.pipeline-started"
    assert headers["deadletter_origin"] == b"webhooks"
    assert headers["deadletter_endpoint"] == b"/webhooks/circleci"
    assert headers["http_content-type"] == b"application/json"
    assert headers["http_circleci-event-type"] == b"pipeline-started"
    assert "http_circleci-signature" not in headers, "only headers that describe the body are kept"
    assert not {"deadletter_topic", "deadletter_partition", "deadletter_offset"} & headers.keys(), "not read from Kafka"


def test_circleci_bad_signature_or_missing_id(client: AppClient, publisher: MemoryPublisher) -> None:
    assert client.post(circleci_delivery(WORKFLOW, secret=b"wrong"))[0] == 401
    assert client.post(circleci_delivery({k: v for k, v in WORKFLOW.items() if k != "id"}))[0] == 400
    assert publisher.records == []


def test_endpoints_without_a_secret_are_not_served_unless_unsigned_is_allowed(publisher: MemoryPublisher) -> None:
    closed = AppClient(WebhookServer(settings(github_secrets=()), CAT, publisher).app())
    status, answer, _ = closed.post(github_delivery("push", PUSH))
    closed.close()
    assert status == 404 and "GITHUB_WEBHOOK_SECRETS" in answer["error"]
    opened = AppClient(
        WebhookServer(settings(github_secrets=(), allow_unsigned=frozenset({"github"})), CAT, publisher).app()
    )
    unsigned = github_delivery("push", PUSH)
    headers = {k: v for k, v in unsigned.headers.items() if k != "X-Hub-Signature-256"}
    status, _, _ = opened.request("POST", unsigned.path, unsigned.body, headers)
    opened.close()
    assert status == 200 and len(publisher.records) == 1


def test_metrics_count_received_and_rejected(client: AppClient) -> None:
    client.post(github_delivery("push", PUSH))
    client.post(github_delivery("push", PUSH, secret=b"forged"))
    status, text, _ = client.request("GET", "/metrics")
    assert status == 200
    assert 'autodeploy_webhooks_received_total{endpoint="github",type="com.github.push"} 1.0' in text
    assert 'autodeploy_webhooks_rejected_total{endpoint="github",reason="signature"} 1.0' in text
    assert "autodeploy_webhook_durable_write_seconds_bucket" in text


def test_secrets_never_appear_in_settings_repr() -> None:
    assert GITHUB_SECRET.decode() not in repr(settings())
