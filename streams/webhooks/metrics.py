"""Prometheus metrics of the webhook server, in a registry of its own (one per server instance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class WebhookMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.received = Counter(
            "autodeploy_webhooks_received_total",
            "Deliveries accepted and durably written, by endpoint and CloudEvent type",
            ["endpoint", "type"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "autodeploy_webhooks_rejected_total",
            "Requests refused, by endpoint and reason (signature, malformed, too_large, media_type, unavailable, ...)",
            ["endpoint", "reason"],
            registry=self.registry,
        )
        self.durable_write = Histogram(
            "autodeploy_webhook_durable_write_seconds",
            "Time from the request's arrival to Kafka's acknowledgement (acks=all)",
            ["topic"],
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        # labels() hashes and locks on every call; the hot path keeps the children it has already asked for.
        self._children: dict[tuple[str, ...], Any] = {}

    def count_received(self, endpoint: str, event_type: str) -> None:
        key = ("received", endpoint, event_type)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.received.labels(endpoint, event_type)
        child.inc()

    def observe_durable_write(self, topic: str, seconds: float) -> None:
        key = ("durable_write", topic)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.durable_write.labels(topic)
        child.observe(seconds)
