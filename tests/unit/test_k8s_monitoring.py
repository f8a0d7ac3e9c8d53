"""The Grafana dashboard and the alert rules in k8s/ use only the metrics and labels autodeploy exports.

Their queries are also evaluated against a real Prometheus elsewhere; these checks name the wrong metric or label
without one, and hold the shape the dashboard sidecar and the Prometheus Operator expect.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.metric_names import EXPORTED_TWICE, LABEL_VALUES, METRICS, series_labels, series_name

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "base" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "prometheus-rules.yaml"

_IDENTIFIER = re.compile(r"\bautodeploy_[a-z0-9_]+\b")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-z_]+)\s*(=~|!=|!~|=)\s*\"([^\"]*)\"")
_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_]+)\s*\}\}")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def query_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in query_panels() for target in panel["targets"]]


def all_exprs() -> list[str]:
    return dashboard_exprs() + [rule["expr"] for rule in rules()]


def problems(expr: str, legend: str = "") -> list[str]:
    """What in one query names a metric, label or label value autodeploy does not export."""
    found: list[str] = []
    names = _IDENTIFIER.findall(expr)
    if not names:
        found.append("no autodeploy metric")
    known = [name for name in names if series_name(name) is not None]
    found += [f"unknown metric {name}" for name in names if series_name(name) is None]
    labels = frozenset().union(*(series_labels(name) for name in known)) if known else frozenset()
    used = {label.strip() for grouping in _GROUPING.findall(expr) for label in grouping.split(",") if label.strip()}
    for label, _, value in _MATCHER.findall(expr):
        used.add(label)
        allowed = LABEL_VALUES.get(label)
        if allowed is not None and value not in allowed:
            found.append(f"{label}={value!r} is never exported (values: {sorted(allowed)})")
    used |= set(_LEGEND.findall(legend))
    found += [f"label {label!r} is on none of {sorted(set(known))}" for label in sorted(used - labels)]
    return found


def test_every_panel_has_a_query_on_known_metrics_and_labels() -> None:
    panels = query_panels()
    assert len(panels) >= 10
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {panel['title']!r} has an empty query"
            assert problems(target["expr"], target.get("legendFormat", "")) == [], panel["title"]


def test_every_alert_uses_known_metrics_and_labels() -> None:
    for rule in rules():
        assert problems(rule["expr"]) == [], rule["alert"]


def test_the_checker_catches_wrong_names_labels_and_values() -> None:
    assert problems("rate(autodeploy_webhooks_total[5m])") == ["unknown metric autodeploy_webhooks_total"]
    assert problems("sum by (pod) (autodeploy_circuit_open)") == [
        "label 'pod' is on none of ['autodeploy_circuit_open']"
    ]
    assert problems('autodeploy_deploys_total{outcome="rollback"}') != []
    assert problems("sum by (le) (rate(autodeploy_rollout_duration_seconds_bucket[5m]))") == []
    assert problems("sum by (le) (rate(autodeploy_rollout_duration_seconds_count[5m]))") != []
    assert problems("up") == ["no autodeploy metric"]


_WRAPPED_BY = re.compile(r"(\w+)\s+by\s*\([^)]*\)\s*\(\s*(?:\w+\(\s*)?$")


def undeduplicated(expr: str) -> list[str]:
    """Lag series come twice (worker and lag exporter): each must first go through `max by (...)`, never a sum."""
    found = []
    for name in EXPORTED_TWICE:
        for match in re.finditer(rf"\b{name}\b", expr):
            wrapper = _WRAPPED_BY.search(expr[: match.start()])
            if wrapper is None or wrapper.group(1) != "max":
                found.append(f"{name} is not taken with max by (...) first")
    return found


def test_lag_series_are_deduplicated_with_max_not_summed() -> None:
    for expr in all_exprs():
        assert undeduplicated(expr) == [], expr


def test_the_deduplication_check_catches_sums() -> None:
    assert undeduplicated("max by (group, topic, partition) (autodeploy_consumer_lag_messages)") == []
    assert undeduplicated("sum(max by (topic, partition) (rate(autodeploy_topic_end_offset[1m])))") == []
    assert undeduplicated("sum by (group, topic, partition) (autodeploy_consumer_lag_messages)") != []
    assert undeduplicated("sum by (topic) (rate(autodeploy_topic_end_offset[1m]))") != []
    assert undeduplicated("autodeploy_consumer_stalled == 1") != []


def test_every_exported_metric_is_shown_or_alerted_on() -> None:
    found = (series_name(name) for expr in all_exprs() for name in _IDENTIFIER.findall(expr))
    assert {metric[0] for metric in found if metric is not None} == set(METRICS)


def test_queries_evaluate_as_written() -> None:
    """No Grafana variables ($__rate_interval, $group): the Prometheus test sends each query unchanged."""
    for expr in dashboard_exprs():
        assert "$" not in expr, expr


@pytest.mark.parametrize(
    ("title_part", "needle"),
    [
        ("Lag per group and partition", "autodeploy_consumer_lag_messages"),
        ("Lag in seconds", "autodeploy_consumer_lag_seconds"),
        ("Stalled partitions", "autodeploy_consumer_stalled"),
        ("Throughput per topic", "sum by (topic) (max by (topic, partition) (rate(autodeploy_topic_end_offset[1m])))"),
        ("Funnel", "autodeploy_worker_events_total"),
        ("Funnel", "autodeploy_readiness_decisions_total"),
        ("Funnel", "autodeploy_deploys_total"),
        ("Deploy outcomes", "by (service, outcome)"),
        ("Rollout duration", "autodeploy_rollout_duration_seconds_bucket"),
        ("End-to-end latency", "histogram_quantile(0.5, sum by (le, stage) (rate(autodeploy_pipeline_latency"),
        ("End-to-end latency", "histogram_quantile(0.99, sum by (le, stage) (rate(autodeploy_pipeline_latency"),
        ("rejections by reason", "by (endpoint, reason) (rate(autodeploy_webhooks_rejected_total"),
        ("Durable write p99", "histogram_quantile(0.99, sum by (le, topic) (rate(autodeploy_webhook_durable_write"),
    ],
)
def test_the_issue_panels_are_there(title_part: str, needle: str) -> None:
    matching = [p for p in query_panels() if title_part.lower() in p["title"].lower()]
    assert matching, f"no panel titled like {title_part!r}"
    assert any(needle in t["expr"] for p in matching for t in p["targets"]), (title_part, needle)


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_query_panel_reads_the_chosen_prometheus() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in query_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    assert dashboard()["uid"] == "autodeploy"


def test_rules_have_the_expected_groups_and_alerts() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert (document["apiVersion"], document["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    groups = {g["name"]: [r["alert"] for r in g["rules"]] for g in document["spec"]["groups"]}
    assert groups == {
        "autodeploy.lag": ["AutodeployConsumerLagGrowing", "AutodeployPartitionStalled"],
        "autodeploy.pipeline": ["AutodeployReadinessExpired", "AutodeployRollback", "AutodeployCircuitOpen"],
        "autodeploy.webhooks": ["AutodeployWebhookSignatureFailures"],
    }


def test_every_alert_says_what_it_means_and_how_bad() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]
        assert len(rule["annotations"]["description"]) > 150, f"{rule['alert']}: say what it means and what to do"
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_the_stalled_alert_trusts_the_exporter_window_and_pages() -> None:
    (stalled,) = [r for r in rules() if r["alert"] == "AutodeployPartitionStalled"]
    assert stalled["expr"].strip() == "max by (group, topic, partition) (autodeploy_consumer_stalled) == 1"
    assert "for" not in stalled
    assert stalled["labels"]["severity"] == "critical"


def test_the_signature_alert_counts_signature_rejections_only() -> None:
    (alert,) = [r for r in rules() if r["alert"] == "AutodeployWebhookSignatureFailures"]
    assert 'autodeploy_webhooks_rejected_total{reason="signature"}' in alert["expr"]
