from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams import catalog
from streams.config import REPO_ROOT

CATALOG = REPO_ROOT / "topics" / "catalog.yaml"


def test_the_repository_catalog_declares_the_pipeline_topics() -> None:
    cat = catalog.load(CATALOG)
    assert [t.name for t in cat.topics] == [
        "github.events",
        "ci.events",
        "deploy.gates",
        "deploy.readiness",
        "deploy.events",
        "autodeploy.deadletter",
    ]
    joined = cat.copartition_groups["readiness-inputs"]
    assert {cat.topic(n).partitions for n in joined} == {6}
    assert all(e.schema_path is None or e.schema_path.is_file() for t in cat.topics for e in t.events)


def test_every_topic_is_stamped_by_the_broker() -> None:
    """The merge orders the join's inputs by record timestamps and verifiers date signatures by them: a producer's
    clock (CreateTime) would let a skewed replica reorder the join or a revoked key backdate a record."""
    cat = catalog.load(CATALOG)
    assert {t.name: t.configs.get("message.timestamp.type") for t in cat.topics} == {
        t.name: "LogAppendTime" for t in cat.topics
    }


def test_exact_event_types_win_over_wildcards() -> None:
    github = catalog.load(CATALOG).topic("github.events")
    push = github.event_type("com.github.push")
    assert push is not None and push.schema_path is not None and push.schema_path.name == "push.json"
    other = github.event_type("com.github.issues.opened")
    assert other is not None and other.type == "com.github.*" and other.reference
    assert catalog.load(CATALOG).topic("ci.events").event_type("com.example.unknown") is None


def test_prefix_renames_topics_and_groups_but_lookup_stays_logical() -> None:
    cat = catalog.load(CATALOG).with_prefix("t1-")
    assert cat.topic("github.events").name == "t1-github.events"
    assert cat.copartition_groups["readiness-inputs"] == ("t1-github.events", "t1-ci.events", "t1-deploy.gates")


def _edited(tmp_path: Path, edit: dict[str, object], topic: str = "ci.events") -> Path:
    doc = yaml.safe_load(CATALOG.read_text())
    for entry in doc["topics"]:
        if entry["name"] == topic:
            entry.update(edit)
    # Schemas are referenced relative to the catalog; keep them reachable from the copy.
    (tmp_path / "schemas").symlink_to(CATALOG.parent / "schemas")
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"partitions": 8}, "copartition group 'readiness-inputs' would have different partition counts"),
        ({"partitions": 0}, "topic 'ci.events': partitions must be a positive integer"),
        ({"configs": {"retention.ms": 5}}, "config retention.ms must be a quoted string"),
        ({"key": ""}, "topic 'ci.events': `key` must be a non-empty string"),
        ({"events": [{"type": "x.y", "data": {}}]}, "x.y: data needs a `schema` file or a `reference`"),
        ({"events": [{"type": "x.y", "data": {"schema": "schemas/nope.json"}}]}, "schemas/nope.json is not a readable"),
    ],
)
def test_a_wrong_catalog_gets_an_error_naming_the_field(tmp_path: Path, edit: dict[str, object], message: str) -> None:
    with pytest.raises(catalog.CatalogError, match=message.replace("(", r"\(").replace(".", r"\.")):
        catalog.load(_edited(tmp_path, edit))


def test_missing_or_unparsable_catalog(tmp_path: Path) -> None:
    with pytest.raises(catalog.CatalogError, match="no topics catalog"):
        catalog.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: [\n")
    with pytest.raises(catalog.CatalogError, match="not valid YAML"):
        catalog.load(bad)
