"""A record Kafka will never take says whether it was too large, from the Kafka error code (not its wording)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from confluent_kafka import KafkaError

from streams.adapters.kafka_producer import (
    Acknowledged,
    DurableProducer,
    PublishRejected,
    PublishUnavailable,
    Record,
    _error,
)
from streams.local.processes import free_port
from streams.webhooks.server import WebhookServer
from tests.support.webhooks import AppClient, github_delivery
from tests.unit.test_webhook_server import CAT, PUSH, settings


def test_a_record_above_message_max_bytes_is_rejected_as_too_large() -> None:
    # librdkafka refuses it in produce() itself, before any broker is asked: nothing listens on the port.
    producer = DurableProducer(f"127.0.0.1:{free_port()}", {"message.max.bytes": 1000}, delivery_timeout_s=0.5)

    async def publish() -> None:
        await producer.publish(Record("t", b"k", b"x" * 5000), timeout=0.5)

    with pytest.raises(PublishRejected) as raised:
        asyncio.run(publish())
    assert raised.value.too_large
    assert "MSG_SIZE_TOO_LARGE" in str(raised.value)
    producer.close(0)


@pytest.mark.parametrize(
    ("code", "too_large"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, True),
        (KafkaError.RECORD_LIST_TOO_LARGE, True),
        (KafkaError.UNKNOWN_TOPIC_OR_PART, False),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
        (KafkaError.INVALID_RECORD, False),
    ],
)
def test_permanent_errors_carry_whether_the_record_was_too_large(code: int, too_large: bool) -> None:
    error = _error(KafkaError(code))
    assert isinstance(error, PublishRejected)
    assert error.too_large is too_large


def test_temporary_errors_are_unavailable() -> None:
    assert isinstance(_error(KafkaError(KafkaError._MSG_TIMED_OUT)), PublishUnavailable)


@dataclass
class RefusingPublisher:
    error: PublishRejected

    async def publish(self, record: Record, timeout: float) -> Acknowledged:
        raise self.error

    def reachable(self, timeout: float) -> bool:
        return True


@pytest.mark.parametrize(
    ("error", "status"),
    [
        # The status follows the field, whatever the message says (a topic name may well contain "LARGE").
        (PublishRejected("broker says no", too_large=True), 413),
        (PublishRejected("UNKNOWN_TOPIC_OR_PART: topic LARGE-events", too_large=False), 503),
    ],
)
def test_the_webhook_server_answers_413_only_for_a_record_too_large(error: PublishRejected, status: int) -> None:
    client = AppClient(WebhookServer(settings(), CAT, RefusingPublisher(error)).app())
    try:
        answered, _, _ = client.post(github_delivery("push", PUSH))
    finally:
        client.close()
    assert answered == status
