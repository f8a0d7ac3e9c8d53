"""The decisions are a function of the log: a history whose cross-topic order matters is decided in the log's order
whether the worker finds it all fetched at start or follows it live, and a fresh worker replaying the same log from
the beginning decides exactly the same (ids, kinds, superseded-by)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Producer

from streams import catalog
from streams.config import REPO_ROOT
from streams.worker.output import TYPES
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.scenario import History, sha
from tests.support.topics import apply_topics, delete_topics, grant_acls
from tests.support.webhooks import AppClient
from tests.support.worker import Worker, decisions, send

ZERO = "0" * 40
C3, C4 = sha("C3"), sha("C4")
BACKLOG = 400  # pushes of another branch of the same repository (same key, same partition), before the history


def crossing() -> History:
    """C3 pushed and linted; C4 pushed on top, linted and built (complete: ready, superseding C3); only then C3's
    build result. Folded in fetch order with the CircleCI records first, C3 would be ready too."""
    h = History()
    h.push(ZERO, C3).actions(C3, "success")
    h.push(C3, C4).actions(C4, "success").circleci(C4, "success")
    h.circleci(C3, "success")
    return h


def backlog() -> History:
    """Records ahead of the history on its github.events partition only: a worker reading in fetch order gets the
    history's CircleCI records (a short partition) long before its pushes."""
    h = History()
    previous = ZERO
    for n in range(BACKLOG):
        commit = sha(f"feature-{n}")
        h.push(previous, commit, branch="feature")
        previous = commit
    return h


def expected(service: str) -> set[tuple[str, str, str, str | None]]:
    return {(service, "ready", C4, None), (service, "superseded", C3, C4)}


def outcome(found: list[dict[str, Any]]) -> set[tuple[str, str, str, str | None]]:
    out = set()
    for d in found:
        content = d["data"]["subject"]["content"]
        out.add((content["service"], d["type"].split(".")[3], content["commit"], content.get("superseded_by")))
    return out


def identities(found: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """What must be equal between runs: (id, type, superseded_by)."""
    return {(d["id"], d["type"], d["data"]["subject"]["content"].get("superseded_by")) for d in found}


def test_a_history_found_fetched_at_start_is_decided_in_log_order_and_a_fresh_worker_replays_it_identically(
    kafka_broker: SelectedBroker,
    worker_pipeline: tuple[catalog.Catalog, Worker, AppClient],
    tmp_path: Path,
    unique: str,
) -> None:
    cat, worker, client = worker_pipeline
    send(client, backlog())
    send(client, crossing())
    worker.start()
    first = decisions(kafka_broker, cat, 4, worker)  # two services on the repository
    assert outcome(first) == expected("shop") | expected("shop-worker")
    worker.kill()
    assert replayed_by_the_command(worker.env, tmp_path) == identities(first)

    grant_acls(kafka_broker, cat, worker_id=f"replay-{unique}")  # a worker of its own group, as its principal
    fresh = Worker(
        {
            **worker.env,
            "AUTODEPLOY_WORKER_ID": f"replay-{unique}",
            "AUTODEPLOY_WORKER_INSTANCE_ID": f"replay-{unique}-0",
            "AUTODEPLOY_WORKER_DATADIR": str(tmp_path / "fresh"),
        },
        tmp_path / "fresh.log",
    )
    fresh.start()
    try:
        both = decisions(kafka_broker, cat, 8, fresh)
    finally:
        fresh.kill()
    assert len(both) == 8, "the fresh worker decided something else, or less"
    replayed = both[4:]
    assert identities(replayed) == identities(first)


def replay_command(env: dict[str, str], out: Path, *more: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--from", "beginning", "--json", str(out), *more],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def replayed_by_the_command(env: dict[str, str], tmp_path: Path) -> set[tuple[str, str, str | None]]:
    document = replay_command(env, tmp_path / "replay.json")
    assert document["identical"], document
    return {(d["id"], TYPES[d["kind"]], d["superseded_by"]) for d in document["decisions"]}


def test_replay_with_another_policy_shows_what_it_would_have_decided_differently(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient], tmp_path: Path
) -> None:
    """Shadow mode: with only the lint workflow required, C3 is complete at its own lint result, before C4 exists."""
    cat, worker, client = worker_pipeline
    send(client, crossing())
    worker.start()
    decisions(kafka_broker, cat, 4, worker)
    policy = yaml.safe_load((REPO_ROOT / "autodeploy.yaml").read_text())
    for service in policy["services"].values():
        service["required_checks"] = [{"github_actions": "lint"}]
    (tmp_path / "lint-only.yaml").write_text(yaml.safe_dump(policy))
    document = replay_command(worker.env, tmp_path / "shadow.json", "--policy", str(tmp_path / "lint-only.yaml"))
    assert not document["identical"]
    added = {(d["service"], d["kind"], d["commit"]) for d in document["only_replayed"]}
    removed = {(d["service"], d["kind"], d["commit"]) for d in document["only_logged"]}
    assert added == {(s, "ready", C3) for s in ("shop", "shop-worker")}
    assert removed == {(s, "superseded", C3) for s in ("shop", "shop-worker")}
    assert document["same"] == 2  # C4 ready, for both services


def test_a_history_posted_one_delivery_at_a_time_to_a_running_worker_is_decided_in_log_order(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    cat, worker, client = worker_pipeline
    worker.start()
    history = crossing()
    for n in range(len(history.deliveries)):
        send(client, history, n, n + 1)  # each acknowledged before the next, as in the report
        time.sleep(0.05)
    found = decisions(kafka_broker, cat, 4, worker)
    assert outcome(found) == expected("shop") | expected("shop-worker")


def test_a_producer_cannot_choose_the_timestamp_of_a_record_on_an_input_topic(
    kafka_broker: SelectedBroker, unique: str
) -> None:
    """The merge's order and the signatures' reference time are the broker's clock (LogAppendTime)."""
    cat = apply_topics(kafka_broker, f"ts{unique}-")
    topic = cat.topic("github.events").name
    try:
        producer = Producer(kafka_broker.config(role="webhooks"))
        before = time.time()
        producer.produce(topic, key=b"github.com/acme/shop", value=b"{}", timestamp=1_000)  # 1970: a forger's choice
        assert producer.flush(30) == 0
        (record,) = consume(kafka_broker, topic, 1)
        kind, timestamp = record.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert timestamp >= int(before * 1000) - 1000
    finally:
        delete_topics(kafka_broker, cat)
