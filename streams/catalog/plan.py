"""The difference between the catalog and a cluster, as a list of changes. Pure: the admin adapter applies it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from streams.catalog.model import Catalog, CatalogError, TopicSpec, check_copartitioning


@dataclass(frozen=True)
class ActualTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


@dataclass(frozen=True)
class Change:
    kind: Literal["create", "add_partitions", "alter_configs"]
    topic: str
    partitions: int = 0
    replication_factor: int = 0
    configs: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    notes: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.changes


class PlanRefused(CatalogError):
    """Applying the catalog would break the cluster (shrink partitions, split a co-partitioned group)."""


def make_plan(catalog: Catalog, actual: Mapping[str, ActualTopic], brokers: int) -> Plan:
    changes: list[Change] = []
    notes: list[str] = []
    refusals: list[str] = []
    lowerings: dict[str, list[str]] = {}
    for spec in catalog.topics:
        rf, configs, lowered = _fit(spec, brokers)
        if lowered:
            lowerings.setdefault(lowered, []).append(spec.name)
        current = actual.get(spec.name)
        if current is None:
            changes.append(
                Change(
                    "create",
                    spec.name,
                    spec.partitions,
                    rf,
                    configs,
                    f"create {spec.name}: {spec.partitions} partitions, replication {rf}",
                )
            )
            continue
        if spec.partitions < current.partitions:
            refusals.append(
                f"{spec.name}: the catalog says {spec.partitions} partitions but the topic has {current.partitions}; "
                "Kafka cannot remove partitions (recreate the topic deliberately if you mean it)"
            )
        elif spec.partitions > current.partitions:
            grow = f"{spec.name}: partitions {current.partitions} -> {spec.partitions}"
            changes.append(Change("add_partitions", spec.name, partitions=spec.partitions, description=grow))
            if any(spec.name in group for group in catalog.copartition_groups.values()):
                notes.append(
                    f"{spec.name}: more partitions move keys to new partitions; stop the readiness worker first"
                )
        if current.replication_factor != rf:
            notes.append(
                f"{spec.name}: replication factor is {current.replication_factor}, the catalog wants {rf}; "
                "that needs a partition reassignment, which apply does not do"
            )
        drift = {k: v for k, v in configs.items() if current.configs.get(k) != v}
        if drift:
            shown = ", ".join(f"{k}: {current.configs.get(k)} -> {v}" for k, v in sorted(drift.items()))
            changes.append(Change("alter_configs", spec.name, configs=drift, description=f"{spec.name}: {shown}"))
    for lowered, names in lowerings.items():
        notes.insert(0, f"{lowered} for {', '.join(names)} (the cluster has {brokers} broker{'s' * (brokers != 1)})")
    resulting = {name: topic.partitions for name, topic in actual.items()}
    resulting.update({spec.name: max(spec.partitions, resulting.get(spec.name, 0)) for spec in catalog.topics})
    try:
        check_copartitioning(catalog, resulting)
    except CatalogError as e:
        refusals.append(str(e))
    if refusals:
        raise PlanRefused("refusing to apply the catalog:\n  " + "\n  ".join(refusals))
    return Plan(tuple(changes), tuple(notes))


def effective_replication(spec: TopicSpec, brokers: int, actual: ActualTopic | None) -> tuple[int, str]:
    """The replication factor `spec`'s topic has on a cluster of `brokers` (what it was created with, or what apply
    would create it with), and a note saying why it differs from the catalog's ('' when it does not)."""
    if actual is not None:
        rf = actual.replication_factor
        return rf, "" if rf == spec.replication_factor else f"as created; the catalog says {spec.replication_factor}"
    rf, _, lowered = _fit(spec, brokers)
    why = f"; the catalog says {spec.replication_factor}, the cluster has {brokers} broker{'s' * (brokers != 1)}"
    return rf, "not created yet" + (why if lowered else "")


def _fit(spec: TopicSpec, brokers: int) -> tuple[int, dict[str, str], str]:
    """Production replication on a smaller (development) cluster: lower it to what the cluster can hold."""
    rf = min(spec.replication_factor, max(brokers, 1))
    configs = dict(spec.configs)
    lowered = []
    if rf < spec.replication_factor:
        lowered.append(f"replication {spec.replication_factor} -> {rf}")
    isr = configs.get("min.insync.replicas")
    if isr is not None and int(isr) > rf:
        configs["min.insync.replicas"] = str(rf)
        lowered.append(f"min.insync.replicas {isr} -> {configs['min.insync.replicas']}")
    return rf, configs, ", ".join(lowered)
