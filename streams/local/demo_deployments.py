"""The demo workloads `autodeploy up` puts on the local control plane: one Deployment per service of the policy file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from streams.domain.policy import Policies, ServicePolicy

log = logging.getLogger(__name__)

INITIAL_COMMIT = "0" * 40  # the demo's "before autodeploy" image: the policy's image for an all-zero commit


def initial_image(policy: ServicePolicy) -> str:
    return policy.image_for(INITIAL_COMMIT) or f"{policy.image_from_package}:initial"


def ensure_demo_deployments(kubeconfig: Path, policies: Policies) -> list[str]:
    """Create each service's namespace and Deployment (2 kwok replicas) in each of its environments (this cluster's)
    unless it exists; returns what was created."""
    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    created: list[str] = []
    targets = [(p, e.target) for p in policies.services for e in p.environments if e.target.context is None]
    for policy, target in targets:
        namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name=target.namespace))
        if _create(core.create_namespace, namespace):
            created.append(f"namespace/{target.namespace}")
        labels = {"app": target.deployment}
        deployment = client.V1Deployment(
            metadata=client.V1ObjectMeta(name=target.deployment, labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=2,
                progress_deadline_seconds=30,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name=target.container, image=initial_image(policy))]
                    ),
                ),
            ),
        )
        if _create(apps.create_namespaced_deployment, target.namespace, deployment):
            created.append(f"deployment/{target.namespace}/{target.deployment}")
    return created


def _create(call: Callable[..., object], *args: object) -> bool:
    """True when created, False when it existed already."""
    try:
        call(*args)
    except ApiException as e:
        if e.status == 409:
            return False
        raise
    return True
