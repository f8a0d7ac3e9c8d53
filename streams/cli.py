"""The `autodeploy` command: one entry point for every process and tool of the pipeline."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from streams.commands import (
    approve_cmds,
    board_cmds,
    cluster_cmds,
    demo_cmds,
    deploy_cmds,
    kafka_cmds,
    keys_cmds,
    lag_cmds,
    manifests_cmds,
    replay_cmds,
    topics_cmds,
    up_cmds,
    webhooks_cmds,
    why_cmds,
    worker_cmds,
)

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodeploy", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kafka_cmds.register(sub)
    topics_cmds.register(sub)
    cluster_cmds.register(sub)
    webhooks_cmds.register(sub)
    worker_cmds.register(sub)
    deploy_cmds.register(sub)
    up_cmds.register(sub)
    demo_cmds.register(sub)
    why_cmds.register(sub)
    replay_cmds.register(sub)
    lag_cmds.register(sub)
    manifests_cmds.register(sub)
    keys_cmds.register(sub)
    approve_cmds.register(sub)
    board_cmds.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one clear line for the user, the trace only with -v
        log.debug("command failed", exc_info=True)
        print(f"autodeploy: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
