"""Several readiness workers in one consumer group, for the fault suite: members started as the StatefulSet starts its
pods, the group's progress, and its decisions judged against what `autodeploy replay` computes from the same log."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streams import catalog
from streams.adapters.kafka_reader import read_topics
from streams.adapters.policy_file import load_policies
from streams.events.signing import DirectoryVerifier
from streams.local.processes import free_port
from streams.worker.replay import Difference, Outcome, Replay, compare, outcome_of, outcome_of_record, replay
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import GroupProgress
from tests.support.signing import write_directory
from tests.support.worker import Worker


@dataclass(frozen=True)
class Group:
    broker: SelectedBroker
    cat: catalog.Catalog
    name: str  # the consumer group: AUTODEPLOY_WORKER_ID
    policy: Path
    work: Path

    @property
    def inputs(self) -> list[tuple[str, int]]:
        """(topic, partition) of the joined inputs."""
        topics = [self.cat.topic(n) for n in ("github.events", "ci.events")]
        return [(t.name, p) for t in topics for p in range(t.partitions)]

    def member(self, ordinal: int, *, static: bool = True, **env: str) -> Worker:
        """Worker `ordinal` (not started): its own data directory and web port, and with `static` the instance id
        a StatefulSet pod gets (its name, `<group>-<ordinal>`)."""
        settings = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "AUTODEPLOY_TOPIC_PREFIX": self.cat.prefix,
            "AUTODEPLOY_CONFIG": str(self.policy),
            "AUTODEPLOY_WORKER_ID": self.name,
            "AUTODEPLOY_WORKER_DATADIR": str(self.work / f"worker-{ordinal}"),
            "AUTODEPLOY_WORKER_PORT": str(free_port()),
            "AUTODEPLOY_WORKER_LAG": "0",
            **env,
        }
        if static:
            settings["AUTODEPLOY_WORKER_INSTANCE_ID"] = f"{self.name}-{ordinal}"
        return Worker(settings, self.work / f"worker-{ordinal}.log", loglevel="info")

    def progress(self) -> GroupProgress:
        return GroupProgress(self.broker, self.name, self.inputs)

    def judge(self) -> Judged:
        """Everything on deploy.readiness against one fold of the inputs in the log's time order (the replay)."""
        bootstrap, security = self.broker.bootstrap_servers, self.broker.security
        readiness = self.cat.topic("deploy.readiness").name
        logged = [
            o for r in read_topics(bootstrap, [readiness], security=security) if (o := outcome_of_record(r.value))
        ]
        records = read_topics(bootstrap, list(dict.fromkeys(name for name, _ in self.inputs)), security=security)
        verifier = DirectoryVerifier(write_directory(self.work / "directory.yaml"))
        names = {self.cat.topic(n).name: self.cat.topic(n) for n in ("github.events", "ci.events")}
        one = replay(records, names, load_policies(self.policy), verifier, until=datetime.now(UTC), skew_ms=20)
        return Judged(len(records), logged, one, compare([outcome_of(d) for d in one.decisions], logged))


@dataclass(frozen=True)
class Judged:
    read_back: int
    logged: list[Outcome]
    one: Replay
    difference: Difference


def wait_committed(
    progress: GroupProgress, target: int, running: Callable[[], list[Worker]], timeout: float = 600
) -> None:
    """Until the group has committed `target` records of its inputs; fails when no worker is left alive."""
    deadline = time.monotonic() + timeout
    while progress.committed() < target:
        assert running(), "every worker died"
        assert time.monotonic() < deadline, f"the group did not reach offset {target}"
        time.sleep(0.2)
