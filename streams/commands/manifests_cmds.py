"""`autodeploy manifests [base|dev|prod|DIR]`: render k8s/ with kustomize (built once into the cache)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streams.config import REPO_ROOT
from streams.local import k8s_tools

K8S_DIR = REPO_ROOT / "k8s"
TARGETS = {"base": K8S_DIR / "base", "dev": K8S_DIR / "overlays" / "dev", "prod": K8S_DIR / "overlays" / "prod"}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "manifests", help="render autodeploy's Kubernetes manifests (kustomize); pipe into `kubectl apply -f -`"
    )
    parser.add_argument(
        "target", nargs="?", default="prod", help="base, dev, prod (default) or a kustomization directory"
    )
    parser.set_defaults(handler=run)


def kustomization_dir(target: str) -> Path:
    directory = TARGETS.get(target, Path(target))
    if not (directory / "kustomization.yaml").is_file():
        raise ValueError(f"{target}: not one of {', '.join(TARGETS)} nor a directory with a kustomization.yaml")
    return directory


def run(args: argparse.Namespace) -> int:
    directory = kustomization_dir(args.target)
    binary = k8s_tools.ensure_kustomize(progress=lambda line: print(line, file=sys.stderr, flush=True))
    sys.stdout.write(k8s_tools.render(directory, binary))
    return 0
