"""`autodeploy replay`'s fold, without Kafka: the records decide, whatever order they are handed over in; expiry
happens at the log's time; the comparison with what deploy.readiness holds; --from."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import catalog
from streams.adapters.kafka_reader import LogRecord
from streams.adapters.policy_file import load_policies
from streams.commands.replay_cmds import since
from streams.config import REPO_ROOT, ConfigError
from streams.demo.deliveries import Payloads
from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.webhook_mapping import github_attributes
from streams.events.dsse_keys import SigningKey
from streams.events.signing import DirectoryVerifier, signed_record
from streams.webhooks.provider_events import provider_event
from streams.worker.output import readiness_record
from streams.worker.replay import Outcome, compare, outcome_of, outcome_of_record, replay
from tests.support.signing import FORGER, TEST_KEY, write_directory

ZERO = "0" * 40
C3, C4 = (hashlib.sha1(x.encode(), usedforsecurity=False).hexdigest() for x in ("C3", "C4"))
CATALOG = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
INPUTS = {name: CATALOG.topic(name) for name in ("github.events", "ci.events")}
POLICIES = load_policies(REPO_ROOT / "autodeploy.yaml")
SHOP = Payloads("acme/shop")
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _record(kind: str, payload: dict[str, Any], offset: int, at: datetime, key: SigningKey) -> LogRecord:
    body = orjson.dumps(payload)
    if kind == "circleci":
        event = provider_event(circleci_attributes(payload), str(payload["id"]), body, at)
        topic = "ci.events"
    else:
        event = provider_event(github_attributes(kind, payload), hashlib.sha1(body).hexdigest(), body, at)
        topic = "github.events"
    record = signed_record(event, topic, key)
    return LogRecord(topic, 0, offset, int(at.timestamp() * 1000), record.key, record.value, tuple(record.headers))


def crossing(key: SigningKey = TEST_KEY) -> list[LogRecord]:
    """As tests/integration/test_log_order.py: C4 complete (superseding C3) before C3's build result."""
    at = [T0 + timedelta(milliseconds=7 * n) for n in range(6)]
    github = [
        _record("push", SHOP.push(ZERO, C3, at[0]), 0, at[0], key),
        _record("workflow_run", SHOP.workflow_run(C3, "success", at[1], name="lint"), 1, at[1], key),
        _record("push", SHOP.push(C3, C4, at[2]), 2, at[2], key),
        _record("workflow_run", SHOP.workflow_run(C4, "success", at[3], name="lint"), 3, at[3], key),
    ]
    ci = [
        _record(
            "circleci", SHOP.circleci_workflow(C4, "success", at[4], name="build-test", delivery="d4"), 0, at[4], key
        ),
        _record(
            "circleci", SHOP.circleci_workflow(C3, "success", at[5], name="build-test", delivery="d3"), 1, at[5], key
        ),
    ]
    return github + ci


@pytest.fixture
def verifier(tmp_path: Path) -> DirectoryVerifier:
    return DirectoryVerifier(write_directory(tmp_path / "directory.yaml"))


def outcomes(records: list[LogRecord], verifier: DirectoryVerifier | None, until: datetime = T0) -> list[Outcome]:
    result = replay(records, INPUTS, POLICIES, verifier, until=until + timedelta(seconds=1), skew_ms=20)
    return [outcome_of(d) for d in result.decisions]


def test_the_records_decide_whatever_order_they_are_read_in(verifier: DirectoryVerifier) -> None:
    records = crossing()
    expected = outcomes(records, verifier)
    assert {(o.service, o.kind, o.commit, o.superseded_by) for o in expected} == {
        (s, k, c, b) for s in ("shop", "shop-worker") for k, c, b in (("ready", C4, None), ("superseded", C3, C4))
    }
    github = [r for r in records if r.topic == "github.events"]
    ci = [r for r in records if r.topic == "ci.events"]
    for seed in range(20):
        # The reader hands each partition over in offset order; the partitions interleave any way.
        rnd = random.Random(seed)
        queues, mixed = [list(github), list(ci)], []
        while any(queues):
            queue = rnd.choice([q for q in queues if q])
            mixed.append(queue.pop(0))
        assert outcomes(mixed, verifier) == expected


def test_an_unverified_record_decides_nothing_and_is_reported(verifier: DirectoryVerifier) -> None:
    forged = crossing(key=FORGER)
    result = replay(forged, INPUTS, POLICIES, verifier, until=T0 + timedelta(seconds=1), skew_ms=20)
    assert result.decisions == []
    assert len(result.deadletters) == len(forged)
    assert all("signature" in reason for _, reason in result.deadletters)


def test_a_commit_expires_at_its_deadline_when_the_log_passes_it_or_at_the_end(verifier: DirectoryVerifier) -> None:
    only_push = crossing()[:1]
    ttl = next(s for s in POLICIES.for_repository("github.com/acme/shop")).readiness_ttl
    assert outcomes(only_push, verifier, until=T0 + ttl - timedelta(seconds=2)) == []
    expired = outcomes(only_push, verifier, until=T0 + ttl + timedelta(hours=1))
    assert {o.kind for o in expired} == {"expired"}
    result = replay(only_push, INPUTS, POLICIES, verifier, until=T0 + 2 * ttl, skew_ms=20)
    assert {d.decided_at for d in result.decisions} == {T0 + ttl}, "dated by the deadline, not by the replay"


def test_comparing_with_the_log_by_decision_id() -> None:
    ready = Outcome("1", "ready", "shop", C4, None)
    superseded = Outcome("2", "superseded", "shop", C3, C4)
    other = Outcome("2", "superseded", "shop", C3, "f" * 40)
    difference = compare([ready, superseded], [ready, ready, other, Outcome("3", "expired", "shop", "e" * 40, None)])
    assert difference.same == [ready]
    assert difference.changed == [(other, superseded)]
    assert [o.decision_id for o in difference.only_logged] == ["3"]
    assert difference.only_replayed == []
    assert not difference.identical
    assert compare([ready], [ready]).identical


def test_a_decision_record_reads_back_as_its_outcome_and_anything_else_is_none() -> None:
    result = replay(crossing(), INPUTS, POLICIES, None, until=T0 + timedelta(seconds=1), skew_ms=20)
    decision = next(d for d in result.decisions if d.kind == "superseded")
    record = readiness_record(decision, "production", "deploy.readiness")
    assert outcome_of_record(record.value) == outcome_of(decision)
    assert outcome_of_record(b"not json") is None
    assert outcome_of_record(json.dumps({"type": "com.example"}).encode()) is None


def test_from_takes_the_beginning_a_time_with_its_offset_or_a_duration_ago() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert since("beginning", now) is None
    assert since("2026-12-03T10:00:00Z", now) == int(datetime(2026, 12, 3, 10, tzinfo=UTC).timestamp() * 1000)
    assert since("2h", now) == int((now - timedelta(hours=2)).timestamp() * 1000)
    with pytest.raises(ConfigError, match="needs its offset"):
        since("2026-12-03T10:00:00", now)
    with pytest.raises(ConfigError, match="--from"):
        since("yesterday", now)
