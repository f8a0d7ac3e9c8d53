"""kill -9 the readiness worker fifteen times while it works through a 10k-event scenario: every expected decision is
made, none is wrong, and a decision emitted twice carries the same id and kind.

Fifteen, not five: a worker that published before writing its states re-decided commits from replays (published
ready, then superseded, or the reverse) once in CI with five kills, and in 2 of 12 local runs with fifteen. A kill
that finds the next threshold already passed lands on a worker still starting: that is tested too. Every other kill
waits a random 0.5-3 s more, so that it lands in a restarted worker's rebalance, recovery or first batches: kills
there found the worker seeking from the wrong thread (its fetcher crashed and the worker stopped, 3 of 7 runs)."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.adapters.kafka_reader import read_topics
from streams.adapters.policy_file import load_policies
from streams.events.signing import DirectoryVerifier
from streams.local.processes import free_port
from streams.worker.replay import compare, outcome_of, outcome_of_record, replay
from tests.chaos.conftest import figures
from tests.support import chaos
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import GroupProgress, read_to_end
from tests.support.signing import write_directory
from tests.support.topics import apply_topics, delete_topics
from tests.support.worker import Worker

pytestmark = pytest.mark.timeout(1800)

REPOSITORIES, COMMITS, KILLS = 40, 80, 15  # 10.2k events, 3.2k commits


def _wait_committed(progress: GroupProgress, target: int, worker: Worker) -> None:
    deadline = time.monotonic() + 600
    while progress.committed() < target:
        assert worker.alive(), "the worker died on its own: " + worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"the worker did not reach offset {target}"
        time.sleep(0.2)


def test_kill_9_fifteen_times_in_10k_events_makes_every_decision_once_and_none_wrong(
    kafka_broker: SelectedBroker, unique: str, tmp_path: Path
) -> None:
    group = f"readiness-{unique}"
    cat = apply_topics(kafka_broker, f"c{unique}-", worker_id=group)
    scenario = chaos.build(REPOSITORIES, COMMITS)
    policy = chaos.write_policy(tmp_path / "policy.yaml", scenario.policy_yaml())
    want = chaos.expected(scenario, cat, load_policies(policy))
    worker = Worker(
        {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
            "AUTODEPLOY_TOPIC_PREFIX": f"c{unique}-",
            "AUTODEPLOY_CONFIG": str(policy),
            "AUTODEPLOY_WORKER_ID": group,
            "AUTODEPLOY_WORKER_DATADIR": str(tmp_path / "worker"),
            "AUTODEPLOY_WORKER_PORT": str(free_port()),
            "AUTODEPLOY_WORKER_INSTANCE_ID": f"{group}-0",
        },
        tmp_path / "worker.log",
        loglevel="info",  # its decisions and republications, for the diagnostics of a failure
    )
    inputs = [(cat.topic(n).name, p) for n in ("github.events", "ci.events") for p in range(cat.topic(n).partitions)]
    progress = GroupProgress(kafka_broker, group, inputs)
    total = len(scenario.records)
    acknowledged: list[int] = []

    def ingest() -> None:  # in slices, so that kills land while events still arrive
        for start in range(0, total, 1000):
            acknowledged.append(chaos.produce(kafka_broker, cat, scenario.records[start : start + 1000]))
            time.sleep(1.0)

    seed = random.randrange(1 << 32)
    print(f"kill pauses seeded {seed}")
    pause = random.Random(seed)
    producer = threading.Thread(target=ingest)
    worker.start()
    producer.start()
    try:
        for k in range(1, KILLS + 1):
            _wait_committed(progress, total * k // (KILLS + 1), worker)
            if k % 2 == 0:  # later, into the restarted worker's start, rebalance, recovery or first batches
                time.sleep(pause.uniform(0.5, 3.0))
                assert worker.alive(), "the worker died on its own: " + worker.log.read_text()[-3000:]
            worker.kill()
            worker.start()
        producer.join()
        _wait_committed(progress, total, worker)
        readiness = cat.topic("deploy.readiness").name
        on_readiness = read_to_end(kafka_broker, [readiness], 60)
        found = [json.loads(m.value()) for m in on_readiness]
        on_inputs = read_to_end(kafka_broker, {t for t, _ in inputs}, 60)
        log = read_topics(
            kafka_broker.bootstrap_servers, list(dict.fromkeys(t for t, _ in inputs)), security=kafka_broker.security
        )
    finally:
        worker.kill(signal.SIGTERM)
        delete_topics(kafka_broker, cat)

    judged = chaos.judge(want, found, scenario)
    kinds = judged.kinds
    backwards = _ready_going_backwards(found, scenario)
    newest_not_ready = [
        (s, c)
        for s, commits in scenario.order.items()
        for c in [next((c for c in reversed(commits) if (s, c) in scenario.complete), None)]
        if c is not None and kinds.get((s, c)) != {"ready"}
    ]
    event_ids = {json.loads(m.value())["id"] for m in on_inputs}
    # The decisions are a function of the log: the killed and restarted worker made exactly those a replay makes.
    names = {cat.topic(n).name: cat.topic(n) for n in ("github.events", "ci.events")}
    verifier = DirectoryVerifier(write_directory(tmp_path / "directory.yaml"))
    one = replay(log, names, load_policies(policy), verifier, until=datetime.now(UTC), skew_ms=20)
    logged = [o for o in map(outcome_of_record, (m.value() for m in on_readiness)) if o is not None]
    as_replayed = compare([outcome_of(d) for d in one.decisions], logged)
    forced = worker.log.read_text(errors="replace").count("merge went on without")
    figures(
        f"worker kill -9 x{KILLS}",
        events_sent=total,
        acknowledged=sum(acknowledged),
        found=len(event_ids),
        lost=total - len(event_ids),
        kills=KILLS,
        decisions_expected=len(want),
        made=judged.made,
        missing=len(judged.missing),
        wrong=len(judged.wrong),
        re_emitted=judged.re_emitted,
        ready_or_superseded_by_interleaving=len(judged.order_dependent),
        identical_to_the_replay=as_replayed.identical,
        forced_merge_steps=forced,
    )
    assert sum(acknowledged) == total and len(event_ids) == total
    assert judged.missing == [], (judged.missing[:5], _missing_story(judged.missing, worker.log))
    assert judged.unexpected == [], judged.unexpected[:5]
    assert judged.twice_different == [], [
        (p, sorted(kinds[p]), _emissions(found, p)) for p in judged.twice_different[:3]
    ]
    assert judged.wrong == [], judged.wrong[:5]
    assert backwards == [], backwards[:5]
    assert newest_not_ready == [], newest_not_ready[:5]
    assert as_replayed.identical, (as_replayed.only_replayed[:3], as_replayed.only_logged[:3], as_replayed.changed[:3])


def _emissions(found: list[dict[str, Any]], pair: tuple[str, str]) -> list[tuple[int, str, str]]:
    """Where in the topic, of what kind and caused by which facts the decisions of `pair` were emitted."""
    return [
        (
            i,
            d["type"].split(".")[3],
            ",".join(f"{f['topic'][-9:]}@{f['offset']}" for f in d["data"]["subject"]["content"]["facts"]),
        )
        for i, d in enumerate(found)
        if (d["data"]["subject"]["content"]["service"], d["data"]["subject"]["content"]["commit"]) == pair
    ]


def _missing_story(missing: list[tuple[str, str]], log: Path) -> dict[str, Any]:
    """Whether the worker says it published the missing decisions, and what its restarts found."""
    lines = log.read_text(errors="replace").splitlines()
    decided = {line.split(" service=")[1].split(" id=")[0] for line in lines if " decision kind=" in line}
    found = ("unfinished batches", "offsets unavailable", "never committed")
    return {
        "missing": len(missing),
        "logged as decided": sum(f"{s} commit={c}" in decided for s, c in missing),
        "outboxes published again": sum("published again" in line for line in lines),
        "restarts": [line[:160] for line in lines if any(w in line for w in found)][-30:],
    }


def _ready_going_backwards(found: list[dict[str, Any]], scenario: chaos.Scenario) -> list[tuple[str, str]]:
    """Ready decisions of a service, in the order they were emitted (one partition per service), must go forward on
    its branch; a re-emitted one may repeat an earlier one."""
    position = {(s, c): i for s, commits in scenario.order.items() for i, c in enumerate(commits)}
    newest: dict[str, int] = {}
    emitted: set[tuple[str, str]] = set()
    backwards = []
    for d in found:
        content = d["data"]["subject"]["content"]
        pair = (content["service"], content["commit"])
        if not d["type"].endswith(".ready.0.1.0") or pair in emitted:
            continue
        emitted.add(pair)
        if position[pair] < newest.get(pair[0], -1):
            backwards.append(pair)
        newest[pair[0]] = max(position[pair], newest.get(pair[0], -1))
    return backwards
