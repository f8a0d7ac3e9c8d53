"""Build the local control plane's binaries from the Go module proxy, once, into the user cache.

Three Go builds: one multi-call binary for kube-apiserver, kube-controller-manager and kube-scheduler (one link
instead of three), etcd through a wrapper main module, and kwok by `go install`. The result lives in
`cache_dir()/k8s/<version key>/` and is reused until a version or a Go source file changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from streams.config import child_environment
from streams.local.cache import cache_dir
from streams.local.kwok_stages import CUSTOM_STAGE, stages_yaml

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

K8S_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
GO_MODULE_DIRECTIVES = "go 1.26.0\n\ngodebug default=go1.26\n"
# A staging module is replaced by a path inside the kubernetes repository, which the module zip does not hold.
_STAGING_REPLACE = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[A-Za-z0-9._-]+)\s*=>\s*\./staging/", re.MULTILINE)


class BuildError(RuntimeError):
    """A Go build step failed; the message names the step and carries the tail of its output."""


@dataclass(frozen=True)
class Versions:
    kubernetes: str = "1.36.3"
    etcd: str = "3.6.16"
    kwok: str = "0.8.0"

    def key(self) -> str:
        """Directory name: versions, platform and a digest of our Go sources, so any change builds anew."""
        digest = hashlib.sha256()
        for name in ("k8s/main.go", "etcd/main.go"):
            digest.update(_go_source(name).encode())
        digest.update(CUSTOM_STAGE.encode())
        return (
            f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}_{sys.platform}-{os.uname().machine}"
            f"_{digest.hexdigest()[:10]}"
        )


@dataclass(frozen=True)
class Binaries:
    root: Path
    versions: Versions

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def k8s(self) -> Path:
        """Multi-call binary; the first argument names the component."""
        return self.bin_dir / "k8s"

    @property
    def etcd(self) -> Path:
        return self.bin_dir / "etcd"

    @property
    def kwok(self) -> Path:
        return self.bin_dir / "kwok"

    @property
    def stages(self) -> Path:
        return self.root / "kwok-stages.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def complete(self) -> bool:
        """The manifest is written last, so its presence means every binary was built."""
        files = (self.k8s, self.etcd, self.kwok, self.stages, self.manifest)
        return all(path.is_file() for path in files)


def binaries(versions: Versions | None = None) -> Binaries:
    versions = versions or Versions()
    return Binaries(root=cache_dir() / "k8s" / versions.key(), versions=versions)


def kubernetes_go_mod(version: str, upstream_go_mod: str, module: str = "autodeploy.local/k8s") -> str:
    """go.mod of the wrapper: require k8s.io/kubernetes and replace every staging module by its published twin.

    kubernetes requires each staging module at v0.0.0 and points it at ./staging (kubernetes/kubernetes#79384);
    a dependent module must replace them all by v0.<minor>.<patch>. Other replaces upstream has are kept.
    """
    major, minor, patch = version.split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {version}")
    staging = sorted(set(_STAGING_REPLACE.findall(upstream_go_mod)))
    if not staging:
        raise ValueError("no staging replace directives found in the k8s.io/kubernetes go.mod")
    lines = [f"module {module}", "", GO_MODULE_DIRECTIVES, f"require k8s.io/kubernetes v{version}", "", "replace ("]
    lines += [f"\t{name} => {name} v0.{minor}.{patch}" for name in staging]
    lines += [f"\t{line}" for line in _other_replaces(upstream_go_mod)]
    lines += [")", ""]
    return "\n".join(lines)


def _other_replaces(go_mod: str) -> list[str]:
    """Non-staging replace directives (none in 1.34-1.36), copied so the build sees what upstream tested."""
    found = []
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if "=>" in line and "./staging/" not in line:
            found.append(line.removeprefix("replace").strip())
    return found


def etcd_go_mod(version: str, module: str = "autodeploy.local/etcd") -> str:
    return f"module {module}\n\n{GO_MODULE_DIRECTIVES}\nrequire go.etcd.io/etcd/server/v3 v{version}\n"


def k8s_ldflags(version: str) -> str:
    """Version stamps: without them the binaries say v0.0.0-master, which kwokctl and clients misread."""
    _, minor, _ = version.split(".")
    pkg = "k8s.io/component-base/version"
    stamps = {
        "gitVersion": f"v{version}",
        "gitMajor": "1",
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return "-s -w " + " ".join(f"-X {pkg}.{name}={value}" for name, value in stamps.items())


def ensure_built(versions: Versions | None = None, progress: Progress | None = None) -> Binaries:
    """Return the cached binaries, building what is missing first; safe against a concurrent build."""
    bins = binaries(versions)
    say = progress or log.info
    if bins.complete():
        return bins
    if shutil.which("go") is None:
        raise BuildError("the `go` command is not on PATH; Go 1.26 or newer is needed to build the control plane")
    bins.root.mkdir(parents=True, exist_ok=True)
    with (bins.root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second builder waits here and then finds the cache complete
        if not bins.complete():
            _build_all(bins, say)
    return bins


def _build_all(bins: Binaries, say: Progress) -> None:
    versions = bins.versions
    started = time.monotonic()
    say(f"building the local control plane into {bins.root} (first time only; about 10 min on 2 cores)")
    bins.bin_dir.mkdir(parents=True, exist_ok=True)
    env = _go_env()
    src = bins.root / "src"
    if not bins.k8s.is_file():
        _build_k8s(versions.kubernetes, src / "k8s", bins.k8s, env=env, say=say, log_path=bins.root / "build-k8s.log")
    if not bins.etcd.is_file():
        _build_etcd(versions.etcd, src / "etcd", bins.etcd, env=env, say=say, log_path=bins.root / "build-etcd.log")
    if not bins.kwok.is_file():
        say(f"kwok v{versions.kwok}: go install")
        install_env = {**env, "GOBIN": str(bins.bin_dir)}
        _go(
            ["install", *_BUILD_FLAGS, "-ldflags=-s -w", f"sigs.k8s.io/kwok/cmd/kwok@v{versions.kwok}"],
            None,
            env=install_env,
            say=say,
            log_path=bins.root / "build-kwok.log",
            step="kwok",
        )
    kwok_dir = Path(_module_info(f"sigs.k8s.io/kwok@v{versions.kwok}", env)["Dir"])
    bins.stages.write_text(stages_yaml(_read_default_stages(kwok_dir)), encoding="utf-8")
    sizes = {path.name: path.stat().st_size for path in (bins.k8s, bins.etcd, bins.kwok)}
    elapsed = round(time.monotonic() - started, 1)
    bins.manifest.write_text(
        json.dumps({"versions": asdict(versions), "sizes": sizes, "build_seconds": elapsed}, indent=2) + "\n",
        encoding="utf-8",
    )
    say(f"control plane built in {elapsed:.0f}s: " + ", ".join(f"{k} {v // 2**20} MiB" for k, v in sizes.items()))


_BUILD_FLAGS = ("-p", "2", "-trimpath", "-v")


def _build_k8s(version: str, src: Path, out: Path, *, env: Mapping[str, str], say: Progress, log_path: Path) -> None:
    say(f"kubernetes v{version}: resolving modules")
    upstream = Path(_module_info(f"k8s.io/kubernetes@v{version}", env)["GoMod"]).read_text(encoding="utf-8")
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(kubernetes_go_mod(version, upstream), encoding="utf-8")
    (src / "main.go").write_text(_go_source("k8s/main.go"), encoding="utf-8")
    _go(["mod", "tidy"], src, env=env, say=say, log_path=log_path, step="kubernetes go mod tidy")
    say(f"kubernetes v{version}: compiling {', '.join(K8S_COMPONENTS)} as one binary")
    _go(
        ["build", *_BUILD_FLAGS, "-o", str(out), f"-ldflags={k8s_ldflags(version)}", "."],
        src,
        env=env,
        say=say,
        log_path=log_path,
        step="kubernetes build",
    )


def _build_etcd(version: str, src: Path, out: Path, *, env: Mapping[str, str], say: Progress, log_path: Path) -> None:
    say(f"etcd v{version}: resolving modules")
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(etcd_go_mod(version), encoding="utf-8")
    (src / "main.go").write_text(_go_source("etcd/main.go"), encoding="utf-8")
    _go(["mod", "tidy"], src, env=env, say=say, log_path=log_path, step="etcd go mod tidy")
    say(f"etcd v{version}: compiling")
    _go(
        ["build", *_BUILD_FLAGS, "-o", str(out), "-ldflags=-s -w", "."],
        src,
        env=env,
        say=say,
        log_path=log_path,
        step="etcd build",
    )


def _read_default_stages(kwok_dir: Path) -> dict[str, str]:
    """The stages kwokctl uses by default (runtime/cluster.go getDefaultNodeStages/getDefaultPodStages)."""
    stage_dir = kwok_dir / "kustomize" / "stage"
    files = {
        "node-initialize": "node/fast/node-initialize.yaml",
        "node-heartbeat-with-lease": "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod-ready": "pod/fast/pod-ready.yaml",
        "pod-complete": "pod/fast/pod-complete.yaml",
        "pod-delete": "pod/fast/pod-delete.yaml",
    }
    return {name: (stage_dir / rel).read_text(encoding="utf-8") for name, rel in files.items()}


def _go_source(name: str) -> str:
    return resources.files("streams.local").joinpath("cluster_go", name).read_text(encoding="utf-8")


def _go_env() -> dict[str, str]:
    env = child_environment({"CGO_ENABLED": "0"})  # static binaries, and no C toolchain needed
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def _module_info(spec: str, env: Mapping[str, str]) -> dict[str, str]:
    done = subprocess.run(
        ["go", "mod", "download", "-json", spec],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        cwd=Path.home(),
    )
    if done.returncode != 0:
        raise BuildError(f"go mod download {spec} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    info: dict[str, str] = json.loads(done.stdout)
    return info


def _go(
    args: Sequence[str], cwd: Path | None, *, env: Mapping[str, str], say: Progress, log_path: Path, step: str
) -> None:
    """Run go, logging everything and reporting progress every 100 compiled packages (`-v` prints each)."""
    started = time.monotonic()
    count = 0
    with log_path.open("a", encoding="utf-8") as out:
        out.write(f"$ go {' '.join(args)}\n")
        proc = subprocess.Popen(
            ["go", *args],
            cwd=cwd or Path.home(),
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            count += 1
            if count % 100 == 0:
                unit = "modules" if args[0] == "mod" else "packages"
                say(f"  {step}: {count} {unit} ({time.monotonic() - started:.0f}s)")
        code = proc.wait()
    if code != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8").splitlines()[-30:])
        raise BuildError(f"{step} failed (exit {code}); full log {log_path}:\n{tail}")
    say(f"  {step}: done in {time.monotonic() - started:.0f}s")
