"""A real Prometheus scrapes a running pipeline (webhook server, worker, lag exporter, deploy agent on the local control
plane) through a scenario of signed webhooks; every query of k8s/'s dashboard and every expression of its rules must
return data, the stalled alert must fire for a consumer that stopped, and `make lag-report` must draw what was
scraped."""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer
from kubernetes import client

from streams.adapters.kubernetes_deployments import DeploymentsClient
from streams.adapters.policy_file import load_policies
from streams.adapters.prometheus_api import PrometheusAPI, PrometheusQueryError
from streams.catalog import Catalog
from streams.config import REPO_ROOT
from streams.lag import report
from streams.local import processes
from streams.local.demo_deployments import ensure_demo_deployments
from streams.local.kwok_stages import UNREADY_IMAGE_TAG
from streams.local.prometheus import Prometheus, binary
from tests.cluster_fixture import ClusterHandle
from tests.support.brokers import SelectedBroker
from tests.support.kube import create_deployment
from tests.support.monitoring import (
    Monitoring,
    autodeploy_monitoring,
    comparisons_as_bool,
    grafana_to_promql,
    prometheus_rule_file,
)
from tests.support.scenario import History, sha
from tests.support.services import unavailable
from tests.support.topics import apply_topics, delete_topics
from tests.support.webhooks import CIRCLECI_SECRET, GITHUB_SECRET, Delivery, github_delivery

STALL_S = 3
TTL_S = 15  # b's checks come after the paused consumer joined its group (seconds on a busy machine)
# The processes Prometheus scrapes (job name -> `autodeploy` arguments; {port} is the process's /metrics port).
PIPELINE = {
    "webhooks": ["webhooks", "--port", "{port}"],
    "worker": ["worker", "--loglevel", "warning"],  # Faust's web server: AUTODEPLOY_WORKER_PORT
    "lag-exporter": ["lag-exporter", "--port", "{port}"],
    "deploy-agent": ["deploy-agent"],  # AUTODEPLOY_DEPLOY_METRICS_PORT
}
# A third service of the shop repository whose image never becomes ready (a kwok stage): the agent rolls it back.
CANARY = "canary"


@dataclass
class Monitored:
    prometheus: Prometheus
    monitoring: Monitoring
    rule_file: Path
    paused_group: str
    worker_group: str
    env: dict[str, str]
    ports: dict[str, int]

    @property
    def api(self) -> PrometheusAPI:
        return self.prometheus.api


def _post(port: int, delivery: Delivery) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", delivery.path, delivery.body, dict(delivery.headers))
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _wait_for(what: str, check: Any, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, PrometheusQueryError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s\n" + "\n".join(f"{p}:\n{processes.tail(p)}" for p in logs))


def _consume_and_stop(broker: SelectedBroker, topic: str, group: str, at_least: int) -> int:
    """A consumer that reads what is there, commits, and stops for good: its partition will stall."""
    consumer = Consumer(broker.config({"group.id": group, "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + 60
    try:
        while read < at_least and time.monotonic() < deadline:
            read += sum(1 for m in consumer.consume(100, 0.5) if m.error() is None)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return read


def _policies(path: Path, namespace: str) -> Path:
    """autodeploy.yaml with a short TTL, its Deployments in the test's namespace, and the canary that rolls back."""
    doc = yaml.safe_load((REPO_ROOT / "autodeploy.yaml").read_text())
    services = doc["services"]
    for service in services.values():
        if "environments" in service:  # monitored here with one environment per service: the first
            service["kubernetes"] = service.pop("environments")[0]["kubernetes"]
    services[CANARY] = {
        **services["shop"],
        "image": f"registry.example/{CANARY}-{{short_sha}}:{UNREADY_IMAGE_TAG}",
        "kubernetes": {"namespace": namespace, "deployment": CANARY, "container": "app"},
    }
    for service in services.values():
        service["readiness_ttl"] = f"{TTL_S}s"
        service["kubernetes"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(doc))
    return path


def _by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): round(float(s["value"][1]), 3) for s in result}


def _deployments(cluster: ClusterHandle, policy_file: Path) -> None:
    """The policy's Deployments, complete; the canary's with a 10 s progress deadline, so its rollback comes soon."""
    admin = cluster.api_client()
    namespace = load_policies(policy_file).services[0].target.namespace
    client.CoreV1Api(admin).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    create_deployment(admin, namespace, name=CANARY)
    ensure_demo_deployments(cluster.kubeconfig, load_policies(policy_file))
    deployments = DeploymentsClient(admin)
    for policy in load_policies(policy_file).services:
        target = policy.target
        rollout = deployments.watch_rollout(target.namespace, target.deployment, target.container, timeout=60)
        assert rollout.rollout == "complete", (policy.name, rollout)


@pytest.fixture(scope="module")
def monitored(
    kafka_broker: SelectedBroker, k8s_cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    try:
        binary("prometheus"), binary("promtool")
    except FileNotFoundError as e:
        unavailable("Prometheus", e)
    tmp = tmp_path_factory.mktemp("monitoring")
    u = uuid.uuid4().hex[:10]
    names = {"worker_id": f"readiness-{u}", "deploy_group": f"deploy-{u}"}
    cat: Catalog = apply_topics(kafka_broker, f"m{u}-", **names, lag_groups=[f"paused-{u}"])
    policy_file = _policies(tmp / "autodeploy.yaml", f"m{u}")
    _deployments(k8s_cluster, policy_file)
    ports = {name: processes.free_port() for name in PIPELINE}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "AUTODEPLOY_TOPIC_PREFIX": f"m{u}-",
        "AUTODEPLOY_CONFIG": str(policy_file),
        "GITHUB_WEBHOOK_SECRETS": GITHUB_SECRET.decode(),
        "CIRCLECI_WEBHOOK_SECRETS": CIRCLECI_SECRET.decode(),
        "AUTODEPLOY_WORKER_ID": names["worker_id"],
        "AUTODEPLOY_WORKER_STORE": "memory://",
        "AUTODEPLOY_WORKER_DATADIR": str(tmp / "worker"),
        "AUTODEPLOY_WORKER_PORT": str(ports["worker"]),
        "AUTODEPLOY_WORKER_TICK_S": "1",
        "AUTODEPLOY_LAG_GROUPS": f"paused-{u}",
        "AUTODEPLOY_LAG_INTERVAL_S": "1",
        "AUTODEPLOY_LAG_STALL_S": str(STALL_S),
        "KUBECONFIG": str(k8s_cluster.kubeconfig),
        "AUTODEPLOY_DEPLOY_GROUP": names["deploy_group"],
        "AUTODEPLOY_DEPLOY_METRICS_HOST": "127.0.0.1",
        "AUTODEPLOY_DEPLOY_METRICS_PORT": str(ports["deploy-agent"]),
    }
    logs = {name: tmp / f"{name}.log" for name in PIPELINE}
    pids = [
        processes.start(
            [sys.executable, "-m", "streams.cli", *(a.format(port=ports[name]) for a in args)], logs[name], env
        ).pid
        for name, args in PIPELINE.items()
    ]
    rules = autodeploy_monitoring()
    rule_file = prometheus_rule_file(rules.rule_groups, tmp / "rules.yml")
    quick_rules = prometheus_rule_file(rules.rule_groups, tmp / "rules-quick.yml", for_="1s")
    prometheus = Prometheus(tmp / "prometheus", {n: f"127.0.0.1:{p}" for n, p in ports.items()}, [quick_rules])
    every_log = [*logs.values(), prometheus.log]
    try:
        _wait_for("webhooks ready", lambda: _get(ports["webhooks"], "/readyz")[0] == 200, 60, list(logs.values()))
        _wait_for("worker serves /metrics", lambda: _get(ports["worker"], "/metrics")[0] == 200, 120, [logs["worker"]])
        prometheus.start()
        _wait_for("every target up", lambda: all(h == "up" for h in prometheus.target_health().values()), 30, every_log)
        _scenario(kafka_broker, cat, ports["webhooks"], f"paused-{u}", list(logs.values()))
        firing = 'alertstate="firing"'
        for what, query in {
            "the stalled alert": f'ALERTS{{{firing},group="paused-{u}"}}',
            "the expiry alert": f'ALERTS{{{firing},alertname="AutodeployReadinessExpired",service="shop"}}',
            "the canary's rollback alert": f'ALERTS{{{firing},alertname="AutodeployRollback",service="{CANARY}"}}',
            "a rollout completed": 'autodeploy_pipeline_latency_seconds_count{stage="rollout_complete"} > 0',
        }.items():
            _wait_for(what, lambda q=query: prometheus.api.query(q), 120, every_log)
        time.sleep(3)  # a few more scrapes after the last change, so rates over the window have two points
        yield Monitored(prometheus, rules, rule_file, f"paused-{u}", f"readiness-{u}", env, ports)
    finally:
        prometheus.stop()
        for pid in pids:
            processes.stop(pid)
        delete_topics(kafka_broker, cat, f"readiness-{u}-ticks")


def _scenario(broker: SelectedBroker, cat: Catalog, port: int, paused: str, logs: list[Path]) -> None:
    """Two commits (the second ready, the first superseded), a third that waits for checks until it expires, a bad
    signature, a record that is no CloudEvent, and a consumer that stops while deliveries keep arriving."""
    a, b, c = sha("m-a"), sha("m-b"), sha("m-c")
    history = History().push("0" * 40, a).push(a, b)
    for delivery in history.deliveries:
        assert _post(port, delivery) == 200
    github = cat.topic("github.events").name
    assert _consume_and_stop(broker, github, paused, at_least=2) >= 2
    history = History().actions(b, "success").circleci(b, "success").push(b, c)
    for delivery in history.deliveries:
        assert _post(port, delivery) == 200
    assert _post(port, github_delivery("push", {"zen": "forged"}, secret=b"wrong")) == 401
    producer = Producer(broker.config())
    producer.produce(github, key=b"github.com/acme/shop", value=b"not a cloudevent")
    producer.flush(10)
    # Deliveries keep arriving at a few per second while the paused group stays behind: lag grows over time.
    for n in range(40):
        assert _post(port, History().push(sha(f"m-f{n}"), sha(f"m-f{n + 1}"), branch="feature").deliveries[0]) == 200
        time.sleep(0.2)


def test_every_dashboard_query_returns_data(monitored: Monitored) -> None:
    queries = monitored.monitoring.dashboard_queries
    assert [p.name for p in monitored.monitoring.sources] == ["grafana-dashboard.json", "prometheus-rules.yaml"]
    empty = [f"{where}: {expr}" for where, expr in queries if not monitored.api.query(grafana_to_promql(expr))]
    print(f"{len(queries) - len(empty)} of {len(queries)} dashboard queries returned data")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_every_alert_expression_passes_promtool_and_returns_data(monitored: Monitored) -> None:
    checked = subprocess.run(
        [binary("promtool"), "check", "rules", str(monitored.rule_file)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = monitored.monitoring.alerts()
    assert alerts
    # Quiet alerts return nothing: with `bool` comparisons every series they watch answers 0 or 1.
    empty = [f"{r['alert']}: {r['expr']}" for r in alerts if not monitored.api.query(comparisons_as_bool(r["expr"]))]
    firing = {s["metric"]["alertname"] for s in monitored.api.query('ALERTS{alertstate="firing"}')}
    print(f"{len(alerts) - len(empty)} of {len(alerts)} alert expressions returned data; firing: {sorted(firing)}")
    assert not empty, "alert expressions whose metrics are missing:\n" + "\n".join(empty)
    # What the scenario provokes (the quick copy of the rules: `for: 1s`): a stall, an expiry, a rollback.
    assert firing == {"AutodeployPartitionStalled", "AutodeployReadinessExpired", "AutodeployRollback"}


def test_lag_is_exported_twice_and_the_dashboard_counts_it_once(monitored: Monitored) -> None:
    """The worker and the lag exporter export the same partitions: a sum over both would show double the lag."""
    paused = f'group="{monitored.paused_group}"'
    jobs = {s["metric"]["job"] for s in monitored.api.query(f"autodeploy_consumer_lag_messages{{{paused}}}")}
    assert jobs == {"worker", "lag-exporter"}
    (panel,) = [e for w, e in monitored.monitoring.dashboard_queries if "Lag per group and partition" in w]
    shown = sum(
        float(s["value"][1]) for s in monitored.api.query(panel) if s["metric"]["group"] == monitored.paused_group
    )
    exporter = monitored.api.query(f'sum(autodeploy_consumer_lag_messages{{{paused},job="lag-exporter"}})')
    assert shown == float(exporter[0]["value"][1]) >= 40


def test_the_stalled_alert_fires_for_a_paused_consumer_and_not_for_the_worker(monitored: Monitored) -> None:
    (stall_rule,) = [r for r in monitored.monitoring.alerts() if "autodeploy_consumer_stalled" in r["expr"]]
    firing = monitored.api.query(f'ALERTS{{alertname="{stall_rule["alert"]}",alertstate="firing"}}')
    groups = {s["metric"].get("group") for s in firing}
    assert monitored.paused_group in groups
    assert monitored.worker_group not in groups  # the worker kept up: lag back to 0 between batches
    (lag,) = monitored.api.query(f'max(autodeploy_consumer_lag_messages{{group="{monitored.paused_group}"}})')
    assert float(lag["value"][1]) >= 40  # everything after the pause


def test_the_worker_counts_events_decisions_dead_letters_and_exports_lag(monitored: Monitored) -> None:
    status, text = _get(monitored.ports["worker"], "/metrics")
    assert status == 200
    for line in (
        'autodeploy_readiness_decisions_total{kind="ready",service="shop"} 1.0',
        'autodeploy_readiness_decisions_total{kind="superseded",service="shop"} 1.0',
        'autodeploy_readiness_decisions_total{kind="expired",service="shop"} 1.0',
        'autodeploy_pipeline_latency_seconds_count{stage="readiness"} 3.0',  # shop, shop-worker, canary: ready
        f'autodeploy_consumer_stalled{{group="{monitored.paused_group}"',
    ):
        assert line in text, line
    assert 'autodeploy_worker_deadletters_total{reason="not_cloudevent"' in text
    events = sum(
        float(s["value"][1])
        for s in monitored.api.query('sum by (topic) (autodeploy_worker_events_total{topic=~".*github.events"})')
    )
    assert events >= 2 + 1 + 1 + 40  # pushes, the CI-side push, the dead letter, the feature pushes


def test_lag_table_once_shows_the_paused_group_behind(monitored: Monitored) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streams.cli", "lag", "--once"],
        env=monitored.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    (row,) = [line.split() for line in out.splitlines() if line.startswith(monitored.paused_group)]
    committed, end, lag = int(row[3]), int(row[4]), int(row[5])
    assert end - committed == lag >= 40
    assert float(row[6]) > 0  # the oldest unconsumed record's age


def test_lag_report_renders_what_prometheus_scraped(monitored: Monitored, tmp_path: Path) -> None:
    data = report.fetch(monitored.api, timedelta(minutes=10))
    paused = [s for s in data["messages"] if s.label.startswith(monitored.paused_group)]
    assert paused and max(paused[0].values) >= 40, data
    assert any(max(s.values) > 0 for s in data["seconds"])
    out = tmp_path / "lag.png"
    # The README's command, as a person runs it (the Makefile's `autodeploy` is the one in the repository's .venv).
    make = [shutil.which("make") or "make", "-C", str(REPO_ROOT), "lag-report", f"PROMETHEUS_URL={monitored.api.url}"]
    done = subprocess.run([*make, "LAG_SINCE=10m", f"LAG_REPORT={out}"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    api = monitored.api
    max_lag = "max by (group) (max_over_time(max by (group, topic, partition) ({})[10m:1s]))"
    stages = "sum by (stage) (autodeploy_pipeline_latency_seconds_{})"
    figures = {
        "max lag messages by group": _by(api.query(max_lag.format("autodeploy_consumer_lag_messages")), "group"),
        "max lag seconds by group": _by(api.query(max_lag.format("autodeploy_consumer_lag_seconds")), "group"),
        "mean pipeline latency s by stage": _by(
            api.query(f"{stages.format('sum')} / {stages.format('count')}"), "stage"
        ),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"figures: {figures}")
