"""Several workers in one group decide as one: 1, 2 and 3 worker processes through a 10k-event scenario, joining,
leaving gracefully and killed (-9) while events arrive, make exactly the decisions `autodeploy replay` computes from
the same log (one fold, in the log's time order): same ids, kinds and superseded-by, nothing lost."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.adapters.kafka_reader import read_topics
from streams.adapters.policy_file import load_policies
from streams.events.signing import DirectoryVerifier
from streams.local.processes import free_port
from streams.worker.replay import compare, outcome_of, outcome_of_record, replay
from tests.chaos.conftest import figures
from tests.support import chaos
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import GroupProgress
from tests.support.signing import write_directory
from tests.support.topics import apply_topics, delete_topics
from tests.support.worker import Worker

pytestmark = pytest.mark.timeout(1800)

REPOSITORIES, COMMITS = 40, 80  # 10.2k events, 3.2k commits


def test_one_two_and_three_workers_joining_leaving_and_killed_decide_as_one_worker(
    kafka_broker: SelectedBroker, unique: str, tmp_path: Path
) -> None:
    prefix = f"m{unique}-"
    group = f"readiness-{unique}"
    cat = apply_topics(kafka_broker, prefix, worker_id=group)
    scenario = chaos.build(REPOSITORIES, COMMITS)
    policy = chaos.write_policy(tmp_path / "policy.yaml", scenario.policy_yaml())

    def worker(n: int) -> Worker:
        return Worker(
            {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
                "AUTODEPLOY_TOPIC_PREFIX": prefix,
                "AUTODEPLOY_CONFIG": str(policy),
                "AUTODEPLOY_WORKER_ID": group,
                "AUTODEPLOY_WORKER_DATADIR": str(tmp_path / f"worker-{n}"),
                "AUTODEPLOY_WORKER_PORT": str(free_port()),
                "AUTODEPLOY_WORKER_INSTANCE_ID": f"{group}-{n}",
                "AUTODEPLOY_WORKER_LAG": "0",
            },
            tmp_path / f"worker-{n}.log",
            loglevel="info",
        )

    workers = [worker(n) for n in range(3)]
    inputs = [(cat.topic(n).name, p) for n in ("github.events", "ci.events") for p in range(cat.topic(n).partitions)]
    progress = GroupProgress(kafka_broker, group, inputs)
    total = len(scenario.records)
    acknowledged: list[int] = []

    def ingest() -> None:  # in slices: the membership changes land while events arrive
        for start in range(0, total, 1000):
            acknowledged.append(chaos.produce(kafka_broker, cat, scenario.records[start : start + 1000]))
            time.sleep(1.0)

    def running() -> list[Worker]:
        return [w for w in workers if w.alive()]

    def restart(w: Worker) -> Callable[[], None]:
        def kill_and_start() -> None:
            w.kill()
            w.start()

        return kill_and_start

    # The third is a dynamic member (no instance id): its leaving rebalances at once. A static member's partitions
    # wait for it for the session timeout, so the killed ones come back as a restarted pod would.
    del workers[2].env["AUTODEPLOY_WORKER_INSTANCE_ID"]
    steps: list[tuple[float, str, Callable[[], None]]] = [
        (0.10, "second joins", workers[1].start),
        (0.25, "third joins", workers[2].start),
        (0.40, "second killed -9 and restarted", restart(workers[1])),
        (0.55, "third leaves (SIGTERM)", lambda: workers[2].kill(signal.SIGTERM)),
        (0.70, "first killed -9 and restarted", restart(workers[0])),
    ]
    producer = threading.Thread(target=ingest)
    workers[0].start()
    producer.start()
    done = []
    try:
        for share, what, action in steps:
            _wait_committed(progress, int(total * share), running)
            action()
            done.append(what)
        producer.join()
        _wait_committed(progress, total, running)
        time.sleep(2)  # the last batch's decisions follow its commit
        readiness = cat.topic("deploy.readiness").name
        bootstrap, security = kafka_broker.bootstrap_servers, kafka_broker.security
        logged = [
            o for r in read_topics(bootstrap, [readiness], security=security) if (o := outcome_of_record(r.value))
        ]
        records = read_topics(bootstrap, list(dict.fromkeys(name for name, _ in inputs)), security=security)
    finally:
        for w in workers:
            w.kill(signal.SIGTERM)
        delete_topics(kafka_broker, cat, f"{group}-ticks")

    verifier = DirectoryVerifier(write_directory(tmp_path / "directory.yaml"))
    names = {cat.topic(n).name: cat.topic(n) for n in ("github.events", "ci.events")}
    one = replay(records, names, load_policies(policy), verifier, until=datetime.now(UTC), skew_ms=20)
    difference = compare([outcome_of(d) for d in one.decisions], logged)
    forced = sum(w.log.read_text(errors="replace").count("merge went on without") for w in workers)
    figures(
        "several workers (1-3, joins, leaves, kill -9)",
        events_sent=total,
        acknowledged=sum(acknowledged),
        read_back=len(records),
        steps=len(done),
        decisions_of_one_worker=len(one.decisions),
        logged_distinct=len({o.decision_id for o in logged}),
        logged_records=len(logged),
        same=len(difference.same),
        only_replayed=len(difference.only_replayed),
        only_logged=len(difference.only_logged),
        changed=len(difference.changed),
        forced_merge_steps=forced,
    )
    assert sum(acknowledged) == total == len(records)
    assert one.deadletters == []
    assert difference.identical, (difference.only_replayed[:3], difference.only_logged[:3], difference.changed[:3])


def _wait_committed(progress: GroupProgress, target: int, running: Callable[[], list[Worker]]) -> None:
    deadline = time.monotonic() + 600
    while progress.committed() < target:
        assert running(), "every worker died"
        assert time.monotonic() < deadline, f"the group did not reach offset {target}"
        time.sleep(0.2)
