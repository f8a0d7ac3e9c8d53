"""The KEDA and HPA arithmetic the scale-step fault test steps workers by (tests/support/keda.py), on hand-made lags and
on the worker ScaledObject itself."""

from __future__ import annotations

import itertools
from dataclasses import replace

from tests.support.keda import SYNC_PERIOD_S, Autoscaler, Scaling


def test_the_worker_scaled_object_is_read_as_keda_reads_it() -> None:
    s = Scaling.load()
    assert (s.target, s.min_replicas, s.max_replicas, s.lag_threshold) == ("autodeploy-worker", 2, 6, 500)
    assert (s.allow_idle_consumers, s.limit_to_partitions_with_lag, s.offset_reset_earliest) == (False, False, True)
    assert s.down.window_s == 600 and [(p.kind, p.value, p.period_s) for p in s.down.policies] == [("Pods", 1, 300)]
    assert s.up.window_s == 0 and {p.kind for p in s.up.policies} == {"Pods", "Percent"}  # the HPA's default


def test_the_lag_is_summed_capped_at_the_partitions_and_counts_an_uncommitted_partition_from_the_start() -> None:
    s = Scaling.load()
    ends = {("in", 0): 1000, ("in", 1): 700, ("ticks", 0): 10}
    assert s.metric(ends, {("in", 0): 900, ("in", 1): 700, ("ticks", 0): 10}) == 100
    assert s.metric(ends, {("in", 0): 900, ("in", 1): 700}) == 110  # earliest: the whole partition is lag
    # 3 partitions: never more than 3 x lagThreshold, so never more than 3 replicas asked for
    assert s.metric({("in", 0): 10_000, ("in", 1): 0, ("ticks", 0): 0}, {}) == 1500
    limited = replace(s, limit_to_partitions_with_lag=True)
    assert limited.metric({("in", 0): 10_000, ("in", 1): 0, ("ticks", 0): 0}, {}) == 500


def test_scale_up_is_immediate_and_scale_down_waits_for_the_window_then_goes_one_pod_per_period() -> None:
    s = Scaling.load()
    hpa = Autoscaler(s, s.min_replicas)
    assert hpa.sync(2600, 0.0) == 6  # ceil(2600 / 500) = 6: +4 pods, allowed in one step
    assert hpa.sync(10_000, SYNC_PERIOD_S) == 6  # the max
    counts = [hpa.sync(0, t) for t in range(30, 2000, 15)]
    assert counts[: (600 - 30) // 15] == [6] * ((600 - 30) // 15)  # the 600 s window still holds a 6
    changes = [(30 + 15 * i, c) for i, c in enumerate(counts) if c != (counts[i - 1] if i else 6)]
    assert [c for _, c in changes] == [5, 4, 3, 2]
    assert all(b - a >= 300 for (a, _), (b, _) in itertools.pairwise(changes))


def test_a_metric_within_the_tolerance_changes_nothing() -> None:
    s = Scaling.load()
    hpa = Autoscaler(s, 3)
    assert hpa.sync(1540, 0.0) == 3  # 1540 / (500 x 3) = 1.03
    assert hpa.sync(1700, 15.0) == 4  # 1.13: ceil(1700 / 500)
