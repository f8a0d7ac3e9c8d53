"""`autodeploy approve`: approve a commit of a service for an environment whose policy asks for approval."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import Any

from streams import brokers, catalog
from streams.commands.keys_cmds import signer_of
from streams.config import KeySettings, Settings

_COMMIT = re.compile(r"[0-9a-f]{40}")


def register(sub: Any) -> None:
    parser = sub.add_parser("approve", help="approve a commit for an environment that requires approval")
    parser.add_argument("service", help="the service's name in the policy file")
    parser.add_argument("commit", help="the commit's full SHA")
    parser.add_argument("--env", required=True, help="the environment, as the service's policy names it")
    parser.add_argument("--comment", default="", help="why, for the audit trail")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from streams.adapters.kafka_producer import DurableProducer  # noqa: PLC0415 - slow imports, this command only
    from streams.adapters.policy_file import load_policies  # noqa: PLC0415 - same
    from streams.deploy.agent import SyncPublisher  # noqa: PLC0415 - same
    from streams.events.approvals import Approval, approval_record  # noqa: PLC0415 - same

    settings = Settings.from_env()
    try:
        policy = load_policies(settings.policy_path).service(args.service)
    except KeyError as e:
        print(f"autodeploy: {e.args[0]}", file=sys.stderr)
        return 2
    environment = policy.environment_named(args.env)
    if environment is None or not environment.approval:
        names = ", ".join(e.name for e in policy.environments if e.approval) or "none"
        print(
            f"autodeploy: {args.service} has no environment {args.env!r} that requires approval (those that do: "
            f"{names})",
            file=sys.stderr,
        )
        return 2
    if not _COMMIT.fullmatch(args.commit):
        print(f"autodeploy: {args.commit!r} is not a full commit SHA (40 hex digits)", file=sys.stderr)
        return 2
    # The approver's own key: its id is who approved (an unsigned approval is no fact where signatures are on).
    signer = signer_of(KeySettings.from_env())
    approver = signer.key_id if signer is not None else getpass.getuser()
    approval = Approval(args.service, args.env, policy.repository, args.commit, approver, args.comment)
    topic = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix).topic("deploy.gates").name
    broker = brokers.connection(settings, "approver")
    publisher = SyncPublisher(DurableProducer(broker.bootstrap_servers, security=broker.security), 10.0)
    try:
        publisher(approval_record(approval, topic, signer=signer))
    finally:
        publisher.close()
    print(f"{args.service} {args.commit[:12]} approved for {args.env} by {approver}; event {approval.event_id}")
    return 0
