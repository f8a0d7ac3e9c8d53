"""Thin wrappers over the kubernetes client for what the local plane needs: registering kwok nodes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from streams.local.cluster_config import node_manifest

log = logging.getLogger(__name__)

NODE_PREFIX = "kwok-node-"


def core_api(kubeconfig: Path) -> Any:
    """A CoreV1Api bound to this kubeconfig only; the global default configuration is left alone."""
    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api_client)


def create_nodes(kubeconfig: Path, count: int) -> list[str]:
    api = core_api(kubeconfig)
    names = [f"{NODE_PREFIX}{index}" for index in range(count)]
    for name in names:
        try:
            api.create_node(body=node_manifest(name))
        except ApiException as error:
            if error.status != 409:  # already there from an earlier attempt: fine
                raise
    return names


def wait_nodes_ready(kubeconfig: Path, names: Sequence[str]) -> bool:
    """True when every named node has condition Ready=True (kwok's node-initialize stage sets it)."""
    api = core_api(kubeconfig)
    ready = set()
    for node in api.list_node().items:
        conditions = node.status.conditions or [] if node.status else []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            ready.add(node.metadata.name)
    return set(names) <= ready
