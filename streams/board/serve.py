"""Run the board: the feed's thread reading the log, the web server on the event loop, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from streams.board.feed import Feed, Item, Verifier
from streams.board.model import Board
from streams.board.records import RecordFetcher
from streams.board.server import BoardServer
from streams.board.worker_client import WorkerClient
from streams.domain.policy import Policies

log = logging.getLogger(__name__)
GROUP = "autodeploy-board"  # its consumers' group.id: never joined nor committed (topics/acls.yaml)


async def freeze_what_was_read(caught_up: Callable[[], bool], every_s: float = 60.0) -> None:
    """Keep what the board holds out of the cyclic garbage collector's full passes (gc.freeze), once read and then
    every minute: 50,000 retained entries make each full pass stop the event loop for ~100 ms, which every page
    request then waits for. Entries leave memory by reference counting as before; nothing of the board is cyclic."""
    while not caught_up():
        await asyncio.sleep(0.5)
    while True:
        gc.freeze()
        await asyncio.sleep(every_s)


async def serve(
    *,
    policies: Policies,
    kafka: Mapping[str, Any],
    topics: Mapping[str, str],
    verifier: Verifier | None,
    host: str,
    port: int,
    worker_url: str,
    retain: int,
    explain_interval_s: float,
) -> None:
    """`kafka`: librdkafka settings (bootstrap and security); `topics`: broker name -> catalog name of what the
    feed reads (deploy.readiness, deploy.events, github.events)."""
    config = {**kafka, "group.id": GROUP}
    board = Board(policies, retain=retain)
    fetcher = RecordFetcher(config, verifier)
    feed: Feed | None = None
    server = BoardServer(
        board,
        fetcher=fetcher,
        worker=WorkerClient(worker_url),
        feed_status=lambda: feed.status if feed is not None else Feed.idle_status(),
        explain_interval_s=explain_interval_s,
    )
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    loop = asyncio.get_running_loop()

    def deliver(item: Item) -> None:
        loop.call_soon_threadsafe(server.publish, item)

    feed = Feed(config, topics, verifier, deliver)
    feed.start()
    freezer = asyncio.create_task(freeze_what_was_read(lambda: feed is not None and feed.status.caught_up))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"board listening on http://{host}:{port} (worker {worker_url})", flush=True)
    log.info("board started host=%s port=%d topics=%s", host, port, ",".join(topics))
    try:
        await stop.wait()
    finally:
        log.info("board stopping")
        freezer.cancel()
        await asyncio.to_thread(feed.stop)
        fetcher.close()
        await runner.cleanup()
