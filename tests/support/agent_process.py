"""`autodeploy deploy-agent` as operators run it, in its own process; a record of every change to the Deployments
of a namespace; and an API server outage on the local control plane, for the fault suite."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from streams.local import processes
from streams.local.cluster_config import Layout


class AgentProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.env["AUTODEPLOY_DEPLOY_METRICS_PORT"] = str(processes.free_port())  # where the agent serves /metrics
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "deploy-agent"],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)


@dataclass(frozen=True)
class Change:
    deployment: str
    generation: int
    image: str
    annotations: dict[str, str]


class DeploymentChanges:
    """Every version of the namespace's Deployments, from a watch started before anything changes them."""

    def __init__(self, api: Any, namespace: str, container: str = "app") -> None:
        self.api, self.namespace, self.container = api, namespace, container
        self.changes: list[Change] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DeploymentChanges:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        apps = client.AppsV1Api(self.api)
        version: str | None = None
        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    apps.list_namespaced_deployment,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=2,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    obj = event["object"]
                    version = obj.metadata.resource_version
                    if event["type"] in ("ADDED", "MODIFIED"):
                        image = next(c.image for c in obj.spec.template.spec.containers if c.name == self.container)
                        self.changes.append(
                            Change(obj.metadata.name, obj.metadata.generation, image, obj.metadata.annotations or {})
                        )
            except Exception:  # the API server away (an outage under test), or an expired watch: start again
                time.sleep(0.5)

    def images_by_generation(self, deployment: str) -> dict[int, str]:
        """The template's image at each generation seen (a spec change bumps the generation by one)."""
        return {c.generation: c.image for c in self.changes if c.deployment == deployment}


@contextlib.contextmanager
def api_server_killed(kubeconfig: Path, api: Any) -> Iterator[None]:
    """kill -9 the local control plane's kube-apiserver; on exit start it again with the same command line (same
    ports, certificates, etcd) and wait until it answers. The cluster's state file is updated, so `cluster down`
    stops the new process."""
    lay = Layout(kubeconfig.parent)
    state = processes.read_state(lay.state)
    assert state is not None, f"no local cluster state at {lay.state}"
    pid = int(state["components"]["kube-apiserver"]["pid"])
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # a child of the test process when the fixture started the plane
    try:
        yield
    finally:
        proc = processes.start(argv, lay.log("kube-apiserver"))
        state["components"]["kube-apiserver"]["pid"] = proc.pid
        processes.write_state(lay.state, state)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.VersionApi(api).get_code()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
