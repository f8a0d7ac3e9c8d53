"""Load and check the topics catalog into frozen dataclasses. Pure: no Kafka client here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml


class CatalogError(ValueError):
    """The catalog file is wrong; the message names the topic and field."""


@dataclass(frozen=True)
class EventType:
    type: str
    meaning: str
    schema_path: Path | None
    reference: str | None

    def matches(self, ce_type: str) -> bool:
        if self.type.endswith("*"):
            return ce_type.startswith(self.type[:-1])
        return ce_type == self.type


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]
    key: str
    events: tuple[EventType, ...]
    raw: bool = False

    def event_type(self, ce_type: str) -> EventType | None:
        """The declared type for `ce_type`: an exact entry wins over a wildcard one."""
        exact = [e for e in self.events if e.type == ce_type]
        if exact:
            return exact[0]
        return next((e for e in self.events if e.matches(ce_type)), None)


@dataclass(frozen=True)
class Catalog:
    topics: tuple[TopicSpec, ...]
    copartition_groups: Mapping[str, tuple[str, ...]]
    path: Path
    prefix: str = ""

    def topic(self, logical_name: str) -> TopicSpec:
        """The topic called `logical_name` in the catalog file, under this catalog's prefix."""
        name = self.prefix + logical_name
        for topic in self.topics:
            if topic.name == name:
                return topic
        raise KeyError(f"topic {logical_name!r} is not in the catalog {self.path}")

    def with_prefix(self, prefix: str) -> Catalog:
        """The same topics with every name prefixed (isolated test runs, several pipelines on one cluster)."""
        if not prefix:
            return self
        return replace(
            self,
            topics=tuple(replace(t, name=prefix + t.name) for t in self.topics),
            copartition_groups={g: tuple(prefix + n for n in names) for g, names in self.copartition_groups.items()},
            prefix=self.prefix + prefix,
        )


def load(path: Path) -> Catalog:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CatalogError(f"no topics catalog at {path}") from e
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise CatalogError(f"{path}: expected a mapping with `topics`")
    defaults = _mapping(doc.get("defaults", {}), "defaults")
    topics = tuple(
        _topic(_mapping(t, f"topics[{i}]"), defaults, path.parent) for i, t in enumerate(_list(doc, "topics"))
    )
    names = [t.name for t in topics]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CatalogError(f"{path}: topics listed twice: {', '.join(duplicates)}")
    groups = {
        str(group): tuple(str(n) for n in members)
        for group, members in _mapping(doc.get("copartition_groups", {}), "copartition_groups").items()
    }
    catalog = Catalog(topics=topics, copartition_groups=groups, path=path)
    check_copartitioning(catalog, {t.name: t.partitions for t in topics})
    return catalog


def check_copartitioning(catalog: Catalog, partitions: Mapping[str, int]) -> None:
    """Joined inputs must keep equal partition counts, or a key lands on different partitions in each."""
    for group, members in catalog.copartition_groups.items():
        unknown = [m for m in members if m not in {t.name for t in catalog.topics}]
        if unknown:
            raise CatalogError(f"copartition group {group!r} names topics not in the catalog: {', '.join(unknown)}")
        counts = {m: partitions[m] for m in members if m in partitions}
        if len(set(counts.values())) > 1:
            shown = ", ".join(f"{m}={c}" for m, c in counts.items())
            raise CatalogError(
                f"copartition group {group!r} would have different partition counts ({shown}); "
                "joined topics need the same count"
            )


def _topic(doc: Mapping[str, Any], defaults: Mapping[str, Any], root: Path) -> TopicSpec:
    name = _str(doc, "name", "topic")
    where = f"topic {name!r}"
    partitions = doc.get("partitions")
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise CatalogError(f"{where}: partitions must be a positive integer, got {partitions!r}")
    replication = doc.get("replication_factor", defaults.get("replication_factor", 1))
    if not isinstance(replication, int) or replication < 1:
        raise CatalogError(f"{where}: replication_factor must be a positive integer, got {replication!r}")
    configs = {**_mapping(defaults.get("configs", {}), "defaults.configs"), **_mapping(doc.get("configs", {}), where)}
    for key, value in configs.items():
        if not isinstance(value, str):
            raise CatalogError(f"{where}: config {key} must be a quoted string, got {value!r}")
    events = tuple(_event(_mapping(e, f"{where} events[{i}]"), where, root) for i, e in enumerate(_list(doc, "events")))
    raw = doc.get("format", "cloudevents") == "raw"
    return TopicSpec(
        name, str(doc.get("description", "")), partitions, replication, configs, _str(doc, "key", where), events, raw
    )


def _event(doc: Mapping[str, Any], where: str, root: Path) -> EventType:
    ce_type = _str(doc, "type", where)
    data = _mapping(doc.get("data"), f"{where} {ce_type} data")
    schema_path = None
    if "schema" in data:
        schema_path = root / str(data["schema"])
        try:
            json.loads(schema_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise CatalogError(f"{where} {ce_type}: schema {schema_path} is not a readable JSON file: {e}") from e
    elif "reference" not in data:
        raise CatalogError(f"{where} {ce_type}: data needs a `schema` file or a `reference`")
    reference = str(data["reference"]) if "reference" in data else None
    return EventType(ce_type, str(doc.get("meaning", "")), schema_path, reference)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise CatalogError(f"`{key}` must be a list, got {type(value).__name__}")
    return value


def _str(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise CatalogError(f"{where}: `{key}` must be a non-empty string, got {value!r}")
    return value
