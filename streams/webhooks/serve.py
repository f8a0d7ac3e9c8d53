"""Run the webhook server until SIGTERM/SIGINT, then finish in-flight requests and flush the producer."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from typing import TextIO

from aiohttp import web

from streams.adapters.kafka_producer import DurableProducer
from streams.catalog import Catalog
from streams.config import ConfigError, KafkaSecurity, WebhookSettings
from streams.events.dsse_keys import SigningKey
from streams.webhooks.server import WebhookServer

log = logging.getLogger(__name__)


async def serve(
    settings: WebhookSettings,
    catalog: Catalog,
    bootstrap_servers: str,
    *,
    host: str,
    port: int,
    out: TextIO = sys.stdout,
    security: KafkaSecurity | None = None,
    signer: SigningKey | None = None,
) -> None:
    producer = DurableProducer(bootstrap_servers, delivery_timeout_s=settings.publish_timeout_s, security=security)
    server = WebhookServer(settings, catalog, producer, signer=signer)
    if not any(server.enabled(e) for e in settings.ENDPOINTS):
        producer.close(0)
        raise ConfigError(
            "no endpoint enabled: set GITHUB_WEBHOOK_SECRETS, CIRCLECI_WEBHOOK_SECRETS or AUTODEPLOY_EVENTS_TOKENS "
            "(or AUTODEPLOY_ALLOW_UNSIGNED=github,circleci,events to accept unsigned deliveries)"
        )
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=settings.publish_timeout_s + 1
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    # What exists now (modules, catalog, app) lives as long as the process: frozen, collections skip it. Requests
    # leave little cyclic garbage, so the first generation is collected less often (docs/performance.md).
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    bound = runner.addresses[0]
    print(f"webhooks listening on http://{bound[0]}:{bound[1]} (kafka {bootstrap_servers})", file=out, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("webhooks stopping: finishing in-flight requests")
        await runner.cleanup()
        left = await asyncio.to_thread(producer.close, 10.0)
        if left:
            log.error("records still unsent at shutdown count=%s", left)
