"""`autodeploy lag` (a live table) and `autodeploy lag-exporter` (Prometheus /metrics)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from streams import brokers
from streams.adapters.kafka_offsets import KafkaOffsets, OffsetsUnavailable
from streams.adapters.prometheus_api import PrometheusAPI
from streams.config import LagSettings, Settings
from streams.domain.policy_document import parse_duration
from streams.lag.monitor import LagCollector, LagMonitor
from streams.lag.table import render

log = logging.getLogger(__name__)

_CLEAR = "\x1b[H\x1b[2J"


def register(sub: Any) -> None:
    lag = sub.add_parser("lag", help="consumer lag per group, topic and partition, as a live table")
    lag.add_argument("--group", action="append", default=[], help="another consumer group (repeatable)")
    lag.add_argument("--once", action="store_true", help="print one table and exit (for scripts)")
    lag.add_argument(
        "--interval", type=float, default=None, help="seconds between refreshes (AUTODEPLOY_LAG_INTERVAL_S)"
    )
    lag.set_defaults(handler=run_table)
    exporter = sub.add_parser("lag-exporter", help="serve consumer lag as Prometheus metrics (/metrics, port 9103)")
    exporter.add_argument("--host", default=None, help="listen address (AUTODEPLOY_LAG_EXPORTER_HOST, 127.0.0.1)")
    exporter.add_argument("--port", type=int, default=None, help="listen port (AUTODEPLOY_LAG_EXPORTER_PORT, 9103)")
    exporter.set_defaults(handler=run_exporter)
    register_report(sub)


def _monitor(settings: LagSettings, extra: list[str]) -> LagMonitor:
    broker = brokers.connection(Settings.from_env(), "lag-exporter")
    offsets = KafkaOffsets(broker.bootstrap_servers, security=broker.security)
    return LagMonitor(offsets, (*settings.groups, *extra), settings.stall_after_s)


def run_table(args: argparse.Namespace) -> int:
    settings = LagSettings.from_env()
    monitor = _monitor(settings, args.group)
    interval = args.interval or settings.interval_s
    live = not args.once and sys.stdout.isatty()
    while True:
        rows = monitor.poll()
        table = render(rows, monitor.groups, datetime.now(UTC))
        print((_CLEAR if live else "") + table, flush=True)
        if args.once:
            return 0
        if not live:
            print()
        time.sleep(interval)


def run_exporter(args: argparse.Namespace) -> int:
    settings = LagSettings.from_env()
    monitor = _monitor(settings, [])
    registry = CollectorRegistry()
    registry.register(LagCollector(monitor))
    host, port = args.host or settings.host, args.port or settings.port
    start_http_server(port, addr=host, registry=registry)
    log.info("lag exporter listening on http://%s:%s/metrics groups=%s", host, port, ",".join(monitor.groups))
    while True:
        started = time.monotonic()
        try:
            monitor.poll()
        except OffsetsUnavailable as e:  # temporary: the last rows stay exported, the next poll tries again
            log.warning("lag poll failed error=%s", e)
        time.sleep(max(0.0, settings.interval_s - (time.monotonic() - started)))


def register_report(sub: Any) -> None:
    report = sub.add_parser("lag-report", help="draw consumer lag over time from Prometheus as a PNG")
    report.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL")
    report.add_argument("--since", default="1h", help="how far back: 90s, 15m, 2h, 1d (default 1h)")
    report.add_argument("--out", type=Path, default=Path("lag-report.png"), help="the PNG to write")
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from streams.lag import report  # noqa: PLC0415 - matplotlib is slow to import

    since = parse_duration(args.since)
    data = report.fetch(PrometheusAPI(args.prometheus), since)
    try:
        report.render(data, args.out, f"consumer lag, last {args.since}, from {args.prometheus}")
    except report.ReportUnavailable as e:
        print(f"autodeploy: error: {e}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{len(series)} {name} series" for name, series in data.items())
    print(f"wrote {args.out} ({counts})")
    return 0
