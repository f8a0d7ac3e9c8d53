from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import SelectedBroker, select_broker
from tests.support.services import unavailable
from tests.support.signing import configure_session

pytest_plugins = ["tests.cluster_fixture", "tests.support.worker"]

_OWN_STATE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    # Local services started by tests live in their own state directory: a developer's `make run` broker is
    # neither reused nor stopped by a test run. Downloads stay in the shared user cache.
    if "AUTODEPLOY_STATE_DIR" not in os.environ:
        state = Path(config.rootpath) / ".pytest-state" / f"run-{os.getpid()}"
        os.environ["AUTODEPLOY_STATE_DIR"] = str(state)
        config.stash[_OWN_STATE] = state
    # The processes tests start sign and verify with the tests' key (docs/security.md#signed-events).
    configure_session(Path(os.environ["AUTODEPLOY_STATE_DIR"]))


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_OWN_STATE, None)
    if state is not None:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[SelectedBroker]:
    with contextlib.ExitStack() as stack:
        try:
            broker = stack.enter_context(select_broker(os.environ))
        except Exception as e:
            unavailable("a Kafka broker", e)
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: SelectedBroker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture
def unique() -> str:
    """A name part no other test (or earlier run against the same broker) uses."""
    return uuid.uuid4().hex[:10]
