"""CloudEvents built with the SDK (`cloudevents.core`) and laid out as structured-mode Kafka records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.bindings.common import CONTENT_TYPE_HEADER
from cloudevents.core.exceptions import CloudEventValidationError, InvalidAttributeValueError
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


class ProviderEvent(CloudEvent):
    """A CloudEvent whose attributes come from the webhook mappings, which only build valid ones (non-empty strings,
    an aware `time`, one lowercase extension): the SDK's general validation (error maps, a regex per extension) is
    replaced by a check of what the mappings cannot vouch for. Tests hold every corpus delivery to the SDK's rules."""

    @staticmethod
    def _validate_attribute(attributes: dict[str, Any]) -> None:
        for name in ("id", "source", "type"):
            if not isinstance(attributes.get(name), str) or not attributes[name]:
                raise CloudEventValidationError(
                    {name: [InvalidAttributeValueError(name, "must be a non-empty string")]}
                )


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
    return ProviderEvent(attrs, payload)


_STRUCTURED_HEADERS = ((CONTENT_TYPE_HEADER, PROVIDER_JSON.get_content_type().encode()),)


def structured_record(event: BaseCloudEvent, topic: str) -> Record:
    """Structured JSON mode, keyed by the `partitionkey` extension: what the SDK's `kafka.to_structured` writes with
    its default key mapper, without the intermediate message."""
    key = event.get_extension(kafka_binding.PARTITIONKEY_ATTR)
    if key is not None and not isinstance(key, bytes):
        key = str(key).encode()
    return Record(topic, key, PROVIDER_JSON.write(event), _STRUCTURED_HEADERS)


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
