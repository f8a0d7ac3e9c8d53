"""What the pipeline answers, read from deploy.readiness and deploy.events as it happens (from their ends at start)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.demo.scenario import Topic
from streams.deploy.outcomes import TYPES as OUTCOME_TYPES

log = logging.getLogger(__name__)

_OUTCOME_KINDS = {type_: kind for kind, type_ in OUTCOME_TYPES.items()}


class WatchError(RuntimeError):
    """The topics cannot be read."""


@dataclass(frozen=True)
class Observed:
    topic: Topic
    service: str
    environment: str
    kind: str  # readiness: ready|superseded|expired|rejected; rollout: deployed|upgraded|rolledback|failed|...
    commit: str
    detail: str  # image, superseding commit, reason: whatever says why
    timestamp_ms: int  # the Kafka record's timestamp


def parse_readiness(value: dict[str, Any], timestamp_ms: int = 0) -> Observed | None:
    parts = str(value.get("type", "")).split(".")
    content = (value.get("data") or {}).get("subject", {}).get("content", {})
    if len(parts) < 4 or not isinstance(content, dict):
        return None
    kind = parts[3]
    detail = str(content.get("image") or "")
    if content.get("superseded_by"):
        detail = f"by {content['superseded_by']}"
    if content.get("missing"):
        detail = "missing " + ", ".join(content["missing"])
    if content.get("reason"):
        detail = str(content["reason"])
    return Observed(
        "readiness",
        str(content.get("service")),
        str(content.get("environment") or ""),
        kind,
        str(content.get("commit")),
        detail,
        timestamp_ms,
    )


def parse_outcome(value: dict[str, Any], timestamp_ms: int = 0) -> Observed | None:
    kind = _OUTCOME_KINDS.get(str(value.get("type", "")))
    data = value.get("data") or {}
    if kind is None:
        return None
    # Service events keep the details in customData; the autodeploy-deployment ones in the subject's content.
    details = data.get("customData") or data.get("subject", {}).get("content", {})
    detail = str(details.get("reason") or details.get("image") or "")
    if kind in ("deployed", "upgraded"):
        detail = str(details.get("image", ""))
    if value.get("autodeploydryrun") == "true":
        detail += " (dry run)"
    return Observed(
        "rollout",
        str(details.get("service")),
        str(details.get("environment") or ""),
        kind,
        str(details.get("commit")),
        detail,
        timestamp_ms,
    )


class Watcher:
    """Reads both topics from where they end when it starts: only what the demo causes (and anything concurrent)."""

    def __init__(
        self, bootstrap: str, readiness_topic: str, events_topic: str, security: Mapping[str, str] | None = None
    ) -> None:
        self._topics = {readiness_topic: parse_readiness, events_topic: parse_outcome}
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                **(security or {}),
                "group.id": f"autodeploy-demo-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            assignment = []
            for topic in self._topics:
                partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
                if not partitions:
                    raise WatchError(f"topic {topic} does not exist (run `autodeploy topics apply`)")
                for partition in partitions:
                    _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                    assignment.append(TopicPartition(topic, partition, high))
            self._consumer.assign(assignment)
        except KafkaException as e:
            self._consumer.close()
            raise WatchError(f"cannot read {', '.join(self._topics)}: {e}") from e

    def poll(self, timeout: float) -> list[Observed]:
        found = []
        for message in self._consumer.consume(100, timeout):
            if message.error() is not None:
                log.warning("consumer error error=%s", message.error())
                continue
            try:
                value = json.loads(message.value() or b"")
            except ValueError:
                continue
            parse = self._topics[str(message.topic())]
            observed = parse(value, message.timestamp()[1]) if isinstance(value, dict) else None
            if observed is not None:
                found.append(observed)
        return found

    def close(self) -> None:
        self._consumer.close()
