"""Dead letters carry one header scheme whichever process wrote them (topics/catalog.yaml, autodeploy.deadletter)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import yaml

from streams.config import REPO_ROOT
from streams.events.deadletters import (
    ENDPOINT,
    OFFSET,
    ORIGIN,
    PARTITION,
    REASON,
    TIME,
    TOPIC,
    HttpDelivery,
    Origin,
    deadletter_headers,
)
from streams.events.decoding import RawRecord

NOW = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)
RECORD = RawRecord("github.events", 4, 1207, b"github.com/acme/shop", b"{", (("content-type", b"application/json"),))


def test_a_kafka_record_keeps_its_headers_and_says_where_it_was_read() -> None:
    assert deadletter_headers("not a CloudEvent: bad JSON", "worker", RECORD, NOW) == (
        ("content-type", b"application/json"),
        ("deadletter_reason", b"not a CloudEvent: bad JSON"),
        ("deadletter_origin", b"worker"),
        ("deadletter_time", b"2026-11-25T12:00:30+00:00"),
        ("deadletter_topic", b"github.events"),
        ("deadletter_partition", b"4"),
        ("deadletter_offset", b"1207"),
    )


def test_an_http_delivery_keeps_the_headers_that_describe_its_body_and_names_its_endpoint() -> None:
    request = {
        "Content-Type": "application/json",
        "circleci-event-type": "pipeline-started",
        "circleci-signature": "v1=secret-derived",
        "X-GitHub-Delivery": "d-1",
        "Authorization": "Bearer t",
    }
    headers = deadletter_headers("undeclared event type", "webhooks", HttpDelivery("/webhooks/circleci", request), NOW)
    assert headers == (
        ("http_content-type", b"application/json"),
        ("http_circleci-event-type", b"pipeline-started"),
        ("http_x-github-delivery", b"d-1"),
        ("deadletter_reason", b"undeclared event type"),
        ("deadletter_origin", b"webhooks"),
        ("deadletter_time", b"2026-11-25T12:00:30+00:00"),
        ("deadletter_endpoint", b"/webhooks/circleci"),
    )


def test_every_dead_letter_says_why_who_and_when() -> None:
    for origin, read_from in (("worker", RECORD), ("deploy-agent", RECORD), ("webhooks", HttpDelivery("/x", {}))):
        names = [name for name, _ in deadletter_headers("why", origin, read_from)]
        assert {"deadletter_reason", "deadletter_origin", "deadletter_time"} <= set(names)
        stamped = dict(deadletter_headers("why", origin, read_from))["deadletter_time"]
        assert datetime.fromisoformat(stamped.decode()).tzinfo is not None, "an aware time, without `now` given"


def test_the_topic_catalog_documents_every_header_of_the_scheme() -> None:
    doc = yaml.safe_load((REPO_ROOT / "topics" / "catalog.yaml").read_text())
    [topic] = [t for t in doc["topics"] if t["name"] == "autodeploy.deadletter"]
    documented = {name for name in topic["headers"] if name.startswith("deadletter_")}
    assert documented == {REASON, ORIGIN, TIME, TOPIC, PARTITION, OFFSET, ENDPOINT}
    for origin in get_args(Origin):
        assert origin in topic["headers"][ORIGIN]
