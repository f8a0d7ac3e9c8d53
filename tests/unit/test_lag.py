from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.config import LagSettings
from streams.domain.lag import PartitionKey, Position, StallTracker
from streams.lag import report
from streams.lag.monitor import LagCollector, LagMonitor
from streams.lag.table import render

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_lag_is_end_minus_committed_and_seconds_the_oldest_unconsumed_records_age() -> None:
    tracker = StallTracker(stall_after_s=60)
    rows = tracker.rows(
        [Position("g", "t", 0, committed=10, end=15), Position("g", "t", 1, committed=7, end=7)],
        {("g", "t", 0): _at(-42)},
        _at(0),
    )
    assert [(r.partition, r.lag_messages, r.lag_seconds) for r in rows] == [(0, 5, 42.0), (1, 0, 0.0)]


def test_a_lagging_partition_whose_record_was_not_read_has_unknown_seconds() -> None:
    (row,) = StallTracker(60).rows([Position("g", "t", 0, 1, 3)], {}, T0)
    assert row.lag_messages == 2 and row.lag_seconds is None


def test_committed_offset_past_the_end_is_no_lag() -> None:
    (row,) = StallTracker(60).rows([Position("g", "t", 0, committed=9, end=4)], {}, T0)
    assert row.lag_messages == 0 and row.lag_seconds == 0.0


def test_stalled_when_lagging_and_the_offset_does_not_move_for_the_window() -> None:
    tracker = StallTracker(stall_after_s=60)
    lagging = [Position("g", "t", 0, committed=10, end=20)]
    assert not tracker.rows(lagging, {}, _at(0))[0].stalled
    assert not tracker.rows(lagging, {}, _at(59))[0].stalled
    (row,) = tracker.rows(lagging, {}, _at(60))
    assert row.stalled and row.unmoved_s == 60
    # the offset moves: the clock starts again
    assert not tracker.rows([Position("g", "t", 0, committed=11, end=20)], {}, _at(61))[0].stalled


def test_an_idle_consumer_is_not_stalled_the_moment_a_record_arrives() -> None:
    tracker = StallTracker(stall_after_s=60)
    tracker.rows([Position("g", "t", 0, committed=10, end=10)], {}, _at(0))  # caught up for a long time
    tracker.rows([Position("g", "t", 0, committed=10, end=10)], {}, _at(600))
    (row,) = tracker.rows([Position("g", "t", 0, committed=10, end=11)], {}, _at(601))
    assert not row.stalled
    (row,) = tracker.rows([Position("g", "t", 0, committed=10, end=11)], {}, _at(661))
    assert row.stalled


class FakeOffsets:
    def __init__(self, positions: list[Position], oldest: dict[PartitionKey, datetime]) -> None:
        self._positions, self._oldest = positions, oldest

    def positions(self, groups: Iterable[str]) -> list[Position]:
        wanted = set(groups)
        return [p for p in self._positions if p.group in wanted]

    def timestamps(self, positions: Iterable[Position], wait_s: float = 3.0) -> dict[PartitionKey, datetime]:
        return self._oldest


def test_the_collector_exports_the_fixed_metric_names_and_the_table_shows_every_row() -> None:
    offsets = FakeOffsets(
        [Position("g", "github.events", 0, 3, 8), Position("h", "github.events", 0, 8, 8)],
        {("g", "github.events", 0): _at(-5)},
    )
    monitor = LagMonitor(offsets, ["g", "h", "nobody"], stall_after_s=60)
    rows = monitor.poll(now=_at(0))
    registry = CollectorRegistry()
    registry.register(LagCollector(monitor))
    text = generate_latest(registry).decode()
    assert 'autodeploy_consumer_lag_messages{group="g",partition="0",topic="github.events"} 5.0' in text
    assert 'autodeploy_consumer_lag_seconds{group="g",partition="0",topic="github.events"} 5.0' in text
    assert 'autodeploy_consumer_stalled{group="h",partition="0",topic="github.events"} 0.0' in text
    assert 'autodeploy_consumer_committed_offset{group="g",partition="0",topic="github.events"} 3.0' in text
    assert 'autodeploy_topic_end_offset{partition="0",topic="github.events"} 8.0' in text
    table = render(rows, monitor.groups, _at(0)).splitlines()
    assert table[1].split() == ["group", "topic", "partition", "committed", "end", "lag", "msgs", "lag", "s", "stalled"]
    assert table[2].split() == ["g", "github.events", "0", "3", "8", "5", "5.0", "no"]
    assert table[-1] == "no committed offsets: nobody"


def test_lag_settings_name_autodeploys_own_groups_and_configured_ones() -> None:
    settings = LagSettings.from_env(
        {"AUTODEPLOY_WORKER_ID": "w", "AUTODEPLOY_LAG_GROUPS": "other, w ,third", "AUTODEPLOY_LAG_STALL_S": "5"}
    )
    assert settings.groups == ("w", "autodeploy-deploy-agent", "other", "third")
    assert settings.stall_after_s == 5 and settings.port == 9103


def test_the_report_without_its_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an image without the report extra has
    with pytest.raises(report.ReportUnavailable, match=r"autodeploy\[report\]"):
        report.render({"messages": [], "seconds": []}, tmp_path / "lag.png", "title")
    assert not (tmp_path / "lag.png").exists()
