"""`POST /events`: CloudEvents over HTTP (binary, structured and batched modes) from other producers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as http_binding
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from streams.catalog import Catalog, schemas

BATCH = "application/cloudevents-batch+json"
STRUCTURED = "application/cloudevents+json"
MAX_BATCH = 1000
JSON = JSONFormat()


class InvalidEvents(ValueError):
    """The request holds no valid CloudEvent, or one of its events breaks the contract."""


def parse(headers: Mapping[str, str], body: bytes) -> list[BaseCloudEvent]:
    """Every event in the request; binary mode when any `ce-` header is present (the HTTP binding's rule)."""
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    try:
        if content_type == BATCH:
            items = json.loads(body)
            if not isinstance(items, list) or not items:
                raise InvalidEvents("a batch must be a non-empty JSON array of CloudEvents")
            if len(items) > MAX_BATCH:
                raise InvalidEvents(f"a batch holds at most {MAX_BATCH} events, got {len(items)}")
            return [_structured(item, i) for i, item in enumerate(items)]
        message = http_binding.HTTPMessage(headers=dict(headers), body=body)
        return [http_binding.from_http(message, JSON, CloudEvent)]
    except InvalidEvents:
        raise
    except Exception as e:  # the SDK raises validation, JSON, date and type errors alike
        raise InvalidEvents(f"not a valid CloudEvent: {e}") from e


def _structured(item: Any, index: int) -> BaseCloudEvent:
    if not isinstance(item, dict):
        raise InvalidEvents(f"batch[{index}] is not a JSON object")
    try:
        return JSON.read(CloudEvent, json.dumps(item))
    except Exception as e:  # see parse()
        raise InvalidEvents(f"batch[{index}] is not a valid CloudEvent: {e}") from e


def checked(event: BaseCloudEvent, catalog: Catalog, topic: str) -> BaseCloudEvent:
    """Only types the catalog declares for `topic`, with `data` that fits their schema and a repository key."""
    spec = catalog.topic(topic)
    declared = spec.event_type(event.get_type())
    if declared is None or declared.type.endswith("*"):
        known = ", ".join(e.type for e in spec.events if not e.type.endswith("*"))
        raise InvalidEvents(f"event {event.get_id()}: type {event.get_type()!r} is not declared for {topic} ({known})")
    errors = schemas.data_errors(declared, event.get_data())
    if errors:
        raise InvalidEvents(f"event {event.get_id()}: data does not match {declared.type}: " + "; ".join(errors))
    key = partition_key(event)
    if key is None:
        raise InvalidEvents(
            f"event {event.get_id()}: no repository to key it by: set the `partitionkey` extension (or "
            "customData.repository in a CDEvent) to github.com/<owner>/<name>"
        )
    attributes = {**event.get_attributes(), "partitionkey": key}
    return CloudEvent(attributes, event.get_data())


def partition_key(event: BaseCloudEvent) -> str | None:
    key = event.get_extension("partitionkey")
    if not isinstance(key, str) or not key:
        data = event.get_data()
        custom = data.get("customData") if isinstance(data, dict) else None
        key = custom.get("repository") if isinstance(custom, dict) else None
    if not isinstance(key, str) or key.count("/") != 2:
        return None
    return key.strip().lower()
