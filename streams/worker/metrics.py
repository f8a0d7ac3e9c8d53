"""Prometheus metrics of the readiness worker, in a registry of its own, counted once per batch (not per event)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.domain.fold import Decided

# From a fast fold (sub-second) to a commit whose last check arrives minutes after its push; beyond that, +Inf.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def readiness_latency(decision: Decided, decided: datetime) -> float | None:
    """Seconds from the webhook receipt of the newest fact that decided it to `decided`; None when no fact says when
    it was received (facts stored before receipt times were) or the decision is not `ready` (an expiry measures the
    TTL, a supersession the next commit's facts: neither is pipeline latency)."""
    if decision.kind != "ready":
        return None
    received = [ref.received for ref in decision.facts if ref.received is not None]
    if not received:
        return None
    return max(0.0, (decided - max(received)).total_seconds())


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.events = Counter(
            "autodeploy_worker_events_total",
            "Records processed, by agent and topic (dead letters included)",
            ["agent", "topic"],
            registry=self.registry,
        )
        self.deadletters = Counter(
            "autodeploy_worker_deadletters_total",
            "Records sent to the dead-letter topic, by the topic they came from and a reason code",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "autodeploy_readiness_decisions_total",
            "Readiness decisions emitted (and acknowledged by Kafka), by service and kind",
            ["service", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "autodeploy_pipeline_latency_seconds",
            "Webhook receipt of the newest deciding fact (its Kafka record timestamp) to the stage, by stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.latency.labels("readiness")  # exported from the start: a rate over it has a baseline before the first
        self.merge_forced = Counter(
            "autodeploy_worker_merge_forced_total",
            "Records folded before the time-ordered merge could tell that nothing earlier would arrive (a partition "
            "not caught up for AUTODEPLOY_WORKER_MERGE_IDLE_MS, or a record stamped in the future)",
            registry=self.registry,
        )
        self.merge_held = Gauge(
            "autodeploy_worker_merge_held_records",
            "Records received and waiting in the time-ordered merge for an earlier record of another partition",
            registry=self.registry,
        )

    def batch(
        self,
        agent: str,
        topics: Iterable[str],
        decisions: Sequence[Decided],
        deadletters: Iterable[tuple[str, str]],
        now: datetime,
    ) -> None:
        """One batch, after its decisions and dead letters were acknowledged: `topics` of every record it processed,
        `deadletters` as (topic, reason code)."""
        for topic, n in Tally(topics).items():
            self.events.labels(agent, topic).inc(n)
        for (topic, reason), n in Tally(deadletters).items():
            self.deadletters.labels(topic, reason).inc(n)
        for (service, kind), n in Tally((d.service, d.kind) for d in decisions).items():
            self.decisions.labels(service, kind).inc(n)
        for decision in decisions:
            # `now`, not decided_at: a decision is dated by the log (its deciding record), latency is wall-clock time.
            seconds = readiness_latency(decision, now)
            if seconds is not None:
                self.latency.labels("readiness").observe(seconds)
