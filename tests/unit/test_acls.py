"""topics/acls.yaml: least privilege as written, loaded under a topic prefix, and planned against a broker's ACLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams import catalog
from streams.adapters.kafka_offsets import READER_GROUP
from streams.catalog.acls import AclBinding, AclError, load_acls, plan_acls, plan_grants
from streams.config import REPO_ROOT
from streams.local import kafka

ACLS = REPO_ROOT / "topics" / "acls.yaml"
NAMES = {"worker_id": "readiness", "deploy_group": "deployer"}


def _spec(prefix: str = "") -> set[AclBinding]:
    cat = catalog.load(REPO_ROOT / "topics" / "catalog.yaml").with_prefix(prefix)
    return set(load_acls(ACLS, cat, NAMES).bindings)


def _allowed(principal: str, operation: str) -> set[str]:
    return {b.name for b in _spec() if b.principal == principal and b.operation == operation}


def test_the_file_names_exactly_the_local_brokers_principals_but_the_admin() -> None:
    cat = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
    principals = set(load_acls(ACLS, cat, NAMES).principals)
    assert principals == {f"User:{kafka.username(r)}" for r in kafka.ROLES if r != "admin"}
    assert f"User:{kafka.username('admin')}" in kafka.SUPER_USERS


def test_least_privilege() -> None:
    webhooks, worker, agent, lag = (
        f"User:autodeploy-{r}" for r in ("webhooks", "worker", "deploy-agent", "lag-exporter")
    )
    assert _allowed(webhooks, "WRITE") == {"github.events", "ci.events", "autodeploy.deadletter"}
    assert _allowed(webhooks, "READ") == set()
    assert _allowed(worker, "READ") == {"github.events", "ci.events", "deploy.gates", "readiness-", "readiness"}
    assert _allowed(worker, "WRITE") == {"deploy.readiness", "autodeploy.deadletter", "readiness-"}
    assert "deploy.events" not in _allowed(worker, "WRITE")
    assert _allowed(agent, "READ") == {"deploy.readiness", "deployer"}
    assert _allowed(agent, "WRITE") == {"deploy.events", "deploy.gates", "autodeploy.deadletter"}
    # An approver writes approvals and nothing else; the worker never writes a gate fact it reads.
    assert {b.name for b in _spec() if b.principal == "User:autodeploy-approver"} == {"deploy.gates", "kafka-cluster"}
    assert _allowed("User:autodeploy-approver", "READ") == set()
    assert "deploy.gates" not in _allowed(worker, "WRITE")
    assert {b.operation for b in _spec() if b.principal == lag} == {"DESCRIBE", "READ"}
    # READ only where it measures the age of the oldest unconsumed record: not the worker's changelog (its state).
    assert _allowed(lag, "READ") == {
        "github.events",
        "ci.events",
        "deploy.gates",
        "deploy.readiness",
        "readiness-ticks",
    }
    # The board reads what it shows and writes nothing.
    board = "User:autodeploy-board"
    assert {b.operation for b in _spec() if b.principal == board} == {"DESCRIBE", "READ"}
    shown = {"deploy.readiness", "deploy.events", "github.events", "ci.events", "deploy.gates"}
    assert _allowed(board, "READ") == shown
    assert not {b for b in _spec() if b.operation in ("ALTER", "DELETE", "ALTER_CONFIGS", "CLUSTER_ACTION")}
    assert {b.principal for b in _spec() if b.operation == "CREATE"} == {worker}  # its internal topics only


def test_the_topic_prefix_applies_to_catalog_topics_only() -> None:
    names = {b.name for b in _spec("p1-") if b.resource_type == "TOPIC"}
    assert "p1-github.events" in names and "github.events" not in names
    assert "readiness-" in names  # the worker's internal topics are named by its id, not the prefix


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acls.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("principals:\n  User:x:\n    - {topic: nope.events, operations: [READ]}\n", "not in the topic catalog"),
        ("principals:\n  x:\n    - {topic: ci.events, operations: [READ]}\n", "User:<name>"),
        ("principals:\n  User:x:\n    - {topic: ci.events, operations: [EAT]}\n", "unknown operations"),
        ("principals:\n  User:x:\n    - {group: '{nope}', operations: [READ]}\n", "uses 'nope'"),
        ("principals:\n  User:x:\n    - {topic: ci.events, group: g, operations: [READ]}\n", "one of"),
    ],
)
def test_mistakes_are_refused_with_where_they_are(tmp_path: Path, text: str, message: str) -> None:
    cat = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
    with pytest.raises(AclError, match=message):
        load_acls(_write(tmp_path, text), cat, NAMES)


def test_the_plan_creates_what_is_missing_and_deletes_only_managed_principals_extras() -> None:
    cat = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
    spec = load_acls(ACLS, cat, NAMES)
    kept = sorted(spec.bindings)[1:]
    stray = AclBinding("User:autodeploy-webhooks", "TOPIC", "LITERAL", "deploy.events", "READ")
    deny = AclBinding("User:autodeploy-worker", "TOPIC", "LITERAL", "ci.events", "READ", "DENY", "10.0.0.1")
    foreign = AclBinding("User:someone-else", "TOPIC", "LITERAL", "deploy.events", "READ")
    plan = plan_acls(spec, [*kept, stray, deny, foreign])
    assert plan.create == (sorted(spec.bindings)[0],)
    assert set(plan.delete) == {stray, deny}
    assert "(DENY from 10.0.0.1)" in deny.description
    assert plan_acls(spec, spec.bindings).empty


def test_the_lag_exporter_may_describe_the_group_its_record_reader_names() -> None:
    lag = "User:autodeploy-lag-exporter"
    assert READER_GROUP in {b.name for b in _spec() if b.principal == lag and b.resource_type == "GROUP"}


def test_grants_create_what_is_missing_and_delete_nothing() -> None:
    cat = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
    spec = load_acls(ACLS, cat, NAMES)
    kept = sorted(spec.bindings)[1:]
    other_pipeline = AclBinding("User:autodeploy-worker", "GROUP", "LITERAL", "readiness-of-another-test", "READ")
    plan = plan_grants(spec, [*kept, other_pipeline])
    assert (plan.create, plan.delete) == ((sorted(spec.bindings)[0],), ())
    assert plan_grants(spec, spec.bindings).empty
