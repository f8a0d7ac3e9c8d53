"""The local control plane behaves like a cluster: real Deployment controller, scheduler and RBAC, kwok kubelets."""

from __future__ import annotations

import sys
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from streams.local import cluster
from streams.local.kwok_stages import UNREADY_IMAGE_TAG
from tests.cluster_fixture import ClusterHandle
from tests.support.kube import eventually

# The session fixture may build the binaries on first use (about 10 min cold); `.ci/run` builds them beforehand.
pytestmark = pytest.mark.timeout(1800)


def deployment(name: str, image: str, replicas: int, progress_deadline: int | None = None) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            progress_deadline_seconds=progress_deadline,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]),
            ),
        ),
    )


def test_status_reports_every_component(k8s_cluster: ClusterHandle) -> None:
    if not k8s_cluster.local:
        pytest.skip("external cluster: no local processes")
    with k8s_cluster.asked():
        current = cluster.status()
    assert current.running, current.describe()
    assert set(current.components) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}


def test_nodes_are_ready(k8s_cluster: ClusterHandle) -> None:
    nodes = client.CoreV1Api(k8s_cluster.api_client()).list_node().items
    ready = [
        n
        for n in nodes
        if n.status and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    assert ready, "no Ready node"


def test_deployment_becomes_available(k8s_cluster: ClusterHandle, namespace: str) -> None:
    apps = client.AppsV1Api(k8s_cluster.api_client())
    started = time.monotonic()
    apps.create_namespaced_deployment(namespace, deployment("web", "registry.local/web:1.0", replicas=2))

    def available() -> client.V1DeploymentStatus | None:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        assert status is not None
        return status if (status.available_replicas or 0) == 2 and status.updated_replicas == 2 else None

    status = eventually(available, 90, "2 available replicas")
    print(f"rollout of 2 replicas took {time.monotonic() - started:.1f}s", file=sys.stderr)
    assert status.ready_replicas == 2
    pods = client.CoreV1Api(k8s_cluster.api_client()).list_namespaced_pod(namespace, label_selector="app=web").items
    assert all(pod.status and pod.status.phase == "Running" and pod.status.pod_ip for pod in pods)


def test_never_ready_pods_hit_the_progress_deadline(k8s_cluster: ClusterHandle, namespace: str) -> None:
    apps = client.AppsV1Api(k8s_cluster.api_client())
    image = f"registry.local/stuck:{UNREADY_IMAGE_TAG}"
    apps.create_namespaced_deployment(namespace, deployment("stuck", image, replicas=1, progress_deadline=5))

    def deadline_exceeded() -> client.V1DeploymentCondition | None:
        status = apps.read_namespaced_deployment_status("stuck", namespace).status
        conditions = (status.conditions if status else None) or []
        found = [c for c in conditions if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded"]
        return found[0] if found else None

    condition = eventually(deadline_exceeded, 90, "Progressing=False/ProgressDeadlineExceeded")
    assert condition.status == "False"
    if k8s_cluster.local:  # kwok's custom stage: Running, never Ready (a real kubelet would be in image pull back-off)
        pods = client.CoreV1Api(k8s_cluster.api_client()).list_namespaced_pod(namespace).items
        statuses = [p.status for p in pods if p.status]
        assert [s.phase for s in statuses] == ["Running"]
        ready = [c.status for c in statuses[0].conditions or [] if c.type == "Ready"]
        assert ready == ["False"]


def test_role_limited_service_account_is_refused_elsewhere(k8s_cluster: ClusterHandle, namespace: str) -> None:
    admin = k8s_cluster.api_client()
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="bot")))
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="bot-reads-pods"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="bot", namespace=namespace)],
        ),
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    granted = core.create_namespaced_service_account_token("bot", namespace, request).status
    assert granted is not None
    token = granted.token
    as_bot = client.CoreV1Api(k8s_cluster.api_client(bearer_token=token))

    # RBAC objects take effect through the authorizer's informer: allow it a moment.
    def can_list_own() -> bool:
        try:
            as_bot.list_namespaced_pod(namespace)
        except ApiException as error:
            if error.status != 403:
                raise
            return False
        return True

    eventually(can_list_own, 10, "the bot to list pods in its own namespace")
    with pytest.raises(ApiException) as refused:
        as_bot.list_namespaced_pod("default")
    assert refused.value.status == 403
    with pytest.raises(ApiException) as refused_write:
        as_bot.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="x"))
        )
    assert refused_write.value.status == 403
