"""CloudEvents laid out as structured-mode Kafka records, as the SDK's Kafka binding (`cloudevents.core`) would."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.bindings.common import CONTENT_TYPE_HEADER
from cloudevents.core.formats.json import JSONFormat

from streams.adapters.kafka_producer import Record


class RawJsonDataFormat(JSONFormat):
    """The JSON event format, except that JSON `data` given as bytes is written verbatim rather than base64.

    A provider's payload then reaches Kafka byte for byte as it was signed, and is not parsed and re-encoded on the
    way (the one JSON encode of a large payload was the webhook server's biggest cost); the worker and the deploy
    agent hand over their CDEvents already encoded for the same reason.
    """

    def write(self, event: BaseCloudEvent, extensions: Mapping[str, str] | None = None) -> bytes:
        """The event, with `extensions` added to its attributes (a signature's `dssematerial`) when given."""
        data = event.get_data()
        if not isinstance(data, bytes | bytearray) or not _json_media(event.get_datacontenttype()):
            if extensions:  # the SDK writes only what an event holds: one more event, with them
                event = type(event)({**event.get_attributes(), **extensions}, data)
            return super().write(event)
        attributes = {**event.get_attributes(), **extensions} if extensions else event.get_attributes()
        head = orjson.dumps(attributes, option=orjson.OPT_UTC_Z)
        return b"".join((head[:-1], b',"data":', data, b"}"))


def _json_media(content_type: str | None) -> bool:
    return content_type is not None and JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type) is not None


STRUCTURED_JSON = RawJsonDataFormat()
STRUCTURED_HEADERS = ((CONTENT_TYPE_HEADER, STRUCTURED_JSON.get_content_type().encode()),)


def structured_record(event: BaseCloudEvent, topic: str, extensions: Mapping[str, str] | None = None) -> Record:
    """Structured JSON mode, keyed by the `partitionkey` extension: what the SDK's `kafka.to_structured` writes with
    its default key mapper, without the intermediate message; `extensions` are written as the event's own."""
    key = event.get_extension(kafka_binding.PARTITIONKEY_ATTR)
    if key is not None and not isinstance(key, bytes):
        key = str(key).encode()
    return Record(topic, key, STRUCTURED_JSON.write(event, extensions), STRUCTURED_HEADERS)
