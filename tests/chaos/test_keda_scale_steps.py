"""The KEDA scale steps of k8s/base/worker/scaledobject.yaml exercised on real workers: through a 10k-event scenario,
the replica count KEDA's kafka scaler and the HPA would give the worker StatefulSet is computed from the group's real
lag every sync period (tests/support/keda.py, from the manifest's own numbers), and worker processes are stepped to
it as the StatefulSet would: parallel starts of the lowest free ordinals, SIGTERM to the highest, the pod name as
static member id, a data directory kept per ordinal. The decisions must be exactly those `autodeploy replay` computes
from the same log, nothing lost.

The manifest's clock runs SPEEDUP times faster (its 600 s scale-down window takes 15 s, its 300 s between scale-down
steps 7.5 s) and the workers' session timeout is cut to SESSION_TIMEOUT_S (the broker's least) to keep each step's
stall shorter than a step, as in production (60 s of stall, 300 s apart). The stall is measured: a static member
stopped with SIGTERM does not leave the group (aiokafka sends no LeaveGroup for a static member), so its partitions
wait for its session to expire, then for the rebalance and the new owner's recovery, before anything on them is
decided again (docs/operations/kubernetes.md). The same steps run again with dynamic members, which do leave the
group when they stop: what leaving on SIGTERM would save."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams.adapters.kafka_offsets import KafkaOffsets, OffsetsUnavailable
from tests.chaos.conftest import figures
from tests.support import chaos
from tests.support.brokers import SelectedBroker
from tests.support.group import Group, wait_committed
from tests.support.keda import SYNC_PERIOD_S, Autoscaler, Scaling
from tests.support.topics import apply_topics, delete_topics
from tests.support.worker import Worker

pytestmark = pytest.mark.timeout(600)

REPOSITORIES, COMMITS = 40, 80  # 10.2k events, 3.2k commits
SPEEDUP = 40.0  # manifest seconds per test second
SESSION_TIMEOUT_S = 6  # Faust's BROKER_SESSION_TIMEOUT (the broker's least); the StatefulSet keeps Faust's 60 s
BURST = 0.7  # the share of the scenario sent at once (lag builds: scale up); the rest trickles in during scale-down


@dataclass
class Stall:
    """A scale-down step: a member stopped with SIGTERM, until its input partitions are committed again."""

    ordinal: int
    partitions: list[tuple[str, int]]
    signalled_at: float  # SIGTERM: the worker stops consuming
    stopped_at: float  # the process had exited
    baseline: dict[tuple[str, int], int]  # their commits then
    left_at: float | None = None  # the group no longer lists the member
    resumed_at: float | None = None  # each of them that had records waiting was committed past its baseline
    idle: bool = False  # every record sent, none came to its partitions after it stopped: nothing to measure

    @property
    def seconds(self) -> float | None:
        return None if self.resumed_at is None else self.resumed_at - self.signalled_at


# Static members are what the StatefulSet runs; dynamic ones send LeaveGroup when they stop, which is what a worker
# that left the group on SIGTERM would do: the stall it would save.
@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_keda_scale_steps_from_the_manifest_decide_as_one_worker(
    kafka_broker: SelectedBroker, unique: str, tmp_path: Path, static: bool
) -> None:
    scaling = Scaling.load()
    assert scaling.target == "autodeploy-worker", scaling  # the StatefulSet whose pods these processes stand for
    name = f"readiness-{unique}"
    cat = apply_topics(kafka_broker, f"k{unique}-", worker_id=name)
    scenario = chaos.build(REPOSITORIES, COMMITS)
    policy = chaos.write_policy(tmp_path / "policy.yaml", scenario.policy_yaml())
    group = Group(kafka_broker, cat, name, policy, tmp_path)
    session = {"BROKER_SESSION_TIMEOUT": str(SESSION_TIMEOUT_S), "BROKER_HEARTBEAT_INTERVAL": "1"}
    # The client id names a member in the coordinator's answers whether or not it has an instance id.
    pods = [
        group.member(ordinal, static=static, BROKER_CLIENT_ID=f"{name}-{ordinal}", **session)
        for ordinal in range(scaling.max_replicas)
    ]
    progress = group.progress()
    offsets = KafkaOffsets(kafka_broker.bootstrap_servers, security=kafka_broker.security)
    admin = AdminClient(kafka_broker.config())
    ticks = f"{name}-ticks"
    candidates = [*group.inputs, *((ticks, p) for p in range(cat.topic("github.events").partitions))]
    total = len(scenario.records)
    acknowledged: list[int] = []
    sent = threading.Event()

    def ingest() -> None:
        burst = int(total * BURST)
        for start in range(0, burst, 1000):
            acknowledged.append(chaos.produce(kafka_broker, cat, scenario.records[start : min(start + 1000, burst)]))
            time.sleep(0.3)
        for start in range(burst, total, 100):  # ~100 events/s: under one lagThreshold, while the group shrinks
            acknowledged.append(chaos.produce(kafka_broker, cat, scenario.records[start : start + 100]))
            time.sleep(1.0)
        sent.set()

    def metric() -> int:
        """What KEDA's kafka scaler reports: the topics the group has commits on, every partition of them."""
        try:
            committed = offsets.committed([name], candidates)[name]
        except OffsetsUnavailable:
            return 0
        topics = {t for t, _ in committed}
        return scaling.metric(offsets.end_offsets([tp for tp in candidates if tp[0] in topics]), committed)

    def members() -> dict[str, list[tuple[str, int]]]:
        """Client id (`<group>-<ordinal>`) -> its input partitions, as the group coordinator has them."""
        description = admin.describe_consumer_groups([name])[name].result(10)
        inputs = set(group.inputs)
        return {
            m.client_id: [
                (tp.topic, tp.partition) for tp in m.assignment.topic_partitions if (tp.topic, tp.partition) in inputs
            ]
            for m in description.members
        }

    def stop(ordinal: int) -> Stall:
        instance = f"{name}-{ordinal}"
        partitions: list[tuple[str, int]] = []
        for _ in range(25):  # mid-rebalance the coordinator lists no assignment: ask again
            partitions = members().get(instance, [])
            if partitions:
                break
            time.sleep(0.2)
        signalled = time.monotonic()
        pods[ordinal].kill(signal.SIGTERM)
        stopped = time.monotonic()
        baseline = offsets.committed([name], partitions)[name] if partitions else {}
        return Stall(ordinal, partitions, signalled, stopped, {tp: baseline.get(tp, 0) for tp in partitions})

    def watch(stall: Stall) -> None:
        if stall.left_at is None and f"{name}-{stall.ordinal}" not in members():
            stall.left_at = time.monotonic()
        if stall.resumed_at is None and stall.partitions:
            ends = offsets.end_offsets(stall.partitions)
            waiting = [tp for tp in stall.partitions if ends[tp] > stall.baseline[tp]]
            now = offsets.committed([name], waiting)[name] if waiting else {}
            if waiting and all(now.get(tp, 0) > stall.baseline[tp] for tp in waiting):
                stall.resumed_at = time.monotonic()
            stall.idle = not waiting and sent.is_set()

    hpa = Autoscaler(scaling, scaling.min_replicas)
    steps: list[tuple[float, int, int]] = []  # (test seconds, metric, replicas)
    stalls: list[Stall] = []
    producer = threading.Thread(target=ingest)

    def running() -> list[Worker]:
        return [p for p in pods if p.alive()]

    try:
        for pod in pods[: hpa.replicas]:  # parallel pod management: every pod at once
            pod.start()
        begin = time.monotonic()
        producer.start()
        next_sync, deadline = 0.0, begin + 400
        while True:
            now = time.monotonic()
            clock = (now - begin) * SPEEDUP
            if clock >= next_sync:
                lag = metric()
                replicas = hpa.sync(lag, clock)
                steps.append((now - begin, lag, replicas))
                for pod in pods[:replicas]:
                    if not pod.alive():
                        pod.start()
                for ordinal in reversed(range(replicas, len(pods))):  # the StatefulSet removes the highest first
                    if pods[ordinal].alive():
                        stalls.append(stop(ordinal))
                assert len(running()) == replicas, [p.alive() for p in pods]
                next_sync = (time.monotonic() - begin) * SPEEDUP + SYNC_PERIOD_S
            for stall in stalls:
                watch(stall)
            # Idle steps settle at once, maybe before the coordinator dropped the member: wait for that too, the
            # figures give each step's member-gone time.
            resumed = all(s.resumed_at is not None or s.idle or not s.partitions for s in stalls)
            settled = resumed and all(s.left_at is not None for s in stalls)
            at_floor = hpa.replicas == scaling.min_replicas
            if sent.is_set() and settled and at_floor and progress.committed() >= total:
                break
            assert running(), "every worker died"
            assert now < deadline, f"not settled: {steps[-3:]}, stalls {stalls}"
            time.sleep(0.1)
        producer.join()
        wait_committed(progress, total, running)
        time.sleep(2)  # the last batch's decisions follow its commit
        judged = group.judge()
    finally:
        for pod in pods:
            pod.kill(signal.SIGTERM)
        offsets.close()
        delete_topics(kafka_broker, cat, ticks)

    counts = [r for _, _, r in steps]
    path = [counts[0], *(b for a, b in itertools.pairwise(counts) if a != b)]
    measured = [round(s.seconds, 1) for s in stalls if s.seconds is not None]
    left = [round(s.left_at - s.signalled_at, 1) for s in stalls if s.left_at is not None]
    shutdown = [round(s.stopped_at - s.signalled_at, 1) for s in stalls]
    difference = judged.difference
    figures(
        f"KEDA scale steps (manifest's ScaledObject, real lag, {'static' if static else 'dynamic'} members)",
        events_sent=total,
        acknowledged=sum(acknowledged),
        read_back=judged.read_back,
        peak_metric=max(lag for _, lag, _ in steps),
        replicas="->".join(map(str, path)),
        syncs=len(steps),
        speedup=SPEEDUP,
        session_timeout_s=SESSION_TIMEOUT_S,
        scale_down_stalls_s=measured,
        sigterm_to_exit_s=shutdown,
        sigterm_to_member_gone_s=left,
        decisions_of_one_worker=len(judged.one.decisions),
        same=len(difference.same),
        only_replayed=len(difference.only_replayed),
        only_logged=len(difference.only_logged),
        changed=len(difference.changed),
    )
    assert sum(acknowledged) == total == judged.read_back
    assert judged.one.deadletters == []
    assert difference.identical, (difference.only_replayed[:3], difference.only_logged[:3], difference.changed[:3])
    # The steps were exercised: the lag scaled the group out, and it came back in one pod per scale-down period.
    assert max(counts) > scaling.min_replicas, f"the lag never asked for more than {scaling.min_replicas}: {steps}"
    assert counts[-1] == scaling.min_replicas
    assert all(max(counts[: i + 1]) <= scaling.max_replicas for i in range(len(counts)))
    down = min((p.value for p in scaling.down.policies if p.kind == "Pods"), default=len(pods))
    assert all(removed <= down for _, removed in hpa.downs), hpa.downs
    # A stopped static member's partitions wait for its session to expire (the coordinator drops it then, not
    # later), then for the rebalance and the new owners' recovery: bounded, on a machine the test shares.
    assert len(left) == len(stalls) and max(left) < max(shutdown) + SESSION_TIMEOUT_S + 5, (left, stalls)
    assert measured, "no scale-down stall could be measured (no records arrived on the stopped members' partitions)"
    assert max(measured) < SESSION_TIMEOUT_S + 45, measured
