"""The Prometheus metrics autodeploy exports, with their labels: the one list dashboards and alerts may use.

Fixed in the team brief so the code, the Grafana dashboard (k8s/base/monitoring/grafana-dashboard.json) and the
alerts (k8s/base/monitoring/prometheus-rules.yaml) agree; a test checks both files use nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    kind: str  # counter | gauge | histogram
    labels: frozenset[str]
    process: str  # who exports it


def _m(kind: str, process: str, *labels: str) -> Metric:
    return Metric(kind, frozenset(labels), process)


METRICS: dict[str, Metric] = {
    "autodeploy_webhooks_received_total": _m("counter", "webhooks", "endpoint", "type"),
    "autodeploy_webhooks_rejected_total": _m("counter", "webhooks", "endpoint", "reason"),
    "autodeploy_webhook_durable_write_seconds": _m("histogram", "webhooks", "topic"),
    "autodeploy_worker_events_total": _m("counter", "worker", "agent", "topic"),
    "autodeploy_worker_deadletters_total": _m("counter", "worker", "topic", "reason"),
    "autodeploy_readiness_decisions_total": _m("counter", "worker", "service", "kind"),
    "autodeploy_pipeline_latency_seconds": _m("histogram", "worker, deploy-agent", "stage"),
    "autodeploy_deploys_total": _m("counter", "deploy-agent", "service", "outcome"),
    "autodeploy_rollout_duration_seconds": _m("histogram", "deploy-agent", "service"),
    "autodeploy_circuit_open": _m("gauge", "deploy-agent", "service"),
    "autodeploy_consumer_lag_messages": _m("gauge", "lag-exporter, worker", "group", "topic", "partition"),
    "autodeploy_consumer_lag_seconds": _m("gauge", "lag-exporter, worker", "group", "topic", "partition"),
    "autodeploy_consumer_stalled": _m("gauge", "lag-exporter, worker", "group", "topic", "partition"),
    "autodeploy_consumer_committed_offset": _m("gauge", "lag-exporter, worker", "group", "topic", "partition"),
    "autodeploy_topic_end_offset": _m("gauge", "lag-exporter, worker", "topic", "partition"),
}

# Exported by the lag exporter and inside the worker alike (same groups, same values): two series per partition.
EXPORTED_TWICE = frozenset(name for name, metric in METRICS.items() if metric.process == "lag-exporter, worker")

# Label values the brief fixes (stage, kind, outcome); a query selecting another value would never match.
LABEL_VALUES: dict[str, frozenset[str]] = {
    "stage": frozenset({"readiness", "rollout_complete"}),
    "kind": frozenset({"ready", "superseded", "expired"}),
    "outcome": frozenset({"deployed", "upgraded", "rolledback", "failed", "blocked", "skipped"}),
}

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def series_name(name: str) -> tuple[str, Metric] | None:
    """The metric a series name belongs to (`x_bucket` -> histogram `x`), or None when it is none of ours."""
    if name in METRICS:
        return name, METRICS[name]
    for suffix in _HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and METRICS.get(base, Metric("", frozenset(), "")).kind == "histogram":
            return base, METRICS[base]
    return None


def series_labels(name: str) -> frozenset[str]:
    """Labels a series of `name` carries: a histogram's buckets add `le`."""
    found = series_name(name)
    if found is None:
        raise KeyError(name)
    return found[1].labels | ({"le"} if name.endswith("_bucket") else set())
