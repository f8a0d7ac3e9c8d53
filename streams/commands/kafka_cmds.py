"""`autodeploy kafka up | down | status` and `autodeploy up`."""

from __future__ import annotations

import argparse
from typing import Any

from streams.local import kafka


def register(sub: Any) -> None:
    parser = sub.add_parser("kafka", help="a local Apache Kafka broker (KRaft) from Maven Central jars")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("up", help="download the jars once, start the broker, wait until it answers")
    start.add_argument("--port", type=int, default=None, help="listener port (default: a free one)")
    add_insecure_flag(start)
    start.set_defaults(handler=run_kafka_up)
    actions.add_parser("fetch", help="only download the jars into the cache").set_defaults(handler=run_kafka_fetch)
    actions.add_parser("down", help="stop the broker `up` started").set_defaults(handler=run_kafka_down)
    actions.add_parser("status", help="is the local broker up, and where").set_defaults(handler=run_kafka_status)


def add_insecure_flag(parser: argparse.ArgumentParser) -> None:
    """`--insecure`, for the commands that start the local broker: it is secured unless asked otherwise."""
    flags = parser.add_mutually_exclusive_group()
    flags.add_argument(
        "--insecure",
        dest="secure",
        action="store_false",
        default=None,
        help="start the local broker without SASL and ACLs (anyone who reaches it may do anything; also "
        "AUTODEPLOY_KAFKA_SECURE=0). Default: SASL/SCRAM, one principal per process, deny-by-default ACLs",
    )
    # Secured has become the default; the old opt-in flag still parses, so scripts written for it keep working.
    flags.add_argument("--secure", dest="secure", action="store_true", default=None, help=argparse.SUPPRESS)


def run_kafka_up(args: argparse.Namespace) -> int:
    info = kafka.up(port=args.port, secure=args.secure)
    print(f"kafka {info.version} up: bootstrap {info.bootstrap_servers} (pid {info.pid}, log {info.log_path})")
    print(f"export KAFKA_BOOTSTRAP_SERVERS={info.bootstrap_servers}")
    if info.secure:
        # Never the passwords themselves: where they are, for a person who wants to be one of the principals.
        print(f"secured: SASL {kafka.MECHANISM}; principals {', '.join(kafka.username(r) for r in kafka.ROLES)}")
        print(f"passwords (mode 0600) in {kafka.password_file('admin').parent}; `autodeploy topics apply` sets ACLs")
    else:
        print("not secured (--insecure): no authentication, no ACLs; anyone who reaches the port may do anything")
    return 0


def run_kafka_fetch(args: argparse.Namespace) -> int:
    print(f"kafka {kafka.KAFKA_VERSION} jars in {kafka.ensure_jars()}")
    return 0


def run_kafka_down(args: argparse.Namespace) -> int:
    print("kafka stopped" if kafka.down() else "kafka was not running")
    return 0


def run_kafka_status(args: argparse.Namespace) -> int:
    info = kafka.status()
    if info is None:
        print("kafka: down")
        return 3
    secured = " secured (SASL/SCRAM, ACLs)" if info.secure else ""
    print(f"kafka {info.version}: up at {info.bootstrap_servers} (pid {info.pid}){secured}")
    return 0
