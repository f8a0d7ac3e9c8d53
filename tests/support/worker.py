"""The readiness worker run as operators run it (`autodeploy worker`), for integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams import catalog
from streams.config import REPO_ROOT
from streams.local.processes import free_port
from streams.webhooks.server import WebhookServer
from tests.integration.test_webhooks_kafka import webhook_settings
from tests.support.brokers import SelectedBroker
from tests.support.kafka_io import consume
from tests.support.scenario import History
from tests.support.signing import TEST_KEY
from tests.support.topics import apply_topics, delete_topics
from tests.support.webhooks import AppClient


class Worker:
    def __init__(self, env: dict[str, str], log: Path, loglevel: str = "warning") -> None:
        self.env, self.log, self.loglevel, self.proc = env, log, loglevel, None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # type: ignore[assignment]
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", self.loglevel],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None  # type: ignore[unreachable]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:  # type: ignore[unreachable]
            os.killpg(self.proc.pid, sig)  # type: ignore[unreachable]
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                # A worker that does not stop must not outlive the test (it would take CPU from the rest of the
                # run); the test still fails.
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
                raise


@pytest.fixture
def worker_pipeline(
    kafka_broker: SelectedBroker, unique: str, tmp_path: Path
) -> Iterator[tuple[catalog.Catalog, Worker, AppClient]]:
    """The worker (`autodeploy worker`, a process of its own) and the webhook server (in this process) that feeds
    it, each as its own principal."""
    prefix, worker_id = f"r{unique}-", f"readiness-{unique}"
    cat = apply_topics(kafka_broker, prefix, worker_id=worker_id)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "AUTODEPLOY_TOPIC_PREFIX": prefix,
        "AUTODEPLOY_CONFIG": str(REPO_ROOT / "autodeploy.yaml"),
        "AUTODEPLOY_WORKER_ID": worker_id,
        "AUTODEPLOY_WORKER_DATADIR": str(tmp_path / "worker"),
        "AUTODEPLOY_WORKER_PORT": str(free_port()),
        "AUTODEPLOY_WORKER_INSTANCE_ID": f"{worker_id}-0",
    }
    worker = Worker(env, tmp_path / "worker.log")
    server = WebhookServer(webhook_settings(), cat, kafka_broker.producer("webhooks"), signer=TEST_KEY)
    client = AppClient(server.app())
    yield cat, worker, client
    worker.kill(signal.SIGTERM)
    client.close()
    delete_topics(kafka_broker, cat)
    print((tmp_path / "worker.log").read_text()[-3000:])


def decisions(broker: SelectedBroker, cat: catalog.Catalog, expected: int, worker: Worker) -> list[dict[str, Any]]:
    found = consume(broker, cat.topic("deploy.readiness").name, expected, timeout=90, keep_going=worker.alive)
    assert worker.alive(), "the worker died: " + worker.log.read_text()[-3000:]
    return [json.loads(m.value()) for m in found]


def send(client: AppClient, history: History, start: int = 0, stop: int | None = None) -> None:
    for delivery in history.deliveries[start:stop]:
        status, answer, _ = client.post(delivery)
        assert status == 200, answer


def summary(found: list[dict[str, Any]], service: str = "shop") -> set[tuple[str, str]]:
    """(kind, commit) of one service's decisions."""
    return {
        (d["type"].split(".")[3], d["data"]["subject"]["content"]["commit"])
        for d in found
        if d["data"]["subject"]["content"]["service"] == service
    }
