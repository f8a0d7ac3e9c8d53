"""The readiness worker as operators run it (`autodeploy worker`), fed by the webhook server, on the real broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from streams import catalog
from streams.config import REPO_ROOT
from streams.domain.readiness import NAMESPACE
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.scenario import History, sha
from tests.support.webhooks import AppClient
from tests.support.worker import Worker, decisions, send, summary

ZERO = "0" * 40
A, B, C, D, E = (sha(x) for x in "ABCDE")


def scenario() -> History:
    """Out of order, a failure and a rerun, a superseded commit, CI before its push."""
    h = History()
    h.push(ZERO, A).circleci(A, "success").actions(A, "success")  # A: ready
    h.push(A, B).circleci(B, "failed").actions(B, "success").circleci(B, "success")  # B: ready after the rerun
    h.push(B, C).push(C, D).circleci(D, "success").actions(D, "success")  # D: ready ...
    h.circleci(C, "success").actions(C, "success")  # ... so C, complete later, is superseded
    h.circleci(E, "success").actions(E, "success").push(D, E)  # E: CI first, push last: ready
    return h


EXPECTED = {("ready", A), ("ready", B), ("ready", D), ("superseded", C), ("ready", E)}


def test_a_small_history_gives_exactly_the_expected_decisions(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    cat, worker, client = worker_pipeline
    worker.start()
    send(client, scenario())
    found = decisions(kafka_broker, cat, 2 * len(EXPECTED), worker)  # two services on the repository
    assert summary(found) == EXPECTED
    superseded = next(d for d in found if d["subject"] == f"shop/{C}")
    assert superseded["data"]["subject"]["content"]["superseded_by"] == D
    ready_a = next(d for d in found if d["subject"] == f"shop/{A}")
    content = ready_a["data"]["subject"]["content"]
    assert content["image"] == f"ghcr.io/acme/shop:{A}"
    assert {f["kind"] for f in content["facts"]} >= {"com.github.push", "com.circleci.workflow-completed"}
    assert ready_a["data"]["context"]["chainId"]
    assert len({d["id"] for d in found}) == len(found), "no decision twice without a crash"


def test_at_loglevel_warning_the_log_has_start_up_partitions_recovery_and_each_decision_and_no_faust_info(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    cat, worker, client = worker_pipeline
    assert worker.loglevel == "warning"  # as `autodeploy up` runs it
    worker.start()
    send(client, scenario())
    decisions(kafka_broker, cat, 2 * len(EXPECTED), worker)
    github = cat.topic("github.events").name
    deadline = time.monotonic() + 10  # the decisions' lines follow their acks
    while worker.log.read_text().count(" decision kind=") < 2 * len(EXPECTED) and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = worker.log.read_text().splitlines()
    assert any(" INFO streams.worker.process worker starting app_id=" in line for line in lines), lines
    assert any(" INFO streams.worker.process worker ready " in line for line in lines), lines
    assert any(" partitions assigned count=" in line and f" {github}=0-5" in line for line in lines), lines
    assert any(" table recovered repositories=0 " in line for line in lines), lines
    decided = [line for line in lines if " decision kind=" in line]
    assert len(decided) == 2 * len(EXPECTED), decided
    ready_a = next(line for line in decided if f"kind=ready service=shop commit={A} " in line)
    fields = dict(part.split("=", 1) for part in ready_a.split(" decision ", 1)[1].split())
    assert fields["topic"] in (github, cat.topic("ci.events").name)
    assert int(fields["partition"]) >= 0 and int(fields["offset"]) >= 0 and fields["event"] not in ("", "-")
    noise = [line for line in lines if " INFO " in line and " INFO streams." not in line]
    assert noise == [], noise[:20]


def test_kill_9_mid_stream_still_gives_every_decision_and_no_wrong_one(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    cat, worker, client = worker_pipeline
    history = scenario()
    half = len(history.deliveries) // 2
    worker.start()
    send(client, history, 0, half)
    time.sleep(8)  # let it consume and write some state
    worker.kill()
    send(client, history, half)
    worker.start()
    found = decisions(kafka_broker, cat, 2 * len(EXPECTED), worker)
    assert summary(found) == EXPECTED
    by_id: dict[str, set[tuple[str, str]]] = {}
    for d in found:
        by_id.setdefault(d["id"], set()).add((d["type"], d["subject"]))
    assert all(len(v) == 1 for v in by_id.values()), "a decision emitted twice carries the same id and content"


def test_a_crash_between_writing_the_states_and_publishing_publishes_the_decisions_after_the_restart(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    """The states record the decision before it is published: the restarted worker's replay finds only duplicates and
    decides nothing, so the decision comes from the outbox its crashed batch left in the table, or not at all."""
    cat, worker, client = worker_pipeline
    ready = sha("ready-across-a-crash")
    worker.env["AUTODEPLOY_WORKER_EXIT_BEFORE_PUBLISH"] = "1"
    worker.start()
    send(client, History().push(ZERO, ready).circleci(ready, "success").actions(ready, "success"))
    deadline = time.monotonic() + 90
    while worker.alive():
        assert time.monotonic() < deadline, "the worker never reached the decision"
        time.sleep(0.2)
    assert "exiting before publishing" in worker.log.read_text()
    topic = cat.topic("deploy.readiness").name
    assert consume(kafka_broker, topic, 1, timeout=3) == [], "published before the crash: this run tests nothing"
    del worker.env["AUTODEPLOY_WORKER_EXIT_BEFORE_PUBLISH"]
    worker.start()
    found = decisions(kafka_broker, cat, 2, worker)  # two services on the repository
    assert sorted((d["type"].split(".")[3], d["data"]["subject"]["content"]["commit"]) for d in found) == [
        ("ready", ready),
        ("ready", ready),
    ]
    assert {d["id"] for d in found} == {
        str(uuid.uuid5(NAMESPACE, f"{s}/{ready}/ready")) for s in ("shop", "shop-worker")
    }


def test_a_recovery_that_fails_stops_the_worker_instead_of_going_on_without_its_unfinished_batches(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient], tmp_path: Path
) -> None:
    """A worker that resumed after a failed recovery would replay a crashed batch's events as duplicates and never
    publish its outbox; Faust drops the recovery callback's exception. A state record that is not JSON must stop it."""
    cat, worker, client = worker_pipeline
    commit = sha("before-the-corruption")
    worker.start()
    send(client, History().push(ZERO, commit).circleci(commit, "success").actions(commit, "success"))
    decisions(kafka_broker, cat, 2, worker)
    worker.kill()
    changelog = f"{worker.env['AUTODEPLOY_WORKER_ID']}-readiness-changelog"
    meta = next(m for m in consume(kafka_broker, changelog, 1) if m.key().endswith(b"\x00meta"))
    producer = Producer(kafka_broker.config())
    producer.produce(changelog, b"{not json", meta.key(), partition=meta.partition())
    assert producer.flush(10) == 0
    shutil.rmtree(tmp_path / "worker")  # recover from the changelog, corrupt record included
    worker.start()
    assert worker.proc is not None
    assert worker.proc.wait(90) == 70, worker.log.read_text()[-3000:]
    assert "recovery failed, exiting" in worker.log.read_text()


def test_a_commit_still_waiting_after_its_ttl_expires_and_says_what_it_waited_for(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient], tmp_path: Path
) -> None:
    cat, worker, client = worker_pipeline
    policy = (REPO_ROOT / "autodeploy.yaml").read_text().replace("readiness_ttl: 2h", "readiness_ttl: 5s")
    (tmp_path / "policy.yaml").write_text(policy)
    worker.env.update(AUTODEPLOY_CONFIG=str(tmp_path / "policy.yaml"), AUTODEPLOY_WORKER_TICK_S="1")
    stuck = sha("stuck")
    history = History()
    history.start = datetime.now(UTC)  # the TTL counts from the first fact's time
    history.push(ZERO, stuck).circleci(stuck, "success")  # the GitHub Actions check never arrives
    worker.start()
    send(client, history)
    found = decisions(kafka_broker, cat, 2, worker)
    assert summary(found) == {("expired", stuck)}
    expired = next(d for d in found if d["subject"] == f"shop/{stuck}")
    assert expired["data"]["subject"]["content"]["missing"] == ["check github_actions:lint (latest: none)"]


def test_a_deadline_outlives_a_kill_9_the_restarted_worker_reads_it_back_from_its_table(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient], tmp_path: Path
) -> None:
    cat, worker, client = worker_pipeline
    ttl = timedelta(seconds=30)
    policy = (REPO_ROOT / "autodeploy.yaml").read_text().replace("readiness_ttl: 2h", "readiness_ttl: 30s")
    (tmp_path / "policy.yaml").write_text(policy)
    worker.env.update(AUTODEPLOY_CONFIG=str(tmp_path / "policy.yaml"), AUTODEPLOY_WORKER_TICK_S="1")
    stuck = sha("stuck-over-a-restart")
    history = History()
    history.start = datetime.now(UTC)
    history.push(ZERO, stuck).circleci(stuck, "success")  # the GitHub Actions check never arrives
    worker.start()
    send(client, history)
    explained_once_known(worker, stuck, facts=2)
    time.sleep(6)  # past Faust's commit interval (2.8 s): the restart reads no fact again, only its table
    worker.kill()
    assert datetime.now(UTC) < history.start + ttl, "the TTL passed before the kill: this run tests nothing"
    worker.start()
    found = decisions(kafka_broker, cat, 2, worker)
    assert summary(found) == {("expired", stuck)}


def explained_once_known(worker: Worker, commit: str, facts: int) -> dict[str, Any]:
    """`autodeploy why` for service shop, once the worker knows `facts` facts of `commit`."""
    url = f"http://127.0.0.1:{worker.env['AUTODEPLOY_WORKER_PORT']}"
    deadline = time.monotonic() + 60
    while True:
        result = subprocess.run(
            [sys.executable, "-m", "streams.cli", "why", "acme/shop", commit, "--worker", url, "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        document = json.loads(result.stdout) if result.returncode == 0 else None
        shop = document and next(s for s in document["services"] if s["service"] == "shop")
        if shop and len(shop["present"]) == facts:
            return shop
        assert time.monotonic() < deadline, f"the worker never knew {facts} facts of {commit}: {result}"
        time.sleep(1)


def test_why_answers_which_facts_a_commit_has_and_lacks(
    kafka_broker: SelectedBroker, worker_pipeline: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    _, worker, client = worker_pipeline
    waiting = sha("waiting")
    worker.start()
    send(client, History().push(ZERO, waiting).actions(waiting, "failure"))
    shop = explained_once_known(worker, waiting, facts=2)
    assert shop["decision"] is None and shop["waiting"] is True
    assert {f["type"] for f in shop["present"]} == {"com.github.push", "com.github.workflow_run.completed"}
    assert all(f["offset"] >= 0 and f["topic"].endswith(("github.events", "ci.events")) for f in shop["present"])
    assert shop["missing"] == [
        "check circleci:build-test (latest: none)",
        "check github_actions:lint (latest: failure)",
    ]
    url = f"http://127.0.0.1:{worker.env['AUTODEPLOY_WORKER_PORT']}"
    text = subprocess.run(
        [sys.executable, "-m", "streams.cli", "why", "acme/shop", waiting, "--worker", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "missing check circleci:build-test" in text
    # The short SHA people copy (`git log --oneline`, the demo) is answered for the whole one, as git resolves it.
    short = subprocess.run(
        [sys.executable, "-m", "streams.cli", "why", "acme/shop", waiting[:7], "--worker", url, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    document = json.loads(short)
    assert document["commit"] == waiting
    assert len(next(s for s in document["services"] if s["service"] == "shop")["present"]) == 2
