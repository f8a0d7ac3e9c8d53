"""Kubernetes helpers for tests against the real control plane."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes import client

T = TypeVar("T")
# The images of commits C1, C2, C3 by the agent tests' policy template `registry.example/shop:{sha}`.
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40
V1, V2, V3 = (f"registry.example/shop:{c}" for c in (C1, C2, C3))


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def make_namespace(admin: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(admin).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def create_deployment(admin: Any, namespace: str, image: str = V1, name: str = "shop") -> None:
    labels = {"app": name}
    client.AppsV1Api(admin).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1DeploymentSpec(
                replicas=2,
                progress_deadline_seconds=10,
                min_ready_seconds=0,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(name="sidecar", image="registry.example/proxy:1"),
                            client.V1Container(name="app", image=image),
                        ]
                    ),
                ),
            ),
        ),
    )


def manual_set_image(admin: Any, namespace: str, image: str) -> None:
    """What `kubectl set image deployment/shop app=<image>` sends: an unconditional strategic-merge patch."""
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    client.AppsV1Api(admin).patch_namespaced_deployment(
        "shop", namespace, body, _content_type="application/strategic-merge-patch+json"
    )


def service_account_token(admin: Any, namespace: str, name: str) -> str:
    core = client.CoreV1Api(admin)
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    granted = core.create_namespaced_service_account_token(name, namespace, request).status
    assert granted is not None
    return str(granted.token)


def grant_deployments(admin: Any, namespace: str, account: str = "bot") -> str:
    """A ServiceAccount allowed get, watch and patch on Deployments in `namespace` only; returns its token."""
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    rule = client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get", "watch", "patch"])
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=client.V1ObjectMeta(name="deployer"), rules=[rule]))
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=f"{account}-deploys"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="deployer"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
        ),
    )
    return service_account_token(admin, namespace, account)
