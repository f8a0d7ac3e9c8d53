"""The whole pipeline as `autodeploy up` runs it, for end-to-end tests: the webhook server, the readiness worker and the
deploy agent as processes, against the test's broker and the local control plane, with the demo Deployments of
autodeploy.yaml moved into the test's namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams import catalog
from streams.adapters.policy_file import load_policies
from streams.config import REPO_ROOT
from streams.domain.policy import Policies
from streams.local import processes
from streams.local.demo_deployments import ensure_demo_deployments
from tests.support.brokers import SelectedBroker
from tests.support.topics import apply_topics, delete_topics
from tests.support.webhooks import CIRCLECI_SECRET, GITHUB_SECRET


@dataclass
class Pipeline:
    url: str  # the webhook server
    env: dict[str, str]  # what the processes run with (broker, topic prefix, policy file, secrets)
    catalog: catalog.Catalog
    policies: Policies
    board_url: str = ""  # the board, when asked for
    logs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, object] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)

    def kill_and_restart(self, name: str) -> None:
        """kill -9 one process, then start it again as it was (same settings, state and consumer group)."""
        proc: Any = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)  # its session: a worker's restore child too
        proc.wait(30)
        with self.logs[name].open("a") as log:
            log.write("\n--- killed -9 and restarted by the test ---\n")
        self.procs[name] = processes.start(self.argv[name], self.logs[name], self.env)

    def play_demo(self, run_id: str, app: str) -> str:
        """`autodeploy demo` through this pipeline, the bad commit's error ratio set on the demo application at
        `app`; its output, once it said every expected outcome arrived."""
        demo = subprocess.run(
            [*(sys.executable, "-m", "streams.cli", "demo"), *("--url", self.url, "--run-id", run_id, "--app", app)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        print(demo.stdout, demo.stderr, file=sys.stderr)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert "result: every expected outcome arrived" in demo.stdout
        return demo.stdout

    def tails(self) -> str:
        return "\n".join(f"--- {name}\n{processes.tail(path, 40)}" for name, path in self.logs.items())


def _wait_ready(url: str, proc: object, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # type: ignore[attr-defined]
            raise RuntimeError(f"exited: {processes.tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout}s: {processes.tail(log)}")


@contextmanager
def running_pipeline(
    broker: SelectedBroker,
    kubeconfig: Path,
    namespace: str,
    unique: str,
    work: Path,
    *,
    policy: str | None = None,
    env: Mapping[str, str] | None = None,
    board: bool = False,
) -> Iterator[Pipeline]:
    """`policy`: the policy file's text (default: the demo's, in `namespace`); `env`: more settings of the processes;
    `board`: the board too (`Pipeline.board_url`)."""
    prefix, worker_id, deploy_group = f"e{unique}-", f"readiness-{unique}", f"deploy-{unique}"
    cat = apply_topics(broker, prefix, worker_id=worker_id, deploy_group=deploy_group)
    policy_file = work / "autodeploy.yaml"
    demo = (REPO_ROOT / "autodeploy.yaml").read_text().replace("namespace: shop,", f"namespace: {namespace},")
    policy_file.write_text(policy or demo)
    policies = load_policies(policy_file)
    assert {s.target.namespace for s in policies.services} == {namespace}
    ensure_demo_deployments(kubeconfig, policies)
    ports = {name: processes.free_port() for name in ("webhooks", "worker", "agent", "board")}
    extra = env or {}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "AUTODEPLOY_TOPIC_PREFIX": prefix,
        "AUTODEPLOY_CONFIG": str(policy_file),
        "GITHUB_WEBHOOK_SECRETS": GITHUB_SECRET.decode(),
        "CIRCLECI_WEBHOOK_SECRETS": CIRCLECI_SECRET.decode(),
        "AUTODEPLOY_WORKER_ID": worker_id,
        "AUTODEPLOY_WORKER_DATADIR": str(work / "worker"),
        "AUTODEPLOY_WORKER_PORT": str(ports["worker"]),
        "AUTODEPLOY_WORKER_INSTANCE_ID": f"{worker_id}-0",
        "AUTODEPLOY_WORKER_LAG": "0",
        "KUBECONFIG": str(kubeconfig),
        "AUTODEPLOY_DEPLOY_GROUP": deploy_group,
        "AUTODEPLOY_DEPLOY_METRICS_PORT": str(ports["agent"]),
        "AUTODEPLOY_DEPLOY_METRICS_HOST": "127.0.0.1",
        **extra,
    }
    cli = [sys.executable, "-m", "streams.cli"]
    argv = {
        "webhooks": [*cli, "webhooks", "--host", "127.0.0.1", "--port", str(ports["webhooks"])],
        "worker": [*cli, "worker", "--loglevel", "warning"],
        "deploy-agent": [*cli, "deploy-agent"],
    }
    if board:
        argv["board"] = [
            *cli,
            "board",
            "--port",
            str(ports["board"]),
            "--worker",
            f"http://127.0.0.1:{ports['worker']}",
        ]
    pipeline = Pipeline(f"http://127.0.0.1:{ports['webhooks']}", env, cat, policies)
    if board:
        pipeline.board_url = f"http://127.0.0.1:{ports['board']}"
    try:
        pipeline.argv = argv
        for name, command in argv.items():
            pipeline.logs[name] = work / f"{name}.log"
            pipeline.procs[name] = processes.start(command, pipeline.logs[name], env)
        _wait_ready(f"{pipeline.url}/readyz", pipeline.procs["webhooks"], pipeline.logs["webhooks"])
        _wait_ready(
            f"http://127.0.0.1:{ports['agent']}/metrics", pipeline.procs["deploy-agent"], pipeline.logs["deploy-agent"]
        )
        if board:
            _wait_ready(f"{pipeline.board_url}/healthz", pipeline.procs["board"], pipeline.logs["board"])
        yield pipeline
    finally:
        for proc in pipeline.procs.values():
            processes.stop(proc.pid, timeout=15)  # type: ignore[attr-defined]
        print(pipeline.tails(), file=sys.stderr)
        delete_topics(broker, cat)
