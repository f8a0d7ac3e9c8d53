"""The demo application and a real Prometheus (Debian's) scraping it, as `autodeploy up` runs them, for tests that play
the demo's staging verify check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.local.demo_app import DemoApp, cluster_workloads
from streams.local.prometheus import Prometheus


@contextmanager
def demo_monitoring(kubeconfig: Path, workdir: Path) -> Iterator[tuple[DemoApp, dict[str, str]]]:
    """The application and Prometheus; the settings that point the deploy agent at them. Skips without Prometheus."""
    app = DemoApp(cluster_workloads(kubeconfig))
    server = Prometheus(workdir, {"demo-app": app.address}, [])
    try:
        try:
            server.start()
        except FileNotFoundError as e:
            pytest.skip(str(e))
        yield app, {"PROMETHEUS_URL": server.url, "AUTODEPLOY_VERIFY_INTERVAL_S": "0.5"}
    finally:
        server.stop()
        app.close()
