"""What the worker's time-ordered merge relies on inside Faust (not public API): these fail on an upgrade that
changes it, rather than the merge waiting on partitions it thinks are still being read, or a rebalance hanging."""

from __future__ import annotations

import inspect

import faust
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import ConsumerRebalanceListener

from streams.worker.app import ReadinessApp


def test_the_consumer_tracks_the_offset_it_last_handed_towards_the_agents() -> None:
    assert "self._read_offset = defaultdict(lambda: None)" in inspect.getsource(Consumer.__init__)
    assert "set_read_offset(tp, offset)" in inspect.getsource(Consumer._drain_messages)


def test_a_rebalance_starts_with_app_on_rebalance_start_and_waits_only_for_referenced_records() -> None:
    assert "thread.app.on_rebalance_start()" in inspect.getsource(ConsumerRebalanceListener.on_partitions_revoked)
    # wait_empty collects garbage before it looks again: records the merge dropped stop counting.
    waiting = inspect.getsource(Consumer.wait_empty)
    assert "gc.collect()" in waiting
    assert "_unacked_messages" in waiting


def test_the_readiness_app_overrides_what_faust_calls() -> None:
    assert ReadinessApp.on_rebalance_start.__qualname__.startswith("ReadinessApp")
    assert hasattr(faust.App, "on_rebalance_start")
    assert inspect.iscoroutinefunction(faust.App.on_stop)
