"""The local broker against itself: its own state directory, so the session broker is untouched."""

from __future__ import annotations

import io
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import KafkaSecurity, LocalSettings
from streams.local import kafka, processes
from tests.support.brokers import SelectedBroker, local_broker, select_broker


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
    assert kafka.metadata_ok(info.bootstrap_servers, security=local_broker(info).security)
    assert kafka.up() == info, "a second up returns the running broker instead of starting another"
    assert _java_processes_using(own_state) == [info.pid]

    assert kafka.down() is True
    assert kafka.status() is None
    assert _java_processes_using(own_state) == []
    assert not kafka.metadata_ok(info.bootstrap_servers, timeout=1)
    assert kafka.down() is False


def test_a_restart_keeps_data_and_port(own_state: Path) -> None:
    first = local_broker(kafka.up())
    admin = AdminClient(first.config())
    admin.create_topics([NewTopic("kept", 1, 1)])["kept"].result(30)
    producer = Producer(first.config())
    producer.produce("kept", b"survives")
    assert producer.flush(30) == 0
    kafka.down()

    second = local_broker(kafka.up())  # the same users and passwords: SCRAM users live in the kept data
    assert second.bootstrap_servers == first.bootstrap_servers
    consumer = Consumer(second.config({"group.id": "restart-check", "auto.offset.reset": "earliest"}))
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


def _environment(security: KafkaSecurity) -> dict[str, str]:
    """The variables that configure `security` (streams/config.py reads them), as a person would set them."""
    env = {"KAFKA_SECURITY_PROTOCOL": security.protocol}
    if security.sasl:
        env |= {
            "KAFKA_SASL_MECHANISM": security.mechanism or "",
            "KAFKA_SASL_USERNAME": security.username or "",
            "KAFKA_SASL_PASSWORD": security.password or "",
        }
    return env


def test_the_selection_prefers_an_external_broker_and_its_configured_security(kafka_broker: SelectedBroker) -> None:
    # The session's own Kafka settings (an external broker's, say) replaced by the selected broker's, as variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers, **_environment(kafka_broker.security)}
    with select_broker(env, docker=lambda: pytest.fail("docker must not be probed")) as broker:
        assert (broker.kind, broker.bootstrap_servers) == ("external", kafka_broker.bootstrap_servers)
        assert broker.security == kafka_broker.security
        assert not broker.authorizes, "nobody knows what an external broker authorizes: no grants there"
        assert kafka.metadata_ok(broker.bootstrap_servers, security=broker.security)


def test_the_selection_starts_a_local_broker_without_docker_or_configuration(own_state: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    with select_broker(env, docker=lambda: False) as broker:
        assert broker.kind == "local"
        # Secured as `make run`'s is, unless AUTODEPLOY_KAFKA_SECURE says no.
        assert broker.authorizes is LocalSettings.from_env().kafka_secure
        assert kafka.metadata_ok(broker.bootstrap_servers, security=broker.security)
        pid = kafka.status()
        assert pid is not None
    assert kafka.status() is None
    assert not processes.alive(pid.pid)


def test_a_cluster_id_that_looks_like_an_option_still_formats(own_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # base64url of 0xf8... starts with "-": the storage tool once read such an id as an unknown option.
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: dashed)
    info = kafka.up()
    assert kafka.metadata_ok(info.bootstrap_servers, security=local_broker(info).security)
    meta = (info.data_dir / "meta.properties").read_text()
    assert "cluster.id=-" in meta


def test_a_plain_broker_asked_to_be_secured_is_formatted_anew_and_says_so(own_state: Path) -> None:
    plain = kafka.up(secure=False)
    assert kafka.metadata_ok(plain.bootstrap_servers), "anyone may talk to the plain broker"
    with pytest.raises(kafka.KafkaStartError, match="runs without SASL; `autodeploy kafka down` first"):
        kafka.up(secure=True)  # a running broker is never switched behind its clients' backs
    kafka.down()
    out = io.StringIO()
    secured = kafka.up(secure=True, out=out)
    assert "formatted without SASL; formatting it anew with" in out.getvalue()
    assert not kafka.metadata_ok(secured.bootstrap_servers, timeout=3)
    assert kafka.metadata_ok(secured.bootstrap_servers, security=kafka.credentials("admin"))
