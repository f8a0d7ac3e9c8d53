"""`autodeploy demo`: play the demo scenario through the webhook server of a running `autodeploy up`."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from streams import brokers, catalog
from streams.adapters.policy_file import load_policies
from streams.config import DemoSettings, Settings
from streams.demo.deliveries import Secrets
from streams.demo.play import Player, http_post
from streams.demo.scenario import build, demo_services, verifies
from streams.demo.watch import Watcher
from streams.local.cache import state_dir
from streams.local.demo_app import set_error_ratio


def up_file() -> Path:
    """Where `autodeploy up` leaves the webhook server's address and the demo secret it generated (mode 0600)."""
    return state_dir() / "up" / "webhooks.json"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="play a signed scenario through a running `autodeploy up` and print decisions and rollouts"
    )
    parser.add_argument("--url", help="the webhook server (default: the one `autodeploy up` started)")
    parser.add_argument("--step-timeout", type=float, default=120.0, help="seconds to wait for each step's outcomes")
    parser.add_argument("--run-id", default=None, help="names the demo's commits (default: random, a fresh history)")
    parser.add_argument("--repository", default=None, help="github.com/<owner>/<name> (default: the first service's)")
    parser.add_argument(
        "--app",
        default=None,
        help="host:port of the demo application, whose error ratio fails a bad commit's verify check "
        "(default: the one `autodeploy up` started; without one, the bad-commit step is left out)",
    )
    parser.set_defaults(handler=run)


def _secret(configured: bytes | None, env_name: str, stored: dict[str, Any], key: str) -> bytes:
    if configured:
        return configured
    value = stored.get(key)
    if not value:
        raise ValueError(f"no webhook secret: set {env_name} or start the pipeline with `autodeploy up` (make run)")
    return str(value).encode()


def run(args: argparse.Namespace) -> int:
    stored: dict[str, Any] = json.loads(up_file().read_text()) if up_file().is_file() else {}
    url = args.url or stored.get("url") or "http://127.0.0.1:8080"
    configured = DemoSettings.from_env()
    keys = Secrets(
        _secret(configured.github_secret, "GITHUB_WEBHOOK_SECRETS", stored, "github_secret"),
        _secret(configured.circleci_secret, "CIRCLECI_WEBHOOK_SECRETS", stored, "circleci_secret"),
    )
    settings = Settings.from_env()
    policies = load_policies(settings.policy_path)
    app = args.app or stored.get("app")
    bad_commit = bool(app) and verifies(demo_services(policies, args.repository))
    run_id = args.run_id or secrets.token_hex(4)
    scenario = build(policies, keys, run_id, args.repository, bad_commit=bad_commit)
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    broker = brokers.connection(settings, "admin")  # it watches both outputs, as a person would
    watcher = Watcher(
        broker.bootstrap_servers,
        cat.topic("deploy.readiness").name,
        cat.topic("deploy.events").name,
        broker.security.librdkafka(),
    )
    services = ", ".join(s.name for s in scenario.services)
    print(f"demo: {scenario.repository} ({services}) through {url}", flush=True)  # the player lists the commits
    try:
        summary = Player(
            scenario,
            http_post(url),
            watcher,
            sys.stdout,
            args.step_timeout,
            set_error_ratio=(lambda image, ratio: set_error_ratio(app, image, ratio)) if app else None,
        ).play()
    finally:
        watcher.close()
    return 0 if summary.ok else 1
