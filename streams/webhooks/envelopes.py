"""CloudEvents built with the SDK (`cloudevents.core`) and laid out as structured-mode Kafka records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from streams.adapters.kafka_producer import Record
from streams.domain.webhook_mapping import EnvelopeAttributes


class ProviderPayloadFormat(JSONFormat):
    """The JSON event format, except that JSON `data` given as bytes is written verbatim rather than base64.

    The provider's payload then reaches Kafka byte for byte as it was signed, and is not parsed and re-encoded on the
    way (the one JSON encode of a large payload was the webhook server's biggest cost).
    """

    def write(self, event: BaseCloudEvent) -> bytes:
        data = event.get_data()
        if not isinstance(data, bytes | bytearray) or not _json_media(event.get_datacontenttype()):
            return super().write(event)
        head = orjson.dumps(event.get_attributes(), option=orjson.OPT_UTC_Z)
        return b"".join((head[:-1], b',"data":', data, b"}"))


def _json_media(content_type: str | None) -> bool:
    return content_type is not None and JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type) is not None


JSON = JSONFormat()
PROVIDER_JSON = ProviderPayloadFormat()


def provider_event(attributes: EnvelopeAttributes, event_id: str, payload: bytes, received: datetime) -> CloudEvent:
    """The provider's payload (valid UTF-8 JSON bytes) as `data`, its delivery id as `id`: a redelivery is the same
    `source` + `id`."""
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": attributes.source,
        "type": attributes.type,
        "time": attributes.time or received,
        "datacontenttype": "application/json",
        "partitionkey": attributes.partitionkey,
    }
    if attributes.subject:
        attrs["subject"] = attributes.subject
    return CloudEvent(attrs, payload)


def structured_record(event: BaseCloudEvent, topic: str) -> Record:
    """Structured JSON mode, keyed by the `partitionkey` extension (the SDK's key mapper)."""
    message = kafka_binding.to_structured(event, PROVIDER_JSON)
    key = message.key.encode() if isinstance(message.key, str) else message.key
    return Record(topic, key, message.value, tuple(message.headers.items()))


KEPT_HTTP_HEADERS = ("content-", "x-github-", "circleci-event")


def deadletter_record(
    topic: str, body: bytes, key: bytes | None, *, reason: str, origin: str, headers: Mapping[str, str]
) -> Record:
    """The bytes as received, with why they could not go where they belong."""
    kept = [(f"http_{k.lower()}", v.encode()) for k, v in headers.items() if k.lower().startswith(KEPT_HTTP_HEADERS)]
    return Record(
        topic,
        key,
        body,
        (("deadletter_reason", reason.encode()), ("deadletter_origin", origin.encode()), *kept),
    )
