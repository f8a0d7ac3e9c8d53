from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.support.brokers import select_broker


@contextlib.contextmanager
def _fake(address: str, log: list[str]) -> Iterator[str]:
    log.append(f"start {address}")
    yield address
    log.append(f"stop {address}")


def _select(env: dict[str, str], docker: bool, log: list[str]) -> tuple[str, str]:
    with select_broker(
        env,
        docker=lambda: docker,
        containerized=lambda: _fake("container:9092", log),
        local=lambda: _fake("127.0.0.1:1234", log),
    ) as broker:
        return broker.kind, broker.bootstrap_servers


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
    assert _select(env, docker, log) == expected
    assert log == started
