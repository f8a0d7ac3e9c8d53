"""The ACLs of autodeploy's principals (`topics/acls.yaml`), and how a broker's differ. Pure: the admin adapter reads
and applies them.

Each entry of the file allows a principal some operations on a resource: a catalog topic (by its name in the catalog;
the topic prefix applies), a topic or group name prefix, a group, or the cluster. `{worker_id}` and `{deploy_group}`
in names are AUTODEPLOY_WORKER_ID and AUTODEPLOY_DEPLOY_GROUP. Only ALLOW entries: the broker denies what no ACL
allows (`allow.everyone.if.no.acl.found=false`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams.catalog.model import Catalog, CatalogError

RESOURCES = {  # the file's key -> (resource type, pattern type)
    "topic": ("TOPIC", "LITERAL"),
    "topic_prefix": ("TOPIC", "PREFIXED"),
    "group": ("GROUP", "LITERAL"),
    "group_prefix": ("GROUP", "PREFIXED"),
    "cluster": ("BROKER", "LITERAL"),  # confluent-kafka's name for Kafka's CLUSTER resource
}
CLUSTER_NAME = "kafka-cluster"
OPERATIONS = frozenset(
    {
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
    }
)


class AclError(CatalogError):
    """topics/acls.yaml is malformed or names a topic the catalog does not have."""


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ALLOW entry, from any host: `principal` may do `operation` on the resource."""

    principal: str  # "User:autodeploy-webhooks"
    resource_type: str  # TOPIC, GROUP, BROKER (the cluster)
    pattern_type: str  # LITERAL or PREFIXED
    name: str
    operation: str
    permission: str = "ALLOW"  # the file has only ALLOW from any host; a broker may have others of these principals
    host: str = "*"

    @property
    def description(self) -> str:
        if self.resource_type == "BROKER":
            what = "the cluster"
        else:
            kind = self.resource_type.lower()
            what = f"{kind}s prefixed {self.name!r}" if self.pattern_type == "PREFIXED" else f"{kind} {self.name}"
        extra = "" if (self.permission, self.host) == ("ALLOW", "*") else f" ({self.permission} from {self.host})"
        return f"{self.principal} {self.operation} on {what}{extra}"


@dataclass(frozen=True)
class AclSpec:
    principals: tuple[str, ...]  # the principals the file manages: apply deletes their ACLs the file does not have
    bindings: frozenset[AclBinding]


@dataclass(frozen=True)
class AclPlan:
    create: tuple[AclBinding, ...]
    delete: tuple[AclBinding, ...]

    @property
    def empty(self) -> bool:
        return not self.create and not self.delete


def load_acls(path: Path, catalog: Catalog, names: Mapping[str, str]) -> AclSpec:
    """The file's ACLs for `catalog` (whose prefix applies to topic names); `names` fills {worker_id} and the like."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise AclError(f"{path}: {e}") from e
    principals = doc.get("principals") if isinstance(doc, dict) else None
    if not isinstance(principals, dict) or not principals:
        raise AclError(f"{path}: expected a mapping `principals:` of principal -> list of entries")
    bindings: set[AclBinding] = set()
    for principal, entries in principals.items():
        if not isinstance(principal, str) or not principal.startswith("User:"):
            raise AclError(f"{path}: principal {principal!r} must be written User:<name>")
        if not isinstance(entries, list):
            raise AclError(f"{path}: {principal}: expected a list of entries")
        for entry in entries:
            bindings.update(_entry(entry, principal, catalog, names, f"{path}: {principal}"))
    return AclSpec(tuple(principals), frozenset(bindings))


def _entry(entry: Any, principal: str, catalog: Catalog, names: Mapping[str, str], where: str) -> Iterable[AclBinding]:
    if not isinstance(entry, dict):
        raise AclError(f"{where}: expected an entry like {{topic: github.events, operations: [READ]}}, got {entry!r}")
    keys = [k for k in entry if k in RESOURCES]
    unknown = set(entry) - set(RESOURCES) - {"operations", "why"}
    if len(keys) != 1 or unknown:
        raise AclError(f"{where}: an entry has one of {', '.join(RESOURCES)}, `operations` and `why`: {entry!r}")
    key = keys[0]
    resource_type, pattern_type = RESOURCES[key]
    operations = entry.get("operations")
    if not isinstance(operations, list) or not operations:
        raise AclError(f"{where}: {key} {entry[key]!r} has no `operations` list")
    bad = sorted(str(o) for o in operations if o not in OPERATIONS)
    if bad:
        raise AclError(f"{where}: unknown operations {bad}; use {', '.join(sorted(OPERATIONS))}")
    name = _name(key, entry[key], catalog, names, where)
    return (AclBinding(principal, resource_type, pattern_type, name, str(op)) for op in operations)


def _name(key: str, value: Any, catalog: Catalog, names: Mapping[str, str], where: str) -> str:
    if key == "cluster":
        return CLUSTER_NAME
    if not isinstance(value, str) or not value:
        raise AclError(f"{where}: {key} must be a name, got {value!r}")
    if key == "topic":
        try:
            return catalog.topic(value).name
        except KeyError as e:
            raise AclError(f"{where}: topic {value!r} is not in the topic catalog") from e
    try:
        return value.format(**names)
    except KeyError as e:
        raise AclError(f"{where}: {value!r} uses {e}; known: {', '.join('{' + n + '}' for n in names)}") from e


def plan_acls(spec: AclSpec, actual: Iterable[AclBinding]) -> AclPlan:
    """What to create and delete so the managed principals have exactly the file's ACLs; other principals' ACLs are
    never touched."""
    managed = {b for b in actual if b.principal in spec.principals}
    return AclPlan(tuple(sorted(spec.bindings - managed)), tuple(sorted(managed - spec.bindings)))


def plan_grants(spec: AclSpec, actual: Iterable[AclBinding]) -> AclPlan:
    """Only the file's ACLs the broker lacks, deleting nothing: for several pipelines of the same principals on one
    cluster (each with its own topic prefix, worker id and deploy group, as the tests run them), where plan_acls's
    deletions would revoke the other pipelines' ACLs."""
    return AclPlan(tuple(sorted(spec.bindings - set(actual))), ())
