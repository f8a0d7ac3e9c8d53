"""Offsets, end offsets and the oldest unconsumed record's timestamp, read from a real broker as the lag exporter
reads them (its own principal on the secured local broker: what topics/acls.yaml allows it must be enough)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streams.adapters.kafka_offsets import KafkaOffsets
from streams.domain.lag import Position
from streams.lag.monitor import LagMonitor
from tests.support.brokers import SelectedBroker
from tests.support.topics import apply_topics, delete_topics


@pytest.fixture
def topic(kafka_broker: SelectedBroker, unique: str) -> Iterator[str]:
    # The groups are the ones the exporter watches (a worker's and a deploy agent's), "nobody" one it is told of.
    names = {"worker_id": f"lagging-{unique}", "deploy_group": f"caught-up-{unique}"}
    cat = apply_topics(kafka_broker, f"lag{unique}-", **names, lag_groups=[f"nobody-{unique}"])
    name = cat.topic("deploy.readiness").name  # what the deploy agent's group consumes
    # The test dates its records an hour back, which only a topic stamped by its producers keeps (the catalog's
    # topics are LogAppendTime).
    created_at_the_producer = ConfigEntry(
        "message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[created_at_the_producer])
    admin = AdminClient(kafka_broker.config())  # kept: a collected client cancels what it was asked
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    yield name
    delete_topics(kafka_broker, cat)


def _commit(broker: SelectedBroker, group: str, topic: str, partition: int, offset: int) -> None:
    consumer = Consumer(broker.config({"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_lag_in_messages_and_the_age_of_the_oldest_unconsumed_record(
    kafka_broker: SelectedBroker, topic: str, unique: str
) -> None:
    hour_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    producer = Producer(kafka_broker.config())
    for n in range(5):  # record n was produced n minutes after an hour ago
        producer.produce(
            topic, value=b"x", partition=0, timestamp=int((hour_ago + timedelta(minutes=n)).timestamp() * 1000)
        )
    assert producer.flush(10) == 0
    group, caught_up = f"lagging-{unique}", f"caught-up-{unique}"
    _commit(kafka_broker, group, topic, 0, 2)
    _commit(kafka_broker, caught_up, topic, 0, 5)

    offsets = KafkaOffsets(kafka_broker.bootstrap_servers, security=kafka_broker.identity("lag-exporter"))
    try:
        positions = offsets.positions([group, caught_up, f"nobody-{unique}"])
        assert sorted(positions, key=lambda p: p.group) == [
            Position(caught_up, topic, 0, 5, 5),
            Position(group, topic, 0, 2, 5),
        ]
        # the record at the committed offset (2) is the oldest the group has not consumed
        assert offsets.timestamps(positions) == {(group, topic, 0): hour_ago + timedelta(minutes=2)}
        rows = LagMonitor(offsets, [group, caught_up], stall_after_s=60).poll()
        lagging = next(r for r in rows if r.group == group)
        assert lagging.lag_messages == 3 and lagging.lag_seconds is not None and lagging.lag_seconds >= 58 * 60
        assert next(r for r in rows if r.group == caught_up).lag_seconds == 0.0
    finally:
        offsets.close()
