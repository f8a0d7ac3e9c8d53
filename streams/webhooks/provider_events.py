"""Provider deliveries (GitHub, CircleCI) as CloudEvents built with the SDK (`cloudevents.core`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloudevents.core.exceptions import CloudEventValidationError, InvalidAttributeValueError
from cloudevents.core.v1.event import CloudEvent

from streams.domain.webhook_mapping import EnvelopeAttributes


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
