from __future__ import annotations

import pytest

from streams import catalog
from streams.catalog.plan import ActualTopic, PlanRefused, make_plan
from streams.config import REPO_ROOT

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")


def _as_applied(brokers: int = 1) -> dict[str, ActualTopic]:
    """What the cluster holds right after applying the plan on an empty cluster."""
    plan = make_plan(CAT, {}, brokers)
    return {c.topic: ActualTopic(c.topic, c.partitions, c.replication_factor, dict(c.configs)) for c in plan.changes}


def test_an_empty_cluster_gets_every_topic_created_with_replication_fitted_to_it() -> None:
    plan = make_plan(CAT, {}, brokers=1)
    assert [c.kind for c in plan.changes] == ["create"] * len(CAT.topics)
    github = next(c for c in plan.changes if c.topic == "github.events")
    assert (github.partitions, github.replication_factor) == (6, 1)
    assert github.configs["min.insync.replicas"] == "1"
    assert github.configs["max.message.bytes"] == "27262976"
    assert len(plan.notes) == 1 and "replication 3 -> 1" in plan.notes[0]


def test_a_production_cluster_keeps_the_catalog_values() -> None:
    plan = make_plan(CAT, {}, brokers=3)
    assert {c.replication_factor for c in plan.changes} == {3}
    assert {c.configs["min.insync.replicas"] for c in plan.changes} == {"2"}
    assert plan.notes == ()


def test_a_matching_cluster_means_no_changes() -> None:
    assert make_plan(CAT, _as_applied(), brokers=1).empty


def test_config_drift_is_altered_and_other_configs_are_left_alone() -> None:
    actual = _as_applied()
    drifted = actual["deploy.events"]
    actual["deploy.events"] = ActualTopic(drifted.name, 6, 1, {**drifted.configs, "retention.ms": "1", "x": "y"})
    plan = make_plan(CAT, actual, brokers=1)
    assert [(c.kind, c.topic, dict(c.configs)) for c in plan.changes] == [
        ("alter_configs", "deploy.events", {"retention.ms": "7776000000"})
    ]


def test_more_partitions_in_the_catalog_are_added_with_a_warning_for_joined_inputs() -> None:
    actual = _as_applied()
    for name in ("github.events", "ci.events"):
        actual[name] = ActualTopic(name, 3, 1, actual[name].configs)
    plan = make_plan(CAT, actual, brokers=1)
    assert [(c.kind, c.topic, c.partitions) for c in plan.changes] == [
        ("add_partitions", "github.events", 6),
        ("add_partitions", "ci.events", 6),
    ]
    assert any("stop the readiness worker" in n for n in plan.notes)


def test_shrinking_partitions_is_refused() -> None:
    actual = _as_applied()
    actual["deploy.events"] = ActualTopic("deploy.events", 12, 1, actual["deploy.events"].configs)
    with pytest.raises(PlanRefused, match=r"deploy\.events: the catalog says 6 partitions but the topic has 12"):
        make_plan(CAT, actual, brokers=1)


def test_joined_inputs_that_would_end_up_with_different_counts_are_refused() -> None:
    actual = _as_applied()
    actual["ci.events"] = ActualTopic("ci.events", 9, 1, actual["ci.events"].configs)
    counts = r"different partition counts \(github.events=6, ci.events=9, deploy.gates=6\)"
    with pytest.raises(PlanRefused, match=counts):
        make_plan(CAT, actual, brokers=1)


def test_replication_drift_is_reported_not_changed() -> None:
    actual = _as_applied()
    actual["deploy.events"] = ActualTopic("deploy.events", 6, 2, actual["deploy.events"].configs)
    plan = make_plan(CAT, actual, brokers=3)
    assert any("deploy.events: replication factor is 2" in n for n in plan.notes)
    assert all(c.kind != "create" or c.topic != "deploy.events" for c in plan.changes)
