"""The board's grid under load: p50/p99 of `GET /` with 500 services and 50,000 decisions and outcomes retained,
against the same server's `GET /healthz` in the same run (wrk, one connection: the latency a person sees), and how
long a published decision takes to reach an open page's live stream (SSE).

The server runs as a process of its own, `python -m bench.board --serve`, with its board filled in memory (no broker:
this measures the pages, not the feed). Goal: grid p99 < 50 ms.

    python -m bench.board [--seconds 8] [--services 500] [--entries 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from bench.common import process, record
from bench.webhooks import wrk
from streams.board.entries import Entry, FactRef, Position, Push
from streams.board.feed import FeedStatus
from streams.board.model import Board
from streams.board.serve import freeze_what_was_read
from streams.board.server import BoardServer
from streams.domain.policy_document import parse_policies
from streams.local.processes import free_port

GET = 'wrk.method = "GET"\n'


def policies(services: int) -> Any:
    """Half the services promoted staging -> production, half deployed straight to production."""
    document: dict[str, Any] = {"services": {}}
    for i in range(services):
        service: dict[str, Any] = {
            "repository": f"github.com/acme/repo{i // 2}",
            "branch": "main",
            "required_checks": [{"circleci": "build-test"}],
            "image": f"ghcr.io/acme/svc{i}:{{sha}}",
        }
        if i % 2:
            service["environments"] = [
                {"name": "staging", "kubernetes": {"namespace": f"ns{i}", "deployment": "staging", "container": "app"}},
                {
                    "name": "production",
                    "kubernetes": {"namespace": f"ns{i}", "deployment": "app", "container": "app"},
                    "after": "staging",
                    "soak": "10m",
                },
            ]
        else:
            service["kubernetes"] = {"namespace": f"ns{i}", "deployment": "app", "container": "app"}
        document["services"][f"svc{i}"] = service
    return parse_policies(document, "bench")


def filled(services: int, entries: int) -> Board:
    """Decisions and outcomes spread over every (service, environment), the newest minutes ago; a few waiting pushes."""
    board = Board(policies(services), retain=entries)
    now = datetime.now(UTC)
    cells = list(board.cells.values())
    per_cell = max(1, entries // (2 * len(cells)))
    n = 0
    for step in range(per_cell):
        for cell in cells:
            commit = f"{n:040x}"
            at = now - timedelta(seconds=(per_cell - step) * 60)
            fact = FactRef("com.github.push", f"d{n}", "https://github.com/acme", at, Position("github.events", 0, n))
            common = {
                "service": cell.service.name,
                "environment": cell.environment,
                "repository": cell.service.repository,
                "commit": commit,
                "chain_id": f"chain{n}",
                "time": at,
                "image": f"ghcr.io/acme/{cell.service.name}:{commit}",
                "signed_by": "bench",
            }
            board.apply(Entry("decision", "ready", event_id=f"r{n}", facts=(fact,), **common))  # type: ignore[arg-type]
            board.apply(Entry("outcome", "upgraded", event_id=f"o{n}", **common))  # type: ignore[arg-type]
            n += 1
    for cell in cells[::10]:
        board.add_push(Push(cell.service.repository, "main", f"{n:040x}", now, f"p{n}"))
        n += 1
    return board


async def _freeze() -> None:
    """As the board does once it has read the log (streams/board/serve.py)."""
    asyncio.create_task(freeze_what_was_read(lambda: True))  # noqa: RUF006 - lives as long as the server


def serve(port: int, services: int, entries: int) -> None:
    board = filled(services, entries)
    server = BoardServer(board, fetcher=None, worker=None, feed_status=lambda: FeedStatus(True, True))

    async def publish_every(app: web.Application) -> None:
        async def loop() -> None:
            n = 0
            while True:
                await asyncio.sleep(0.05)
                cell = next(iter(board.cells.values()))
                now = datetime.now(UTC)
                server.publish(
                    Entry(
                        "decision",
                        "ready",
                        cell.service.name,
                        cell.environment,
                        cell.service.repository,
                        f"{n:040x}",
                        f"live{time.time_ns()}",
                        "chain",
                        now,
                    )
                )
                n += 1

        app["publisher"] = asyncio.create_task(loop())

    app = server.app()
    app.on_startup.append(publish_every)
    app.on_startup.append(lambda _: _freeze())
    print(f"board: {len(board.cells)} cells, {len(board.timeline)} entries retained", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def live_delays(url: str, count: int) -> list[float]:
    """Seconds from a decision's time (set as it is published) to its arrival on a grid page's live stream."""
    delays = []
    async with ClientSession() as session, session.get(f"{url}/live?view=timeline") as response:
        await response.content.readuntil(b"\n\n")
        while len(delays) < count:
            message = await response.content.readuntil(b"\n\n")
            text = message.decode()
            if "datetime=" not in text:
                continue
            stamp = text.split('datetime=\\"', 1)[1].split('\\"', 1)[0]
            delays.append(time.time() - datetime.fromisoformat(stamp).timestamp())
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.services, args.entries)
        return 0
    port = free_port()
    argv = [sys.executable, "-m", "bench.board", "--serve", str(port)]
    argv += ["--services", str(args.services), "--entries", str(args.entries)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp:
        script = Path(tmp) / "get.lua"
        script.write_text(GET)
        with process(argv, Path(tmp) / "board.log", f"{url}/healthz", {}) as proc:
            healthz = wrk(f"{url}/healthz", script, args.seconds, 1, proc.pid)
            grid = wrk(f"{url}/", script, args.seconds, 1, proc.pid)
            delays = asyncio.run(live_delays(url, 100))
    delays.sort()
    rows = [
        {"request": "GET /healthz", **healthz},
        {"request": "GET / (grid)", **grid, "p99_vs_healthz": grid["p99_ms"] / healthz["p99_ms"]},
        {
            "request": "live: publish -> SSE",
            "p50_ms": statistics.median(delays) * 1000,
            "p99_ms": delays[int(len(delays) * 0.99) - 1] * 1000,
        },
    ]
    print(
        f"board: grid p50/p99 {grid['p50_ms']:.1f}/{grid['p99_ms']:.1f} ms "
        f"({grid['p99_ms'] / healthz['p99_ms']:.1f}x /healthz's p99 {healthz['p99_ms']:.2f} ms; goal p99 < 50 ms); "
        f"live p50/p99 {rows[2]['p50_ms']:.1f}/{rows[2]['p99_ms']:.1f} ms"
    )
    record("board", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
