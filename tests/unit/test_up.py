"""`autodeploy up` (make run): the endpoints it serves and the secrets for them, and what its Ctrl-C says it stops."""

from __future__ import annotations

import argparse
import io
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streams.commands import up_cmds
from streams.config import WebhookSettings
from streams.local import cluster, kafka, processes


def test_every_endpoint_gets_a_secret_and_the_events_one_a_token_of_its_own() -> None:
    generated = up_cmds.local_secrets({})
    assert set(generated) == {"GITHUB_WEBHOOK_SECRETS", "CIRCLECI_WEBHOOK_SECRETS", "AUTODEPLOY_EVENTS_TOKENS"}
    assert generated["GITHUB_WEBHOOK_SECRETS"] == generated["CIRCLECI_WEBHOOK_SECRETS"]  # the demo signs with one
    assert generated["AUTODEPLOY_EVENTS_TOKENS"] != generated["GITHUB_WEBHOOK_SECRETS"]
    lines = up_cmds.secret_lines(generated)
    assert lines[0] == f"webhook secret (GitHub and CircleCI): {generated['GITHUB_WEBHOOK_SECRETS']}"
    assert lines[1].endswith(f"'Authorization: Bearer <token>'): {generated['AUTODEPLOY_EVENTS_TOKENS']}")
    served = up_cmds.endpoints_line(WebhookSettings.from_env(generated), 8080)
    assert served == "http://127.0.0.1:8080  /webhooks/github  /webhooks/circleci  /events"


def test_configured_secrets_are_kept_and_an_unsigned_endpoint_stays_unsigned() -> None:
    env = {"GITHUB_WEBHOOK_SECRETS": "mine", "AUTODEPLOY_ALLOW_UNSIGNED": "events"}
    generated = up_cmds.local_secrets(env)
    assert set(generated) == {"CIRCLECI_WEBHOOK_SECRETS"}  # before, a configured GitHub secret left CircleCI off
    assert up_cmds.secret_lines(generated) == [f"webhook secret (CircleCI): {generated['CIRCLECI_WEBHOOK_SECRETS']}"]
    served = up_cmds.endpoints_line(WebhookSettings.from_env({**env, **generated}), 8080)
    assert served.endswith("/webhooks/circleci  /events (UNSIGNED: anyone can post)")


def test_an_endpoint_without_a_secret_is_listed_as_disabled() -> None:
    served = up_cmds.endpoints_line(WebhookSettings.from_env({"GITHUB_WEBHOOK_SECRETS": "s"}), 8080)
    assert "/events (disabled: no AUTODEPLOY_EVENTS_TOKENS)" in served
    assert "/webhooks/circleci (disabled: no CIRCLECI_WEBHOOK_SECRETS)" in served


def _sleeper(tmp_path: Path, name: str, ignore_term: bool = False) -> Any:
    script = "import signal, time; "
    script += "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    script += "print('up', flush=True); time.sleep(60)"
    proc = processes.start([sys.executable, "-c", script], tmp_path / f"{name}.log")
    deadline = time.monotonic() + 10
    while "up" not in processes.tail(tmp_path / f"{name}.log") and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_stop_says_how_a_process_ended(tmp_path: Path) -> None:
    assert processes.stop(_sleeper(tmp_path, "polite").pid, timeout=5) == "stopped"
    assert processes.stop(_sleeper(tmp_path, "stubborn", ignore_term=True).pid, timeout=0.3) == "killed"
    gone = _sleeper(tmp_path, "gone")
    gone.send_signal(signal.SIGKILL)
    gone.wait()
    assert processes.stop(gone.pid) == "gone"


class Services:
    """The local broker and control plane, as fakes that record what was stopped."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, cluster_running: bool, broker_running: bool) -> None:
        self.stopped: list[str] = []
        running = cluster.ClusterStatus(running=cluster_running, components={})
        monkeypatch.setattr(cluster, "status", lambda: running)
        monkeypatch.setattr(cluster, "down", self._cluster_down)
        monkeypatch.setattr(kafka, "status", lambda: object() if broker_running else None)
        monkeypatch.setattr(kafka, "down", lambda: self.stopped.append("kafka") or True)

    def _cluster_down(self, timeout: float = 30.0, progress: Any = None) -> bool:
        self.stopped.append("cluster")
        if progress is not None:
            progress("stopped kube-apiserver (pid 4242) in 0.2 s")
        return True


def test_each_thing_stopped_is_printed_as_it_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    services = Services(monkeypatch, cluster_running=False, broker_running=False)
    children = {"webhooks": _sleeper(tmp_path, "webhooks"), "worker": _sleeper(tmp_path, "worker")}
    out = io.StringIO()
    up_cmds.stop_all(children, started_cluster=True, started_broker=True, out=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"webhooks     stopping (pid {children['webhooks'].pid})"
    assert lines[1].startswith("webhooks     stopped in ")
    assert lines[2] == f"worker       stopping (pid {children['worker'].pid})"
    assert lines[3].startswith("worker       stopped in ")
    assert lines[4:6] == [
        "cluster      stopping the control plane",
        "cluster      stopped kube-apiserver (pid 4242) in 0.2 s",
    ]
    assert lines[6] == "kafka        stopping the broker"
    assert lines[7].startswith("kafka        stopped in ")
    assert services.stopped == ["cluster", "kafka"]
    assert not any(processes.alive(c.pid) for c in children.values())


def test_what_was_running_before_is_left_running_and_said_so(monkeypatch: pytest.MonkeyPatch) -> None:
    services = Services(monkeypatch, cluster_running=True, broker_running=True)
    out = io.StringIO()
    up_cmds.stop_all({}, started_cluster=False, started_broker=False, out=out)
    assert "cluster      left running" in out.getvalue() and "kafka        left running" in out.getvalue()
    assert services.stopped == []


def test_a_ctrl_c_while_the_control_plane_starts_stops_the_broker_it_started(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    services = Services(monkeypatch, cluster_running=False, broker_running=False)
    monkeypatch.setattr(kafka, "up", lambda **_: kafka.BrokerInfo("127.0.0.1:1", 1, "v", Path("log"), Path("data")))
    monkeypatch.setattr(up_cmds.topics_cmds, "apply_catalog", lambda *a, **k: 0)

    def interrupted(progress: Any) -> None:
        raise KeyboardInterrupt  # the first start builds the control plane: minutes, a Ctrl-C is likely

    monkeypatch.setattr(cluster, "up", interrupted)
    args = argparse.Namespace(port=1, worker_port=2, agent_port=3, dry_run=False, no_deploy=False, secure=None)
    assert up_cmds.run(args) == 0
    out = capsys.readouterr().out
    assert "stopping what this command started" in out and "kafka        stopped in " in out
    assert "NOT secured (--insecure)" in out  # the fake broker is a plain one: a person must not miss that
    assert services.stopped == ["cluster", "kafka"]
