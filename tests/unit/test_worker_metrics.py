from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from streams.domain.facts import EventRef
from streams.domain.readiness import Decision
from streams.domain.readiness_state import _ref, _ref_json
from streams.worker.metrics import WorkerMetrics, readiness_latency

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ref_at(n: int, received: datetime | None) -> EventRef:
    return EventRef("s", f"e{n}", "t", T0, "github.events", 0, n, received)


def _decision(kind: str, *refs: EventRef) -> Decision:
    return Decision(kind, "shop", "github.com/acme/shop", "main", "a" * 40, "d", "c", refs, decided_at=T0)  # type: ignore[arg-type]


def test_readiness_latency_runs_from_the_newest_deciding_facts_receipt() -> None:
    decision = _decision("ready", _ref_at(1, T0 - timedelta(seconds=30)), _ref_at(2, T0 - timedelta(seconds=2)))
    assert readiness_latency(decision, T0) == 2.0
    assert readiness_latency(_decision("ready", _ref_at(1, None)), T0) is None  # state stored before receipts were
    assert readiness_latency(_decision("expired", _ref_at(1, T0)), T0) is None


def test_a_batch_counts_events_per_topic_decisions_dead_letters_and_latency() -> None:
    metrics = WorkerMetrics()
    decision = _decision("ready", _ref_at(1, T0 - timedelta(seconds=1)))
    metrics.batch("readiness", ["github.events"] * 3 + ["ci.events"], [decision], [("ci.events", "schema")], T0)
    text = generate_latest(metrics.registry).decode()
    assert 'autodeploy_worker_events_total{agent="readiness",topic="github.events"} 3.0' in text
    assert 'autodeploy_worker_events_total{agent="readiness",topic="ci.events"} 1.0' in text
    assert 'autodeploy_worker_deadletters_total{reason="schema",topic="ci.events"} 1.0' in text
    assert 'autodeploy_readiness_decisions_total{kind="ready",service="shop"} 1.0' in text
    assert 'autodeploy_pipeline_latency_seconds_count{stage="readiness"} 1.0' in text
    assert 'autodeploy_pipeline_latency_seconds_bucket{le="1.0",stage="readiness"} 1.0' in text


def test_event_refs_keep_their_receipt_in_state_and_old_state_without_it_still_reads() -> None:
    ref = _ref_at(1, T0 + timedelta(milliseconds=250))
    assert _ref(_ref_json(ref)) == ref
    old = ["s", "e1", "t", T0.isoformat(), "github.events", 0, 1]  # as stored before `received` existed
    assert _ref(old) == _ref_at(1, None)
    assert _ref_json(_ref_at(1, None)) == old
