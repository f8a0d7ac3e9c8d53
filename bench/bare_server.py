"""The baseline: the same aiohttp stack, reading the body and answering 200 without any work."""

from __future__ import annotations

import argparse

from aiohttp import web


async def ok(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"stored": []})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application(client_max_size=25 * 1024 * 1024)
    app.router.add_post("/webhooks/github", ok)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
