"""Kafka records to CloudEvents (structured or binary mode), checked against the catalog; or a reason why not."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from streams.catalog import TopicSpec, schemas


class _OrjsonFormat(JSONFormat):
    """The SDK's JSON event format (v1.0) read with orjson and `datetime.fromisoformat`: the stdlib parser and
    dateutil were a fifth of the worker's decoding time. Other spec versions go to the SDK's own reader."""

    def read(self, event_factory: Callable[..., BaseCloudEvent] | None, data: str | bytes) -> BaseCloudEvent:
        attributes = orjson.loads(data)
        if not isinstance(attributes, dict) or attributes.get("specversion") != "1.0":
            return super().read(event_factory, data)
        time = attributes.get("time")
        if isinstance(time, str):
            try:
                attributes["time"] = datetime.fromisoformat(time)
            except ValueError:
                return super().read(event_factory, data)  # dateutil accepts more of ISO 8601, or says why not
        payload = attributes.pop("data", None)
        if payload is None and (encoded := attributes.pop("data_base64", None)) is not None:
            payload = base64.b64decode(encoded)
        return (event_factory or CloudEvent)(attributes, payload)


JSON = _OrjsonFormat()


class Undecodable(ValueError):
    """Not a CloudEvent this topic carries; the message says why (it becomes the dead letter reason) and `reason` is
    a short code for metrics (empty, not_cloudevent, undeclared_type, not_json, schema)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp: datetime | None = None  # when the record entered the log (LogAppendTime topics): verification's time


def decode(record: RawRecord, topic: TopicSpec) -> BaseCloudEvent:
    if not record.value:
        raise Undecodable("empty record value (a tombstone is not an event)", "empty")
    headers = {k: v for k, v in record.headers}
    message = kafka_binding.KafkaMessage(headers=headers, key=record.key, value=record.value)
    try:
        event = kafka_binding.from_kafka(message, JSON, CloudEvent)
    except Exception as e:  # the SDK raises JSON, validation, date and type errors alike
        raise Undecodable(f"not a CloudEvent: {type(e).__name__}: {e}", "not_cloudevent") from e
    declared = topic.event_type(event.get_type())
    if declared is None:
        raise Undecodable(f"event type {event.get_type()!r} is not declared for {topic.name}", "undeclared_type")
    data = event.get_data()
    if isinstance(data, bytes | bytearray) and declared.schema_path is not None:
        raise Undecodable(f"{event.get_type()}: data is not JSON", "not_json")
    errors = schemas.data_errors(declared, data)
    if errors:
        raise Undecodable(f"{event.get_type()}: data does not match its schema: " + "; ".join(errors), "schema")
    return event
