"""kustomize and the CRDs of k8s/'s custom kinds, from the Go module proxy, once, into the user cache.

`kubectl kustomize` is kustomize: a standalone build (one `go install`, about half a minute cold) is far cheaper than
adding kubectl to the control plane's multi-call binary. The CRDs of ServiceMonitor, PrometheusRule, ScaledObject and
TriggerAuthentication ship inside their projects' Go modules, so `go mod download` fetches them without any other
network access.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.local.cache import cache_dir
from streams.local.cluster_build import BuildError, Progress, _go, _go_env, _module_info

# 5.8.3 declares `go 1.27`; 5.8.2 builds with the Go 1.26 the control plane needs anyway.
KUSTOMIZE_VERSION = "5.8.2"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"


@dataclass(frozen=True)
class CrdSource:
    module: str
    version: str
    paths: tuple[str, ...]  # inside the module


CRD_SOURCES = (
    CrdSource(
        "github.com/prometheus-operator/prometheus-operator",
        "0.85.0",
        (
            "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
            "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        ),
    ),
    CrdSource(
        "github.com/kedacore/keda/v2",
        "2.21.0",
        ("config/crd/bases/keda.sh_scaledobjects.yaml", "config/crd/bases/keda.sh_triggerauthentications.yaml"),
    ),
)


class RenderError(RuntimeError):
    """kustomize refused a kustomization; the message carries its error."""


def tools_dir() -> Path:
    return cache_dir() / "k8s-tools"


def kustomize_path() -> Path:
    return tools_dir() / f"kustomize-v{KUSTOMIZE_VERSION}" / "kustomize"


def ensure_kustomize(progress: Progress | None = None) -> Path:
    """The cached kustomize binary, built by `go install` the first time (safe against a concurrent build)."""
    binary = kustomize_path()
    if binary.is_file():
        return binary
    if shutil.which("go") is None:
        raise BuildError("the `go` command is not on PATH; Go 1.26 or newer is needed to build kustomize")
    say = progress or (lambda line: None)
    root = binary.parent
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():
            return binary
        say(f"kustomize v{KUSTOMIZE_VERSION}: go install (first time only)")
        staging = root / "bin"  # installed here, then renamed: a half-written binary is never taken for a built one
        stamp = f"-X sigs.k8s.io/kustomize/api/provenance.version=v{KUSTOMIZE_VERSION}"
        _go(
            ["install", "-p", "2", "-trimpath", f"-ldflags=-s -w {stamp}", f"{KUSTOMIZE_MODULE}@v{KUSTOMIZE_VERSION}"],
            None,
            env={**_go_env(), "GOBIN": str(staging)},
            say=say,
            log_path=root / "build.log",
            step="kustomize",
        )
        (staging / "kustomize").replace(binary)
    return binary


def crds_dir() -> Path:
    key = "_".join(f"{s.module.split('/')[2]}-{s.version}" for s in CRD_SOURCES)
    return tools_dir() / f"crds-{key}"


def ensure_crds(progress: Progress | None = None) -> list[Path]:
    """The CRD manifests of the custom kinds k8s/ uses, copied out of their Go modules once."""
    target = crds_dir()
    wanted = [target / Path(path).name for source in CRD_SOURCES for path in source.paths]
    if all(path.is_file() for path in wanted):
        return wanted
    say = progress or (lambda line: None)
    target.mkdir(parents=True, exist_ok=True)
    for source in CRD_SOURCES:
        say(f"CRDs from {source.module}@v{source.version}")
        module_dir = Path(_module_info(f"{source.module}@v{source.version}", _go_env())["Dir"])
        for path in source.paths:
            partial = target / (Path(path).name + ".partial")
            shutil.copyfile(module_dir / path, partial)
            partial.replace(target / Path(path).name)
    return wanted


def render(kustomization: Path, kustomize: Path | None = None) -> str:
    """`kustomize build <dir>`: the manifests as one multi-document YAML stream."""
    binary = kustomize or ensure_kustomize()
    done = subprocess.run([str(binary), "build", str(kustomization)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RenderError(f"kustomize build {kustomization} failed: {done.stderr.strip()}")
    return done.stdout
