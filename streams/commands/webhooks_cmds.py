"""`autodeploy webhooks`: the HTTP receiver for GitHub, CircleCI and CloudEvents producers."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from streams import brokers, catalog
from streams.commands.keys_cmds import signer_of
from streams.config import KeySettings, Settings, WebhookSettings
from streams.webhooks.serve import serve


def register(sub: Any) -> None:
    parser = sub.add_parser("webhooks", help="receive webhooks and CloudEvents, publish them to Kafka durably")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    broker = brokers.connection(settings, "webhooks")
    asyncio.run(
        serve(
            WebhookSettings.from_env(),
            cat,
            broker.bootstrap_servers,
            host=args.host,
            port=args.port,
            security=broker.security,
            signer=signer_of(KeySettings.from_env()),
        )
    )
    return 0
