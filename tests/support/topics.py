"""A test's own topics (the catalog under a prefix of its own) and, on the secured local broker, the ACLs of
topics/acls.yaml for them, its worker id and its deploy group, so the processes it runs can do their jobs as their
own principals, and nothing more.

Grants are only ever added: `topics apply` would also revoke what the file does not say for these principals, which
are the ACLs of every other test's prefix and groups on the same broker."""

from __future__ import annotations

from collections.abc import Iterable

from streams import catalog
from streams.catalog.acls import AclBinding, AclSpec, plan_grants
from streams.catalog.plan import make_plan
from streams.commands import topics_cmds
from streams.config import REPO_ROOT, DeployAgentSettings, WorkerSettings
from tests.support.brokers import SelectedBroker

CATALOG = REPO_ROOT / "topics" / "catalog.yaml"
# What the processes call their group and internal topics when a test's environment does not say.
WORKER_ID = WorkerSettings.from_env({}).app_id
DEPLOY_GROUP = DeployAgentSettings.from_env({}).group_id
# Principals that export lag (the worker does too): the groups they report need DESCRIBE.
LAG_READERS = ("User:autodeploy-worker", "User:autodeploy-lag-exporter")


def apply_topics(
    broker: SelectedBroker,
    prefix: str,
    *,
    worker_id: str = WORKER_ID,
    deploy_group: str = DEPLOY_GROUP,
    lag_groups: Iterable[str] = (),
) -> catalog.Catalog:
    """The catalog's topics under `prefix`, created as the tests' admin, then the ACLs (see grant_acls)."""
    cat = catalog.load(CATALOG).with_prefix(prefix)
    admin = broker.admin()
    admin.apply(make_plan(cat, admin.describe(t.name for t in cat.topics), admin.broker_count()))
    grant_acls(broker, cat, worker_id=worker_id, deploy_group=deploy_group, lag_groups=lag_groups)
    return cat


def grant_acls(
    broker: SelectedBroker,
    cat: catalog.Catalog,
    *,
    worker_id: str = WORKER_ID,
    deploy_group: str = DEPLOY_GROUP,
    lag_groups: Iterable[str] = (),
) -> None:
    """On the secured local broker, the ACLs of topics/acls.yaml for `cat`'s topic prefix, `worker_id` and
    `deploy_group`, and DESCRIBE on `lag_groups` (AUTODEPLOY_LAG_GROUPS, which the file cannot name) for the lag
    exporting principals; only the missing ones are created, none is deleted. Elsewhere nothing: an external broker
    may have no authorizer, and its principals are not the tests'."""
    if not broker.authorizes:
        return
    spec = topics_cmds.acl_spec(cat, {"worker_id": worker_id, "deploy_group": deploy_group})
    assert spec is not None, f"no acls.yaml beside {cat.path}"
    extra = {AclBinding(p, "GROUP", "LITERAL", group, "DESCRIBE") for p in LAG_READERS for group in lag_groups}
    wanted = AclSpec(spec.principals, spec.bindings | extra)
    admin = broker.admin()
    plan = plan_grants(wanted, admin.acls(wanted.principals))
    if not plan.empty:
        admin.apply_acls(plan)


def delete_topics(broker: SelectedBroker, cat: catalog.Catalog, *others: str) -> None:
    """The catalog's topics (and `others`, a worker's internal topics say) that exist; their ACLs stay, harmless
    on a broker that lives as long as the test session."""
    admin = broker.admin()
    admin.delete(admin.describe([*(t.name for t in cat.topics), *others]))
