"""`autodeploy up` (what `make run` runs): the local pipeline in the foreground until Ctrl-C.

With the deploy agent (unless --no-deploy): the local control plane (built from source on first use) and the demo
Deployments of the policy file. `--dry-run` still needs the plane: a server-side dry run is the API server's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from streams import brokers, catalog
from streams.adapters.policy_file import load_policies
from streams.commands import kafka_cmds, keys_cmds, topics_cmds
from streams.commands.demo_cmds import up_file
from streams.config import DeployAgentSettings, KeySettings, Settings, WebhookSettings, child_environment
from streams.local import cluster, kafka, processes
from streams.local.cache import state_dir
from streams.local.demo_app import DemoApp, cluster_workloads
from streams.local.prometheus import Prometheus


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "up",
        help="run the local pipeline: Kafka, topics, webhook server, readiness worker, control plane, deploy agent",
    )
    parser.add_argument("--port", type=int, default=8080, help="the webhook server's port (default 8080)")
    parser.add_argument("--worker-port", type=int, default=6066, help="the worker's web port (default 6066)")
    parser.add_argument("--agent-port", type=int, default=9102, help="the deploy agent's /metrics port (default 9102)")
    parser.add_argument("--board-port", type=int, default=8090, help="the board's port (default 8090)")
    parser.add_argument(
        "--prometheus-port",
        type=int,
        default=9190,
        help="Prometheus (Debian's), scraping the pipeline and the demo application, for verify checks (default 9190, "
        "not 9090: a system Prometheus may have that)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="deploy agent in dry-run mode (server-side dry runs; the local control plane still runs: it validates)",
    )
    parser.add_argument("--no-deploy", action="store_true", help="no control plane and no deploy agent")
    kafka_cmds.add_insecure_flag(parser)
    parser.set_defaults(handler=run)


@dataclass
class _Started:
    """What this command started, so that a Ctrl-C at any point (the control plane takes minutes to come up the
    first time) stops exactly that."""

    broker: bool = False
    cluster: bool = False
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    demo_app: DemoApp | None = None


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    started = _Started(broker=kafka.status() is None and not settings.kafka_bootstrap_servers)
    try:
        return _start_and_watch(args, settings, started)
    except KeyboardInterrupt:
        print("\nstopping what this command started", flush=True)
        return 0
    finally:
        up_file().unlink(missing_ok=True)
        if started.demo_app is not None:
            started.demo_app.close()
        stop_all(started.children, started_cluster=started.cluster, started_broker=started.broker, out=sys.stdout)


def _broker(args: argparse.Namespace, settings: Settings, started: _Started) -> brokers.Connection:
    """The configured broker, or the local one (started unless running); said in one line."""
    if settings.kafka_bootstrap_servers:
        broker = brokers.connection(settings, "admin")
    else:
        local = kafka.up(secure=args.secure)
        own = kafka.credentials("admin") if local.secure and not settings.kafka_security_configured else None
        broker = brokers.Connection(local.bootstrap_servers, own or settings.kafka_security)
    secured = " secured: one SASL principal per process, ACLs of topics/acls.yaml" if broker.security.sasl else ""
    if not secured and not settings.kafka_bootstrap_servers:
        secured = " NOT secured (--insecure): no authentication, no ACLs"
    running = " (started)" if started.broker else " (already running)"
    print(f"kafka        {broker.bootstrap_servers}{running}{secured}")
    return broker


def _start_and_watch(args: argparse.Namespace, settings: Settings, started: _Started) -> int:
    broker = _broker(args, settings, started)
    bootstrap = broker.bootstrap_servers
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    if topics_cmds.apply_catalog(bootstrap, cat, out=sys.stdout, security=broker.security) != 0:
        return 2
    env = child_environment({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "AUTODEPLOY_WORKER_PORT": str(args.worker_port)})
    logs = state_dir() / "up"
    demo: dict[str, str] = {"url": f"http://127.0.0.1:{args.port}"}
    generated = local_secrets(env)
    env.update(generated)
    for line in secret_lines(generated):
        print(line, flush=True)
    demo.update({STORED[variable]: value for variable, value in generated.items()})
    _write_private(up_file(), json.dumps(demo))  # for `autodeploy demo`; only the secrets generated here are stored
    keys = signing_environments(env, logs / "keys")
    env.update(keys.pop("", {}))
    agent_env: dict[str, str] | None = None
    if not args.no_deploy:
        started.cluster = cluster.status().running is False
        info = cluster.up(progress=lambda line: print(f"cluster      {line}", flush=True))
        from streams.local.demo_deployments import ensure_demo_deployments  # noqa: PLC0415 - kubernetes is slow to import

        created = ensure_demo_deployments(info.kubeconfig, load_policies(settings.policy_path))
        print(f"cluster      {info.server} (kubeconfig {info.kubeconfig}); demo: {', '.join(created) or 'exists'}")
        agent_env = {
            **env,
            **identity(settings, "deploy-agent"),
            "KUBECONFIG": str(info.kubeconfig),
            "AUTODEPLOY_DEPLOY_METRICS_PORT": str(args.agent_port),
            "AUTODEPLOY_DEPLOY_METRICS_HOST": "127.0.0.1",
        }
        agent_env.update(_monitoring(args, started, logs, demo, agent_env))
        _write_private(up_file(), json.dumps(demo))
    children = started.children
    children["webhooks"] = processes.start(
        [sys.executable, "-m", "streams.cli", "webhooks", "--port", str(args.port)],
        logs / "webhooks.log",
        {**env, **identity(settings, "webhooks"), **keys.get("webhooks", {})},
    )
    children["worker"] = processes.start(
        [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
        logs / "worker.log",
        {**env, **identity(settings, "worker"), **keys.get("worker", {})},
    )
    children["board"] = _start_board(args, settings, env, logs)
    if agent_env is not None:
        agent_argv = [sys.executable, "-m", "streams.cli", "deploy-agent", *(["--dry-run"] if args.dry_run else [])]
        agent_env.update(keys.get("deploy-agent", {}))
        children["deploy-agent"] = processes.start(agent_argv, logs / "deploy-agent.log", agent_env)
    print(f"webhooks     {endpoints_line(WebhookSettings.from_env(env), args.port)}  (log {logs})")
    print(f"worker       http://127.0.0.1:{args.worker_port}/readiness/<owner>/<repo>/<sha>")
    print(f"board        http://127.0.0.1:{args.board_port}  (what runs where, why a commit waits; live)")
    if agent_env is not None:
        mode = " (dry run)" if args.dry_run else ""
        print(f"deploy agent http://127.0.0.1:{args.agent_port}/metrics{mode}; admin identity of the local plane")
        verify = agent_env.get("PROMETHEUS_URL") or "no PROMETHEUS_URL: verify checks hold (inconclusive)"
        print(f"verify       {verify}")
    print("`autodeploy demo` plays a scenario through it. Ctrl-C stops everything this command started.", flush=True)
    _watch(children, logs)
    return 0


def _start_board(
    args: argparse.Namespace, settings: Settings, env: Mapping[str, str], logs: Path
) -> subprocess.Popen[bytes]:
    worker = f"http://127.0.0.1:{args.worker_port}"
    return processes.start(
        [sys.executable, "-m", "streams.cli", "board", "--port", str(args.board_port)],
        logs / "board.log",
        {**env, **identity(settings, "board"), "AUTODEPLOY_WORKER_URL": worker},
    )


def _monitoring(
    args: argparse.Namespace, started: _Started, logs: Path, demo: dict[str, str], agent_env: Mapping[str, str]
) -> dict[str, str]:
    """The demo application and a Prometheus scraping it (and the pipeline), for the policy's `verify` checks; the
    agent's settings for them. A configured PROMETHEUS_URL is used as it is: then only the application starts."""
    agent = DeployAgentSettings.from_env(agent_env)
    assert agent.kubeconfig is not None  # the local plane's
    started.demo_app = DemoApp(cluster_workloads(agent.kubeconfig))
    demo["app"] = started.demo_app.address
    print(f"demo app     http://{started.demo_app.address}/metrics (error ratio per Deployment and image)", flush=True)
    # The demo's windows are seconds long: ask every second, unless told otherwise.
    verify = {} if "AUTODEPLOY_VERIFY_INTERVAL_S" in agent_env else {"AUTODEPLOY_VERIFY_INTERVAL_S": "1"}
    if agent.prometheus_url:
        return verify
    targets = {
        "demo-app": started.demo_app.address,
        "webhooks": f"127.0.0.1:{args.port}",
        "worker": f"127.0.0.1:{args.worker_port}",
        "deploy-agent": f"127.0.0.1:{args.agent_port}",
    }
    shutil.rmtree(logs / "prometheus", ignore_errors=True)  # the demo's history starts with this run
    server = Prometheus(logs / "prometheus", targets, [], port=args.prometheus_port, log=logs / "prometheus.log")
    try:
        started.children["prometheus"] = server.start()
    except (FileNotFoundError, processes.ServiceStartError) as e:
        print(f"prometheus   not started: {e}; verify checks hold (inconclusive)", flush=True)
        return verify
    print(f"prometheus   {server.url}  (log {server.log})", flush=True)
    return {**verify, "PROMETHEUS_URL": server.url}


def identity(settings: Settings, role: str) -> dict[str, str]:
    """The environment that makes a child `role` on the secured local broker (its own principal, the password by
    file); nothing where the environment configures Kafka's security itself or the broker is not secured."""
    if settings.kafka_security_configured or settings.kafka_bootstrap_servers:
        return {}
    return kafka.client_environment(role)


def stop_all(
    children: Mapping[str, subprocess.Popen[bytes]], *, started_cluster: bool, started_broker: bool, out: TextIO
) -> None:
    """Stop the processes, then the control plane and the broker if this command started them, saying each as it
    goes: a stop can take seconds (a worker commits its offsets, the broker writes its logs), and a person at the
    terminal should see which one it is waiting for, and what is left running."""

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    for name, proc in children.items():
        exited = proc.poll()
        say(f"{name:<12} stopping (pid {proc.pid})" if exited is None else f"{name:<12} had exited with {exited}")
        if exited is None:
            started = time.monotonic()
            how = processes.stop(proc.pid)
            say(f"{name:<12} {how} in {time.monotonic() - started:.1f} s")
    if started_cluster:
        say("cluster      stopping the control plane")
        cluster.down(progress=lambda line: say(f"cluster      {line}"))
    elif cluster.status().running:
        say("cluster      left running (it was running before `autodeploy up`; `autodeploy cluster down` stops it)")
    if started_broker:
        say("kafka        stopping the broker")
        started = time.monotonic()
        kafka.down()
        say(f"kafka        stopped in {time.monotonic() - started:.1f} s")
    elif kafka.status() is not None:
        say("kafka        left running (it was running before `autodeploy up`; `autodeploy kafka down` stops it)")


SECRET_VARIABLES = {
    "github": "GITHUB_WEBHOOK_SECRETS",
    "circleci": "CIRCLECI_WEBHOOK_SECRETS",
    "events": "AUTODEPLOY_EVENTS_TOKENS",
}
PATHS = {"github": "/webhooks/github", "circleci": "/webhooks/circleci", "events": "/events"}
STORED = {  # the keys of up_file() that `autodeploy demo` (and a person) read the generated secrets from
    "GITHUB_WEBHOOK_SECRETS": "github_secret",
    "CIRCLECI_WEBHOOK_SECRETS": "circleci_secret",
    "AUTODEPLOY_EVENTS_TOKENS": "events_token",
}


def local_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """A secret for each endpoint that has none and is not explicitly unsigned, so the local pipeline serves every
    endpoint, and none open by accident. GitHub and CircleCI share one (the demo signs with it); /events gets a bearer
    token of its own. Returns {variable: value} of the generated ones only: a configured secret is never replaced."""
    settings = WebhookSettings.from_env(env)
    configured = {
        "github": settings.github_secrets,
        "circleci": settings.circleci_secrets,
        "events": settings.events_tokens,
    }
    missing = [
        v
        for endpoint, v in SECRET_VARIABLES.items()
        if not configured[endpoint] and endpoint not in settings.allow_unsigned
    ]
    webhook_secret = secrets.token_hex(16)
    return {v: secrets.token_hex(16) if v == "AUTODEPLOY_EVENTS_TOKENS" else webhook_secret for v in missing}


def secret_lines(generated: Mapping[str, str]) -> list[str]:
    """What a person needs to send to the endpoints `local_secrets` generated secrets for."""
    lines = []
    webhooks = [
        name
        for name, v in (("GitHub", "GITHUB_WEBHOOK_SECRETS"), ("CircleCI", "CIRCLECI_WEBHOOK_SECRETS"))
        if v in generated
    ]
    if webhooks:
        secret = generated.get("GITHUB_WEBHOOK_SECRETS") or generated["CIRCLECI_WEBHOOK_SECRETS"]
        lines.append(f"webhook secret ({' and '.join(webhooks)}): {secret}")
    if "AUTODEPLOY_EVENTS_TOKENS" in generated:
        token = generated["AUTODEPLOY_EVENTS_TOKENS"]
        lines.append(f"events token (POST /events with the header 'Authorization: Bearer <token>'): {token}")
    return lines


def endpoints_line(settings: WebhookSettings, port: int) -> str:
    """The webhook server's endpoints, each as it is served: signed, unsigned, or disabled (and how to enable it)."""
    secrets_of = {
        "github": settings.github_secrets,
        "circleci": settings.circleci_secrets,
        "events": settings.events_tokens,
    }
    shown = []
    for endpoint, path in PATHS.items():
        if secrets_of[endpoint]:
            shown.append(path)
        elif endpoint in settings.allow_unsigned:
            shown.append(f"{path} (UNSIGNED: anyone can post)")
        else:
            shown.append(f"{path} (disabled: no {SECRET_VARIABLES[endpoint]})")
    return f"http://127.0.0.1:{port}  " + "  ".join(shown)


SIGNING_PROCESSES = ("webhooks", "worker", "deploy-agent")


def signing_environments(env: Mapping[str, str], keys_dir: Path) -> dict[str, dict[str, str]]:
    """The key settings of each signing process ("" for every process: the key directory). Keys configured in the
    environment (AUTODEPLOY_KEY_DIRECTORY) are used as they are; otherwise one key per process is generated into
    `keys_dir` (kept across runs, 0600) with a directory file naming them, so the local pipeline signs and verifies
    as production does."""
    settings = KeySettings.from_env(env)
    if settings.directory is not None or settings.insecure_no_signatures:
        print(f"keys         configured: directory {settings.directory or '(none: unsigned)'}", flush=True)
        return {}
    directory, files = keys_cmds.local_keys(keys_dir, SIGNING_PROCESSES)
    print(f"keys         {', '.join(f'local-{p}' for p in files)} (directory {directory})", flush=True)
    out = {"": {"AUTODEPLOY_KEY_DIRECTORY": str(directory)}}
    for process, path in files.items():
        out[process] = {"AUTODEPLOY_SIGNING_KEY": str(path), "AUTODEPLOY_SIGNING_KEY_ID": f"local-{process}"}
    return out


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
