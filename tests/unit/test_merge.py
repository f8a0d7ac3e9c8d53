"""The time-ordered merge: the order it releases records in depends on the partitions' records alone, never on how
the fetches chunked them; it waits only for partitions that are not caught up by a look at their end made after the
head's timestamp, and never without a bound."""

from __future__ import annotations

from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.worker.merge import BEHIND_MAX_WAIT_MS, Lag, LagOf, TimeOrderedMerge

RANKS = {"github": 0, "ci": 1, "ticks": 2}
Record = tuple[str, int, int, int]  # topic, partition, offset, timestamp ms
FAR = 10**15  # a clock far past every timestamp: only the records decide


def merge(skew_ms: int = 0, idle_ms: int = 1000) -> TimeOrderedMerge[Record]:
    return TimeOrderedMerge[Record](RANKS, skew_ms=skew_ms, idle_ms=idle_ms)


def add(m: TimeOrderedMerge[Record], *records: Record) -> None:
    for record in records:
        topic, partition, offset, timestamp = record
        m.add(topic, partition, offset, timestamp, record)


def everything(last: dict[tuple[str, int], int]) -> LagOf:
    """Caught up once the partition's last offset was received, else behind."""
    return lambda topic, partition, received, since: (
        Lag.NONE if received == last.get((topic, partition), -1) else Lag.SOME
    )


def reference(partitions: dict[tuple[str, int], list[int]]) -> dict[int, list[Record]]:
    """Per group, the merge of whole partitions: repeatedly the smallest head by (timestamp, rank, offset)."""
    queues = {tp: [(tp[0], tp[1], o, ts) for o, ts in enumerate(stamps)] for tp, stamps in partitions.items()}
    out: dict[int, list[Record]] = {}
    while any(queues.values()):
        tp = min((tp for tp, q in queues.items() if q), key=lambda tp: (queues[tp][0][3], RANKS[tp[0]], tp[1]))
        record = queues[tp].pop(0)
        out.setdefault(record[1], []).append(record)
    return out


partitions_strategy = st.dictionaries(
    st.tuples(st.sampled_from(list(RANKS)), st.integers(0, 1)),
    # Timestamps out of order within a partition too (CreateTime, a skewed producer): only heads are compared.
    st.lists(st.integers(0, 30), max_size=12),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(partitions_strategy, st.randoms(use_true_random=False))
def test_any_fetch_chunking_gives_the_same_order(partitions: dict[tuple[str, int], list[int]], rnd: Random) -> None:
    m = merge()
    for topic in RANKS:
        for partition in (0, 1):
            m.start(topic, partition, 0)
    pending = {tp: [(tp[0], tp[1], o, ts) for o, ts in enumerate(stamps)] for tp, stamps in partitions.items()}
    last = {tp: len(stamps) - 1 for tp, stamps in partitions.items()}
    received: dict[tuple[str, int], int] = {}
    out: dict[int, list[Record]] = {}

    def caught_up(topic: str, partition: int, _: int | None, since: int) -> Lag:
        return Lag.NONE if received.get((topic, partition), -1) == last.get((topic, partition), -1) else Lag.SOME

    def release() -> None:
        for record in m.release(FAR, caught_up).items:
            out.setdefault(record[1], []).append(record)

    release()
    while any(pending.values()):
        tp = rnd.choice(sorted(tp for tp, q in pending.items() if q))
        size = rnd.randint(1, 4)  # a fetch hands over the next few records of one partition
        chunk, pending[tp] = pending[tp][:size], pending[tp][size:]
        add(m, *chunk)
        received[tp] = chunk[-1][2]
        release()
    assert len(m) == 0
    assert out == reference(partitions)


def test_the_later_push_waits_for_the_earlier_ci_result_fetched_after_it() -> None:
    """The issue's history: C4's push (t=20) was fetched before C3's last CI result (t=13) on the other partition."""
    m = merge()
    m.start("github", 0, 0)
    m.start("ci", 0, 0)
    m.start("ticks", 0, 0)
    add(m, ("github", 0, 0, 10), ("github", 0, 1, 20))
    last = {("github", 0): 1, ("ci", 0): 0}
    # Not even C3's push goes: a CI result stamped before it may be on its way.
    assert m.release(FAR, _not("ci", last)).items == []
    add(m, ("ci", 0, 0, 13))
    assert [(r[0], r[3]) for r in m.release(FAR, everything(last)).items] == [
        ("github", 10),
        ("ci", 13),
        ("github", 20),
    ]


def _not(topic: str, last: dict[tuple[str, int], int], lag: Lag = Lag.SOME) -> LagOf:
    """Caught up everywhere except on `topic`, whose position is `lag`."""
    return lambda t, partition, received, since: lag if t == topic else everything(last)(t, partition, received, since)


def test_a_head_waits_for_the_skew_only_while_a_partition_is_empty() -> None:
    m = merge(skew_ms=20)
    for topic in RANKS:
        m.start(topic, 0, 0)
    add(m, ("ci", 0, 0, 100))
    caught = everything({("ci", 0): 0})
    assert m.release(110, caught).items == []  # a github record stamped 100-119 may still be appended
    assert [r[3] for r in m.release(120, caught).items] == [100]
    add(m, ("ci", 0, 1, 200), ("github", 0, 0, 150), ("ticks", 0, 0, 300))
    # Every partition has a head: the smallest goes whatever the clock says; then github is empty and not caught up.
    assert [r[3] for r in m.release(0, everything({})).items] == [150]


def test_a_partition_whose_position_is_unknown_holds_the_group_at_most_idle_ms_then_it_goes_on() -> None:
    m = merge(idle_ms=250)
    for topic in RANKS:
        m.start(topic, 0, 0)
    add(m, ("ci", 0, 0, 100), ("ci", 0, 1, 101))
    unknown = _not("github", {("ci", 0): 1}, Lag.UNKNOWN)
    assert m.release(1000, unknown).items == []
    assert m.release(1249, unknown).items == []
    released = m.release(1250, unknown)
    assert ([r[3] for r in released.items], released.forced) == ([100, 101], 2)
    assert released.waited_for == [("github", 0, -1), ("ci", 0, 1), ("ticks", 0, -1)]
    # Once it may go by itself again, the next wait starts afresh.
    add(m, ("ci", 0, 2, 102))
    assert m.release(1300, unknown).items == []


def test_a_partition_known_to_be_behind_is_waited_for_however_busy_the_worker_is_up_to_a_bound() -> None:
    """Its records exist and come once fetched; a worker folding a large batch meanwhile is no reason to go on."""
    m = merge(idle_ms=250)
    for topic in RANKS:
        m.start(topic, 0, 0)
    add(m, ("ci", 0, 0, 100))
    behind = _not("github", {("ci", 0): 0})
    assert m.release(1000, behind).items == []
    assert m.release(1000 + 10 * 250, behind).items == []
    add(m, ("github", 0, 0, 90))
    assert [r[3] for r in m.release(1000 + 10 * 250, everything({("github", 0): 0, ("ci", 0): 0})).items] == [90, 100]
    add(m, ("ci", 0, 1, 200))
    assert m.release(5000, behind).items == []
    assert m.release(5000 + BEHIND_MAX_WAIT_MS, behind).forced == 1


def test_a_record_stamped_far_in_the_future_does_not_stall_the_other_partitions() -> None:
    m = merge(skew_ms=20, idle_ms=250)
    for topic in RANKS:
        m.start(topic, 0, 0)
    add(m, ("ci", 0, 0, 10**12), ("github", 0, 0, 100), ("github", 0, 1, 101))
    caught = everything({("ci", 0): 0, ("github", 0): 1})
    assert [r[3] for r in m.release(1000, caught).items] == [100, 101]
    assert m.release(1000, caught).items == []
    assert [r[3] for r in m.release(1250, caught).items] == [10**12]


def test_a_partition_read_again_from_an_earlier_offset_replaces_what_it_buffered_from_there() -> None:
    m = merge()
    for topic in RANKS:
        m.start(topic, 3, 5)
    add(m, ("github", 3, 5, 1), ("github", 3, 6, 2), ("github", 3, 7, 3), ("ci", 3, 5, 2))
    dropped = m.add("github", 3, 6, 2, ("github", 3, 6, 2))  # a seek back to 6
    assert dropped == [("github", 3, 6, 2), ("github", 3, 7, 3)]
    assert len(m) == 3
    assert sorted(r[2] for r in m.forget([3])) == [5, 5, 6]
    assert len(m) == 0


def test_an_empty_partition_counts_as_caught_up_only_by_a_look_at_its_end_made_after_the_head_plus_skew() -> None:
    """A look made before the head's time proves nothing: a record stamped before the head may have been appended
    since. The group waits for a new look (past idle_ms: the answer is a round trip away), then goes unforced."""
    m = merge(skew_ms=20, idle_ms=250)
    for topic in RANKS:
        m.start(topic, 0, 0)
    add(m, ("ci", 0, 0, 100))
    looked_at = {"github": 90, "ticks": 90}
    asked: list[tuple[str, int]] = []

    def by_looks(topic: str, partition: int, received: int | None, since: int) -> Lag:
        if topic == "ci":
            return Lag.NONE
        if looked_at[topic] < since:
            asked.append((topic, since))
            return Lag.LOOKING
        return Lag.NONE

    assert m.release(500, by_looks).items == []
    assert asked == [("github", 120), ("ticks", 120)]
    assert m.release(500 + 5 * 250, by_looks).items == []  # longer than idle_ms: still waiting, not forced
    looked_at.update(github=130, ticks=125)
    released = m.release(500 + 5 * 250, by_looks)
    assert ([r[3] for r in released.items], released.forced) == ([100], 0)


def test_a_partition_whose_end_is_being_looked_up_is_waited_for_up_to_the_bound_then_the_group_goes_on() -> None:
    m = merge(idle_ms=250)
    for topic in RANKS:
        m.start(topic, 0, 0)
    add(m, ("ci", 0, 0, 100))
    looking = _not("github", {("ci", 0): 0}, Lag.LOOKING)
    assert m.release(1000, looking).items == []
    assert m.release(1000 + BEHIND_MAX_WAIT_MS - 1, looking).items == []
    assert m.release(1000 + BEHIND_MAX_WAIT_MS, looking).forced == 1
