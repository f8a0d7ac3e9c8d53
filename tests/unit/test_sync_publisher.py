"""The deploy agent's blocking publisher leaves no task behind when it closes."""

from __future__ import annotations

import gc
import logging

import pytest

from streams.adapters.kafka_producer import DurableProducer, PublishUnavailable, Record
from streams.deploy.jobs import SyncPublisher
from streams.local.processes import free_port


def test_closing_after_a_publish_destroys_no_pending_task(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on the port: librdkafka reports the record as timed out, and the delivery poller is left
    # sleeping on a loop that only runs during a publish.
    producer = DurableProducer(f"127.0.0.1:{free_port()}", delivery_timeout_s=0.3)
    publisher = SyncPublisher(producer, timeout=1.0)
    with pytest.raises(PublishUnavailable):
        publisher(Record("t", b"k", b"v"))
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        publisher.close()
        del publisher, producer
        gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]
