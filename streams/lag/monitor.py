"""Polls the groups' offsets and keeps the latest rows; `LagCollector` exports them to Prometheus."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.domain.lag import LagRow, PartitionKey, Position, StallTracker

log = logging.getLogger(__name__)


class OffsetsSource(Protocol):
    def positions(self, groups: Iterable[str]) -> list[Position]: ...

    def timestamps(self, positions: Iterable[Position], wait_s: float = 3.0) -> dict[PartitionKey, datetime]: ...


class LagMonitor:
    """One poll reads committed and end offsets of every group, and the oldest unconsumed record's timestamp of each
    lagging partition. Blocking: call it from a thread (or an executor) when an event loop runs."""

    def __init__(self, offsets: OffsetsSource, groups: Sequence[str], stall_after_s: float) -> None:
        self.offsets = offsets
        self.groups = tuple(groups)
        self.tracker = StallTracker(stall_after_s)
        self.rows: list[LagRow] = []
        self._lock = threading.Lock()  # polls may come from more than one thread (a timer and a scrape)

    def poll(self, now: datetime | None = None) -> list[LagRow]:
        with self._lock:
            positions = self.offsets.positions(self.groups)
            oldest = self.offsets.timestamps(positions)
            self.rows = self.tracker.rows(positions, oldest, now or datetime.now(UTC))
            return self.rows


class LagCollector(Collector):
    """The monitor's latest rows as gauges: a partition that is gone from a poll is gone from the metrics."""

    def __init__(self, monitor: LagMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self.monitor.rows
        labels = ["group", "topic", "partition"]
        lag = GaugeMetricFamily(
            "autodeploy_consumer_lag_messages",
            "Records not yet consumed: end offset minus committed offset",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "autodeploy_consumer_lag_seconds",
            "Age of the oldest record not yet consumed (its Kafka timestamp); 0 when caught up",
            labels=labels,
        )
        stalled = GaugeMetricFamily(
            "autodeploy_consumer_stalled",
            "1 when the partition lags and its committed offset has not moved for the stall window",
            labels=labels,
        )
        committed = GaugeMetricFamily(
            "autodeploy_consumer_committed_offset", "The group's committed offset", labels=labels
        )
        end = GaugeMetricFamily(
            "autodeploy_topic_end_offset", "Log end offset (offset of the next record)", labels=["topic", "partition"]
        )
        ends: dict[tuple[str, str], int] = {}
        for row in rows:
            values = [row.group, row.topic, str(row.partition)]
            lag.add_metric(values, row.lag_messages)
            if row.lag_seconds is not None:
                seconds.add_metric(values, row.lag_seconds)
            stalled.add_metric(values, 1.0 if row.stalled else 0.0)
            committed.add_metric(values, row.committed)
            ends[(row.topic, str(row.partition))] = row.end
        for (topic, partition), offset in sorted(ends.items()):
            end.add_metric([topic, partition], offset)
        yield from (lag, seconds, stalled, committed, end)
