"""Malformed and forged requests, generated: never a 500, and nothing published without a valid signature."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import catalog
from streams.config import REPO_ROOT, WebhookSettings
from streams.domain.signatures import circleci_signature, github_signature
from streams.webhooks.server import WebhookServer
from tests.support.webhooks import CIRCLECI_SECRET, EVENTS_TOKEN, GITHUB_SECRET, AppClient, MemoryPublisher

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
SETTINGS = WebhookSettings(
    github_secrets=(GITHUB_SECRET,),
    circleci_secrets=(CIRCLECI_SECRET,),
    events_tokens=(EVENTS_TOKEN,),
    allow_unsigned=frozenset(),
    publish_timeout_s=1.0,
    max_body_bytes=64 * 1024,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
known_keys = st.sampled_from(
    [
        "id",
        "type",
        "repository",
        "ref",
        "action",
        "pipeline",
        "project",
        "workflow",
        "specversion",
        "source",
        "data",
        "partitionkey",
        "happened_at",
        "customData",
    ]
)
objects = st.dictionaries(known_keys | st.text(max_size=8), json_values, max_size=8)
bodies = st.one_of(
    st.binary(max_size=300),
    objects.map(lambda o: json.dumps(o).encode()),
    st.lists(objects, max_size=3).map(lambda o: json.dumps(o).encode()),
    st.text(max_size=100).map(lambda t: ("payload=" + t).encode()),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "text/plain",
        "",
        "application/json; charset=utf-8",
        "multipart/form-data",
    ]
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


event_names = st.sampled_from(["push", "pull_request", "workflow_run", "check_run", "status", "package", "create"])
ci_types = st.sampled_from(
    [
        "com.circleci.workflow-completed",
        "dev.cdevents.pipelinerun.finished.0.3.0",
        "dev.cdevents.artifact.published.0.3.0",
        "com.github.push",
    ]
)


@st.composite
def plausible(draw: st.DrawFn, path: str) -> tuple[bytes, dict[str, str]]:
    """Well-formed envelopes around odd payloads: these get past parsing into the mapping and the publisher."""
    payload = draw(objects)
    if path == "/webhooks/github":
        headers = {"X-GitHub-Event": draw(event_names | header_text), "X-GitHub-Delivery": draw(header_text) or "d"}
        return json.dumps(payload).encode(), {**headers, "Content-Type": "application/json"}
    if path == "/webhooks/circleci":
        payload.update(
            id=draw(st.text(min_size=1, max_size=20)),
            type=draw(st.sampled_from(["workflow-completed", "job-completed", "ping"]) | st.text(max_size=9)),
        )
        return json.dumps(payload).encode(), {"Content-Type": "application/json"}
    event = {
        "specversion": "1.0",
        "id": draw(st.text(min_size=1, max_size=9)),
        "source": "/ci",
        "type": draw(ci_types),
        "partitionkey": draw(st.sampled_from(["github.com/a/b", "", "x"])),
        "data": payload,
    }
    return json.dumps(event).encode(), {"Content-Type": "application/cloudevents+json"}


def _sign(path: str, body: bytes) -> dict[str, str]:
    if path == "/webhooks/github":
        return {"X-Hub-Signature-256": github_signature(GITHUB_SECRET, body)}
    if path == "/webhooks/circleci":
        return {"circleci-signature": circleci_signature(CIRCLECI_SECRET, body)}
    return {"Authorization": f"Bearer {EVENTS_TOKEN.decode()}"}


def _forge(path: str, body: bytes, junk: str) -> dict[str, str]:
    """Signed with another secret, or a garbled header, or none."""
    if path == "/webhooks/github":
        return {"X-Hub-Signature-256": junk or github_signature(b"not-the-secret", body)}
    if path == "/webhooks/circleci":
        return {"circleci-signature": junk or circleci_signature(b"not-the-secret", body)}
    return {"Authorization": f"Bearer {junk}"} if junk else {}


def test_generated_requests_never_get_a_500_and_forged_ones_publish_nothing() -> None:
    publisher = MemoryPublisher()
    client = AppClient(WebhookServer(SETTINGS, CAT, publisher).app())
    seen: dict[int, int] = {}

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        path=st.sampled_from(["/webhooks/github", "/webhooks/circleci", "/events"]),
        body=bodies,
        content_type=content_types,
        signed=st.booleans(),
        junk=header_text,
        extra=st.dictionaries(
            st.sampled_from(
                [
                    "X-GitHub-Event",
                    "X-GitHub-Delivery",
                    "ce-id",
                    "ce-type",
                    "ce-source",
                    "ce-specversion",
                    "ce-partitionkey",
                    "ce-time",
                    "circleci-event-type",
                ]
            ),
            header_text,
            max_size=5,
        ),
        data=st.data(),
    )
    def one(
        path: str, body: bytes, content_type: str, signed: bool, junk: str, extra: dict[str, str], data: st.DataObject
    ) -> None:
        headers: dict[str, Any] = {**extra, "Content-Type": content_type}
        if data.draw(st.booleans()):
            body, envelope = data.draw(plausible(path))
            headers.update(envelope)
        headers.update(_sign(path, body) if signed else _forge(path, body, junk))
        before = len(publisher.records)
        status, _, _ = client.request("POST", path, body, headers)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, (path, headers, body)
        if not signed:
            assert status == 401
            assert len(publisher.records) == before

    try:
        one()
    finally:
        client.close()
    # The generator must reach past the signature check, or the test proves little.
    assert seen.get(401, 0) > 0 and seen.get(400, 0) > 0 and seen.get(415, 0) > 0 and seen.get(200, 0) > 0, seen
