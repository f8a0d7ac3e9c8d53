"""Several workers in one group decide as one: 1, 2 and 3 worker processes through a 10k-event scenario, joining,
leaving gracefully and killed (-9) while events arrive, make exactly the decisions `autodeploy replay` computes from
the same log (one fold, in the log's time order): same ids, kinds and superseded-by, nothing lost."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.conftest import figures
from tests.support import chaos
from tests.support.brokers import SelectedBroker
from tests.support.group import Group, wait_committed
from tests.support.topics import apply_topics, delete_topics
from tests.support.worker import Worker

pytestmark = pytest.mark.timeout(1800)

REPOSITORIES, COMMITS = 40, 80  # 10.2k events, 3.2k commits


def test_one_two_and_three_workers_joining_leaving_and_killed_decide_as_one_worker(
    kafka_broker: SelectedBroker, unique: str, tmp_path: Path
) -> None:
    prefix = f"m{unique}-"
    name = f"readiness-{unique}"
    cat = apply_topics(kafka_broker, prefix, worker_id=name)
    scenario = chaos.build(REPOSITORIES, COMMITS)
    policy = chaos.write_policy(tmp_path / "policy.yaml", scenario.policy_yaml())
    group = Group(kafka_broker, cat, name, policy, tmp_path)
    # The third is a dynamic member (no instance id): its leaving rebalances at once. A static member's partitions
    # wait for it for the session timeout, so the killed ones come back as a restarted pod would.
    workers = [group.member(0), group.member(1), group.member(2, static=False)]
    progress = group.progress()
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
            wait_committed(progress, int(total * share), running)
            action()
            done.append(what)
        producer.join()
        wait_committed(progress, total, running)
        time.sleep(2)  # the last batch's decisions follow its commit
        judged = group.judge()
    finally:
        for w in workers:
            w.kill(signal.SIGTERM)
        delete_topics(kafka_broker, cat, f"{name}-ticks")

    one, difference, logged = judged.one, judged.difference, judged.logged
    forced = sum(w.log.read_text(errors="replace").count("merge went on without") for w in workers)
    figures(
        "several workers (1-3, joins, leaves, kill -9)",
        events_sent=total,
        acknowledged=sum(acknowledged),
        read_back=judged.read_back,
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
    assert sum(acknowledged) == total == judged.read_back
    assert one.deadletters == []
    assert difference.identical, (difference.only_replayed[:3], difference.only_logged[:3], difference.changed[:3])
