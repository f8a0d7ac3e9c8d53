"""The worker's own log lines: partitions as key=value ranges, and each decision with the record it came from."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.domain.readiness import Decision
from streams.domain.readiness_state import empty_state
from streams.worker.app import _by_topic, _ranges
from streams.worker.batch import Batch, Cause


def test_partitions_are_ranges_per_topic() -> None:
    assert _ranges([]) == "none"
    assert _ranges([5, 0, 2, 1]) == "0-2,5"
    assert _ranges([3]) == "3"
    tps = {TP("github.events", p) for p in range(6)} | {TP("ci.events", 1), TP("ci.events", 3)}
    assert _by_topic(tps) == "ci.events=1,3 github.events=0-5"
    assert _by_topic(set()) == "none"


def _event(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=offset))


def _decision(service: str) -> Decision:
    return Decision("ready", service, "github.com/acme/shop", "main", "c" * 40, f"id-{service}", "chain", ())


def test_each_decision_keeps_the_record_it_was_made_on() -> None:
    batch = Batch()
    state = empty_state("github.com/acme/shop")
    batch.fold("github.com/acme/shop", state, _event("ci.events", 2, 17), [], event_id="e0")
    batch.fold("github.com/acme/shop", state, _event("github.events", 2, 40), [_decision("a"), _decision("b")], "e1")
    batch.fold("github.com/acme/shop", state, _event("ticks", 2, 3), [_decision("c")])  # an expiry: no CloudEvent
    assert [d.service for d in batch.decisions] == ["a", "b", "c"]
    assert batch.causes == [
        Cause("e1", "github.events", 2, 40),
        Cause("e1", "github.events", 2, 40),
        Cause(None, "ticks", 2, 3),
    ]
