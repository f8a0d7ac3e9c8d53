"""A port of 0 means "not served" where a process can do without its endpoint; other ports are 1-65535."""

from __future__ import annotations

from typing import Any

import pytest

from streams.commands.deploy_cmds import serve_metrics
from streams.config import ConfigError, DeployAgentSettings, LagSettings, WorkerSettings


def test_deploy_agent_metrics_port_0_is_accepted() -> None:
    assert DeployAgentSettings.from_env({"AUTODEPLOY_DEPLOY_METRICS_PORT": "0"}).metrics_port == 0
    assert DeployAgentSettings.from_env({}).metrics_port == 9102


class _Metrics:
    def __init__(self) -> None:
        self.served: list[tuple[int, str]] = []

    def serve(self, port: int, host: str) -> Any:
        self.served.append((port, host))
        return object()


def test_deploy_agent_port_0_serves_no_metrics() -> None:
    metrics = _Metrics()
    settings = DeployAgentSettings.from_env({"AUTODEPLOY_DEPLOY_METRICS_PORT": "0"})
    assert serve_metrics(metrics, settings) is None
    assert metrics.served == []


def test_deploy_agent_serves_metrics_on_its_port() -> None:
    metrics = _Metrics()
    settings = DeployAgentSettings.from_env({"AUTODEPLOY_DEPLOY_METRICS_PORT": "9200"})
    assert serve_metrics(metrics, settings) is not None
    assert metrics.served == [(9200, "0.0.0.0")]


def test_worker_port_0_turns_its_web_server_off() -> None:
    assert WorkerSettings.from_env({"AUTODEPLOY_WORKER_PORT": "0"}).web_enabled is False
    assert WorkerSettings.from_env({}).web_enabled is True
    assert WorkerSettings.from_env({"AUTODEPLOY_WORKER_WEB": "0"}).web_enabled is False


def test_the_lag_exporter_has_no_port_0() -> None:
    # Serving /metrics is all the lag exporter does: 0 is a mistake, not a switch.
    with pytest.raises(ConfigError, match="AUTODEPLOY_LAG_EXPORTER_PORT must be a port from 1 to 65535"):
        LagSettings.from_env({"AUTODEPLOY_LAG_EXPORTER_PORT": "0"})


@pytest.mark.parametrize("raw", ["-1", "65536", "80.5", "http"])
def test_a_port_out_of_range_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"AUTODEPLOY_DEPLOY_METRICS_PORT must be a port from 0 to 65535 \(0: not"):
        DeployAgentSettings.from_env({"AUTODEPLOY_DEPLOY_METRICS_PORT": raw})
