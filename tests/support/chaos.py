"""A large seeded scenario for the fault suite: many repositories and commits, with failures, reruns, CI before its
push and commits that never complete, as the records the webhook server would write; and what the pure readiness
rules decide from the same records."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from streams import catalog
from streams.adapters.kafka_producer import Record
from streams.demo.deliveries import Payloads
from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.policy import Policies
from streams.domain.readiness import Decision, RepositoryState, apply, empty_state
from streams.domain.webhook_mapping import github_attributes
from streams.events.decoding import RawRecord, decode
from streams.events.dsse_keys import SigningKey
from streams.events.signing import signed_record
from streams.webhooks.provider_events import provider_event
from streams.worker.event_facts import facts_of
from tests.support.brokers import SelectedBroker
from tests.support.signing import TEST_KEY

ZERO = "0" * 40


def commit_id(repository: int, index: int) -> str:
    return hashlib.sha1(f"chaos/{repository}/{index}".encode(), usedforsecurity=False).hexdigest()


@dataclass
class Scenario:
    """Records in the order they are produced (logical topic names), and which commits can ever complete."""

    repositories: int
    records: list[Record] = field(default_factory=list)
    complete: set[tuple[str, str]] = field(default_factory=set)  # (service, commit): every check passes at the end
    order: dict[str, list[str]] = field(default_factory=dict)  # service -> its commits, oldest first

    def policy_yaml(self, targets: dict[str, tuple[str, str]] | None = None) -> str:
        """One service per repository, both checks required; `targets` maps a service to (namespace, deployment)."""
        lines = ["services:"]
        for r in range(self.repositories):
            namespace, deployment = (targets or {}).get(service(r), (f"repo{r}", "app"))
            lines += [
                f"  {service(r)}:",
                f"    repository: github.com/chaos/repo{r}",
                "    branch: main",
                "    required_checks: [{circleci: build-test}, {github_actions: lint}]",
                f"    image: registry.example/repo{r}:{{sha}}",
                f"    kubernetes: {{namespace: {namespace}, deployment: {deployment}, container: app}}",
                "    readiness_ttl: 24h",
            ]
        return "\n".join(lines) + "\n"


def service(repository: int) -> str:
    return f"svc{repository}"


class _Builder:
    def __init__(self, scenario: Scenario, start: datetime, key: SigningKey | None = TEST_KEY) -> None:
        self.scenario, self.moment, self.key = scenario, start, key

    def _tick(self) -> datetime:
        self.moment += timedelta(milliseconds=10)
        return self.moment

    def _github(self, event: str, payload: dict[str, Any], delivery: str, when: datetime) -> Record:
        body = json.dumps(payload).encode()
        cloud_event = provider_event(github_attributes(event, payload), delivery, body, when)
        return signed_record(cloud_event, "github.events", self.key)

    def push(self, r: int, before: str, after: str) -> Record:
        when = self._tick()
        return self._github("push", _payloads(r).push(before, after, when), f"push-{r}-{after}", when)

    def lint(self, r: int, commit: str, conclusion: str, attempt: int) -> Record:
        when = self._tick()
        payload = _payloads(r).workflow_run(commit, conclusion, when, name="lint", attempt=attempt)
        return self._github("workflow_run", payload, f"lint-{r}-{commit}-{attempt}", when)

    def circleci(self, r: int, commit: str, status: str, run: int) -> Record:
        when = self._tick()
        payload = _payloads(r).circleci_workflow(
            commit,
            status,
            when,
            name="build-test",
            delivery=f"cci-{r}-{commit[:12]}-{run}",
            workflow=f"wf-{r}-{commit[:12]}-{run}",
        )
        body = json.dumps(payload).encode()
        return signed_record(
            provider_event(circleci_attributes(payload), payload["id"], body, when), "ci.events", self.key
        )


def _payloads(r: int) -> Payloads:
    return Payloads(f"chaos/repo{r}")


def build(repositories: int, commits: int, seed: int = 8, key: SigningKey | None = TEST_KEY) -> Scenario:
    """Per repository a linear history of `commits` commits on main; rounds over the repositories interleave them.

    Each commit is one of: plain (push, lint, CircleCI), CI first (both checks before the push), a failed CircleCI
    workflow rerun green after the next commit's push, a lint failure whose second attempt passes, or broken (CircleCI
    fails and is never rerun: superseded by a newer ready commit, or left waiting). Records are signed with `key`
    (unsigned with None: for a test that signs them itself)."""
    rng = random.Random(seed)
    scenario = Scenario(repositories)
    b = _Builder(scenario, datetime.now(UTC) - timedelta(hours=1), key)
    heads = [ZERO] * repositories
    reruns: list[list[str]] = [[] for _ in range(repositories)]  # commits whose green rerun is still to come
    for i in range(commits):
        for r in range(repositories):
            c, roll = commit_id(r, i), rng.random()
            scenario.order.setdefault(service(r), []).append(c)
            if roll < 0.1:  # CI first: both results before the push that makes it a head
                out = [b.circleci(r, c, "success", 1), b.lint(r, c, "success", 1), b.push(r, heads[r], c)]
            elif roll < 0.2:  # a red CircleCI run, rerun green after the next commit's push
                out = [b.push(r, heads[r], c), b.lint(r, c, "success", 1), b.circleci(r, c, "failed", 1)]
            elif roll < 0.3:  # lint fails, its second attempt passes
                out = [b.push(r, heads[r], c), b.lint(r, c, "failure", 1), b.circleci(r, c, "success", 1)]
                out.append(b.lint(r, c, "success", 2))
            elif roll < 0.37:  # broken: CircleCI fails and is never rerun
                out = [b.push(r, heads[r], c), b.lint(r, c, "success", 1), b.circleci(r, c, "failed", 1)]
            else:
                out = [b.push(r, heads[r], c), b.lint(r, c, "success", 1), b.circleci(r, c, "success", 1)]
            out += [b.circleci(r, earlier, "success", 2) for earlier in reruns[r]]
            reruns[r] = [c] if 0.1 <= roll < 0.2 else []
            if not 0.3 <= roll < 0.37:
                scenario.complete.add((service(r), c))
            heads[r] = c
            scenario.records += out
    for r in range(repositories):
        scenario.records += [b.circleci(r, earlier, "success", 2) for earlier in reruns[r]]
    return scenario


def late_push(scenario: Scenario, repository: int, key: SigningKey | None = TEST_KEY) -> Record:
    """One more push on a repository's main after the scenario's last commit (a new event id): a record sent late."""
    commits = scenario.order[service(repository)]
    after = commit_id(repository, len(commits))
    return _Builder(scenario, datetime.now(UTC), key).push(repository, commits[-1], after)


def expected(scenario: Scenario, cat: catalog.Catalog, policies: Policies) -> dict[tuple[str, str], Decision]:
    """(service, commit) -> the decision the pure rules make from the same records, read in the order produced."""
    inputs = {"github.events": cat.topic("github.events"), "ci.events": cat.topic("ci.events")}
    states: dict[str, RepositoryState] = {}
    decided: dict[tuple[str, str], Decision] = {}
    now = datetime.now(UTC)
    for offset, record in enumerate(scenario.records):
        raw = RawRecord(record.topic, 0, offset, record.key, record.value, record.headers)
        facts = facts_of(decode(raw, inputs[record.topic]), raw)
        for fact in facts:
            services = policies.for_repository(fact.repository)
            state = states.get(fact.repository) or empty_state(fact.repository)
            states[fact.repository], decisions = apply(state, fact, services, now)
            for d in decisions:
                decided[(d.service, d.commit)] = d
    return decided


def produce(broker: SelectedBroker, cat: catalog.Catalog, records: Iterable[Record]) -> int:
    """Write `records` as the webhook server does (murmur2 on the repository key, acks=all, idempotent) and as its
    principal; returns how many Kafka acknowledged."""
    producer = Producer(
        broker.config({"partitioner": "murmur2_random", "enable.idempotence": True, "linger.ms": 5}, role="webhooks")
    )
    acked = 0

    def delivered(err: Any, _: Any) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    for record in records:
        while True:
            try:
                producer.produce(
                    cat.topic(record.topic).name,
                    record.value,
                    record.key,
                    headers=list(record.headers),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(60)
    return acked


def write_policy(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@dataclass
class Judgement:
    """The decisions found on deploy.readiness against the pure rules' (`expected`)."""

    made: int
    missing: list[tuple[str, str]]
    unexpected: list[tuple[str, str]]
    twice_different: list[tuple[str, str]]  # emitted twice with another kind or id
    wrong: list[tuple[tuple[str, str], str]]
    order_dependent: list[tuple[str, str]]  # ready or superseded depending on how the two inputs interleaved
    re_emitted: int
    kinds: dict[tuple[str, str], set[str]]  # (service, commit) -> the kinds of decision found


def judge(want: dict[tuple[str, str], Decision], found: list[dict[str, Any]], scenario: Scenario) -> Judgement:
    kinds: dict[tuple[str, str], set[str]] = {}
    ids: dict[tuple[str, str], set[str]] = {}
    for d in found:
        content = d["data"]["subject"]["content"]
        pair = (content["service"], content["commit"])
        kinds.setdefault(pair, set()).add(d["type"].split(".")[3])
        ids.setdefault(pair, set()).add(d["id"])
    # The two input streams interleave differently in every run (readiness.py, "remaining order dependence"): a
    # complete commit is ready or superseded depending on whether a newer one completed first. Any other difference
    # from the pure rules is wrong.
    order_dependent: list[tuple[str, str]] = []
    wrong: list[tuple[tuple[str, str], str]] = []
    for pair, decision in want.items():
        got = next(iter(kinds.get(pair, {decision.kind})))
        if got == decision.kind:
            if decision.decision_id not in ids.get(pair, {decision.decision_id}):
                wrong.append((pair, "id"))
        elif {got, decision.kind} == {"ready", "superseded"} and pair in scenario.complete:
            order_dependent.append(pair)
        else:
            wrong.append((pair, f"{got} instead of {decision.kind}"))
    return Judgement(
        made=len(set(want) & set(kinds)),
        missing=sorted(set(want) - set(kinds)),
        unexpected=sorted(set(kinds) - set(want)),
        twice_different=sorted(p for p in kinds if len(kinds[p]) > 1 or len(ids[p]) > 1),
        wrong=wrong,
        order_dependent=order_dependent,
        re_emitted=len(found) - len(kinds),
        kinds=kinds,
    )
