"""A signing key rotated in the middle of a 10k-event stream, the readiness worker killed (-9) twice: nothing is lost
and nothing legitimately signed is refused; a record signed with the old key after its `not_after` is.

The rotation is docs/verifiability.md's, done to the directory file while the worker runs: the first half of the
scenario is signed with key A; then the directory gains key B and A gets a `not_after` just after the last A record
was acknowledged (the reference time is the record's Kafka timestamp, so A's records stay good when read again);
after the directory's reload interval the producer switches to B for the second half. The first kill lands in A's
half; the second once the running worker reloaded the rotated directory, while A records it has not committed yet
are in flight, so that its successor reads them again under the rotated directory."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Message

from streams.adapters.policy_file import load_policies
from streams.local.processes import free_port
from tests.chaos.conftest import figures
from tests.support import chaos
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import GroupProgress, read_all, read_to_end
from tests.support.signing import directory_entry, named_key, signed, write_directory
from tests.support.topics import apply_topics, delete_topics
from tests.support.worker import Worker

pytestmark = pytest.mark.timeout(900)

REPOSITORIES, COMMITS = 40, 80  # 10.2k events, 3.2k commits
KEY_A, KEY_B = named_key("rotation-a"), named_key("rotation-b")
RELOAD_S = 1.0  # AUTODEPLOY_KEY_DIRECTORY_RELOAD_S: the worker looks at the directory file's mtime this often


def _wait_committed(progress: GroupProgress, target: int, worker: Worker) -> int:
    deadline = time.monotonic() + 600
    while (committed := progress.committed()) < target:
        assert worker.alive(), "the worker died on its own: " + worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"the worker did not reach offset {target}"
        time.sleep(0.2)
    return committed


def _wait_logged(worker: Worker, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while text not in worker.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_key_rotated_mid_stream_with_two_kills_refuses_nothing_legitimate_and_loses_nothing(
    kafka_broker: SelectedBroker, unique: str, tmp_path: Path
) -> None:
    group = f"readiness-{unique}"
    cat = apply_topics(kafka_broker, f"k{unique}-", worker_id=group)
    scenario = chaos.build(REPOSITORIES, COMMITS, key=None)
    total = len(scenario.records)
    half = total // 2
    records = [signed(r, KEY_A) for r in scenario.records[:half]] + [signed(r, KEY_B) for r in scenario.records[half:]]
    policy = chaos.write_policy(tmp_path / "policy.yaml", scenario.policy_yaml())
    want = chaos.expected(scenario, cat, load_policies(policy))
    directory = write_directory(tmp_path / "keys" / "directory.yaml", directory_entry(KEY_A))
    worker = Worker(
        {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
            "AUTODEPLOY_TOPIC_PREFIX": f"k{unique}-",
            "AUTODEPLOY_CONFIG": str(policy),
            "AUTODEPLOY_KEY_DIRECTORY": str(directory),
            "AUTODEPLOY_KEY_DIRECTORY_RELOAD_S": str(RELOAD_S),
            "AUTODEPLOY_WORKER_ID": group,
            "AUTODEPLOY_WORKER_DATADIR": str(tmp_path / "worker"),
            "AUTODEPLOY_WORKER_PORT": str(free_port()),
            "AUTODEPLOY_WORKER_INSTANCE_ID": f"{group}-0",
        },
        tmp_path / "worker.log",
        loglevel="info",
    )
    inputs = [(cat.topic(n).name, p) for n in ("github.events", "ci.events") for p in range(cat.topic(n).partitions)]
    progress = GroupProgress(kafka_broker, group, inputs)
    acknowledged = 0
    late_a = chaos.late_push(scenario, 0, None)  # after A's not_after: refused
    late_b = chaos.late_push(scenario, 1, None)  # B still good
    worker.start()
    try:
        # Kill 1, in A's half, while A records still arrive.
        acknowledged += chaos.produce(kafka_broker, cat, records[: half // 3])
        _wait_committed(progress, half // 6, worker)
        worker.kill()
        worker.start()
        acknowledged += chaos.produce(kafka_broker, cat, records[half // 3 : 2 * half // 3])
        _wait_committed(progress, half // 3 + 1, worker)  # the restarted worker is up and consuming
        acknowledged += chaos.produce(kafka_broker, cat, records[2 * half // 3 : half])  # a backlog at the switch
        # Every A record is acknowledged, so its timestamp (the producer's, CreateTime) is before this moment.
        switch = datetime.now(UTC)
        write_directory(
            directory,
            directory_entry(KEY_A, not_after=switch),
            directory_entry(KEY_B, not_before=switch - timedelta(seconds=1)),
        )
        # Kill 2, around the switch: once the running worker reloaded the rotated directory while it works through
        # A's backlog, before it committed all of A. Its successor loads the rotated directory and reads the A records
        # it had not committed again: they verify by their record time, before A's not_after.
        reloaded = _wait_logged(worker, "key directory reloaded", timeout=5 * RELOAD_S)
        committed_at_kill = progress.committed()
        worker.kill()
        worker.start()
        time.sleep(2 * RELOAD_S)  # the new key is known before the producer switches (docs/verifiability.md)
        acknowledged += chaos.produce(kafka_broker, cat, records[half:])
        _wait_committed(progress, total, worker)
        readiness = cat.topic("deploy.readiness").name
        found = [json.loads(m.value()) for m in read_to_end(kafka_broker, [readiness], 60)]
        on_inputs = read_to_end(kafka_broker, {t for t, _ in inputs}, 60)
        deadletters_before = read_to_end(kafka_broker, [cat.topic("autodeploy.deadletter").name], 60)
        # After the rotation, by record time: A is refused, B still verifies.
        chaos.produce(kafka_broker, cat, [signed(late_a, KEY_A), signed(late_b, KEY_B)])
        _wait_committed(progress, total + 2, worker)
        deadletters = read_all(
            kafka_broker, [cat.topic("autodeploy.deadletter").name], lambda f: len(f) > len(deadletters_before), 60
        )
    finally:
        worker.kill(signal.SIGTERM)
        delete_topics(kafka_broker, cat)

    def reason(message: Message) -> str:
        return bytes(dict(message.headers() or []).get("deadletter_reason") or b"").decode()

    judged = chaos.judge(want, found, scenario)
    event_ids = {json.loads(m.value())["id"] for m in on_inputs}
    late = deadletters[len(deadletters_before) :]
    figures(
        "key rotation mid-stream, worker kill -9 x2",
        events_sent=total,
        signed_a=half,
        signed_b=total - half,
        acknowledged=acknowledged,
        found=len(event_ids),
        lost=total - len(event_ids),
        reloaded_while_running=reloaded,
        a_records_read_again_after_rotation=max(0, half - committed_at_kill),
        decisions_expected=len(want),
        made=judged.made,
        missing=len(judged.missing),
        wrong=len(judged.wrong),
        re_emitted=judged.re_emitted,
        dead_lettered_before_the_late_records=len(deadletters_before),
        late_a_dead_lettered=sum(m.value() == signed(late_a, KEY_A).value for m in late),
    )
    assert acknowledged == total and len(event_ids) == total
    assert [reason(m) for m in deadletters_before] == []
    assert judged.missing == [], judged.missing[:5]
    assert judged.unexpected == [], judged.unexpected[:5]
    assert judged.twice_different == [], judged.twice_different[:5]
    assert judged.wrong == [], judged.wrong[:5]
    # The late A record, and only it, is dead-lettered: for its signature, the key not accepted at that time.
    assert len(late) == 1, [reason(m) for m in late]
    assert late[0].value() == signed(late_a, KEY_A).value
    assert reason(late[0]).startswith("signature: key_not_accepted"), reason(late[0])
