"""Session fixture `k8s_cluster`: an external cluster when one is given, else the local control plane.

Register with `pytest_plugins = ["tests.cluster_fixture"]` in tests/conftest.py.
External: `AUTODEPLOY_EXTERNAL_KUBECONFIG`, else `KUBECONFIG`. Local: `streams.local.cluster.up()` in a temporary
state dir (binaries built once into the user cache, reused after). Under CI=true an unavailable cluster fails the run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from streams.local import cluster
from tests.support.kube import make_namespace
from tests.support.services import unavailable


@dataclass(frozen=True)
class ClusterHandle:
    kubeconfig: Path
    local: bool  # True: our kwok-backed plane, where the `never-ready` image tag is honoured by a kwok stage
    state_dir: Path | None = None  # the local plane's AUTODEPLOY_STATE_DIR (set only where `cluster` is asked)

    @contextlib.contextmanager
    def asked(self) -> Iterator[None]:
        """AUTODEPLOY_STATE_DIR set to the local plane's, for `streams.local.cluster` calls, and only meanwhile."""
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AUTODEPLOY_STATE_DIR", str(self.state_dir))
            yield

    def api_client(self, bearer_token: str | None = None) -> Any:
        """An ApiClient for this cluster; with `bearer_token`, authenticated as that token instead."""
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), client_configuration=configuration
        )
        if bearer_token is not None:
            # The kubeconfig loader keeps its token under "BearerToken", prefix included, and may install a hook that
            # refreshes it from the kubeconfig: replace both, and drop any client certificate.
            configuration.api_key = {"BearerToken": f"Bearer {bearer_token}"}
            configuration.api_key_prefix = {}
            configuration.refresh_api_key_hook = None
            configuration.cert_file = configuration.key_file = None
        return client.ApiClient(configuration)


def _external_kubeconfig() -> Path | None:
    for name in ("AUTODEPLOY_EXTERNAL_KUBECONFIG", "KUBECONFIG"):
        value = os.environ.get(name, "").split(os.pathsep)[0]
        if value:
            return Path(value)
    return None


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    external = _external_kubeconfig()
    if external is not None:
        if not external.is_file():
            unavailable("a Kubernetes cluster", FileNotFoundError(f"kubeconfig {external} does not exist"))
        yield ClusterHandle(kubeconfig=external, local=False)
        return
    # Our own state dir: a developer's `autodeploy cluster up` is neither reused nor stopped by the tests. Set only
    # while the plane starts and stops: left set for the session, it hid the session broker's state (and so its
    # credentials) from every process started after the first test that needed the cluster.
    state = str(tmp_path_factory.mktemp("cluster-state"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTODEPLOY_STATE_DIR", state)
        started = time.monotonic()
        try:
            info = cluster.up(progress=lambda line: print(f"[cluster] {line}", file=sys.stderr, flush=True))
        except Exception as error:
            cluster.down()
            unavailable("a Kubernetes cluster", error)
    print(f"[cluster] up in {time.monotonic() - started:.1f}s: {info.kubeconfig}", file=sys.stderr)
    try:
        yield ClusterHandle(kubeconfig=info.kubeconfig, local=True, state_dir=Path(state))
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AUTODEPLOY_STATE_DIR", state)
            cluster.down()


@pytest.fixture
def admin(k8s_cluster: ClusterHandle) -> Any:
    return k8s_cluster.api_client()


@pytest.fixture
def namespace(admin: Any) -> Iterator[str]:
    name = make_namespace(admin)
    yield name
    client.CoreV1Api(admin).delete_namespace(name)
