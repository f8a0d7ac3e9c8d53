"""`autodeploy cluster up|down|status`: a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) with kwok as the kubelet stand-in, all on loopback, no containers.

The processes are recorded in `state_dir()/cluster/cluster.json`; `down` stops exactly those.
"""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streams.local import processes
from streams.local.cache import state_dir
from streams.local.cluster_build import Binaries, Progress, Versions, ensure_built
from streams.local.cluster_config import (
    COMPONENTS,
    Layout,
    Ports,
    argv,
    kubeconfig_yaml,
    write_pki,
    write_token_file,
)
from streams.local.cluster_nodes import create_nodes, wait_nodes_ready
from streams.local.processes import ServiceStartError

log = logging.getLogger(__name__)

DEFAULT_NODES = 3


@dataclass(frozen=True)
class ClusterInfo:
    kubeconfig: Path
    server: str
    token: str
    ca_file: Path
    root: Path
    pids: Mapping[str, int] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()
    versions: Versions = field(default_factory=Versions)


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    components: Mapping[str, bool]
    kubeconfig: Path | None = None
    server: str | None = None

    def describe(self) -> str:
        if not self.components:
            return "cluster: not started"
        lines = [
            f"cluster: {'running' if self.running else 'DEGRADED'} at {self.server}",
            f"kubeconfig: {self.kubeconfig}",
        ]
        lines += [f"  {name}: {'running' if up else 'stopped'}" for name, up in self.components.items()]
        return "\n".join(lines)


def layout() -> Layout:
    return Layout(state_dir() / "cluster")


def up(
    nodes: int = DEFAULT_NODES,
    timeout: float = 180.0,
    progress: Progress | None = None,
    versions: Versions | None = None,
) -> ClusterInfo:
    """Build (or reuse) the binaries, start the plane, register `nodes` kwok nodes and wait until they are Ready.

    A cluster already running from this state dir is returned as is. On failure everything started is stopped and
    ServiceStartError names the component, with the tail of its log.
    """
    say = progress or log.info
    existing = _running_info()
    if existing is not None:
        say(f"cluster already running; kubeconfig {existing.kubeconfig}")
        return existing
    bins = ensure_built(versions, say)
    lay = layout()
    _reset(lay)
    write_pki(lay.pki)
    token = write_token_file(lay.token_file)
    ports = Ports.pick()
    server = f"https://127.0.0.1:{ports.apiserver}"
    ca_file = lay.pki / "ca.crt"
    lay.kubeconfig.write_text(kubeconfig_yaml(server, ca_file, token), encoding="utf-8")
    lay.kubeconfig.chmod(0o600)
    started: dict[str, subprocess.Popen[bytes]] = {}
    deadline = time.monotonic() + timeout
    try:
        for component in COMPONENTS:
            started[component] = processes.start(argv(component, bins, lay, ports), lay.log(component))
            _save(lay, bins, server, token, ca_file, started=started, ports=ports)
            if component == "etcd":
                _wait(lambda: _http_ok(f"http://127.0.0.1:{ports.etcd_client}/health"), "etcd", lay, started, deadline)
            elif component == "kube-apiserver":
                _wait(lambda: _http_ok(f"{server}/readyz", token, ca_file), component, lay, started, deadline)
                say(f"kube-apiserver ready at {server}")
        names = create_nodes(lay.kubeconfig, nodes)
        _wait(lambda: wait_nodes_ready(lay.kubeconfig, names), "kwok (nodes Ready)", lay, started, deadline)
    except BaseException:
        for proc in reversed(started.values()):
            processes.stop(proc.pid, timeout=10)
        lay.state.unlink(missing_ok=True)
        raise
    say(f"cluster up: {len(names)} nodes Ready; kubeconfig {lay.kubeconfig}")
    return ClusterInfo(
        kubeconfig=lay.kubeconfig,
        server=server,
        token=token,
        ca_file=ca_file,
        root=lay.root,
        pids={name: p.pid for name, p in started.items()},
        nodes=tuple(names),
        versions=bins.versions,
    )


def down(timeout: float = 30.0, progress: Progress | None = None) -> bool:
    """Stop the recorded processes (checking each pid still runs our binary); False when nothing was recorded.
    `progress` is told of each process as it is stopped."""
    lay = layout()
    state = processes.read_state(lay.state)
    if state is None:
        return False
    components: dict[str, dict[str, object]] = state.get("components", {})
    for name in reversed(list(components)):
        entry = components[name]
        pid, cmd = int(str(entry["pid"])), [str(part) for part in entry["cmd"]]  # type: ignore[attr-defined]
        if processes.alive(pid) and _cmdline_starts_with(pid, cmd):
            started = time.monotonic()
            how = processes.stop(pid, timeout)
            if progress is not None:  # the caller says it (`autodeploy up` prints it): not twice
                progress(f"{how} {name} (pid {pid}) in {time.monotonic() - started:.1f} s")
            else:
                log.info("component stopped component=%s pid=%d how=%s", name, pid, how)
    lay.state.unlink(missing_ok=True)
    return True


def stop_component(name: str, timeout: float = 30.0) -> None:
    """Stop one recorded component (e.g. kube-apiserver, to test an outage); `start_component` brings it back."""
    state = processes.read_state(layout().state) or {}
    entry = state.get("components", {}).get(name)
    if entry is None:
        raise ServiceStartError(f"{name} is not part of a running cluster")
    pid, cmd = int(entry["pid"]), [str(part) for part in entry["cmd"]]
    if processes.alive(pid) and _cmdline_starts_with(pid, cmd):
        processes.stop(pid, timeout)


def start_component(name: str, timeout: float = 60.0) -> None:
    """Start a component stopped by `stop_component` again, on the same ports, certificates and etcd data."""
    lay = layout()
    state = processes.read_state(lay.state) or {}
    if name not in state.get("components", {}):
        raise ServiceStartError(f"{name} is not part of a running cluster")
    bins = Binaries(Path(state["binaries"]), Versions(**state["versions"]))
    ports = Ports(**state["ports"])
    proc = processes.start(argv(name, bins, lay, ports), lay.log(name))
    state["components"][name]["pid"] = proc.pid
    processes.write_state(lay.state, state)
    if name == "kube-apiserver":
        ca_file = Path(str(state["ca_file"]))
        ready = lambda: _http_ok(f"{state['server']}/readyz", str(state["token"]), ca_file)  # noqa: E731
        _wait(ready, name, lay, {name: proc}, time.monotonic() + timeout)


def status() -> ClusterStatus:
    lay = layout()
    state = processes.read_state(lay.state)
    if state is None:
        return ClusterStatus(running=False, components={})
    components: dict[str, dict[str, object]] = state.get("components", {})
    alive = {}
    for name, entry in components.items():
        pid, cmd = int(str(entry["pid"])), [str(part) for part in entry["cmd"]]  # type: ignore[attr-defined]
        alive[name] = processes.alive(pid) and _cmdline_starts_with(pid, cmd)
    running = bool(alive) and all(alive.values()) and set(alive) == set(COMPONENTS)
    return ClusterStatus(
        running=running, components=alive, kubeconfig=Path(str(state["kubeconfig"])), server=str(state["server"])
    )


def _running_info() -> ClusterInfo | None:
    current = status()
    if not current.running:
        if current.components:
            log.warning("cluster state found but not all components run; restarting it")
            down()
        return None
    state = processes.read_state(layout().state) or {}
    return ClusterInfo(
        kubeconfig=Path(str(state["kubeconfig"])),
        server=str(state["server"]),
        token=str(state["token"]),
        ca_file=Path(str(state["ca_file"])),
        root=layout().root,
        pids={name: int(entry["pid"]) for name, entry in state["components"].items()},
        nodes=tuple(state.get("nodes", ())),
        versions=Versions(**state["versions"]),
    )


def _reset(lay: Layout) -> None:
    """A fresh cluster each `up`: stale etcd data or certs from an earlier run would only confuse."""
    for path in (lay.pki, lay.etcd_data, lay.logs):
        shutil.rmtree(path, ignore_errors=True)
    lay.root.mkdir(parents=True, exist_ok=True)
    lay.root.chmod(0o700)


def _save(
    lay: Layout,
    bins: Binaries,
    server: str,
    token: str,
    ca_file: Path,
    *,
    started: Mapping[str, subprocess.Popen[bytes]],
    ports: Ports,
) -> None:
    """Written after every start, so `down` can clean up even after a crash half-way through `up`."""
    processes.write_state(
        lay.state,
        {
            "server": server,
            "token": token,
            "ca_file": str(ca_file),
            "kubeconfig": str(lay.kubeconfig),
            "versions": asdict(bins.versions),
            "ports": asdict(ports),
            "binaries": str(bins.root),
            "components": {
                name: {
                    "pid": p.pid,
                    "cmd": [str(a) for a in p.args[:2]],  # type: ignore[index]
                    "log": str(lay.log(name)),
                }
                for name, p in started.items()
            },
        },
    )


def _wait(
    ready: Callable[[], bool], what: str, lay: Layout, started: Mapping[str, subprocess.Popen[bytes]], deadline: float
) -> None:
    """Poll `ready`; any started process exiting meanwhile is reported by name with its log tail."""
    while True:
        for name, proc in started.items():
            if proc.poll() is not None:
                raise ServiceStartError(
                    f"{name} exited with code {proc.returncode} while waiting for {what}; "
                    f"log {lay.log(name)}:\n{processes.tail(lay.log(name))}"
                )
        if ready():
            return
        if time.monotonic() > deadline:
            name = what.split(" ", maxsplit=1)[0]
            culprit = name if name in started else list(started)[-1]
            raise ServiceStartError(
                f"timed out waiting for {what}; log of {culprit} {lay.log(culprit)}:\n"
                f"{processes.tail(lay.log(culprit))}"
            )
        time.sleep(0.5)


def _http_ok(url: str, token: str | None = None, ca_file: Path | None = None) -> bool:
    if not url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
        raise ValueError(f"only loopback URLs are probed, not {url}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback only, checked above
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
            body = response.read()
            code: int = response.status
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False
    if url.endswith("/health"):
        health: dict[str, object] = json.loads(body)
        return health.get("health") == "true"
    return code == 200


def _cmdline_starts_with(pid: int, cmd: list[str]) -> bool:
    """Guards against pid reuse: only a process still running our binary with our arguments is ours to stop."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return raw.split(b"\0")[: len(cmd)] == [part.encode() for part in cmd]
