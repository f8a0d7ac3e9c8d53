"""The worker's /metrics page (on Faust's web server) and its consumer lag timer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.adapters.kafka_offsets import OffsetsUnavailable
from streams.lag.monitor import LagCollector, LagMonitor

log = logging.getLogger(__name__)


def serve_metrics(app: Any, registry: CollectorRegistry) -> None:
    async def metrics(view: Any, request: Any) -> Any:
        """Prometheus metrics of this worker."""
        # aiohttp refuses a charset inside content_type=, so the header is set whole.
        return view.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.page("/metrics")(metrics)


def export_lag(app: Any, monitor: LagMonitor, registry: CollectorRegistry, interval_s: float) -> None:
    """Poll lag every `interval_s` on a thread (the admin calls block) and export it with the worker's metrics."""
    registry.register(LagCollector(monitor))

    async def poll_lag() -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, monitor.poll)
        except OffsetsUnavailable as e:  # temporary: the last rows stay exported
            log.warning("lag poll failed error=%s", e)

    app.timer(interval_s, name="autodeploy-lag")(poll_lag)
