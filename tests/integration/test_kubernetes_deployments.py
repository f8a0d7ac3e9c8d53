"""The Deployments adapter against a real API server and Deployment controller (kwok kubelets, see kwok_stages)."""

from __future__ import annotations

import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from streams.adapters.kubernetes_deployment_view import check_image, derive_rollout
from streams.adapters.kubernetes_deployments import (
    Conflict,
    DeploymentsClient,
    Forbidden,
    Invalid,
    NotFound,
    Temporary,
)
from streams.local.kwok_stages import UNREADY_IMAGE_TAG
from tests.cluster_fixture import ClusterHandle
from tests.support.kube import (
    V1,
    V2,
    create_deployment,
    eventually,
    grant_deployments,
    make_namespace,
    manual_set_image,
    service_account_token,
)

# The session fixture may build the binaries on first use (about 10 min cold).
pytestmark = pytest.mark.timeout(1800)

MANIFEST = Path(__file__).resolve().parents[2] / "k8s" / "base" / "deploy-agent-rbac.yaml"
ANNOTATIONS = {
    "autodeploy.dev/commit": "0123456789abcdef0123456789abcdef01234567",
    "autodeploy.dev/readiness-event": "evt-1",
    "autodeploy.dev/chain-id": "chain-1",
    "autodeploy.dev/previous-image": V1,
}


@pytest.fixture
def deployments(admin: Any) -> DeploymentsClient:
    return DeploymentsClient(admin)


@pytest.fixture
def shop(admin: Any, namespace: str, deployments: DeploymentsClient) -> str:
    """A complete 2-replica Deployment `shop` (containers sidecar and app) in the test's namespace."""
    create_deployment(admin, namespace)
    assert deployments.watch_rollout(namespace, "shop", "app", timeout=60).rollout == "complete"
    return namespace


def test_get_shows_image_and_complete_rollout(deployments: DeploymentsClient, shop: str) -> None:
    view = deployments.get(shop, "shop", "app")
    assert (view.image, view.rollout, view.replicas, view.available_replicas) == (V1, "complete", 2, 2)
    assert view.observed_generation == view.generation == 1
    assert (view.progressing, view.progressing_reason) == ("True", "NewReplicaSetAvailable")
    assert deployments.get(shop, "shop", "sidecar").image == "registry.example/proxy:1"
    with pytest.raises(NotFound):
        deployments.get(shop, "missing", "app")


def test_set_image_rolls_out_with_annotations(deployments: DeploymentsClient, shop: str) -> None:
    before = deployments.get(shop, "shop", "app")
    started = time.monotonic()
    patched = deployments.set_image(before, V2, ANNOTATIONS)
    patch_latency = time.monotonic() - started
    assert patched.image == V2
    assert patched.generation == before.generation + 1
    assert patched.rollout == "progressing"  # the controller has not observed the new generation yet
    done = deployments.watch_rollout(shop, "shop", "app", timeout=60)
    rollout_time = time.monotonic() - started
    print(f"patch latency {patch_latency * 1000:.1f} ms, rollout of 2 replicas {rollout_time:.2f} s", file=sys.stderr)
    assert done.rollout == "complete"
    assert (done.image, done.updated_replicas, done.available_replicas) == (V2, 2, 2)
    assert done.observed_generation == done.generation
    assert dict(done.annotations) == ANNOTATIONS
    assert deployments.get(shop, "shop", "sidecar").image == "registry.example/proxy:1"  # only `app` changed


def test_stale_view_loses_compare_and_set(admin: Any, deployments: DeploymentsClient, shop: str) -> None:
    stale = deployments.get(shop, "shop", "app")
    manual_set_image(admin, shop, "registry.example/shop:hotfix")
    with pytest.raises(Conflict) as lost:
        deployments.set_image(stale, V2, ANNOTATIONS)
    assert lost.value.status == 409
    current = deployments.get(shop, "shop", "app")
    assert current.image == "registry.example/shop:hotfix"
    assert dict(current.annotations) == {}
    # A rollback is refused the same way when the spec, not just status, moved.
    with pytest.raises(Conflict):
        deployments.rollback(stale, V1, {})
    assert deployments.get(shop, "shop", "app").image == "registry.example/shop:hotfix"


def test_never_ready_image_fails_and_rollback_restores(admin: Any, deployments: DeploymentsClient, shop: str) -> None:
    before = deployments.get(shop, "shop", "app")
    broken = f"registry.example/shop:{UNREADY_IMAGE_TAG}"
    deployments.set_image(before, broken, {**ANNOTATIONS, "autodeploy.dev/previous-image": before.image})
    with pytest.raises(Temporary, match="not settled"):
        deployments.watch_rollout(shop, "shop", "app", timeout=1)
    started = time.monotonic()
    failed = deployments.watch_rollout(shop, "shop", "app", timeout=40)
    print(f"ProgressDeadlineExceeded seen after {time.monotonic() - started + 1:.1f} s", file=sys.stderr)
    assert failed.rollout == "failed"
    assert (failed.progressing, failed.progressing_reason) == ("False", "ProgressDeadlineExceeded")
    assert failed.available_replicas == 2  # maxUnavailable rounds down to 0: the old pods kept serving

    # Someone labels the Deployment: its resourceVersion moves but not its spec, so the rollback re-reads and goes on.
    client.AppsV1Api(admin).patch_namespaced_deployment(
        "shop", shop, {"metadata": {"labels": {"team": "shop"}}}, _content_type="application/strategic-merge-patch+json"
    )
    restored = deployments.rollback(failed, failed.annotations["autodeploy.dev/previous-image"], {})
    assert restored.image == V1
    done = deployments.watch_rollout(shop, "shop", "app", timeout=60)
    assert (done.rollout, done.image, done.total_replicas, done.progressing_reason) == (
        "complete",
        V1,
        2,
        "NewReplicaSetAvailable",
    )


def test_dry_run_validates_but_changes_nothing(deployments: DeploymentsClient, shop: str) -> None:
    before = deployments.get(shop, "shop", "app")
    would_be = deployments.set_image(before, V2, ANNOTATIONS, dry_run=True)
    assert would_be.image == V2
    assert dict(would_be.annotations) == ANNOTATIONS
    assert would_be.generation == before.generation + 1
    assert would_be.resource_version == before.resource_version  # nothing was stored
    after = deployments.get(shop, "shop", "app")
    assert (after.image, after.generation, dict(after.annotations)) == (V1, before.generation, {})
    # The dry run still enforces the compare-and-set.
    deployments.set_image(before, V2, {})
    with pytest.raises(Conflict):
        deployments.set_image(before, V1, {}, dry_run=True)


def test_api_server_does_not_check_image_references(admin: Any, shop: str) -> None:
    """Why the adapter checks references itself: only an empty image is refused by the API server."""
    apps = client.AppsV1Api(admin)
    for image in ("UPPER CASE:bad tag", " padded "):
        body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        accepted: Any = apps.patch_namespaced_deployment(
            "shop", shop, body, dry_run="All", _content_type="application/strategic-merge-patch+json"
        )
        assert accepted.spec.template.spec.containers[1].image == image


@pytest.mark.parametrize(
    ("container", "image", "annotations", "server_said"),
    [
        ("app", "UPPER CASE:bad tag", {}, False),
        ("app", "", {}, False),
        ("app", V2, {"team": "x"}, False),  # not ours to write
        ("nope", V2, {}, False),
        ("app", V2, {"autodeploy.dev/not a key": "x"}, True),  # the API server's metadata validation: 422
    ],
)
def test_invalid_requests(
    deployments: DeploymentsClient,
    shop: str,
    container: str,
    image: str,
    annotations: dict[str, str],
    server_said: bool,
) -> None:
    with pytest.raises(Invalid) as refused:
        view = deployments.get(shop, "shop", container)
        deployments.set_image(view, image, annotations, dry_run=True)
    assert refused.value.status == (422 if server_said else None)
    if container == "nope":
        assert str(refused.value) == f"container nope not in deployment {shop}/shop"
    assert deployments.get(shop, "shop", "app").image == V1


def wait_until_allowed(deployments: DeploymentsClient, namespace: str) -> None:
    """RBAC objects take effect through the authorizer's informer: allow it a moment."""

    def allowed() -> bool:
        try:
            deployments.get(namespace, "shop", "app")
        except Forbidden:
            return False
        return True

    eventually(allowed, 10, f"RBAC to allow reading deployments in {namespace}")


def test_role_limits_the_agent_to_its_namespace(k8s_cluster: ClusterHandle, admin: Any, shop: str) -> None:
    other = make_namespace(admin)
    try:
        create_deployment(admin, other)
        token = grant_deployments(admin, shop)
        as_bot = DeploymentsClient(k8s_cluster.api_client(bearer_token=token))
        wait_until_allowed(as_bot, shop)

        as_bot.set_image(as_bot.get(shop, "shop", "app"), V2, ANNOTATIONS)
        assert as_bot.watch_rollout(shop, "shop", "app", timeout=60).rollout == "complete"  # get + watch, no list

        with pytest.raises(Forbidden) as refused:
            as_bot.get(other, "shop", "app")
        assert refused.value.status == 403
        elsewhere = DeploymentsClient(admin).get(other, "shop", "app")
        with pytest.raises(Forbidden):
            as_bot.set_image(elsewhere, V2, ANNOTATIONS)
        with pytest.raises(Forbidden):
            as_bot.watch_rollout(other, "shop", "app", timeout=5)
        assert DeploymentsClient(admin).get(other, "shop", "app").image == V1
    finally:
        client.CoreV1Api(admin).delete_namespace(other)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_api_server_is_temporary() -> None:
    configuration = client.Configuration()
    configuration.host = f"https://127.0.0.1:{closed_port()}"
    unreachable = DeploymentsClient(client.ApiClient(configuration), request_timeout=2)
    started = time.monotonic()
    with pytest.raises(Temporary, match="unreachable") as error:
        unreachable.get("default", "shop", "app")
    assert error.value.status is None
    assert time.monotonic() - started < 10
    with pytest.raises(Temporary, match="not settled"):
        unreachable.watch_rollout("default", "shop", "app", timeout=1, poll=0.2)


def server_side_apply(admin: Any, document: dict[str, Any]) -> Callable[[], None]:
    """Apply one manifest document as `kubectl apply --server-side` would; return a function that deletes it."""
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    operations = {
        "ServiceAccount": (core.patch_namespaced_service_account, core.delete_namespaced_service_account),
        "Role": (rbac.patch_namespaced_role, rbac.delete_namespaced_role),
        "RoleBinding": (rbac.patch_namespaced_role_binding, rbac.delete_namespaced_role_binding),
    }
    apply, delete = operations[document["kind"]]
    name, namespace = document["metadata"]["name"], document["metadata"]["namespace"]
    apply(
        name,
        namespace,
        document,
        field_manager="autodeploy-tests",
        force=True,
        _content_type="application/apply-patch+yaml",
    )

    def cleanup() -> None:
        delete(name, namespace)

    return cleanup


def ensure_namespace(admin: Any, name: str) -> None:
    try:
        client.CoreV1Api(admin).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as e:
        if e.status != 409:
            raise


def test_deploy_agent_manifest_is_least_privilege() -> None:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert sorted(d["kind"] for d in documents) == ["Role", "RoleBinding", "ServiceAccount"]
    (role,) = [d for d in documents if d["kind"] == "Role"]
    assert role["rules"] == [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "watch", "patch"]}]


def test_deploy_agent_manifest_grants_shop_only(k8s_cluster: ClusterHandle, admin: Any) -> None:
    for name in ("autodeploy", "shop"):
        ensure_namespace(admin, name)
    deployment = f"shop-{uuid.uuid4().hex[:6]}"
    create_deployment(admin, "shop", name=deployment)
    # Until the first rollout completes the controller keeps writing status, and each write makes the compare-and-set
    # patch below lose (409), as the `shop` fixture avoids the same way.
    assert DeploymentsClient(admin).watch_rollout("shop", deployment, "app", timeout=60).rollout == "complete"

    def delete_deployment() -> None:
        client.AppsV1Api(admin).delete_namespaced_deployment(deployment, "shop")

    cleanups: list[Callable[[], None]] = [delete_deployment]
    try:
        cleanups += [server_side_apply(admin, d) for d in yaml.safe_load_all(MANIFEST.read_text())]
        token = service_account_token(admin, "autodeploy", "autodeploy-deploy-agent")
        agent = DeploymentsClient(k8s_cluster.api_client(bearer_token=token))

        def can_patch() -> bool:
            try:
                view = agent.get("shop", deployment, "app")
                agent.set_image(view, V2, ANNOTATIONS, dry_run=True)
            except Forbidden:
                return False
            return True

        eventually(can_patch, 10, "the deploy agent to be allowed in shop")
        agent.set_image(agent.get("shop", deployment, "app"), V2, ANNOTATIONS)
        # Watching the rollout needs no "list": the manifest grants get, watch and patch only.
        assert agent.watch_rollout("shop", deployment, "app", timeout=60).image == V2
        with pytest.raises(Forbidden):
            agent.get("default", "kubernetes", "app")
        with pytest.raises(Forbidden):
            agent.watch_rollout("default", deployment, "app", timeout=5)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


def test_rollout_derivation_needs_the_controller_to_catch_up() -> None:
    settled = {"replicas": 2, "total_replicas": 2, "updated_replicas": 2, "available_replicas": 2}
    assert derive_rollout(generation=2, observed_generation=2, progressing_reason=None, **settled) == "complete"
    stale = derive_rollout(
        generation=3, observed_generation=2, progressing_reason="ProgressDeadlineExceeded", **settled
    )
    assert stale == "progressing"
    old_pods = {**settled, "total_replicas": 3}
    assert derive_rollout(generation=2, observed_generation=2, progressing_reason=None, **old_pods) == "progressing"
    assert (
        derive_rollout(generation=2, observed_generation=2, progressing_reason="ProgressDeadlineExceeded", **old_pods)
        == "failed"
    )


@pytest.mark.parametrize(
    "image",
    ["nginx", "registry.example/shop:v1", "localhost:5000/a/b_c:1.0-rc", "ghcr.io/o/r@sha256:" + "a" * 64],
)
def test_valid_image_references(image: str) -> None:
    check_image(image)


@pytest.mark.parametrize("image", ["", "UPPER CASE:bad tag", "Shop:v1", " shop", "shop:", "shop:-x", "a//b"])
def test_invalid_image_references(image: str) -> None:
    with pytest.raises(Invalid):
        check_image(image)
