"""The local broker against itself: its own state directory, so the session broker is untouched."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.local import kafka, processes
from tests.support.brokers import select_broker


@pytest.fixture
def own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> Iterator[Path]:
    # Depends on the session broker only so that the jars are already cached when this runs.
    monkeypatch.setenv("AUTODEPLOY_STATE_DIR", str(tmp_path))
    yield tmp_path
    kafka.down()


def _java_processes_using(state: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(state).encode() in cmdline and b"kafka.Kafka" in cmdline and processes.alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def test_up_status_down_leaves_no_process(own_state: Path) -> None:
    assert kafka.status() is None
    info = kafka.up()
    assert kafka.status() == info
    assert kafka.metadata_ok(info.bootstrap_servers)
    assert kafka.up() == info, "a second up returns the running broker instead of starting another"
    assert _java_processes_using(own_state) == [info.pid]

    assert kafka.down() is True
    assert kafka.status() is None
    assert _java_processes_using(own_state) == []
    assert not kafka.metadata_ok(info.bootstrap_servers, timeout=1)
    assert kafka.down() is False


def test_a_restart_keeps_data_and_port(own_state: Path) -> None:
    first = kafka.up()
    admin = AdminClient({"bootstrap.servers": first.bootstrap_servers})
    admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(30)
    producer = Producer({"bootstrap.servers": first.bootstrap_servers})
    producer.produce("kept", b"survives")
    assert producer.flush(30) == 0
    kafka.down()

    second = kafka.up()
    assert second.bootstrap_servers == first.bootstrap_servers
    consumer = Consumer(
        {"bootstrap.servers": second.bootstrap_servers, "group.id": "restart-check", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe(["kept"])
    message = None
    for _ in range(60):
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            break
    consumer.close()
    assert message is not None and message.value() == b"survives"


def test_a_broker_that_cannot_start_is_reported_with_its_log(own_state: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(kafka.KafkaStartError) as error:
            kafka.up(port=port)
    message = str(error.value)
    assert "exited" in message or "did not answer" in message
    assert "broker.log" in message
    assert "Address already in use" in message or "BindException" in message
    assert kafka.status() is None
    assert _java_processes_using(own_state) == []


def test_the_selection_prefers_an_external_broker(kafka_bootstrap: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    with select_broker(env, docker=lambda: pytest.fail("docker must not be probed")) as broker:
        assert (broker.kind, broker.bootstrap_servers) == ("external", kafka_bootstrap)
        assert kafka.metadata_ok(broker.bootstrap_servers)


def test_the_selection_starts_a_local_broker_without_docker_or_configuration(own_state: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    with select_broker(env, docker=lambda: False) as broker:
        assert broker.kind == "local"
        assert kafka.metadata_ok(broker.bootstrap_servers)
        pid = kafka.status()
        assert pid is not None
    assert kafka.status() is None
    assert not processes.alive(pid.pid)


def test_a_cluster_id_that_looks_like_an_option_still_formats(own_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # base64url of 0xf8... starts with "-": the storage tool once read such an id as an unknown option.
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: dashed)
    info = kafka.up()
    assert kafka.metadata_ok(info.bootstrap_servers)
    meta = (info.data_dir / "meta.properties").read_text()
    assert "cluster.id=-" in meta
