"""Which Kafka broker the tests use: `KAFKA_BOOTSTRAP_SERVERS`, else testcontainers' Kafka where a Docker engine
answers, else a local broker started from the cached Maven jars. Under CI a missing broker fails, never skips."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from streams.local import kafka

# Kafka 4 semantics need Confluent Platform 8 (Kafka 4.0) in KRaft mode.
KAFKA_IMAGE = os.environ.get("KAFKA_IMAGE", "confluentinc/cp-kafka:8.0.0")


@dataclass(frozen=True)
class SelectedBroker:
    kind: str  # "external", "testcontainers" or "local"
    bootstrap_servers: str


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
def _local_kafka() -> Iterator[str]:
    info = kafka.up()
    try:
        yield info.bootstrap_servers
    finally:
        kafka.down()


@contextlib.contextmanager
def select_broker(
    env: Mapping[str, str],
    docker: Callable[[], bool] = docker_engine_answers,
    containerized: Callable[[], contextlib.AbstractContextManager[str]] = _testcontainers_kafka,
    local: Callable[[], contextlib.AbstractContextManager[str]] = _local_kafka,
) -> Iterator[SelectedBroker]:
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield SelectedBroker("external", env["KAFKA_BOOTSTRAP_SERVERS"])
    elif docker():
        with containerized() as bootstrap:
            yield SelectedBroker("testcontainers", bootstrap)
    else:
        with local() as bootstrap:
            yield SelectedBroker("local", bootstrap)
