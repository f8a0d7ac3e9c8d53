from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from streams.config import KafkaSecurity
from tests.support.brokers import SelectedBroker, select_broker

ADMIN = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "autodeploy-admin", "a")
WORKER = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "autodeploy-worker", "w")
SECURED = SelectedBroker("local", "127.0.0.1:1234", ADMIN, {"admin": ADMIN, "worker": WORKER})


@contextlib.contextmanager
def _fake(address: str, log: list[str]) -> Iterator[str]:
    log.append(f"start {address}")
    yield address
    log.append(f"stop {address}")


@contextlib.contextmanager
def _fake_local(log: list[str]) -> Iterator[SelectedBroker]:
    with _fake(SECURED.bootstrap_servers, log):
        yield SECURED


def _select(env: dict[str, str], docker: bool, log: list[str]) -> SelectedBroker:
    with select_broker(
        env,
        docker=lambda: docker,
        containerized=lambda: _fake("container:9092", log),
        local=lambda: _fake_local(log),
    ) as broker:
        return broker


@pytest.mark.parametrize(
    ("env", "docker", "expected", "started"),
    [
        ({"KAFKA_BOOTSTRAP_SERVERS": "ext:9092"}, True, ("external", "ext:9092"), []),
        ({}, True, ("testcontainers", "container:9092"), ["start container:9092", "stop container:9092"]),
        ({}, False, ("local", "127.0.0.1:1234"), ["start 127.0.0.1:1234", "stop 127.0.0.1:1234"]),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": ""},
            False,
            ("local", "127.0.0.1:1234"),
            ["start 127.0.0.1:1234", "stop 127.0.0.1:1234"],
        ),
    ],
)
def test_external_then_docker_then_local(
    env: dict[str, str], docker: bool, expected: tuple[str, str], started: list[str]
) -> None:
    log: list[str] = []
    broker = _select(env, docker, log)
    assert (broker.kind, broker.bootstrap_servers) == expected
    assert log == started


def test_an_external_broker_is_used_with_the_security_its_environment_configures() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "ext:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "ci",
        "KAFKA_SASL_PASSWORD": "p",
    }
    broker = _select(env, docker=True, log=[])
    assert broker.security == KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "ci", "p")
    # Its ACLs are not the tests' to grant, and every process a test runs is who the environment says.
    assert not broker.authorizes and broker.identity("worker") == broker.security


def test_testcontainers_kafka_is_plaintext() -> None:
    broker = _select({}, docker=True, log=[])
    assert broker.config() == {"bootstrap.servers": "container:9092", "security.protocol": "PLAINTEXT"}
    assert not broker.authorizes


def test_on_the_secured_local_broker_tests_are_the_admin_and_processes_their_own_principals() -> None:
    broker = _select({}, docker=False, log=[])
    assert broker.authorizes
    assert broker.config({"group.id": "g"}) == {
        "bootstrap.servers": "127.0.0.1:1234",
        "group.id": "g",
        **ADMIN.librdkafka(),
    }
    assert broker.config(role="worker")["sasl.username"] == "autodeploy-worker"
    with pytest.raises(KeyError):
        broker.identity("stranger")  # a role the broker has no user for is a mistake, never the admin by default
