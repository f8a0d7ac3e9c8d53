"""A confluent-kafka producer whose `publish` completes only when the broker has acknowledged the record.

acks=all and idempotence, so an acknowledged record is on every in-sync replica and a retry never duplicates it;
murmur2, so keys land on the partitions Faust (aiokafka) and Java clients would choose. Delivery reports arrive on a
poll thread and are handed back to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.config import KafkaSecurity

log = logging.getLogger(__name__)
# librdkafka's own messages (disconnects, retries) go through logging instead of raw stderr lines.
_librdkafka_log = logging.getLogger(__name__ + ".librdkafka")

# A short linger: a webhook waits for its acknowledgement, but one produce request per record costs the broker CPU
# per webhook; 2 ms of linger gathers concurrent webhooks into one request, which matters where the broker shares
# the cores (docs/performance.md has what bench/webhooks.py measured).
PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "partitioner": "murmur2_random",
    "linger.ms": 2,
    "compression.type": "lz4",
    "message.max.bytes": 64 * 1024 * 1024,
}
DEFAULT_DELIVERY_TIMEOUT_S = 30.0


class PublishError(RuntimeError):
    """A record was not acknowledged."""


class PublishUnavailable(PublishError):
    """Temporary: the broker did not acknowledge in time or the local queue is full. Retry later."""


class PublishRejected(PublishError):
    """Permanent: the broker will never take this record (too large, unknown topic). `too_large` is set from the
    Kafka error code, so callers can answer "too large" (HTTP 413) without reading the message."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class PublishForbidden(PublishRejected):
    """Permanent: the broker's ACLs do not allow this principal the operation (a missing ACL, see topics/acls.yaml)."""

    def __init__(self, message: str, *, principal: str, operation: str, resource: str) -> None:
        super().__init__(message)
        self.principal = principal
        self.operation = operation
        self.resource = resource


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Acknowledged:
    topic: str
    partition: int
    offset: int


_TOO_LARGE = {
    KafkaError.MSG_SIZE_TOO_LARGE,  # the record exceeds message.max.bytes (librdkafka's, or the broker's/topic's)
    KafkaError.RECORD_LIST_TOO_LARGE,  # the batch holding it exceeds the broker's limit
}
_PERMANENT = {
    *_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_TOPIC,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
}


def _error(err: KafkaError, topic: str = "", principal: str = "") -> PublishError:
    message = f"{err.name()}: {err.str()}"
    if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return PublishForbidden(
            f"{principal} may not WRITE to topic {topic}: no ACL allows it ({err.name()})",
            principal=principal,
            operation="WRITE",
            resource=f"topic {topic}",
        )
    if err.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED:  # InitProducerId: idempotence needs IDEMPOTENT_WRITE
        return PublishForbidden(
            f"{principal} may not IDEMPOTENT_WRITE on the cluster (needed by an idempotent producer) to write to "
            f"topic {topic}: no ACL allows it ({err.name()})",
            principal=principal,
            operation="IDEMPOTENT_WRITE",
            resource="cluster",
        )
    if err.code() in _PERMANENT:
        return PublishRejected(message, too_large=err.code() in _TOO_LARGE)
    return PublishUnavailable(message)


class DurableProducer:
    """Delivery reports are served on the event loop that publishes: while records are in flight, a task polls
    librdkafka every millisecond, so callbacks run on the loop thread with no cross-thread hand-off.

    `delivery_timeout_s` is librdkafka's own bound (message.timeout.ms): every record gets a report within it. A
    `publish` with a shorter timeout also arms a timer of its own.
    """

    POLL_INTERVAL_S = 0.001

    def __init__(
        self,
        bootstrap_servers: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.delivery_timeout_s = delivery_timeout_s
        security = security or KafkaSecurity()
        self.principal = security.principal
        config = {
            **PRODUCER_DEFAULTS,
            "message.timeout.ms": max(1, round(delivery_timeout_s * 1000)),
            "bootstrap.servers": bootstrap_servers,
            "logger": _librdkafka_log,
            **security.librdkafka(),
            **(overrides or {}),
        }
        self._producer = Producer(config)
        self._in_flight = 0
        self._poller: asyncio.Task[None] | None = None

    async def publish(self, record: Record, timeout: float) -> Acknowledged:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Acknowledged] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._in_flight -= 1
            if done.done():  # answered "unavailable" already; the record may still have landed
                _log_late_outcome(err, msg)
            elif err is not None:
                done.set_exception(_error(err, record.topic, self.principal))
            else:
                done.set_result(Acknowledged(msg.topic() or record.topic, msg.partition() or 0, msg.offset() or 0))

        try:
            self._producer.produce(
                record.topic, value=record.value, key=record.key, headers=list(record.headers), on_delivery=on_delivery
            )
        except BufferError as e:
            raise PublishUnavailable("the local produce queue is full: the broker is not keeping up") from e
        except KafkaException as e:
            raise _error(e.args[0], record.topic, self.principal) from e
        self._in_flight += 1
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll_while_in_flight())
        if timeout >= self.delivery_timeout_s:  # librdkafka reports a timeout itself: no timer per record
            return await done
        expiry = loop.call_later(timeout, _expire, done, timeout)
        try:
            return await done
        finally:
            expiry.cancel()

    async def _poll_while_in_flight(self) -> None:
        while self._in_flight > 0:
            self._producer.poll(0)
            await asyncio.sleep(self.POLL_INTERVAL_S)

    async def stop_polling(self) -> None:
        """End the delivery-report poller now (it ends by itself once nothing is in flight, but only while its loop
        runs: a loop driven one publish at a time would otherwise be closed with the poller pending)."""
        if self._poller is not None and not self._poller.done():
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def reachable(self, timeout: float) -> bool:
        """Whether the broker answers a metadata request (blocking: call it from a thread)."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued; returns how many records were still unsent."""
        left: int = self._producer.flush(timeout)
        return left


def _expire(done: asyncio.Future[Acknowledged], timeout: float) -> None:
    if not done.done():
        done.set_exception(PublishUnavailable(f"no acknowledgement from Kafka within {timeout:g}s"))


def _log_late_outcome(err: KafkaError | None, msg: Message) -> None:
    if err is not None:
        log.warning("record failed after its publish timed out error=%s", err.str())
    else:
        log.info(
            "record acknowledged after its publish timed out topic=%s partition=%s offset=%s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
        )
