"""A real Prometheus (Debian's package) started by `autodeploy up` or a test: its own config, storage and port, not the
system service."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from streams.adapters.prometheus_api import PrometheusAPI, PrometheusQueryError
from streams.local import processes


def binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        raise FileNotFoundError(f"{name} not found (Debian: apt-get install prometheus)")
    return found


class Prometheus:
    def __init__(
        self,
        workdir: Path,
        targets: dict[str, str],
        rule_files: list[Path],
        *,
        port: int | None = None,
        log: Path | None = None,
    ) -> None:
        """`targets`: job name -> host:port of its /metrics."""
        self.workdir, self.targets, self.rule_files = workdir, targets, rule_files
        self.port = port or processes.free_port()
        self.api = PrometheusAPI(f"http://127.0.0.1:{self.port}")
        self.log = log or workdir / "prometheus.log"
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> subprocess.Popen[bytes]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [address]}]} for job, address in self.targets.items()
            ],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        proc = processes.start(
            [
                binary("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            self.log,
        )
        self.pid = proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.api.get("/api/v1/status/buildinfo")
                return proc
            except PrometheusQueryError:
                if proc.poll() is not None:
                    break
                time.sleep(0.3)
        raise processes.ServiceStartError("prometheus did not start:\n" + processes.tail(self.log))

    def target_health(self) -> dict[str, str]:
        active: list[dict[str, Any]] = self.api.get("/api/v1/targets")["activeTargets"]
        return {t["labels"]["job"]: t["health"] + (f" ({t['lastError']})" if t["lastError"] else "") for t in active}

    def stop(self) -> None:
        if self.pid is not None:
            processes.stop(self.pid)
            self.pid = None
