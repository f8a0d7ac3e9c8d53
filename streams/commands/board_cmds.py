"""`autodeploy board`: the live web page of what is deployed, what is ready, and why a commit waits."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from streams import brokers, catalog
from streams.adapters.policy_file import load_policies
from streams.board.serve import serve
from streams.commands.keys_cmds import verifier_of
from streams.config import BoardSettings, KeySettings, Settings

FEED = ("deploy.readiness", "deploy.events", "github.events")


def register(sub: Any) -> None:
    parser = sub.add_parser("board", help="the board: services x environments, commit pages, a live timeline (web)")
    parser.add_argument("--host", default=None, help="listen address (default $AUTODEPLOY_BOARD_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default $AUTODEPLOY_BOARD_PORT or 8090)")
    parser.add_argument("--worker", default=None, help="the worker's web address (default $AUTODEPLOY_WORKER_URL)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    board = BoardSettings.from_env()
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    broker = brokers.connection(settings, "board")
    kafka = {"bootstrap.servers": broker.bootstrap_servers, **broker.security.librdkafka()}
    asyncio.run(
        serve(
            policies=load_policies(settings.policy_path),
            kafka=kafka,
            topics={cat.topic(name).name: name for name in FEED},
            verifier=verifier_of(KeySettings.from_env()),
            host=args.host or board.host,
            port=args.port or board.port,
            worker_url=args.worker or board.worker_url,
            retain=board.retain,
            explain_interval_s=board.explain_interval_s,
        )
    )
    return 0
