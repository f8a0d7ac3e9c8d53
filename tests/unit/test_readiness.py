"""Readiness rules: scenarios, then generated interleavings of the GitHub and CI streams with duplicates."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.facts import (
    BranchPushed,
    ChangeMerged,
    CheckFinished,
    CheckId,
    CheckKind,
    EventRef,
    Fact,
    ImagePublished,
    Outcome,
)
from streams.domain.policy import KubernetesTarget, ServicePolicy
from streams.domain.readiness import (
    NAMESPACE,
    Decision,
    RepositoryState,
    apply,
    empty_state,
    expire,
    explain,
    from_json,
    next_deadline,
    to_json,
)
from streams.domain.readiness_state import HARD_MAX_COMMITS, MAX_COMMITS

REPO = "github.com/acme/shop"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
NULL = "0" * 40
BUILD = CheckId(CheckKind.CIRCLECI, "build-test")
LINT = CheckId(CheckKind.GITHUB_ACTIONS, "lint")
DOCS = CheckId(CheckKind.STATUS, "docs")
S, F, P = Outcome.SUCCESS, Outcome.FAILURE, Outcome.PENDING
_ids = itertools.count()


def svc(
    name: str = "shop",
    checks: tuple[CheckId, ...] = (BUILD,),
    branch: str = "main",
    package: str | None = None,
    ttl: timedelta = timedelta(hours=1),
) -> ServicePolicy:
    return ServicePolicy(
        name=name,
        repository=REPO,
        branch=branch,
        required_checks=checks,
        image_template=None if package else "ghcr.io/acme/shop:{sha}",
        image_from_package=package,
        target=KubernetesTarget("shop", name, name),
        environment="prod",
        readiness_ttl=ttl,
    )


def ref(t: float = 0, source: str = "https://github.com/acme/shop") -> EventRef:
    n = next(_ids)
    return EventRef(source, f"e{n}", "t", T0 + timedelta(minutes=t), "topic", 0, n)


def push(after: str, before: str = NULL, t: float = 0, forced: bool = False, branch: str = "main") -> BranchPushed:
    return BranchPushed(REPO, branch, before, after, forced, False, ref(t))


def merged(commit: str, t: float = 0) -> ChangeMerged:
    return ChangeMerged(REPO, "main", commit, ref(t))


def check(commit: str, outcome: Outcome = S, attempt: int = 1, c: CheckId = BUILD, t: float = 0) -> CheckFinished:
    return CheckFinished(REPO, commit, c, attempt, outcome, ref(t, "https://circleci.com"))


def image(commit: str, name: str, t: float = 0) -> ImagePublished:
    return ImagePublished(REPO, commit, name, ref(t, "https://ghcr.io"))


NOW = T0 + timedelta(minutes=5)


def run(
    facts: Iterable[Fact], services: Sequence[ServicePolicy], state: RepositoryState | None = None, now: datetime = NOW
) -> tuple[RepositoryState, list[Decision]]:
    state = state or empty_state(REPO)
    out: list[Decision] = []
    for fact in facts:
        state, decisions = apply(state, fact, services, now)
        out += decisions
    return state, out


def summary(decisions: Iterable[Decision]) -> list[tuple[str, str, str, str | None]]:
    return [(d.kind, d.service, d.commit, d.superseded_by) for d in decisions]


# ---------------------------------------------------------------------------------------------------------------
# Scenarios


def test_ci_before_push_is_ready_when_the_push_arrives() -> None:
    c = check("a")
    state, decisions = run([c], [svc()])
    assert decisions == []
    p = push("a")
    _, decisions = run([p], [svc()], state)
    assert summary(decisions) == [("ready", "shop", "a", None)]
    [d] = decisions
    assert d.image == "ghcr.io/acme/shop:a" and d.facts == (p.ref, c.ref) and d.decided_at == NOW
    assert d.branch == "main" and d.repository == REPO


def test_decision_and_chain_ids_are_deterministic() -> None:
    _, first = run([push("a"), check("a")], [svc()])
    _, second = run([check("a"), push("a")], [svc()])
    assert first[0].decision_id == second[0].decision_id
    assert first[0].chain_id == second[0].chain_id
    assert first[0].decision_id == str(uuid.uuid5(NAMESPACE, "shop/a/ready"))
    assert first[0].chain_id == str(uuid.uuid5(NAMESPACE, f"{REPO}@a"))
    _, other = run([push("b"), check("b")], [svc()])
    assert other[0].decision_id != first[0].decision_id


def test_a_merge_alone_puts_a_commit_on_the_branch_but_a_push_of_another_branch_does_not() -> None:
    _, decisions = run([merged("a"), check("a")], [svc()])
    assert summary(decisions) == [("ready", "shop", "a", None)]
    _, decisions = run([push("b", branch="feature"), check("b")], [svc()])
    assert decisions == []


def test_a_rerun_that_succeeds_after_a_failure_makes_it_ready() -> None:
    state, decisions = run([push("a"), check("a", F, 1)], [svc()])
    assert decisions == []
    state, decisions = run([check("a", P, 2, t=1)], [svc()], state)  # the rerun started: still waiting
    assert decisions == []
    _, decisions = run([check("a", S, 2, t=2)], [svc()], state)
    assert summary(decisions) == [("ready", "shop", "a", None)]


def test_pending_after_a_failure_of_the_same_attempt_is_still_waiting() -> None:
    # Commit statuses have no attempts: pending -> failure -> pending -> success, ordered by time.
    state, decisions = run([push("a"), check("a", F, t=1), check("a", P, t=2)], [svc()])
    assert decisions == []
    assert explain(state, "a", [svc()])[0].missing == ("check circleci:build-test (latest: pending)",)


def test_ready_is_final_even_if_a_later_rerun_fails() -> None:
    state, decisions = run([push("a"), check("a", S, 1)], [svc()])
    assert summary(decisions) == [("ready", "shop", "a", None)]
    state, decisions = run([check("a", F, 2, t=1)], [svc()], state)
    assert decisions == []
    [why] = explain(state, "a", [svc()])
    assert why.status == "ready" and why.missing == ("check circleci:build-test (latest: failure)",)


def test_a_late_success_of_an_earlier_attempt_does_not_hide_the_failed_rerun() -> None:
    _, decisions = run([push("a"), check("a", F, 2, t=2), check("a", S, 1, t=1)], [svc()])
    assert decisions == []


def test_a_newer_ready_commit_supersedes_older_waiting_ones_in_the_same_call() -> None:
    state, _ = run([push("a"), push("b", "a"), push("c", "b")], [svc()])
    state, decisions = run([check("c")], [svc()], state)
    assert summary(decisions) == [
        ("ready", "shop", "c", None),
        ("superseded", "shop", "a", "c"),
        ("superseded", "shop", "b", "c"),
    ]
    _, decisions = run([check("a"), check("b")], [svc()], state)
    assert decisions == []  # final


def test_an_older_commit_completing_after_a_newer_one_is_ready_is_superseded() -> None:
    # b is ready before anything about its parent a is known but its place: a never goes out.
    state, decisions = run([check("b"), push("b", "a")], [svc()])
    assert summary(decisions) == [("ready", "shop", "b", None)]
    _, decisions = run([check("a")], [svc()], state)
    assert summary(decisions) == [("superseded", "shop", "a", "b")]


def test_older_ready_first_then_newer_ready_are_both_ready_in_order() -> None:
    _, decisions = run([push("a"), check("a"), push("b", "a"), check("b")], [svc()])
    assert summary(decisions) == [("ready", "shop", "a", None), ("ready", "shop", "b", None)]


def test_a_late_push_of_a_parent_is_ordered_below_its_child() -> None:
    # b's push names a as before, so a is placed below b even though a's own push comes later.
    _, decisions = run([push("b", "a"), check("b"), push("a", "x"), check("a")], [svc()])
    assert summary(decisions) == [("ready", "shop", "b", None), ("superseded", "shop", "a", "b")]


def test_a_merge_placed_before_its_parents_push_moves_up_when_its_push_arrives() -> None:
    _, decisions = run([merged("b"), push("a", "x"), push("b", "a"), check("b"), check("a")], [svc()])
    assert summary(decisions) == [("ready", "shop", "b", None), ("superseded", "shop", "a", "b")]


def test_a_force_push_supersedes_the_waiting_commits_of_the_old_history() -> None:
    state, _ = run([push("a"), push("b", "a"), check("x")], [svc()])
    state, decisions = run([push("c", "b", forced=True)], [svc()], state)
    assert summary(decisions) == [("superseded", "shop", "a", "c"), ("superseded", "shop", "b", "c")]
    state, decisions = run([check("b"), check("c")], [svc()], state)
    assert summary(decisions) == [("ready", "shop", "c", None)]
    _, decisions = run([push("b", "c", t=1), check("b", S, 2)], [svc()], state)  # even if pushed again: final
    assert decisions == []


def test_an_old_history_commit_learnt_of_after_a_force_push_is_superseded() -> None:
    state, _ = run([push("b", "a"), push("c", "b", forced=True)], [svc()])  # a: known only as b's parent
    _, decisions = run([check("a")], [svc()], state)
    assert summary(decisions) == [("superseded", "shop", "a", "c")]


def test_a_waiting_parent_placed_late_below_the_ready_head_is_superseded_at_once() -> None:
    state, _ = run([push("c", "b"), check("c"), check("a")], [svc()])  # a waits, with no place yet
    _, decisions = run([push("b", "a")], [svc()], state)
    assert summary(decisions) == [("superseded", "shop", "b", "c"), ("superseded", "shop", "a", "c")]


def test_a_force_push_back_to_an_older_ready_commit_keeps_order() -> None:
    state, decisions = run([push("a"), check("a"), push("b", "a"), check("b"), push("a", "b", forced=True)], [svc()])
    assert summary(decisions) == [("ready", "shop", "a", None), ("ready", "shop", "b", None)]
    _, decisions = run([push("c", "a"), check("c")], [svc()], state)
    assert summary(decisions) == [("ready", "shop", "c", None)]


def test_a_deleted_branch_changes_nothing() -> None:
    state, _ = run([push("a")], [svc()])
    deleted = BranchPushed(REPO, "main", "a", NULL, False, True, ref())
    after, decisions = apply(state, deleted, [svc()], NOW)
    assert after is state and decisions == []


def test_expiry_after_the_ttl_with_what_is_missing() -> None:
    state, _ = run([push("a", t=0), check("a", c=LINT, t=2)], [svc(ttl=timedelta(hours=1))])
    assert next_deadline(state, [svc()]) == T0 + timedelta(hours=1)
    same, decisions = expire(state, [svc()], T0 + timedelta(minutes=59))
    assert decisions == [] and same is state
    state, decisions = expire(state, [svc()], T0 + timedelta(hours=1))
    assert summary(decisions) == [("expired", "shop", "a", None)]
    assert decisions[0].missing == ("check circleci:build-test (latest: none)",)
    assert next_deadline(state, [svc()]) is None
    _, decisions = run([check("a")], [svc()], state, now=T0 + timedelta(hours=2))
    assert decisions == []


def test_expiry_counts_from_the_earliest_fact_and_lists_push_and_image() -> None:
    service = svc(package="ghcr.io/acme/shop", ttl=timedelta(minutes=30))
    state, _ = run([check("a", F, 2, t=10), check("a", P, 1, t=5)], [service])  # earliest fact at +5
    assert next_deadline(state, [service]) == T0 + timedelta(minutes=35)
    _, decisions = expire(state, [service], T0 + timedelta(minutes=35))
    assert decisions[0].missing == (
        "push to main",
        "check circleci:build-test (latest: failure)",
        "image ghcr.io/acme/shop",
    )


def test_a_fact_arriving_after_the_deadline_first_expires_the_commit() -> None:
    state, _ = run([push("a", t=0)], [svc()])
    _, decisions = run([check("a", t=70)], [svc()], state, now=T0 + timedelta(minutes=70))
    assert summary(decisions) == [("expired", "shop", "a", None)]


def test_commits_irrelevant_to_a_service_never_expire() -> None:
    state, _ = run([check("a", c=DOCS), image("a", "ghcr.io/acme/shop:a"), push("b", branch="dev")], [svc()])
    assert next_deadline(state, [svc()]) is None
    assert expire(state, [svc()], T0 + timedelta(days=9))[1] == []


def test_image_from_package_waits_for_the_published_image() -> None:
    service = svc(package="ghcr.io/acme/shop")
    state, decisions = run([push("a"), check("a"), image("a", "ghcr.io/acme/shop-debug:a")], [service])
    assert decisions == []
    pub = image("a", "ghcr.io/acme/shop@sha256:abc")
    _, decisions = run([pub], [service], state)
    assert summary(decisions) == [("ready", "shop", "a", None)]
    assert decisions[0].image == "ghcr.io/acme/shop@sha256:abc" and decisions[0].facts[-1] == pub.ref


def test_image_names_with_a_registry_port() -> None:
    service = svc(package="localhost:5000/shop")
    _, decisions = run([push("a"), check("a"), image("a", "localhost:5000/shop:1.2")], [service])
    assert decisions[0].image == "localhost:5000/shop:1.2"


def test_an_image_without_a_commit_or_of_another_repository_is_ignored() -> None:
    state = empty_state(REPO)
    for fact in (ImagePublished(REPO, None, "x:1", ref()), ImagePublished("github.com/o/other", "a", "x:1", ref())):
        assert apply(state, fact, [svc()], NOW) == (state, [])


def test_two_services_of_one_repository_with_different_checks_and_branches() -> None:
    api, worker, rel = svc("api"), svc("worker", (BUILD, LINT)), svc("rel", (BUILD,), branch="release")
    state, decisions = run([push("a"), check("a")], [api, worker, rel])
    assert summary(decisions) == [("ready", "api", "a", None)]
    state, decisions = run([check("a", c=LINT), push("a", branch="release")], [api, worker, rel], state)
    assert summary(decisions) == [("ready", "worker", "a", None), ("ready", "rel", "a", None)]


def test_duplicates_change_nothing() -> None:
    facts: list[Fact] = [push("a"), check("a", F), check("a", S, 2), push("b", "a")]
    state = empty_state(REPO)
    for fact in facts:
        state, _ = apply(state, fact, [svc()], NOW)
        again, decisions = apply(state, fact, [svc()], NOW)
        assert again is state and decisions == []


def test_apply_does_not_change_the_old_state() -> None:
    state, _ = run([push("a"), push("b", "a")], [svc()])
    before = to_json(state)
    run([check("b"), check("a")], [svc()], state)
    assert to_json(state) == before


def test_explain_names_present_facts_missing_requirements_and_the_decision() -> None:
    api, worker = svc("api"), svc("worker", (BUILD, LINT), package="ghcr.io/acme/w")
    p, c, d = push("a"), check("a"), check("a", c=DOCS)
    state, _ = run([p, c, d], [api, worker])
    why = {e.service: e for e in explain(state, "a", [api, worker])}
    assert why["api"].status == "ready" and why["api"].present == (p.ref, c.ref) and why["api"].other == (d.ref,)
    assert why["api"].missing == () and not why["api"].waiting and why["api"].position == (0, 0)
    assert why["worker"].status is None and why["worker"].waiting
    assert why["worker"].missing == ("check github_actions:lint (latest: none)", "image ghcr.io/acme/w")
    assert why["worker"].deadline == T0 + timedelta(hours=1)
    [unknown] = explain(state, "zzz", [api])
    assert unknown.status is None and unknown.present == () and unknown.missing[0] == "push to main"


def test_pruning_keeps_the_state_bounded_and_decisions_final() -> None:
    service = svc()
    state = empty_state(REPO)
    previous = NULL
    for i in range(MAX_COMMITS + 300):
        commit = f"c{i:05}"
        state, _ = run([push(commit, previous), check(commit)], [service], state)
        previous = commit
    assert len(state.commits) <= MAX_COMMITS
    assert "c00000" in state.tombstones and state.dropped_undecided == 0
    assert from_json(json.loads(json.dumps(to_json(state)))) == state
    # A redelivered fact of a pruned commit decides nothing again.
    state, decisions = run([check("c00000", S, 2)], [service], state)
    assert decisions == [] and explain(state, "c00000", [service])[0].status == "ready"


def test_beyond_the_hard_bound_even_waiting_commits_are_dropped_and_counted() -> None:
    state = empty_state(REPO)
    for i in range(HARD_MAX_COMMITS + 1):
        state, _ = apply(state, check(f"w{i:05}"), [svc()], NOW)  # relevant, waiting, never decided
    assert len(state.commits) <= HARD_MAX_COMMITS and state.dropped_undecided > 0
    assert sum(len(w) for w in state.waiting.values()) == len(state.commits)
    assert from_json(json.loads(json.dumps(to_json(state)))) == state


# ---------------------------------------------------------------------------------------------------------------
# Generated: two streams, each in order, merged in any way, with duplicates

APP = svc("app", (BUILD, LINT), ttl=timedelta(days=1))
PKG = svc("pkg", (BUILD,), package="ghcr.io/acme/pkg", ttl=timedelta(days=1))
SERVICES = (APP, PKG)
GEN_NOW = T0 + timedelta(hours=2)


@dataclass(frozen=True)
class History:
    github: list[Fact]
    ci: list[Fact]
    rank: dict[str, tuple[int, int]]  # the true order on main
    complete: dict[str, set[str]]  # service -> commits whose facts are all in and good


@st.composite
def histories(draw: st.DrawFn) -> History:
    n = draw(st.integers(1, 6))
    forced_at = draw(st.none() | st.integers(1, n - 1)) if n > 1 else None
    commits = [f"{i + 10:02x}" * 20 for i in range(n)]
    pushes: list[list[Fact]] = []
    rank = {}
    for i, commit in enumerate(commits):
        epoch = int(forced_at is not None and i >= forced_at)
        rank[commit] = (epoch, i)
        before = commits[i - 1] if i else NULL
        p = BranchPushed(REPO, "main", before, commit, i == forced_at, False, ref(i))
        m = ChangeMerged(REPO, "main", commit, ref(i))
        pushes.append(draw(st.sampled_from([[p], [p, m], [m, p]])))
    if n > 1 and forced_at != 1 and draw(st.booleans()):  # the first push delivered late, after its child's
        pushes[0:2] = [pushes[1], pushes[0]]
    github = [fact for group in pushes for fact in group]
    groups: list[list[Fact]] = []
    passed: dict[tuple[str, CheckId], bool] = {}
    imaged: set[str] = set()
    for commit in commits:
        for c in (BUILD, LINT, DOCS):
            # Only the last attempt may succeed: then a commit complete at some point stays complete.
            earlier = draw(st.lists(st.sampled_from([F, P, Outcome.CANCELLED]), max_size=2))
            last = draw(st.sampled_from([S, S, F, P, None]))
            outcomes = [*earlier, *([last] if last else [])]
            passed[commit, c] = last is S
            groups.append([check(commit, o, a, c) for a, o in enumerate(outcomes, 1)])
        if draw(st.booleans()):
            imaged.add(commit)
            groups.append([image(commit, f"ghcr.io/acme/pkg:{commit[:7]}")])
        groups.append(draw(st.sampled_from([[], [image(commit, "ghcr.io/acme/other:1")]])))
    # Any order across groups, each group in its own order; times follow the stream order.
    order = draw(st.permutations([k for k, group in enumerate(groups) for _ in group]))
    queues = [iter(group) for group in groups]
    ci = [retime(next(queues[k]), minute) for minute, k in enumerate(order)]
    complete = {
        s.name: {c for c in commits if all(passed[c, x] for x in s.required_checks) and (s is APP or c in imaged)}
        for s in SERVICES
    }
    return History(github, ci, rank, complete)


def retime(fact: Fact, minute: int) -> Fact:
    assert isinstance(fact, CheckFinished | ImagePublished)
    r = fact.ref
    new = EventRef(r.source, r.id, r.type, T0 + timedelta(minutes=minute), r.topic, r.partition, r.offset)
    if isinstance(fact, CheckFinished):
        return CheckFinished(fact.repository, fact.commit, fact.check, fact.attempt, fact.outcome, new)
    return ImagePublished(fact.repository, fact.commit, fact.image, new)


def interleave(data: st.DataObject, history: History) -> list[Fact]:
    picks = data.draw(st.lists(st.booleans(), min_size=len(history.github) + len(history.ci)))
    github, ci = iter(history.github), iter(history.ci)
    merged_facts = [next(github, None) if pick else next(ci, None) for pick in picks]
    return [f for f in merged_facts if f is not None] + list(github) + list(ci)


def with_duplicates(data: st.DataObject, facts: list[Fact]) -> list[Fact]:
    out = list(facts)
    for _ in range(data.draw(st.integers(0, 8))):
        i = data.draw(st.integers(0, len(facts) - 1))
        original = out.index(facts[i])
        out.insert(data.draw(st.integers(original + 1, len(out))), facts[i])
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_interleavings_keep_the_invariants(data: st.DataObject) -> None:
    history = data.draw(histories())
    facts = interleave(data, history)
    state, decisions = run(facts, SERVICES, now=GEN_NOW)
    _, canonical = run([*history.github, *history.ci], SERVICES, now=GEN_NOW)
    # (c) duplicates never change the decisions
    _, with_dups = run(with_duplicates(data, facts), SERVICES, now=GEN_NOW)
    assert with_dups == decisions
    pairs = [(d.service, d.commit) for d in decisions]
    assert len(pairs) == len(set(pairs)), "one decision per service and commit"
    assert not [d for d in decisions if d.kind == "expired"], "nothing expires before its TTL"
    for service in SERVICES:
        mine = [d for d in decisions if d.service == service.name]
        # (a) ready decisions only ever go forward on the branch
        ready = [history.rank[d.commit] for d in mine if d.kind == "ready"]
        assert ready == sorted(ready) and len(set(ready)) == len(ready)
        assert all(history.rank[d.commit] < history.rank[d.superseded_by] for d in mine if d.superseded_by)
        # (d) every complete commit is ready or superseded, exactly once
        kinds = {d.commit: d.kind for d in mine}
        for commit in history.complete[service.name]:
            assert kinds.get(commit) in {"ready", "superseded"}
        # nothing older than the newest ready commit is left waiting
        if ready:
            assert all(history.rank[c] > ready[-1] for c in state.waiting.get(service.name, ()))
        # (b) the newest complete commit is ready (unless a force push left it in the old history)
        complete = sorted(history.complete[service.name], key=history.rank.__getitem__)
        latest_epoch = max(e for e, _ in history.rank.values())
        if complete and history.rank[complete[-1]][0] == latest_epoch:
            assert kinds[complete[-1]] == "ready"
        # Across interleavings: the same commits get decided, and only complete ones may differ in kind.
        theirs = {d.commit: d.kind for d in canonical if d.service == service.name}
        assert kinds.keys() == theirs.keys()
        assert {c: k for c, k in kinds.items() if c not in complete} == {
            c: k for c, k in theirs.items() if c not in complete
        }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_json_round_trip_of_generated_states(data: st.DataObject) -> None:
    history = data.draw(histories())
    facts = with_duplicates(data, interleave(data, history))
    cut = data.draw(st.integers(0, len(facts)))
    state, _ = run(facts[:cut], SERVICES, now=GEN_NOW)
    state, _ = expire(state, SERVICES, T0 + timedelta(minutes=data.draw(st.integers(0, 3000))))
    restored = from_json(json.loads(json.dumps(to_json(state))))
    assert restored == state
    assert to_json(restored) == to_json(state)
    # and it behaves the same afterwards
    assert run(facts[cut:], SERVICES, restored, GEN_NOW)[1] == run(facts[cut:], SERVICES, state, GEN_NOW)[1]


def test_expiry_counts_from_receipt_not_from_an_old_provider_time() -> None:
    """A CI result whose payload time is years old (a redelivery, an old workflow) but which arrived just now."""
    old = replace(check("a", t=0).ref, time=T0 - timedelta(days=900), received=T0 + timedelta(minutes=4))
    late_check = replace(check("a"), ref=old)
    state, decisions = run([late_check], [svc(ttl=timedelta(minutes=30))])
    assert decisions == []
    assert next_deadline(state, [svc(ttl=timedelta(minutes=30))]) == T0 + timedelta(minutes=34)
    _, decisions = run([push("a", t=6), check("a", c=LINT, t=6)], [svc(ttl=timedelta(minutes=30))], state)
    assert summary(decisions) == [("ready", "shop", "a", None)]
