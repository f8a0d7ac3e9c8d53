"""`autodeploy topics` against the real broker, each test under its own topic prefix."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from streams import catalog
from streams.adapters.kafka_admin import KafkaAdminError
from streams.catalog.plan import PlanRefused, make_plan
from streams.config import REPO_ROOT
from tests.support.brokers import SelectedBroker
from tests.support.topics import delete_topics

CATALOG = REPO_ROOT / "topics" / "catalog.yaml"


@pytest.fixture
def prefixed(kafka_broker: SelectedBroker, unique: str) -> Iterator[catalog.Catalog]:
    cat = catalog.load(CATALOG).with_prefix(f"t{unique}-")
    yield cat
    delete_topics(kafka_broker, cat)


def _with_topic(cat: catalog.Catalog, name: str, **changes: object) -> catalog.Catalog:
    topics = tuple(dataclasses.replace(t, **changes) if t.name == name else t for t in cat.topics)  # type: ignore[arg-type]
    return dataclasses.replace(cat, topics=topics)


def test_apply_creates_what_the_catalog_says_and_a_second_apply_changes_nothing(
    kafka_broker: SelectedBroker, prefixed: catalog.Catalog
) -> None:
    admin = kafka_broker.admin()
    first = make_plan(prefixed, admin.describe(t.name for t in prefixed.topics), admin.broker_count())
    assert {c.kind for c in first.changes} == {"create"}
    admin.apply(first)

    actual = admin.describe(t.name for t in prefixed.topics)
    github = actual[prefixed.topic("github.events").name]
    assert (github.partitions, github.replication_factor) == (6, 1)
    assert github.configs["retention.ms"] == "1209600000"
    assert github.configs["max.message.bytes"] == "27262976"
    assert actual[prefixed.topic("autodeploy.deadletter").name].partitions == 3

    second = make_plan(prefixed, actual, admin.broker_count())
    assert second.empty


def test_drifted_configs_and_missing_partitions_are_repaired(
    kafka_broker: SelectedBroker, prefixed: catalog.Catalog
) -> None:
    admin = kafka_broker.admin()
    name = prefixed.topic("deploy.events").name
    small = _with_topic(
        prefixed, name, partitions=2, configs={**prefixed.topic("deploy.events").configs, "retention.ms": "1000"}
    )
    admin.apply(make_plan(small, {}, admin.broker_count()))
    repair = make_plan(prefixed, admin.describe(t.name for t in prefixed.topics), admin.broker_count())
    assert sorted((c.kind, c.topic) for c in repair.changes) == [
        ("add_partitions", prefixed.topic("deploy.events").name),
        ("alter_configs", prefixed.topic("deploy.events").name),
    ]
    admin.apply(repair)
    events = admin.describe([prefixed.topic("deploy.events").name])[prefixed.topic("deploy.events").name]
    assert (events.partitions, events.configs["retention.ms"]) == (6, "7776000000")
    assert make_plan(prefixed, admin.describe(t.name for t in prefixed.topics), admin.broker_count()).empty


def test_shrinking_and_splitting_the_joined_inputs_are_refused(
    kafka_broker: SelectedBroker, prefixed: catalog.Catalog
) -> None:
    admin = kafka_broker.admin()
    ci = prefixed.topic("ci.events").name
    # As if someone grew one joined input by hand.
    grown = _with_topic(prefixed, ci, partitions=9)
    admin.apply(make_plan(dataclasses.replace(grown, copartition_groups={}), {}, admin.broker_count()))

    with pytest.raises(PlanRefused) as refused:
        make_plan(prefixed, admin.describe(t.name for t in prefixed.topics), admin.broker_count())
    assert f"{ci}: the catalog says 6 partitions but the topic has 9" in str(refused.value)
    assert "different partition counts" in str(refused.value)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_cli_applies_idempotently_and_refuses_with_a_nonzero_exit(
    kafka_bootstrap: str, prefixed: catalog.Catalog, tmp_path: Path
) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    prefix = ["topics", "--prefix", prefixed.prefix]
    first = _cli(*prefix, "apply", env=env)
    assert first.returncode == 0, first.stderr
    assert "+ create " + prefixed.topic("github.events").name in first.stdout
    second = _cli(*prefix, "apply", env=env)
    assert second.returncode == 0, second.stderr
    assert "no changes" in second.stdout and "+ " not in second.stdout

    doc = yaml.safe_load(CATALOG.read_text())
    for topic in doc["topics"]:
        if topic["name"] in doc["copartition_groups"]["readiness-inputs"]:
            topic["partitions"] = 4
    (tmp_path / "schemas").symlink_to(CATALOG.parent / "schemas")
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(doc))
    shrink = _cli(*prefix, "plan", env={**env, "AUTODEPLOY_TOPICS_CATALOG": str(tmp_path / "catalog.yaml")})
    assert shrink.returncode == 2
    assert "Kafka cannot remove partitions" in shrink.stderr

    doc["topics"][1]["partitions"] = 12  # ci.events alone
    (tmp_path / "catalog.yaml").write_text(yaml.safe_dump(doc))
    split = _cli(*prefix, "apply", env={**env, "AUTODEPLOY_TOPICS_CATALOG": str(tmp_path / "catalog.yaml")})
    assert split.returncode != 0
    assert "different partition counts" in split.stderr


def test_list_shows_the_replication_that_applies_on_the_single_local_broker(
    kafka_bootstrap: str, prefixed: catalog.Catalog
) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    name = prefixed.topic("github.events").name
    before = _cli("topics", "--prefix", prefixed.prefix, "list", env=env)
    assert f"{name}  partitions=6 replication=1 (not created yet; the catalog says 3, the cluster has 1 broker)" in (
        before.stdout
    ), before.stdout
    assert _cli("topics", "--prefix", prefixed.prefix, "apply", env=env).returncode == 0
    after = _cli("topics", "--prefix", prefixed.prefix, "list", env=env)
    assert f"{name}  partitions=6 replication=1 (as created; the catalog says 3)" in after.stdout, after.stdout


def test_no_broker_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["AUTODEPLOY_STATE_DIR"] = str(tmp_path)
    result = _cli("topics", "plan", env=env)
    assert result.returncode == 1
    assert "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_an_internal_topic_a_sibling_worker_just_created_counts_as_created(
    kafka_broker: SelectedBroker, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers started together both find no ticks topic and both create it: the second's create must not fail
    (it did: `could not create topic ...: Topic '...' already exists.`)."""
    name = f"t{unique}-readiness-ticks"
    first, second = kafka_broker.admin(), kafka_broker.admin()
    try:
        assert first.ensure(name, 2, {"retention.ms": "3600000"})
        # The sibling looked before the first one created it.
        before = SimpleNamespace(topics={}, brokers=second._metadata().brokers)
        monkeypatch.setattr(second, "_metadata", lambda: before)
        assert not second.ensure(name, 2, {"retention.ms": "3600000"})
        with pytest.raises(KafkaAdminError, match="could not create topic"):
            second.ensure(f"t{unique}-bad", 2, {"no.such.config": "1"})
    finally:
        first.delete([n for n in (name, f"t{unique}-bad") if n in first.describe([n])])
