"""The alerts of k8s/base/monitoring/prometheus-rules.yaml fire when they should and not otherwise (`promtool test`).

Synthetic series, Prometheus' own rule evaluator: the `for:` windows and thresholds as written, not shortened.
Annotations are dropped from the copy under test (promtool would compare their rendered text too).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from streams.local.prometheus import binary
from tests.support.services import unavailable

RULES = Path(__file__).resolve().parents[2] / "k8s" / "base" / "monitoring" / "prometheus-rules.yaml"
SHOP = {"service": "shop"}
FRESH = {"service": "fresh"}
PARTITION = {"group": "autodeploy-readiness", "topic": "github.events", "partition": "0"}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


def fires(alert: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    """`alert` is firing at `at` with exactly these label sets (none: not firing, pending included)."""
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": dict(lab)} for lab in labels]}


CASES: list[dict[str, Any]] = [
    {
        # Stalled: no window of its own (the exporter's), so it fires at the first evaluation that sees it.
        "input_series": [series("autodeploy_consumer_stalled", PARTITION, "0 0 1 1 0")],
        "alert_rule_test": [
            fires("AutodeployPartitionStalled", "1m"),
            fires("AutodeployPartitionStalled", "2m", {**PARTITION, "severity": "critical"}),
            fires("AutodeployPartitionStalled", "4m"),
        ],
    },
    {
        # Lag seconds growing a minute per minute: pending once above 60 s, firing 15 minutes later; flat lag never.
        "input_series": [
            series("autodeploy_consumer_lag_seconds", PARTITION, "0+60x40"),
            series("autodeploy_consumer_lag_seconds", {**PARTITION, "group": "steady"}, "600x40"),
        ],
        "alert_rule_test": [
            fires("AutodeployConsumerLagGrowing", "10m"),
            fires(
                "AutodeployConsumerLagGrowing",
                "25m",
                {"group": PARTITION["group"], "topic": PARTITION["topic"], "severity": "warning"},
            ),
        ],
    },
    {
        "input_series": [
            series("autodeploy_readiness_decisions_total", {**SHOP, "kind": "ready"}, "0+5x30"),
            series("autodeploy_readiness_decisions_total", {**SHOP, "kind": "expired"}, "0 0 0 1 1"),
            # A worker that just started: its first expiry is a new series at 1, which increase() alone reads as 0.
            series("autodeploy_readiness_decisions_total", {**FRESH, "kind": "expired"}, "_ _ 1x30"),
        ],
        "alert_rule_test": [
            fires("AutodeployReadinessExpired", "1m"),
            fires("AutodeployReadinessExpired", "2m", {**FRESH, "severity": "warning"}),
            fires(
                "AutodeployReadinessExpired", "4m", {**SHOP, "severity": "warning"}, {**FRESH, "severity": "warning"}
            ),
            fires("AutodeployReadinessExpired", "25m"),
        ],
    },
    {
        "input_series": [
            series("autodeploy_deploys_total", {**SHOP, "outcome": "upgraded"}, "0+1x30"),
            series("autodeploy_deploys_total", {**SHOP, "outcome": "rolledback"}, "0 0 1 1"),
            series("autodeploy_deploys_total", {**FRESH, "outcome": "rolledback"}, "_ _ _ 1x30"),  # a new agent's first
        ],
        "alert_rule_test": [
            fires("AutodeployRollback", "1m"),
            fires("AutodeployRollback", "3m", {**SHOP, "severity": "warning"}, {**FRESH, "severity": "warning"}),
            fires("AutodeployRollback", "25m"),
        ],
    },
    {
        "input_series": [series("autodeploy_circuit_open", SHOP, "0 1 1 1 0")],
        "alert_rule_test": [
            fires("AutodeployCircuitOpen", "1m"),  # pending: `for: 1m`
            fires("AutodeployCircuitOpen", "3m", {**SHOP, "severity": "critical"}),
            fires("AutodeployCircuitOpen", "5m"),
        ],
    },
    {
        # One bad signature a second for long enough; as many malformed bodies say nothing about secrets.
        "input_series": [
            series("autodeploy_webhooks_rejected_total", {"endpoint": "github", "reason": "signature"}, "0+60x20"),
            series("autodeploy_webhooks_rejected_total", {"endpoint": "circleci", "reason": "malformed"}, "0+60x20"),
        ],
        "alert_rule_test": [
            fires("AutodeployWebhookSignatureFailures", "4m"),
            fires("AutodeployWebhookSignatureFailures", "15m", {"endpoint": "github", "severity": "warning"}),
        ],
    },
]


def test_alerts_fire_exactly_when_they_should(tmp_path: Path) -> None:
    try:
        promtool = binary("promtool")
    except FileNotFoundError as e:
        unavailable("promtool", e)
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    cases = [{"interval": "1m", **case} for case in CASES]
    tested = {t["alertname"] for case in cases for t in case["alert_rule_test"]}
    assert tested == {rule["alert"] for group in groups for rule in group["rules"]}
    spec = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": cases}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec))
    done = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
