"""The log reader asks again while the broker answers with a retriable error (a topic just created has no leader
yet: NOT_LEADER_FOR_PARTITION), and gives up at once on any other error or at its deadline."""

from __future__ import annotations

import contextlib

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.adapters.kafka_reader import _retried


def failing(times: int, retriable: bool) -> list[int]:
    calls: list[int] = []

    def ask() -> int:
        calls.append(1)
        if len(calls) <= times:
            raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION, retriable=retriable))
        return 7

    with contextlib.suppress(KafkaException):
        assert _retried(ask, timeout_s=5) == 7
    return calls


def test_a_retriable_error_is_asked_again_until_it_answers() -> None:
    assert len(failing(2, retriable=True)) == 3


def test_another_error_is_raised_at_once() -> None:
    assert len(failing(1, retriable=False)) == 1


def test_a_retriable_error_past_the_deadline_is_raised() -> None:
    def ask() -> int:
        raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION, retriable=True))

    with pytest.raises(KafkaException):
        _retried(ask, timeout_s=0.3)
