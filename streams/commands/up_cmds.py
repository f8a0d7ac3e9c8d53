"""`autodeploy up` (what `make run` runs): the local pipeline in the foreground until Ctrl-C.

With the deploy agent (unless --no-deploy): the local control plane (built on first use, ~11 min cold) and the demo
Deployments of the policy file. `--dry-run` still needs the plane: a server-side dry run is the API server's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from streams import catalog
from streams.adapters.policy_file import load_policies
from streams.commands import topics_cmds
from streams.commands.demo_cmds import up_file
from streams.config import Settings, WebhookSettings, child_environment
from streams.local import cluster, kafka, processes
from streams.local.cache import state_dir


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "up",
        help="run the local pipeline: Kafka, topics, webhook server, readiness worker, control plane, deploy agent",
    )
    parser.add_argument("--port", type=int, default=8080, help="the webhook server's port (default 8080)")
    parser.add_argument("--worker-port", type=int, default=6066, help="the worker's web port (default 6066)")
    parser.add_argument("--agent-port", type=int, default=9102, help="the deploy agent's /metrics port (default 9102)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="deploy agent in dry-run mode (server-side dry runs; the local control plane still runs: it validates)",
    )
    parser.add_argument("--no-deploy", action="store_true", help="no control plane and no deploy agent")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    started_broker = kafka.status() is None and not settings.kafka_bootstrap_servers
    bootstrap = settings.kafka_bootstrap_servers or kafka.up().bootstrap_servers
    print(f"kafka        {bootstrap}" + (" (started)" if started_broker else " (already running)"), flush=True)
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    if topics_cmds.apply_catalog(bootstrap, cat, out=sys.stdout) != 0:
        return 2
    env = child_environment({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "AUTODEPLOY_WORKER_PORT": str(args.worker_port)})
    logs = state_dir() / "up"
    demo: dict[str, str] = {"url": f"http://127.0.0.1:{args.port}"}
    if not WebhookSettings.from_env().github_secrets:
        # A demo secret, printed, rather than an unsigned endpoint: the server never runs open by accident.
        env["GITHUB_WEBHOOK_SECRETS"] = env["CIRCLECI_WEBHOOK_SECRETS"] = secrets.token_hex(16)
        print(f"webhook secret (GitHub and CircleCI): {env['GITHUB_WEBHOOK_SECRETS']}", flush=True)
        demo["github_secret"] = demo["circleci_secret"] = env["GITHUB_WEBHOOK_SECRETS"]
    _write_private(up_file(), json.dumps(demo))  # for `autodeploy demo`; only the secret generated here is stored
    started_cluster = False
    agent_env: dict[str, str] | None = None
    if not args.no_deploy:
        started_cluster = cluster.status().running is False
        info = cluster.up(progress=lambda line: print(f"cluster      {line}", flush=True))
        from streams.local.demo_deployments import ensure_demo_deployments  # noqa: PLC0415 - kubernetes is slow to import

        created = ensure_demo_deployments(info.kubeconfig, load_policies(settings.policy_path))
        print(f"cluster      {info.server} (kubeconfig {info.kubeconfig}); demo: {', '.join(created) or 'exists'}")
        agent_env = {
            **env,
            "KUBECONFIG": str(info.kubeconfig),
            "AUTODEPLOY_DEPLOY_METRICS_PORT": str(args.agent_port),
            "AUTODEPLOY_DEPLOY_METRICS_HOST": "127.0.0.1",
        }
    children = {
        "webhooks": processes.start(
            [sys.executable, "-m", "streams.cli", "webhooks", "--port", str(args.port)], logs / "webhooks.log", env
        ),
        "worker": processes.start(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"], logs / "worker.log", env
        ),
    }
    if agent_env is not None:
        agent_argv = [sys.executable, "-m", "streams.cli", "deploy-agent", *(["--dry-run"] if args.dry_run else [])]
        children["deploy-agent"] = processes.start(agent_argv, logs / "deploy-agent.log", agent_env)
    print(f"webhooks     http://127.0.0.1:{args.port}/webhooks/github  /webhooks/circleci  /events  (log {logs})")
    print(f"worker       http://127.0.0.1:{args.worker_port}/readiness/<owner>/<repo>/<sha>")
    if agent_env is not None:
        mode = " (dry run)" if args.dry_run else ""
        print(f"deploy agent http://127.0.0.1:{args.agent_port}/metrics{mode}; admin identity of the local plane")
    print("`autodeploy demo` plays a scenario through it. Ctrl-C stops everything this command started.", flush=True)
    try:
        _watch(children, logs)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        up_file().unlink(missing_ok=True)
        for proc in children.values():
            processes.stop(proc.pid)
        if started_cluster:
            cluster.down()
        if started_broker:
            kafka.down()
    return 0


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _watch(children: dict[str, subprocess.Popen[bytes]], logs: Any) -> None:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    while True:
        for name, proc in children.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{processes.tail(logs / f'{name}.log')}")
        time.sleep(0.5)
