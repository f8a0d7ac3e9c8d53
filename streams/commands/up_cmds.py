"""`autodeploy up` (what `make run` runs): the local pipeline in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

from streams import catalog
from streams.commands import topics_cmds
from streams.config import Settings
from streams.local import kafka, processes
from streams.local.cache import state_dir


def register(sub: Any) -> None:
    parser = sub.add_parser("up", help="run the local pipeline: Kafka broker, topics, webhook server, readiness worker")
    parser.add_argument("--port", type=int, default=8080, help="the webhook server's port (default 8080)")
    parser.add_argument("--worker-port", type=int, default=6066, help="the worker's web port (default 6066)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    started_broker = kafka.status() is None and not settings.kafka_bootstrap_servers
    bootstrap = settings.kafka_bootstrap_servers or kafka.up().bootstrap_servers
    print(f"kafka        {bootstrap}" + (" (started)" if started_broker else " (already running)"), flush=True)
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    if topics_cmds.apply_catalog(bootstrap, cat, out=sys.stdout) != 0:
        return 2
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "AUTODEPLOY_WORKER_PORT": str(args.worker_port)}
    if not env.get("GITHUB_WEBHOOK_SECRETS"):
        # A demo secret, printed, rather than an unsigned endpoint: the server never runs open by accident.
        env["GITHUB_WEBHOOK_SECRETS"] = env["CIRCLECI_WEBHOOK_SECRETS"] = secrets.token_hex(16)
        print(f"webhook secret (GitHub and CircleCI): {env['GITHUB_WEBHOOK_SECRETS']}", flush=True)
    logs = state_dir() / "up"
    children = {
        "webhooks": processes.start(
            [sys.executable, "-m", "streams.cli", "webhooks", "--port", str(args.port)], logs / "webhooks.log", env
        ),
        "worker": processes.start(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"], logs / "worker.log", env
        ),
    }
    print(f"webhooks     http://127.0.0.1:{args.port}/webhooks/github  /webhooks/circleci  /events  (log {logs})")
    print(f"worker       http://127.0.0.1:{args.worker_port}/readiness/<owner>/<repo>/<sha>")
    print("Ctrl-C stops everything this command started.", flush=True)
    try:
        _watch(children, logs)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        for proc in children.values():
            processes.stop(proc.pid)
        if started_broker:
            kafka.down()
    return 0


def _watch(children: dict[str, subprocess.Popen[bytes]], logs: Any) -> None:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    while True:
        for name, proc in children.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{processes.tail(logs / f'{name}.log')}")
        time.sleep(0.5)
