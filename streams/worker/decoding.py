"""Kafka records to CloudEvents (structured or binary mode), checked against the catalog; or a reason why not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from streams.catalog import TopicSpec, schemas

JSON = JSONFormat()


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
