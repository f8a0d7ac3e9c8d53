"""Read back what landed on a topic, for assertions against the real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Message


def consume(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0, keep_going: Callable[[], bool] = lambda: True
) -> list[Message]:
    """Every record of `topic` from the beginning, waiting until at least `expected` arrived, the timeout passed, or
    `keep_going` says there is no point (the producing process died)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    found: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline and keep_going():
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    found.append(message)
        # Anything beyond `expected` (a duplicate, say) must show up too: drain briefly.
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < quiet_until:
            batch = [m for m in consumer.consume(500, 0.2) if m.error() is None]
            found.extend(batch)
    finally:
        consumer.close()
    return found
