"""`autodeploy topics list | plan | apply`: the catalog in topics/catalog.yaml against a cluster."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from streams import brokers, catalog
from streams.adapters.kafka_admin import AuthorizerDisabled, KafkaAdminError, TopicAdmin
from streams.catalog.acls import AclPlan, AclSpec, load_acls, plan_acls
from streams.catalog.plan import ActualTopic, Plan, PlanRefused, effective_replication, make_plan
from streams.config import DeployAgentSettings, KafkaSecurity, Settings, WorkerSettings

LIST_TIMEOUT_S = 5.0  # `list` works without a cluster: an unreachable broker only costs it this long


def register(sub: Any) -> None:
    parser = sub.add_parser("topics", help="the topic catalog (topics/catalog.yaml) against the cluster")
    parser.add_argument("--prefix", default=None, help="prefix every topic name (default: $AUTODEPLOY_TOPIC_PREFIX)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the topics and event types the catalog declares").set_defaults(handler=run_list)
    actions.add_parser("plan", help="what apply would change (topics and ACLs)").set_defaults(handler=run_plan)
    actions.add_parser(
        "apply", help="create and alter topics to match the catalog, and the ACLs to match topics/acls.yaml"
    ).set_defaults(handler=run_apply)


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
        broker = brokers.connection(Settings.from_env(), "admin")
    except brokers.BrokerNotFound:
        return "no broker to check it against"
    bootstrap = broker.bootstrap_servers
    try:
        admin = TopicAdmin(bootstrap, timeout=LIST_TIMEOUT_S, security=broker.security)
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


@dataclass(frozen=True)
class FullPlan:
    topics: Plan
    acls: AclPlan | None  # None: nothing to apply (no acls.yaml beside the catalog, or a broker without authorizer)
    acl_note: str = ""

    @property
    def empty(self) -> bool:
        return self.topics.empty and (self.acls is None or self.acls.empty)


def acl_spec(cat: catalog.Catalog, names: Mapping[str, str] | None = None) -> AclSpec | None:
    """The ACLs of acls.yaml beside the catalog, for its topics (prefix included); None when there is no such file.
    `names` fills {worker_id} and {deploy_group}; default: AUTODEPLOY_WORKER_ID and AUTODEPLOY_DEPLOY_GROUP."""
    path = cat.path.parent / "acls.yaml"
    if not path.exists():
        return None
    if names is None:
        names = {"worker_id": WorkerSettings.from_env().app_id, "deploy_group": DeployAgentSettings.from_env().group_id}
    return load_acls(path, cat, names)


def plan_for(
    bootstrap: str, cat: catalog.Catalog, security: KafkaSecurity | None = None
) -> tuple[TopicAdmin, FullPlan]:
    admin = TopicAdmin(bootstrap, security=security)
    actual = admin.describe(t.name for t in cat.topics)
    topics = make_plan(cat, actual, admin.broker_count())
    spec = acl_spec(cat)
    if spec is None:
        return admin, FullPlan(topics, None)
    try:
        existing = admin.acls(spec.principals)
    except AuthorizerDisabled:
        note = f"the broker has no authorizer (anyone may do anything): the ACLs of {cat.path.parent / 'acls.yaml'} "
        return admin, FullPlan(topics, None, note + "are not applied")
    return admin, FullPlan(topics, plan_acls(spec, existing))


def run_plan(args: argparse.Namespace) -> int:
    cat = _catalog(args)
    broker = brokers.connection(Settings.from_env(), "admin")
    try:
        _, plan = plan_for(broker.bootstrap_servers, cat, broker.security)
    except PlanRefused as e:
        print(f"autodeploy: {e}", file=sys.stderr)
        return 2
    _print(plan, sys.stdout)
    return 0


def run_apply(args: argparse.Namespace) -> int:
    broker = brokers.connection(Settings.from_env(), "admin")
    return apply_catalog(broker.bootstrap_servers, _catalog(args), out=sys.stdout, security=broker.security)


def apply_catalog(bootstrap: str, cat: catalog.Catalog, out: TextIO, security: KafkaSecurity | None = None) -> int:
    """Topics first (an ACL may name a topic only once it exists for clients to use), then ACLs."""
    try:
        admin, plan = plan_for(bootstrap, cat, security)
    except PlanRefused as e:
        print(f"autodeploy: {e}", file=sys.stderr)
        return 2
    _print(plan, out)
    if not plan.topics.empty:
        admin.apply(plan.topics)
    if plan.acls is not None and not plan.acls.empty:
        admin.apply_acls(plan.acls)
    count = len(plan.topics.changes) + (len(plan.acls.create) + len(plan.acls.delete) if plan.acls else 0)
    if count:
        print(f"applied {count} change{'s' if count != 1 else ''}", file=out)
    return 0


def _print(plan: FullPlan, out: TextIO) -> None:
    for note in plan.topics.notes:
        print(f"note: {note}", file=out)
    if plan.acl_note:
        print(f"note: {plan.acl_note}", file=out)
    if plan.empty:
        what = "the catalog and its ACLs" if plan.acls is not None else "the catalog"
        print(f"no changes: the cluster matches {what}", file=out)
    for change in plan.topics.changes:
        print(f"+ {change.description}", file=out)
    if plan.acls is not None:
        for binding in plan.acls.create:
            print(f"+ allow {binding.description}", file=out)
        for binding in plan.acls.delete:
            print(f"- remove {binding.description}", file=out)
