"""Envelopes built for speed are the ones the cloudevents SDK would build: same validation outcome, same record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent

from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.webhook_mapping import EnvelopeAttributes, github_attributes
from streams.events.encoding import STRUCTURED_JSON, structured_record
from streams.webhooks.provider_events import ProviderEvent, provider_event
from tests.support.webhooks import circleci_corpus, github_corpus

RECEIVED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _github(event: str, path: Path) -> tuple[EnvelopeAttributes, bytes]:
    body = path.read_bytes()
    return github_attributes(event, orjson.loads(body)), body


def sdk_checked(event: CloudEvent) -> dict[str, Any]:
    """The event's attributes as the SDK's own CloudEvent takes them: its constructor raises
    CloudEventValidationError on anything the spec forbids, which ProviderEvent does not check."""
    return CloudEvent(dict(event.get_attributes()), event.get_data()).get_attributes()


@pytest.mark.parametrize(("event", "path"), github_corpus(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_every_github_delivery_passes_the_sdks_own_validation(event: str, path: Path) -> None:
    attributes, body = _github(event, path)
    cloud_event = provider_event(attributes, "delivery-1", body, RECEIVED)
    assert sdk_checked(cloud_event) == cloud_event.get_attributes()


@pytest.mark.parametrize("path", circleci_corpus(), ids=lambda p: p.name)
def test_every_circleci_delivery_passes_the_sdks_own_validation(path: Path) -> None:
    body = path.read_bytes()
    # Every delivery of the corpus maps: one that stops mapping is a failure here, not a skip.
    cloud_event = provider_event(circleci_attributes(orjson.loads(body)), "delivery-1", body, RECEIVED)
    assert sdk_checked(cloud_event) == cloud_event.get_attributes()


@pytest.mark.parametrize(
    "wrong",
    [
        {"time": datetime(2026, 11, 25, 12, 0)},  # no time zone
        {"BadName": "x"},  # extension names are lowercase letters and digits
        {"specversion": "0.3"},
    ],
    ids=["naive-time", "extension-name", "specversion"],
)
def test_what_the_light_check_lets_through_the_sdks_check_refuses(wrong: dict[str, Any]) -> None:
    """So the corpus tests above can fail: they hold the mappings to the SDK's rules, not to the light check's."""
    light = ProviderEvent({"specversion": "1.0", "id": "x", "source": "/s", "type": "t", **wrong})
    with pytest.raises(CloudEventValidationError):
        sdk_checked(light)


def test_the_light_check_still_refuses_an_empty_id() -> None:
    attributes, body = _github("push", github_corpus()[0][1])
    with pytest.raises(CloudEventValidationError):
        provider_event(attributes, "", body, RECEIVED)
    with pytest.raises(CloudEventValidationError):
        ProviderEvent({"specversion": "1.0", "id": "x", "source": "", "type": "t"})


@pytest.mark.parametrize(("event", "path"), github_corpus()[:12], ids=lambda v: v.name if isinstance(v, Path) else v)
def test_the_record_is_what_the_sdks_kafka_binding_writes(event: str, path: Path) -> None:
    attributes, body = _github(event, path)
    cloud_event = provider_event(attributes, "delivery-1", body, RECEIVED)
    message = kafka_binding.to_structured(cloud_event, STRUCTURED_JSON)
    record = structured_record(cloud_event, "github.events")
    assert record.key == message.key.encode()  # type: ignore[union-attr]
    assert record.value == message.value
    assert dict(record.headers) == message.headers
    assert orjson.loads(record.value)["data"] == orjson.loads(body)


def test_an_event_without_a_partition_key_has_no_record_key() -> None:
    cloud_event = CloudEvent({"specversion": "1.0", "id": "x", "source": "/s", "type": "t"}, {"a": 1})
    assert structured_record(cloud_event, "t").key is None
    assert kafka_binding.to_structured(cloud_event, STRUCTURED_JSON).key is None


@pytest.mark.parametrize("key", ["github.com/acme/shop", 42])
def test_keys_of_any_type_are_encoded_as_the_sdk_maps_them(key: object) -> None:
    attributes = {"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "partitionkey": key}
    cloud_event = CloudEvent(attributes, {"a": 1})
    expected = kafka_binding.to_structured(cloud_event, STRUCTURED_JSON).key
    assert structured_record(cloud_event, "t").key == (expected.encode() if isinstance(expected, str) else expected)


@pytest.mark.parametrize(
    ("content_type", "data"),
    [("application/json", b'{"a":  1}'), ("application/json", {"a": 1}), ("application/octet-stream", b"\x00\x01")],
    ids=["json bytes (written verbatim)", "json value (the SDK writes it)", "binary (base64)"],
)
def test_extensions_given_apart_are_written_as_the_events_own(content_type: str, data: Any) -> None:
    attributes = {
        "specversion": "1.0",
        "id": "x",
        "source": "/s",
        "type": "t",
        "time": RECEIVED,
        "datacontenttype": content_type,
    }
    holding = CloudEvent({**attributes, "dssematerial": "c2ln"}, data)
    assert structured_record(CloudEvent(attributes, data), "t", {"dssematerial": "c2ln"}) == structured_record(
        holding, "t"
    )
