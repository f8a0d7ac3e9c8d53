"""The worker's state store: states through a bytes table part by part, read back from the table alone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson

from streams.adapters.kafka_producer import Record
from streams.domain import promotion
from streams.domain.facts import Fact
from streams.domain.policy import ServicePolicy
from streams.domain.readiness import Decision, apply, earliest_expiry, expire, next_deadline, to_json
from streams.domain.readiness_state import MAX_COMMITS
from streams.worker.state_store import META, PARTS, PROMOTIONS, TOMBSTONES, Outbox, Recovered, StateStore, key, part_of
from tests.unit.test_promotion import TWO, approved, completed, ready
from tests.unit.test_readiness import LINT, NOW, NULL, REPO, F, S, check, push, svc

SERVICES = [svc(), svc("shop-worker", checks=(LINT,))]
OTHER = "github.com/acme/other"
DECIDED = "github.com/acme/decided"


class Table(dict[bytes, bytes]):
    """A dict that remembers its writes in order, so that a test can drop the tail of them (a crash)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[bytes, bytes]] = []

    def __setitem__(self, k: bytes, v: bytes) -> None:
        self.writes.append((k, v))
        super().__setitem__(k, v)


def feed(store: StateStore, facts: Iterable[Fact], services: Sequence[ServicePolicy] = SERVICES) -> list[Decision]:
    out: list[Decision] = []
    for fact in facts:
        state, decisions = apply(store.load(fact.repository, 0), fact, services, NOW)
        store.save(fact.repository, state, 0)
        out += decisions
    return out


def history(n: int, prefix: str = "c") -> list[Fact]:
    """n commits pushed in a line, every third one failing its build, every fifth never linted."""
    facts: list[Fact] = []
    before = NULL
    for i in range(n):
        commit = f"{prefix}{i:05d}"
        facts.append(push(commit, before, t=i / 100))
        facts.append(check(commit, F if i % 3 == 0 else S, t=i / 100))
        if i % 5:
            facts.append(check(commit, c=LINT, t=i / 100))
        before = commit
    return facts


def test_a_state_read_back_from_the_table_alone_is_the_same_and_decides_the_same() -> None:
    table = Table()
    store = StateStore(table)
    feed(store, history(MAX_COMMITS + 400))  # beyond the bound: pruning deletes commits and writes tombstones
    feed(store, [push("forced", "c00010", t=30, forced=True), check("forced", t=30)])
    feed(store, history(30, prefix="o"), [])  # no services: nothing stored
    state = store.load(REPO, 0)
    assert state.tombstones and len(state.commits) <= MAX_COMMITS

    reread = StateStore(table)
    assert to_json(reread.load(REPO, 0)) == to_json(state)
    later: list[Fact] = [
        push("late", "forced", t=40),
        check("late", t=40),
        check("late", c=LINT, t=40),
        check("c02399", t=41),
    ]
    later += [push("stuck", "late", t=42), check("stuck", F, t=42)]  # waits until it expires
    assert feed(reread, later) == feed(store, later)
    assert to_json(StateStore(table).load(REPO, 0)) == to_json(store.load(REPO, 0))
    expired = [expire(s.load(REPO, 0), SERVICES, NOW + timedelta(days=1))[1] for s in (store, StateStore(table))]
    assert expired[0] == expired[1] and expired[0]


def test_a_fact_writes_the_meta_and_the_parts_it_changed_only() -> None:
    table = Table()
    store = StateStore(table)
    feed(store, history(500))
    table.writes.clear()
    rerun = check("c00499", c=LINT, attempt=2)
    feed(store, [rerun])
    written = [k for k, _ in table.writes]
    assert written[0] == key(REPO, META), "the meta record, carrying the changed parts, is the commit point"
    assert 1 < len(written) <= 3
    assert sum(1 for k in table if k.startswith(REPO.encode())) <= 2 + PARTS
    table.writes.clear()
    feed(store, [rerun])  # a duplicate
    assert table.writes == []


def test_a_crash_after_the_meta_record_reads_back_as_the_new_state() -> None:
    table = Table()
    store = StateStore(table)
    feed(store, history(50))
    before = dict(table)
    table.writes.clear()
    feed(store, [push("new", "c00049")])
    meta = table.writes[0]
    crashed = Table()
    crashed.update(before)
    crashed[meta[0]] = meta[1]  # only the first record of the fact reached the changelog
    assert to_json(StateStore(crashed).load(REPO, 0)) == to_json(store.load(REPO, 0))


def deadlines_of(recovered: Iterable[Recovered]) -> dict[str, Any]:
    return {r.repository: (r.partition, earliest_expiry(r.first_facts, SERVICES)) for r in recovered}


def test_recover_gives_each_repositorys_partition_and_deadline_and_forget_rereads_the_table() -> None:
    table = Table()
    store = StateStore(table)
    feed(store, history(40))
    feed(store, [replace(push("x"), repository=OTHER)], [replace(svc("other"), repository=OTHER)])
    decided = [replace(push("d1"), repository=DECIDED), replace(check("d1"), repository=DECIDED)]
    feed(store, decided, [replace(svc(), repository=DECIDED)])  # ready: nothing waits
    states = {r: store.load(r, 0) for r in (REPO, OTHER, DECIDED)}
    assert next_deadline(states[REPO], SERVICES) is not None and next_deadline(states[DECIDED], SERVICES) is None

    recovered = StateStore(table).recover(lambda r: len(r) % 6)
    assert deadlines_of(recovered) == {r: (len(r) % 6, next_deadline(st, SERVICES)) for r, st in states.items()}

    store.forget({0})
    assert to_json(store.load(REPO, 0)) == to_json(states[REPO])


def test_recover_from_a_table_iterated_in_key_order_groups_each_repository_once() -> None:
    """RocksDB's order: a repository named as the prefix of another ("shop" and "shop-api") must not swallow or
    split the other's records. Parts still in the meta record's delta count over the keys' older copies."""
    table = Table()
    store = StateStore(table, defer_bytes=2_000)
    names = [REPO, REPO + "-api", REPO + "0", OTHER]
    for fact in history(40):  # round robin: in the order written, the repositories' records interleave
        for name in names:
            feed(store, [replace(fact, repository=name)], [replace(s, repository=name) for s in SERVICES])
    fresh = "github.com/acme/fresh"  # one push: its only part is in the meta record's delta, no part key yet
    feed(store, [replace(push("f1"), repository=fresh)], [replace(s, repository=fresh) for s in SERVICES])
    assert key(fresh, "b" + f"{part_of('f1'):02d}") not in table
    names.append(fresh)
    expected = {name: (0, next_deadline(store.load(name, 0), SERVICES)) for name in names}
    assert all(deadline is not None for _, deadline in expected.values())

    in_key_order: dict[bytes, bytes] = dict(sorted(table.items()))
    assert deadlines_of(StateStore(in_key_order, table_sorted=True).recover(lambda r: 0)) == expected
    assert deadlines_of(StateStore(table).recover(lambda r: 0)) == expected  # sorted first


def test_memory_holds_at_most_the_cache_bound_and_evicted_states_read_back_and_decide_the_same() -> None:
    repositories = [f"github.com/acme/r{i}" for i in range(6)]
    services = {r: [replace(svc(f"s{i}"), repository=r)] for i, r in enumerate(repositories)}
    bounded, unbounded = StateStore(Table(), cache_commits=50), StateStore(Table(), cache_commits=10**9)
    decisions: list[list[Decision]] = [[], []]
    for fact in history(30):
        for repository in repositories:  # round robin: every repository is evicted between two of its facts
            moved = replace(fact, repository=repository)
            for i, store in enumerate((bounded, unbounded)):
                state, found = apply(store.load(repository, 0), moved, services[repository], NOW)
                store.save(repository, state, 0)
                decisions[i] += found
                if i == 0:
                    assert store.cached_commits <= 50 + 30  # the bound, plus the one state in use
    assert decisions[0] == decisions[1] and decisions[0]
    for repository in repositories:
        assert to_json(bounded.load(repository, 0)) == to_json(unbounded.load(repository, 0))
    assert unbounded.cached_commits == 6 * 30


def outbox(read: dict[str, int], n: int = 2) -> Outbox:
    value = '{"id": "d%d", "data": {"note": "caf\u00e9 \\"quoted\\""}}'
    records = tuple(
        Record("out", f"svc{i}".encode(), (value % i).encode(), (("content-type", b"application/json"),))
        for i in range(n)
    )
    return Outbox(read, records)


def test_the_outbox_of_the_batch_that_saved_a_state_is_recovered_with_it() -> None:
    table = Table()
    store = StateStore(table)
    feed(store, history(10))
    state = store.load(REPO, 3)
    sent = outbox({"github.events": 41, "ci.events": 7})
    store.save(REPO, state, 3, sent)  # the same state: still written, the outbox must survive a second crash
    assert table.writes[-1][0] == key(REPO, META)
    (found,) = StateStore(table).recover(lambda r: 3)
    assert found.outbox is not None
    assert Outbox.from_json(found.outbox, "out") == sent
    assert to_json(StateStore(table).load(REPO, 3)) == to_json(state)

    unfinished = Outbox.from_json(found.outbox, "out").unacknowledged
    assert unfinished(3, {("github.events", 3): 41, ("ci.events", 3): 8})  # offset 41 itself is not committed
    assert unfinished(3, {("github.events", 3): 42})  # ci.events of partition 3 never committed
    assert not unfinished(3, {("github.events", 3): 42, ("ci.events", 3): 8})
    assert unfinished(4, {("github.events", 3): 42, ("ci.events", 3): 8}), "offsets of the state's own partition"

    table.writes.clear()
    store.save(REPO, state, 3, Outbox({"github.events": 50}))  # nothing to publish, nothing changed
    assert table.writes == []


def test_a_rewrite_writes_every_part_so_a_changelog_that_lost_records_gets_the_whole_state_back() -> None:
    """After a kill -9 the local store can hold a batch's records that never reached the changelog; the replay then
    changes nothing, so nothing would write them again."""
    table = Table()
    store = StateStore(table, defer_bytes=10**9)  # parts stay in the meta record's delta
    feed(store, history(60))
    store.save(REPO, store.load(REPO, 0), 0, outbox({"github.events": 1}), rewrite=False)
    state = store.load(REPO, 0)
    changelog = Table()
    changelog.update({k: v for k, v in table.items() if not k.endswith(META.encode())})  # the meta record was lost
    assert to_json(StateStore(changelog).load(REPO, 0)) != to_json(state)

    store.table = changelog
    store.save(REPO, state, 0, Outbox({"github.events": 1}), rewrite=True)
    written = [k for k, _ in changelog.writes]
    assert written[0] == key(REPO, META) and set(written[1:]) == {
        *(key(REPO, f"b{i:02d}") for i in range(PARTS)),
        key(REPO, TOMBSTONES),
        key(REPO, PROMOTIONS),
    }
    assert to_json(StateStore(changelog).load(REPO, 0)) == to_json(state)


def metas_of(table: dict[bytes, bytes]) -> Any:
    return lambda: ((k, v) for k, v in table.items() if k.endswith(b"\x00" + META.encode()))


def test_recover_from_the_meta_records_alone_finds_what_the_full_scan_finds() -> None:
    """The meta record's `first_waiting` (each service's earliest waiting first fact) gives the same deadlines as
    reading every waiting commit's record, and the outbox comes with it."""
    table = Table()
    store = StateStore(table, defer_bytes=2_000)
    names = [REPO, REPO + "-api", OTHER]
    facts = [*history(60), push("tail", "c00059", t=1), check("tail", t=1)]  # "tail" waits for its lint
    for fact in facts:  # pushes, failures and lint: commits wait, get decided, get superseded
        for name in names:
            feed(store, [replace(fact, repository=name)], [replace(s, repository=name) for s in SERVICES])
    decided = [replace(push("d1"), repository=DECIDED), replace(check("d1"), repository=DECIDED)]
    feed(store, decided, [replace(svc(), repository=DECIDED)])  # ready: nothing waits
    store.save(OTHER, store.load(OTHER, 0), 0, outbox({"github.events": 5}))

    full = list(StateStore(table).recover(lambda r: len(r) % 6))
    only_metas = list(StateStore(table, meta_records=metas_of(table)).recover(lambda r: len(r) % 6))
    assert deadlines_of(only_metas) == deadlines_of(full)
    assert {r.repository: r.outbox for r in only_metas} == {r.repository: r.outbox for r in full}
    assert sum(d is not None for _, d in deadlines_of(full).values()) == 3


def test_a_meta_record_from_before_first_waiting_makes_the_recovery_scan_the_whole_table() -> None:
    table = Table()
    store = StateStore(table)
    feed(store, history(10))
    feed(store, [replace(push("x"), repository=OTHER)], [replace(svc("other"), repository=OTHER)])
    expected = deadlines_of(StateStore(table).recover(lambda r: 0))
    old = orjson.loads(table[key(OTHER, META)])
    del old["first_waiting"]
    table[key(OTHER, META)] = orjson.dumps(old)
    recovered = StateStore(table, meta_records=metas_of(table)).recover(lambda r: 0)
    assert deadlines_of(recovered) == expected


def test_promotion_state_is_stored_apart_read_back_whole_and_flagged_for_the_recovery() -> None:
    table = Table()
    store = StateStore(table, defer_bytes=0)  # every part written at once: what the changelog holds
    feed(store, history(3))
    state = store.load(REPO, 0)
    gates, _ = promotion.on_ready(promotion.empty("shop", REPO), TWO, ready("a" * 40), NOW)
    gates, _ = promotion.on_gate(gates, TWO, completed("a" * 40, 1), NOW)
    gates, _ = promotion.on_gate(gates, TWO, approved("a" * 40, 2), NOW)
    promoted = replace(state, promotions={"shop": gates})
    table.writes.clear()
    store.save(REPO, promoted, 0)
    assert {k for k, _ in table.writes} == {key(REPO, META), key(REPO, PROMOTIONS)}  # no commit part changed

    again = StateStore(table).load(REPO, 0)
    assert again.promotions == promoted.promotions
    assert to_json(again) == to_json(promoted)
    [found] = StateStore(table, meta_records=metas_of(table)).recover(lambda _: 0)
    assert found.promoting  # from the meta record alone: the recovery then loads the state for its soaks' ends
