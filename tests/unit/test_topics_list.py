"""`autodeploy topics list` shows the replication factor that applies on the cluster, not the production catalog's."""

from __future__ import annotations

import io

from streams import catalog
from streams.catalog.plan import ActualTopic, effective_replication, make_plan
from streams.commands.topics_cmds import list_catalog
from streams.config import REPO_ROOT

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
GITHUB = CAT.topic("github.events")


def _as_applied(brokers: int) -> dict[str, ActualTopic]:
    plan = make_plan(CAT, {}, brokers)
    return {c.topic: ActualTopic(c.topic, c.partitions, c.replication_factor, dict(c.configs)) for c in plan.changes}


def test_a_topic_not_created_yet_shows_what_apply_would_create_it_with() -> None:
    assert GITHUB.replication_factor == 3  # the catalog is written for production
    assert effective_replication(GITHUB, 1, None) == (
        1,
        "not created yet; the catalog says 3, the cluster has 1 broker",
    )
    assert effective_replication(GITHUB, 5, None) == (3, "not created yet")


def test_an_existing_topic_shows_what_it_was_created_with() -> None:
    assert effective_replication(GITHUB, 1, _as_applied(1)["github.events"]) == (1, "as created; the catalog says 3")
    assert effective_replication(GITHUB, 3, _as_applied(3)["github.events"]) == (3, "")


def _first_line(cluster: object) -> str:
    out = io.StringIO()
    list_catalog(CAT, cluster, out)  # type: ignore[arg-type]
    return next(line for line in out.getvalue().splitlines() if line.startswith("github.events "))


def test_the_single_local_broker_lists_replication_1() -> None:
    assert " replication=1 (as created; the catalog says 3) " in _first_line((1, _as_applied(1)))
    assert " replication=1 (not created yet; the catalog says 3, the cluster has 1 broker) " in _first_line((1, {}))


def test_a_production_cluster_lists_the_catalog_value_plainly() -> None:
    assert " replication=3  key: " in _first_line((3, _as_applied(3)))


def test_without_a_cluster_the_catalog_value_is_marked_as_such() -> None:
    line = _first_line("no broker to check it against")
    assert " replication=3 (the catalog's; no broker to check it against) " in line
