"""Which Kafka broker the tests use, and who a test is on it: `KAFKA_BOOTSTRAP_SERVERS` with the security its
environment configures (KAFKA_SECURITY_PROTOCOL, ...), else testcontainers' Kafka where a Docker engine answers
(PLAINTEXT), else a local broker started from the cached Maven jars: secured as `make run`'s is (SASL/SCRAM, ACLs;
AUTODEPLOY_KAFKA_SECURE=0 starts it plain). Under CI a missing broker fails, never skips.

On the secured local broker a test's own raw clients are the admin (a super user), and every process it runs is its
own principal (streams/brokers.py gives a child its role's credentials there), so each test also exercises the ACLs
of topics/acls.yaml, which it grants for its own topics and groups (tests/support/topics.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.adapters.kafka_admin import TopicAdmin
from streams.adapters.kafka_producer import DurableProducer
from streams.config import KafkaSecurity
from streams.local import kafka

# Kafka 4 semantics need Confluent Platform 8 (Kafka 4.0) in KRaft mode.
KAFKA_IMAGE = os.environ.get("KAFKA_IMAGE", "confluentinc/cp-kafka:8.0.0")


@dataclass(frozen=True)
class SelectedBroker:
    kind: str  # "external", "testcontainers" or "local"
    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)  # the tests' own clients
    # Each role's identity (streams.local.kafka.ROLES) on the secured local broker; empty elsewhere.
    principals: Mapping[str, KafkaSecurity] = field(default_factory=dict)

    @property
    def authorizes(self) -> bool:
        """The broker enforces the ACLs tests grant: only the secured local broker is known to (an external broker
        may have no authorizer, and its principals are not the tests' to grant to)."""
        return bool(self.principals)

    def identity(self, role: str | None = None) -> KafkaSecurity:
        """Who `role` is on this broker: its own principal on the secured local broker; otherwise, and for no role,
        the tests' own identity."""
        if role is None or not self.principals:
            return self.security
        return self.principals[role]

    def config(self, extra: Mapping[str, Any] | None = None, *, role: str | None = None) -> dict[str, Any]:
        """The configuration of a test's raw confluent-kafka client (Producer, Consumer, AdminClient): the one place
        tests write one, so that every client authenticates as the broker requires."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.identity(role).librdkafka(), **(extra or {})}

    def admin(self) -> TopicAdmin:
        return TopicAdmin(self.bootstrap_servers, security=self.security)

    def producer(self, role: str, overrides: Mapping[str, Any] | None = None) -> DurableProducer:
        """The producer of a process a test runs in its own process (the webhook server, the deploy agent), as
        that process's principal."""
        return DurableProducer(self.bootstrap_servers, overrides, security=self.identity(role))


def local_broker(info: kafka.BrokerInfo) -> SelectedBroker:
    """The local broker of the state directory in effect, as tests use it; the passwords are read once, here, so
    that a broker stopped and started again by a test stays usable."""
    if not info.secure:
        return SelectedBroker("local", info.bootstrap_servers)
    principals = {role: kafka.credentials(role) for role in kafka.ROLES}
    return SelectedBroker("local", info.bootstrap_servers, principals["admin"], principals)


def docker_engine_answers() -> bool:
    if os.environ.get("AUTODEPLOY_NO_DOCKER") == "1":
        return False
    if not (os.environ.get("DOCKER_HOST") or os.path.exists("/var/run/docker.sock")):
        return False
    try:
        from testcontainers.core.docker_client import DockerClient  # noqa: PLC0415 - slow import, Docker hosts only

        DockerClient().client.ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _testcontainers_kafka() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer  # noqa: PLC0415 - slow import, Docker hosts only

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        yield container.get_bootstrap_server()


@contextlib.contextmanager
def _local_kafka() -> Iterator[SelectedBroker]:
    info = kafka.up()
    try:
        yield local_broker(info)
    finally:
        kafka.down()


@contextlib.contextmanager
def select_broker(
    env: Mapping[str, str],
    docker: Callable[[], bool] = docker_engine_answers,
    containerized: Callable[[], contextlib.AbstractContextManager[str]] = _testcontainers_kafka,
    local: Callable[[], contextlib.AbstractContextManager[SelectedBroker]] = _local_kafka,
) -> Iterator[SelectedBroker]:
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield SelectedBroker("external", env["KAFKA_BOOTSTRAP_SERVERS"], KafkaSecurity.from_env(env))
    elif docker():
        with containerized() as bootstrap:
            yield SelectedBroker("testcontainers", bootstrap)
    else:
        with local() as broker:
            yield broker
