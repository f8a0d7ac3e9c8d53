"""`autodeploy topics list | plan | apply`: the catalog in topics/catalog.yaml against a cluster."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from streams import brokers, catalog
from streams.adapters.kafka_admin import KafkaAdminError, TopicAdmin
from streams.catalog.plan import ActualTopic, Plan, PlanRefused, effective_replication, make_plan
from streams.config import Settings

LIST_TIMEOUT_S = 5.0  # `list` works without a cluster: an unreachable broker only costs it this long


def register(sub: Any) -> None:
    parser = sub.add_parser("topics", help="the topic catalog (topics/catalog.yaml) against the cluster")
    parser.add_argument("--prefix", default=None, help="prefix every topic name (default: $AUTODEPLOY_TOPIC_PREFIX)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the topics and event types the catalog declares").set_defaults(handler=run_list)
    actions.add_parser("plan", help="what apply would change").set_defaults(handler=run_plan)
    actions.add_parser("apply", help="create and alter topics to match the catalog").set_defaults(handler=run_apply)


def _catalog(args: argparse.Namespace) -> catalog.Catalog:
    settings = Settings.from_env()
    prefix = settings.topic_prefix if args.prefix is None else args.prefix
    return catalog.load(settings.topics_catalog).with_prefix(prefix)


Cluster = tuple[int, dict[str, ActualTopic]]  # broker count, the catalog's topics that exist


def run_list(args: argparse.Namespace) -> int:
    cat = _catalog(args)
    list_catalog(cat, _cluster(cat), sys.stdout)
    return 0


def _cluster(cat: catalog.Catalog) -> Cluster | str:
    """The cluster the topics live on (configured, or the local broker), or why it could not be asked."""
    try:
        bootstrap = brokers.bootstrap_servers(Settings.from_env())
    except brokers.BrokerNotFound:
        return "no broker to check it against"
    try:
        admin = TopicAdmin(bootstrap, timeout=LIST_TIMEOUT_S)
        return admin.broker_count(), admin.describe(t.name for t in cat.topics)
    except KafkaAdminError:
        return f"the broker at {bootstrap} did not answer"


def list_catalog(cat: catalog.Catalog, cluster: Cluster | str, out: TextIO) -> None:
    """The catalog's topics, each with the replication factor that applies on `cluster`: a single local broker holds
    one replica whatever the catalog (written for production) says. Without a cluster, the catalog's, marked so."""
    for topic in cat.topics:
        if isinstance(cluster, str):
            rf, note = topic.replication_factor, f"the catalog's; {cluster}"
        else:
            count, actual = cluster
            rf, note = effective_replication(topic, count, actual.get(topic.name))
        replication = f"replication={rf}" + (f" ({note})" if note else "")
        print(f"{topic.name}  partitions={topic.partitions} {replication}  key: {topic.key}", file=out)
        print(f"    {topic.description}", file=out)
        for event in topic.events:
            where = event.schema_path.relative_to(cat.path.parent) if event.schema_path else event.reference
            print(f"    - {event.type}  ({where})", file=out)


def plan_for(bootstrap: str, cat: catalog.Catalog) -> tuple[TopicAdmin, Plan]:
    admin = TopicAdmin(bootstrap)
    actual = admin.describe(t.name for t in cat.topics)
    return admin, make_plan(cat, actual, admin.broker_count())


def run_plan(args: argparse.Namespace) -> int:
    cat = _catalog(args)
    try:
        _, plan = plan_for(brokers.bootstrap_servers(Settings.from_env()), cat)
    except PlanRefused as e:
        print(f"autodeploy: {e}", file=sys.stderr)
        return 2
    _print(plan, sys.stdout)
    return 0


def run_apply(args: argparse.Namespace) -> int:
    return apply_catalog(brokers.bootstrap_servers(Settings.from_env()), _catalog(args), out=sys.stdout)


def apply_catalog(bootstrap: str, cat: catalog.Catalog, out: TextIO) -> int:
    try:
        admin, plan = plan_for(bootstrap, cat)
    except PlanRefused as e:
        print(f"autodeploy: {e}", file=sys.stderr)
        return 2
    _print(plan, out)
    if not plan.empty:
        admin.apply(plan)
        print(f"applied {len(plan.changes)} change{'s' if len(plan.changes) != 1 else ''}", file=out)
    return 0


def _print(plan: Plan, out: TextIO) -> None:
    for note in plan.notes:
        print(f"note: {note}", file=out)
    if plan.empty:
        print("no changes: the cluster matches the catalog", file=out)
    for change in plan.changes:
        print(f"+ {change.description}", file=out)
