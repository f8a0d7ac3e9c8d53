"""`autodeploy replay`: the readiness join over the retained inputs, side effects off, against what deploy.readiness
holds; with `--policy`, what another policy would have decided (shadow mode)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from streams import brokers, catalog
from streams.adapters.kafka_reader import read_topics
from streams.adapters.policy_file import load_policies
from streams.commands.keys_cmds import verifier_of
from streams.config import ConfigError, KeySettings, Settings, WorkerSettings
from streams.domain.policy_document import parse_duration
from streams.worker.replay import Difference, Outcome, compare, outcome_of, outcome_of_record, replay

INPUTS = ("github.events", "ci.events", "deploy.gates")  # in the merge's rank order (the worker's INPUTS)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "replay",
        help="decide again from the retained inputs (no side effects) and compare with deploy.readiness",
    )
    parser.add_argument(
        "--from",
        dest="start",
        default="beginning",
        help="where to start: 'beginning' (default), an RFC 3339 time, or a duration ago (90m, 2h, 1d); states "
        "start empty there, so decisions that needed earlier records differ",
    )
    parser.add_argument("--policy", type=Path, default=None, help="another policy file (default: $AUTODEPLOY_CONFIG)")
    parser.add_argument("--json", type=Path, default=None, help="also write the decisions and the difference here")
    parser.set_defaults(handler=run)


def since(text: str, now: datetime) -> int | None:
    """--from as epoch ms; None for the beginning."""
    if text == "beginning":
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return int((now - parse_duration(text)).timestamp() * 1000)
        except ValueError as e:
            raise ConfigError(f"--from: expected 'beginning', an RFC 3339 time or a duration, got {text!r}") from e
    if moment.tzinfo is None:
        raise ConfigError(f"--from: a time needs its offset (Z or +hh:mm): {text!r}")
    return int(moment.timestamp() * 1000)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    now = datetime.now(UTC)
    start = since(args.start, now)
    cat = catalog.load(settings.topics_catalog).with_prefix(settings.topic_prefix)
    policies = load_policies(args.policy or settings.policy_path)
    verifier = verifier_of(KeySettings.from_env())
    broker = brokers.connection(settings, "admin")
    inputs = {cat.topic(name).name: cat.topic(name) for name in INPUTS}
    records = read_topics(broker.bootstrap_servers, inputs, since_ms=start, security=broker.security)
    skew_ms = WorkerSettings.from_env().merge_skew_ms
    replayed = replay(records, inputs, policies, verifier, until=now, skew_ms=skew_ms)
    readiness = cat.topic("deploy.readiness").name
    held = read_topics(broker.bootstrap_servers, [readiness], since_ms=start, security=broker.security)
    logged = [o for o in map(outcome_of_record, (r.value for r in held)) if o is not None]
    mine = [outcome_of(d) for d in replayed.decisions]
    difference = compare(mine, logged)
    report(mine, difference, len(records), len(replayed.deadletters), sys.stdout)
    if args.json is not None:
        args.json.write_text(json.dumps(document(mine, difference), indent=2) + "\n")
    return 0


def report(mine: list[Outcome], difference: Difference, records: int, deadletters: int, out: TextIO) -> None:
    print(f"replayed {records} records ({deadletters} would be dead-lettered): {len(mine)} decisions", file=out)
    for o in mine:
        print(f"  {o.kind:<10} {o.service} {o.commit[:12]}{_by(o)}", file=out)
    if difference.identical:
        print(f"identical to deploy.readiness ({len(difference.same)} decisions)", file=out)
        return
    print(f"differs from deploy.readiness: {len(difference.same)} the same", file=out)
    for o in difference.only_replayed:
        print(f"  + {o.kind} {o.service} {o.commit[:12]}{_by(o)} (not in deploy.readiness)", file=out)
    for o in difference.only_logged:
        print(f"  - {o.kind} {o.service} {o.commit[:12]}{_by(o)} (in deploy.readiness, not decided here)", file=out)
    for logged, replayed in difference.changed:
        print(
            f"  ~ {replayed.kind} {replayed.service} {replayed.commit[:12]}: {_by(logged)} ->{_by(replayed)}", file=out
        )


def _by(o: Outcome) -> str:
    return f" by {o.superseded_by[:12]}" if o.superseded_by else ""


def document(mine: list[Outcome], difference: Difference) -> dict[str, Any]:
    return {
        "decisions": [o.document() for o in mine],
        "identical": difference.identical,
        "same": len(difference.same),
        "only_replayed": [o.document() for o in difference.only_replayed],
        "only_logged": [o.document() for o in difference.only_logged],
        "changed": [{"logged": a.document(), "replayed": b.document()} for a, b in difference.changed],
    }
