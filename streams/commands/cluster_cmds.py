"""`autodeploy cluster up | down | status`: the local Kubernetes control plane (see streams/local/cluster.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streams.local import cluster, cluster_build, k8s_tools


def register(sub: Any) -> None:
    parser = sub.add_parser("cluster", help="a local Kubernetes control plane (etcd, apiserver, controllers, kwok)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("up", help="build the binaries once (Go needed), start the plane, wait for Ready nodes")
    start.add_argument("--nodes", type=int, default=cluster.DEFAULT_NODES, help="kwok nodes to register")
    start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait once the binaries exist")
    start.set_defaults(handler=run_cluster_up)
    actions.add_parser(
        "build", help="only build (or find cached) the binaries, kustomize and the CRDs k8s/ uses; CI runs this"
    ).set_defaults(handler=run_cluster_build)
    actions.add_parser("down", help="stop the processes `up` started").set_defaults(handler=run_cluster_down)
    actions.add_parser("status", help="which components run, and where").set_defaults(handler=run_cluster_status)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_cluster_up(args: argparse.Namespace) -> int:
    info = cluster.up(nodes=args.nodes, timeout=args.timeout, progress=_progress)
    print(f"cluster up: {info.server}, {len(info.nodes)} kwok nodes Ready")
    print(f"export KUBECONFIG={info.kubeconfig}")
    return 0


def run_cluster_build(args: argparse.Namespace) -> int:
    bins = cluster_build.ensure_built(progress=_progress)
    print(f"binaries ready in {bins.bin_dir}")
    # The manifest tests render k8s/ with kustomize and dry-run its custom kinds against their real CRDs.
    print(f"kustomize ready: {k8s_tools.ensure_kustomize(progress=_progress)}")
    print(f"CRDs ready in {k8s_tools.ensure_crds(progress=_progress)[0].parent}")
    return 0


def run_cluster_down(args: argparse.Namespace) -> int:
    print("cluster stopped" if cluster.down() else "cluster was not running")
    return 0


def run_cluster_status(args: argparse.Namespace) -> int:
    current = cluster.status()
    print(current.describe())
    return 0 if current.running else 3
