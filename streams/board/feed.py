"""The board's reading of the log: deploy.readiness, deploy.events and github.events from their beginnings, each record
verified, then handed on as an Entry or a Push. Runs in a thread of its own (confluent-kafka blocks); never joins a
group nor commits: the board rebuilds its picture from the retained log at each start."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from streams.board.entries import Entry, NotForTheBoard, Position, Push, decision, outcome, push
from streams.events.decoding import RawRecord
from streams.events.signing import wire_event
from streams.events.verifiability import Verified
from streams.events.verification_errors import VerificationFailed

log = logging.getLogger(__name__)

Item = Entry | Push


class Verifier(Protocol):
    def verify_record(self, record: RawRecord, at: datetime) -> Verified | None: ...


@dataclass
class FeedStatus:
    connected: bool = False
    caught_up: bool = False  # read up to the ends the topics had at start
    error: str = ""  # the last broker error, until the next record
    refused: int = 0  # records that failed verification: never shown
    records: int = 0


def event_of(record: RawRecord) -> dict[str, Any]:
    """The record's CloudEvent as a dict, in either content mode (binary: the provider's payload is the value, the
    attributes are headers); `data` parsed when it is JSON, else None."""
    wire = wire_event(record)
    event: dict[str, Any] = dict(wire.attributes)
    try:
        event["data"] = json.loads(wire.data) if wire.data else None
    except ValueError:
        event["data"] = None
    return event


def raw_record(message: Any) -> RawRecord:
    """A consumed message as the events layer verifies it; its log-append time when the broker gave one."""
    kind, millis = message.timestamp()
    appended = datetime.fromtimestamp(millis / 1000, UTC) if kind != TIMESTAMP_NOT_AVAILABLE else None
    headers = message.headers() or []
    return RawRecord(
        message.topic(), message.partition(), message.offset(), message.key(), message.value(), headers, appended
    )


class Feed:
    def __init__(
        self,
        config: Mapping[str, Any],
        topics: Mapping[str, str],
        verifier: Verifier | None,
        deliver: Callable[[Item], None],
    ) -> None:
        """`topics`: the topic's name on the broker -> its catalog name (deploy.readiness, deploy.events,
        github.events); `deliver` is called from the feed's thread."""
        self._config = {
            **config,
            "group.id": config.get("group.id") or "autodeploy-board",  # never joined nor committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "error_cb": self._on_error,
        }
        self._topics, self._verifier, self._deliver = dict(topics), verifier, deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="board-feed", daemon=True)
        self.status = FeedStatus()
        self._ends: dict[tuple[str, int], int] = {}  # where the topics ended at start: caught up past these
        self._next: dict[tuple[str, int], int] = {}  # the next offset to hand on, per partition

    @staticmethod
    def idle_status() -> FeedStatus:
        return FeedStatus(error="not started")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _on_error(self, error: KafkaError) -> None:
        self.status.error = str(error)
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.status.connected = False
        log.warning("broker error error=%s", error)

    def _run(self) -> None:
        while not self._stop.is_set():
            consumer = Consumer(self._config)
            try:
                self._assign(consumer)
                self._consume(consumer)
            except KafkaException as e:
                self.status.connected, self.status.error = False, str(e)
                log.warning("cannot read the topics, retrying error=%s", e)
                self._stop.wait(2.0)
            finally:
                consumer.close()

    def _assign(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(timeout=10)
        assignment = []
        for topic in self._topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic} is not readable"))
            for partition in sorted(found.partitions):
                tp = TopicPartition(topic, partition, OFFSET_BEGINNING)
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                if not self.status.caught_up and high > 0:
                    self._ends[(topic, partition)] = high
                assignment.append(tp)
        if self.status.records:  # a reconnect: go on where this process got to (delivered records are not redone)
            assignment = [
                TopicPartition(tp.topic, tp.partition, self._next.get((tp.topic, tp.partition), OFFSET_BEGINNING))
                for tp in assignment
            ]
        consumer.assign(assignment)
        self.status.connected = True
        self.status.error = ""
        self._check_caught_up()

    def _consume(self, consumer: Consumer) -> None:
        while not self._stop.is_set():
            messages = consumer.consume(500, 0.2)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        self.status.error = str(error)
                    continue
                self._handle(message)
            if messages:
                self.status.connected, self.status.error = True, ""
            self._check_caught_up()

    def _check_caught_up(self) -> None:
        if self.status.caught_up:
            return
        if all(self._next.get(key, 0) >= end for key, end in self._ends.items()):
            self.status.caught_up = True
            log.info("board caught up records=%d refused=%d", self.status.records, self.status.refused)

    def _handle(self, message: Message) -> None:
        record = raw_record(message)
        topic, partition, offset = record.topic, record.partition, record.offset
        self._next[(topic, partition)] = offset + 1
        self.status.records += 1
        at = record.timestamp or datetime.now(UTC)
        where = f"topic={topic} partition={partition} offset={offset}"
        try:
            verified = self._verifier.verify_record(record, at) if self._verifier is not None else None
        except VerificationFailed as e:
            self.status.refused += 1
            log.warning("refused: not shown %s reason=%s", where, e)
            return
        try:
            event = event_of(record)
            item = self._item(self._topics[topic], event, verified, Position(topic, partition, offset), at)
        except (ValueError, NotForTheBoard, KeyError, TypeError) as e:
            log.debug("nothing to show %s reason=%s", where, e)
            return
        self._deliver(item)

    @staticmethod
    def _item(
        name: str, event: dict[str, Any], verified: Verified | None, position: Position, received: datetime
    ) -> Item:
        signer = verified.key_id if verified is not None else None
        if name == "deploy.readiness":
            return decision(event, signer, position)
        if name == "deploy.events":
            return outcome(event, signer, position)
        return push(event, received)
