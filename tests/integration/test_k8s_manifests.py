"""k8s/ rendered by kustomize (base, dev, prod), checked for coherence, and dry-run applied to a real API server.

Built-in kinds go through server-side apply with dryRun=All and strict field validation; the custom kinds
(ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication) likewise, after their real CRDs (from the Go
module proxy) are installed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from streams import catalog
from streams.adapters.policy_file import load_policies
from streams.catalog.acls import AclBinding, load_acls
from streams.config import REPO_ROOT
from streams.local import k8s_tools, kafka
from tests.cluster_fixture import ClusterHandle
from tests.support.services import unavailable

# The session fixture may build the control plane on first use (about 10 min cold).
pytestmark = pytest.mark.timeout(1800)

K8S = REPO_ROOT / "k8s"
TARGETS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
IMAGE = "ghcr.io/autodeploy/autodeploy"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}
FIELD_MANAGER = "autodeploy-manifest-tests"
KEDA_SASL = {"SCRAM-SHA-512": "scram_sha512", "SCRAM-SHA-256": "scram_sha256", "PLAIN": "plaintext"}  # its `sasl`


@pytest.fixture(scope="session")
def kustomize() -> Path:
    try:
        return k8s_tools.ensure_kustomize()
    except Exception as error:
        unavailable("kustomize (built from the Go module proxy)", error)
        raise


@pytest.fixture(scope="session")
def rendered(kustomize: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [d for d in yaml.safe_load_all(k8s_tools.render(path, kustomize)) if d] for name, path in TARGETS.items()
    }


@pytest.fixture(params=list(TARGETS))
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered[request.param]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def configmap_named(docs: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix)]
    return found


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_piece_is_rendered(docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["Namespace", "ConfigMap", "ConfigMap", "ConfigMap", "ConfigMap", "ServiceAccount", "Role", "RoleBinding"]
        + ["Deployment"] * 4  # webhooks, deploy agent, lag exporter, board
        + ["StatefulSet", "HorizontalPodAutoscaler", "ScaledObject", "TriggerAuthentication"]
        + ["Service"] * 5
        + ["PodDisruptionBudget"] * 2
        + ["NetworkPolicy"] * 5
        + ["ServiceMonitor", "PrometheusRule"]
    )
    assert not [d for d in docs if d["kind"] in ("Secret", "ClusterRole", "ClusterRoleBinding")]


def test_overlays_set_their_image_tags(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for target, tag in (("base", "0.1.0"), ("dev", "main"), ("prod", "0.1.0")):
        images = {c["image"] for w in workloads(rendered[target]) for c in w["spec"]["template"]["spec"]["containers"]}
        assert images == {f"{IMAGE}:{tag}"}, target


def test_deploy_agent_may_patch_deployments_only_where_its_policies_deploy(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    policy_file = tmp_path / "autodeploy.yaml"
    policy_file.write_text(configmap_named(docs, "autodeploy-config-")["data"]["autodeploy.yaml"])
    policies = load_policies(policy_file)
    wanted = {service.target.namespace for service in policies.services}
    roles = [d for d in docs if d["kind"] == "Role"]
    assert {r["metadata"]["namespace"] for r in roles} == wanted
    for role in roles:
        assert role["rules"] == [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "watch", "patch"]}
        ]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == wanted
    agent = only(docs, "Deployment", "autodeploy-deploy-agent")["spec"]["template"]["spec"]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": agent["serviceAccountName"], "namespace": "autodeploy"}
        ]
    # Nobody else gets an API token.
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        if workload is not only(docs, "Deployment", "autodeploy-deploy-agent"):
            assert pod["automountServiceAccountToken"] is False, workload["metadata"]["name"]


def test_workers_have_stable_ids_and_their_own_volumes(docs: list[dict[str, Any]]) -> None:
    workers = only(docs, "StatefulSet", "autodeploy-worker")
    container = workers["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["AUTODEPLOY_WORKER_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    datadir = env["AUTODEPLOY_WORKER_DATADIR"]["value"]
    (claim,) = workers["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": datadir} in container["volumeMounts"]
    headless = only(docs, "Service", workers["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"


def test_keda_scales_the_workers_on_their_groups_lag(docs: list[dict[str, Any]]) -> None:
    scaled = only(docs, "ScaledObject")
    workers = only(docs, "StatefulSet", "autodeploy-worker")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", workers["metadata"]["name"])
    assert "replicas" not in workers["spec"], "KEDA owns the replica count"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    env = configmap_named(docs, "autodeploy-env-")["data"]
    assert trigger["metadata"]["consumerGroup"] == env["AUTODEPLOY_WORKER_ID"]
    assert trigger["metadata"]["bootstrapServersFromEnv"] in env
    partitions = catalog.load(REPO_ROOT / "topics" / "catalog.yaml").topic("github.events").partitions
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= partitions
    assert not [
        h
        for h in docs
        if h["kind"] == "HorizontalPodAutoscaler" and h["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    ]


def _secret_refs(container: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The container's variables read from Secrets: name -> {name, key}."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_keda_logs_in_to_kafka_as_the_lag_exporters_read_only_principal(docs: list[dict[str, Any]]) -> None:
    (trigger,) = only(docs, "ScaledObject")["spec"]["triggers"]
    auth = only(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["metadata"]["namespace"] == only(docs, "ScaledObject")["metadata"]["namespace"]
    refs = {r["parameter"]: {"name": r["name"], "key": r["key"]} for r in auth["spec"]["secretTargetRef"]}
    exporter = only(docs, "Deployment", "autodeploy-lag-exporter")["spec"]["template"]["spec"]["containers"][0]
    exported = _secret_refs(exporter)
    assert refs == {"username": exported["KAFKA_SASL_USERNAME"], "password": exported["KAFKA_SASL_PASSWORD"]}
    assert refs["username"]["name"] == "autodeploy-kafka-lag-exporter"
    # The mechanism and TLS the pods use (autodeploy-env), in the scaler's words.
    env = configmap_named(docs, "autodeploy-env-")["data"]
    assert trigger["metadata"]["sasl"] == KEDA_SASL[env["KAFKA_SASL_MECHANISM"]]
    tls = env["KAFKA_SECURITY_PROTOCOL"] in ("SSL", "SASL_SSL")
    assert trigger["metadata"]["tls"] == ("enable" if tls else "disable")
    # That principal may read the group's offsets (topics/acls.yaml) and may write nothing.
    cat = catalog.load(REPO_ROOT / "topics" / "catalog.yaml").with_prefix(env["AUTODEPLOY_TOPIC_PREFIX"])
    names = {"worker_id": env["AUTODEPLOY_WORKER_ID"], "deploy_group": env["AUTODEPLOY_DEPLOY_GROUP"]}
    allowed = load_acls(REPO_ROOT / "topics" / "acls.yaml", cat, names).bindings
    principal = f"User:{kafka.username('lag-exporter')}"
    group = trigger["metadata"]["consumerGroup"]
    assert AclBinding(principal, "GROUP", "LITERAL", group, "DESCRIBE") in allowed
    assert not {b.operation for b in allowed if b.principal == principal} & {"WRITE", "CREATE", "DELETE", "ALTER"}


def test_services_hpa_and_budgets_point_at_real_pods(docs: list[dict[str, Any]]) -> None:
    pods = [w["spec"]["template"] for w in workloads(docs)]
    for service in (d for d in docs if d["kind"] == "Service"):
        matched = [p for p in pods if selects(service["spec"]["selector"], p["metadata"]["labels"])]
        assert len(matched) == 1, service["metadata"]["name"]
        ports = {port["name"] for c in matched[0]["spec"]["containers"] for port in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, service["metadata"]["name"]
    for budget in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        assert any(selects(budget["spec"]["selector"]["matchLabels"], p["metadata"]["labels"]) for p in pods)
    hpa = only(docs, "HorizontalPodAutoscaler")
    only(docs, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])


def test_every_service_is_scraped_on_a_port_serving_metrics(docs: list[dict[str, Any]]) -> None:
    monitor = only(docs, "ServiceMonitor")
    endpoints = {e["port"]: e for e in monitor["spec"]["endpoints"]}
    assert all(e["path"] == "/metrics" for e in endpoints.values())
    for service in (d for d in docs if d["kind"] == "Service"):
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        assert {p["name"] for p in service["spec"]["ports"]} & set(endpoints), service["metadata"]["name"]


def test_the_dashboard_is_provisioned_for_the_grafana_sidecar(docs: list[dict[str, Any]]) -> None:
    dashboard = only(docs, "ConfigMap", "autodeploy-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = json.loads((K8S / "base" / "monitoring" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["autodeploy.json"]) == source


# --- against a real API server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamic(k8s_cluster: ClusterHandle) -> DynamicClient:
    return DynamicClient(k8s_cluster.api_client())


@pytest.fixture(scope="module")
def crds_installed(dynamic: DynamicClient) -> Iterator[None]:
    """The real CRDs of the custom kinds, applied for real (dry-run needs them established), left installed."""
    try:
        files = k8s_tools.ensure_crds()
    except Exception as error:
        unavailable("the CRDs of the custom kinds (Go module proxy)", error)
    crds = dynamic.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    names = []
    for path in files:
        crd = yaml.safe_load(path.read_text())
        crds.server_side_apply(body=crd, field_manager=FIELD_MANAGER, force_conflicts=True)
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + 60
    for name in names:
        while not established(crds.get(name=name).to_dict()):
            assert time.monotonic() < deadline, f"CRD {name} not established"
            time.sleep(0.2)
    dynamic.resources.invalidate_cache()
    yield


def established(crd: dict[str, Any]) -> bool:
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def ensure_namespaces(dynamic: DynamicClient, docs: list[dict[str, Any]]) -> None:
    namespaces = dynamic.resources.get(api_version="v1", kind="Namespace")
    for name in sorted({d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]}):
        try:
            namespaces.create(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except ApiException as e:
            if e.status != 409:
                raise


def dry_run_apply(dynamic: DynamicClient, document: dict[str, Any]) -> list[str]:
    """Server-side apply with dryRun=All and fieldValidation=Strict; the errors, or nothing."""
    resource = dynamic.resources.get(api_version=document["apiVersion"], kind=document["kind"])
    try:
        resource.server_side_apply(
            body=document,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            dry_run="All",
            query_params=[("fieldValidation", "Strict")],
        )
    except ApiException as e:
        return [f"{document['kind']}/{document['metadata']['name']}: {e.status} {e.body}"]
    return []


@pytest.mark.parametrize("target", list(TARGETS))
def test_built_in_kinds_pass_server_side_dry_run(
    dynamic: DynamicClient, rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    docs = [d for d in rendered[target] if d["kind"] not in CUSTOM_KINDS]
    ensure_namespaces(dynamic, docs)
    assert [error for d in docs for error in dry_run_apply(dynamic, d)] == []


@pytest.mark.parametrize("target", list(TARGETS))
def test_custom_kinds_pass_server_side_dry_run_against_their_crds(
    dynamic: DynamicClient, crds_installed: None, rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    docs = [d for d in rendered[target] if d["kind"] in CUSTOM_KINDS]
    assert {d["kind"] for d in docs} == CUSTOM_KINDS
    ensure_namespaces(dynamic, docs)
    assert [error for d in docs for error in dry_run_apply(dynamic, d)] == []


def test_dry_run_rejects_a_broken_manifest(dynamic: DynamicClient, crds_installed: None) -> None:
    """The check above can fail: a misspelt field and a wrong type are refused, for built-in and custom kinds."""
    ensure_namespaces(dynamic, [{"metadata": {"namespace": "autodeploy"}}])
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "broken", "namespace": "autodeploy"},
        "spec": {"ports": [{"port": 80}], "selectr": {"app": "x"}},
    }
    assert dry_run_apply(dynamic, service) != []
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "broken", "namespace": "autodeploy"},
        "spec": {"scaleTargetRef": {"name": "x"}, "minReplicaCount": "two", "triggers": []},
    }
    assert dry_run_apply(dynamic, scaled) != []


def test_a_broken_kustomization_is_reported_with_kustomizes_reason(kustomize: Path, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(k8s_tools.RenderError, match=r"missing\.yaml"):
        k8s_tools.render(tmp_path, kustomize)
