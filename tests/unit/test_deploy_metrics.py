"""The deploy agent's Prometheus metrics: names and labels as the brief fixes them, served over HTTP."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

from streams.deploy.metrics import DeployMetrics, pipeline_start
from streams.local.processes import free_port

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_outcomes_rollouts_circuit_and_pipeline_latency() -> None:
    metrics = DeployMetrics()
    metrics.outcome("shop", "upgraded")
    metrics.outcome("shop", "upgraded")
    metrics.outcome("shop", "skipped")
    metrics.rollout("shop", 4.2)
    metrics.circuit("shop", True)
    metrics.rollout_complete(T0, T0 + timedelta(seconds=7))
    value = metrics.registry.get_sample_value
    assert value("autodeploy_deploys_total", {"service": "shop", "outcome": "upgraded"}) == 2
    assert value("autodeploy_deploys_total", {"service": "shop", "outcome": "skipped"}) == 1
    assert value("autodeploy_rollout_duration_seconds_sum", {"service": "shop"}) == 4.2
    assert value("autodeploy_circuit_open", {"service": "shop"}) == 1
    assert value("autodeploy_pipeline_latency_seconds_sum", {"stage": "rollout_complete"}) == 7
    metrics.circuit("shop", False)
    assert value("autodeploy_circuit_open", {"service": "shop"}) == 0


def test_pipeline_starts_at_the_newest_fact_else_at_the_decision() -> None:
    facts = [{"time": "2026-01-01T11:59:00Z"}, {"time": "2026-01-01T11:59:30+00:00"}, {"time": "garbage"}]
    data = {"subject": {"content": {"facts": facts}}}
    assert pipeline_start(data, T0) == T0 - timedelta(seconds=30)
    assert pipeline_start({"subject": {"content": {"facts": []}}}, T0) == T0
    assert pipeline_start(None, T0) == T0


def test_served_on_metrics() -> None:
    metrics = DeployMetrics()
    metrics.outcome("shop", "deployed")
    port = free_port()
    server = metrics.serve(port, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
    assert 'autodeploy_deploys_total{outcome="deployed",service="shop"} 1.0' in body
