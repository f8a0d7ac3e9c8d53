"""The readiness worker as operators run it (`autodeploy worker`), fed by the webhook server, on the real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams import catalog
from streams.adapters.kafka_admin import TopicAdmin
from streams.adapters.kafka_producer import DurableProducer
from streams.config import REPO_ROOT
from streams.local.processes import free_port
from streams.webhooks.server import WebhookServer
from tests.integration.test_webhooks_kafka import apply_topics, webhook_settings
from tests.support.kafka_io import consume
from tests.support.scenario import History, sha
from tests.support.webhooks import AppClient

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


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # type: ignore[assignment]
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
            env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None  # type: ignore[unreachable]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:  # type: ignore[unreachable]
            os.killpg(self.proc.pid, sig)  # type: ignore[unreachable]
            self.proc.wait(30)


@pytest.fixture
def setup(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Iterator[tuple[catalog.Catalog, Worker, AppClient]]:
    prefix = f"r{unique}-"
    cat = apply_topics(kafka_bootstrap, prefix)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTODEPLOY_TOPIC_PREFIX": prefix,
        "AUTODEPLOY_CONFIG": str(REPO_ROOT / "autodeploy.yaml"),
        "AUTODEPLOY_WORKER_ID": f"readiness-{unique}",
        "AUTODEPLOY_WORKER_DATADIR": str(tmp_path / "worker"),
        "AUTODEPLOY_WORKER_PORT": str(free_port()),
        "AUTODEPLOY_WORKER_INSTANCE_ID": f"readiness-{unique}-0",
    }
    worker = Worker(env, tmp_path / "worker.log")
    client = AppClient(WebhookServer(webhook_settings(), cat, DurableProducer(kafka_bootstrap)).app())
    yield cat, worker, client
    worker.kill(signal.SIGTERM)
    client.close()
    admin = TopicAdmin(kafka_bootstrap)
    admin.delete(admin.describe(t.name for t in cat.topics))
    print((tmp_path / "worker.log").read_text()[-3000:])


def _decisions(bootstrap: str, cat: catalog.Catalog, expected: int, worker: Worker) -> list[dict[str, Any]]:
    found = consume(bootstrap, cat.topic("deploy.readiness").name, expected, timeout=90, keep_going=worker.alive)
    assert worker.alive(), "the worker died: " + worker.log.read_text()[-3000:]
    return [json.loads(m.value()) for m in found]


def _send(client: AppClient, history: History, start: int = 0, stop: int | None = None) -> None:
    for delivery in history.deliveries[start:stop]:
        status, answer, _ = client.post(delivery)
        assert status == 200, answer


def _summary(decisions: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["type"].split(".")[3], d["data"]["subject"]["content"]["commit"]) for d in decisions
            if d["data"]["subject"]["content"]["service"] == "shop"}  # fmt: skip


def test_a_small_history_gives_exactly_the_expected_decisions(
    kafka_bootstrap: str, setup: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    cat, worker, client = setup
    history = scenario()
    worker.start()
    _send(client, history)
    decisions = _decisions(kafka_bootstrap, cat, 2 * len(EXPECTED), worker)  # two services on the repository
    assert _summary(decisions) == EXPECTED
    superseded = next(d for d in decisions if d["type"].endswith("superseded.0.1.0"))
    assert superseded["data"]["subject"]["content"]["superseded_by"] == D
    ready_a = next(d for d in decisions if d["type"].endswith("ready.0.1.0") and d["subject"] == f"shop/{A}")
    content = ready_a["data"]["subject"]["content"]
    assert content["image"] == f"ghcr.io/acme/shop:{A}"
    assert {f["kind"] for f in content["facts"]} >= {"com.github.push", "com.circleci.workflow-completed"}
    assert ready_a["data"]["context"]["chainId"]
    assert len({d["id"] for d in decisions}) == len(decisions), "no decision twice without a crash"


def test_kill_9_mid_stream_still_gives_every_decision_and_no_wrong_one(
    kafka_bootstrap: str, setup: tuple[catalog.Catalog, Worker, AppClient]
) -> None:
    cat, worker, client = setup
    history = scenario()
    half = len(history.deliveries) // 2
    worker.start()
    _send(client, history, 0, half)
    time.sleep(8)  # let it consume and write some state
    worker.kill()
    _send(client, history, half)
    worker.start()
    decisions = _decisions(kafka_bootstrap, cat, 2 * len(EXPECTED), worker)
    assert _summary(decisions) == EXPECTED
    by_id: dict[str, set[tuple[str, str]]] = {}
    for d in decisions:
        by_id.setdefault(d["id"], set()).add((d["type"], d["subject"]))
    assert all(len(v) == 1 for v in by_id.values()), "a decision emitted twice carries the same id and content"
