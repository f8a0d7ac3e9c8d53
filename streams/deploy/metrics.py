"""Prometheus metrics of the deploy agent, in a registry of its own, served on /metrics (port 9102 by default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

ROLLOUT_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
LATENCY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
ROLLOUT_COMPLETE = "rollout_complete"


@dataclass
class DeployMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.deploys = Counter(
            "autodeploy_deploys_total",
            "Outcomes published, by service and outcome (deployed, upgraded, rolledback, failed, blocked, skipped)",
            ["service", "outcome"],
            registry=self.registry,
        )
        self.rollout_duration = Histogram(
            "autodeploy_rollout_duration_seconds",
            "From the acknowledged image patch to a settled rollout (complete or failed)",
            ["service"],
            buckets=ROLLOUT_BUCKETS,
            registry=self.registry,
        )
        self.circuit_open = Gauge(
            "autodeploy_circuit_open",
            "1 while the service's circuit breaker is open (deploys stopped until `autodeploy unblock`)",
            ["service"],
            registry=self.registry,
        )
        self.pipeline_latency = Histogram(
            "autodeploy_pipeline_latency_seconds",
            "From the newest deciding fact's time (webhook receipt) to a pipeline stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def outcome(self, service: str, kind: str) -> None:
        self.deploys.labels(service=service, outcome=kind).inc()

    def rollout(self, service: str, seconds: float) -> None:
        self.rollout_duration.labels(service=service).observe(seconds)

    def circuit(self, service: str, is_open: bool) -> None:
        self.circuit_open.labels(service=service).set(1 if is_open else 0)

    def rollout_complete(self, started: datetime, finished: datetime) -> None:
        self.pipeline_latency.labels(stage=ROLLOUT_COMPLETE).observe(max(0.0, (finished - started).total_seconds()))

    def serve(self, port: int, host: str = "0.0.0.0") -> Any:  # noqa: S104 - scraped from outside the pod
        """Serve /metrics in a daemon thread; returns the server (call `shutdown()` to stop it)."""
        server, _thread = start_http_server(port, host, registry=self.registry)
        return server


def pipeline_start(data: Any, fallback: datetime | None) -> datetime | None:
    """When the pipeline started for a readiness event: the newest time among its facts (the webhook receipt of the
    newest deciding fact), else the readiness event's own time."""
    times: list[datetime] = []
    try:
        facts = data["subject"]["content"].get("facts") or []
    except (KeyError, TypeError, AttributeError):
        facts = []
    for fact in facts if isinstance(facts, list) else []:
        try:
            moment = datetime.fromisoformat(str(fact["time"]))
        except (KeyError, TypeError, ValueError):
            continue
        if moment.tzinfo is not None:
            times.append(moment)
    return max(times) if times else fallback
