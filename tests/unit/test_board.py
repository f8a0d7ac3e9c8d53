"""The board without services: records as the worker and the agent write them, folded into the model, served as pages
and live updates by the real aiohttp server (in this process, no broker: the feed is replaced by direct calls)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.adapters.policy_file import load_policies
from streams.board.entries import Entry, Position, Push, decision, outcome, push
from streams.board.feed import FeedStatus, event_of
from streams.board.model import Board
from streams.board.records import provider_link
from streams.board.server import BoardServer
from streams.config import REPO_ROOT
from streams.deploy.decisions import Ready
from streams.deploy.outcomes import Outcome, outcome_record
from streams.domain.facts import EventRef
from streams.domain.policy import Policies
from streams.domain.readiness import Decision
from streams.events.decoding import RawRecord
from streams.worker.output import readiness_record

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
REPO = "github.com/acme/shop"
A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)


@pytest.fixture
def policies() -> Policies:
    return load_policies(REPO_ROOT / "autodeploy.yaml")


def _decision(kind: str, service: str, environment: str, commit: str, at: datetime, **more: Any) -> Entry:
    fact = EventRef(
        "https://github.com/acme/shop", f"delivery-{commit[:4]}", "com.github.push", at, "github.events", 0, 7
    )
    made = Decision(
        kind,  # type: ignore[arg-type]
        service,
        REPO,
        "main",
        commit,
        f"{kind}-{service}-{environment}-{commit[:4]}",
        f"chain-{commit[:4]}",
        (fact,),
        decided_at=at,
        **more,
    )
    record = readiness_record(made, environment, "deploy.readiness")
    raw = RawRecord("deploy.readiness", 0, 1, record.key, record.value, record.headers)
    return decision(event_of(raw), "local-worker", Position("deploy.readiness", 0, 1))


def _outcome(
    kind: str, service: str, environment: str, commit: str, at: datetime, reason: str | None = None, image: str = ""
) -> Entry:
    image = image or f"ghcr.io/acme/{service}:{commit}"
    ready = Ready(f"ready-{service}-{commit[:4]}", f"chain-{commit[:4]}", service, REPO, commit, "main", image)
    made = Outcome(kind, ready, "shop", service, environment, image, reason)  # type: ignore[arg-type]
    record = outcome_record(made, "deploy.events")
    value = json.loads(record.value)
    value["time"] = at.isoformat()  # the agent stamps now; the model orders by the event's time
    return outcome(value, "local-deploy-agent", Position("deploy.events", 0, 1))


def test_records_of_the_worker_and_the_agent_read_back() -> None:
    ready = _decision("ready", "shop", "staging", A, NOW, image=f"ghcr.io/acme/shop:{A}")
    assert (ready.stream, ready.kind, ready.service, ready.environment, ready.commit) == (
        "decision",
        "ready",
        "shop",
        "staging",
        A,
    )
    assert ready.image == f"ghcr.io/acme/shop:{A}" and ready.chain_id == f"chain-{A[:4]}" and ready.time == NOW
    assert [f.position for f in ready.facts] == [Position("github.events", 0, 7)]
    superseded = _decision("superseded", "shop", "staging", C, NOW, superseded_by=D)
    assert superseded.superseded_by == D
    expired = _decision("expired", "shop", "staging", C, NOW, missing=("check lint (latest: failure)",))
    assert expired.missing == ("check lint (latest: failure)",)
    rolled = _outcome("rolledback", "shop", "staging", B, NOW, "verify error-ratio: 0.4")
    assert (rolled.stream, rolled.kind, rolled.environment, rolled.reason) == (
        "outcome",
        "rolledback",
        "staging",
        "verify error-ratio: 0.4",
    )
    assert rolled.triggered_by == f"ready-shop-{B[:4]}" and rolled.signed_by == "local-deploy-agent"


def test_cells_follow_outcomes_and_waiting_follows_pushes_and_earlier_environments(policies: Policies) -> None:
    board = Board(policies)
    staging, production = board.cells[("shop", "staging")], board.cells[("shop", "production")]
    changed = board.add_push(Push(REPO, "main", A, NOW, "d1"))
    assert {c.dom_id for c in changed} == {"cell-shop-staging", "cell-shop-worker-production"}
    assert board.waiting(staging, NOW) == [(A, NOW)]
    assert board.add_push(Push(REPO, "other-branch", B, NOW, "d2")) == []

    changed = board.apply(_decision("ready", "shop", "staging", A, NOW, image="i:a"))
    assert {c.dom_id for c in changed} == {"cell-shop-staging", "cell-shop-production"}
    assert board.waiting(staging, NOW) == []
    assert board.waiting(board.cells[("shop-worker", "production")], NOW) == [(A, NOW)]  # not decided for it yet
    assert board.waiting(production, NOW) == [(A, NOW)]  # ready in staging: waits for production's gates
    board.apply(_outcome("deployed", "shop", "staging", A, NOW))
    assert staging.running is not None and staging.running.commit == A

    later = NOW + timedelta(minutes=1)
    board.apply(_outcome("upgraded", "shop", "staging", B, later))
    # B's rollback restored A's image: A runs again, and the cell remembers the rollback.
    board.apply(_outcome("rolledback", "shop", "staging", B, later, "verify failed", image=f"ghcr.io/acme/shop:{A}"))
    assert staging.running is not None and staging.running.commit == A
    assert staging.rolled_back is not None and staging.rolled_back.commit == B
    assert staging.last_outcome is not None and staging.last_outcome.reason == "verify failed"
    board.apply(_outcome("blocked", "shop", "staging", C, later, "circuit open after 3 consecutive failed rollouts"))
    assert staging.circuit_open.startswith("circuit open")
    board.apply(_outcome("upgraded", "shop", "staging", D, later + timedelta(seconds=1)))
    assert staging.circuit_open == "" and staging.rolled_back is None

    # An older push is forgotten as waiting once its readiness TTL (2h in the demo policy) is over.
    assert board.waiting(board.cells[("shop-worker", "production")], NOW + timedelta(hours=3)) == []


def test_retention_forgets_the_oldest_entries_and_a_redelivery_is_one_entry(policies: Policies) -> None:
    board = Board(policies, retain=3)
    first = _decision("ready", "shop", "staging", A, NOW, image="i:a")
    board.apply(first)
    assert board.apply(first) == []  # at-least-once: the same event id again
    for i, commit in enumerate((B, C, D)):
        board.apply(_decision("ready", "shop", "staging", commit, NOW + timedelta(seconds=i + 1), image="i"))
    assert len(board.timeline) == 3
    assert board.commit_entries(REPO, A) == [] and board.commit_entries(REPO, D) != []
    assert A not in board.cells[("shop", "staging")].decided
    assert [e.commit for e in board.recent(limit=2)] == [D, C]
    assert [e.commit for e in board.recent(kind="ready", service="shop-worker")] == []


def test_provider_links_come_from_the_payload() -> None:
    github_push = {"type": "com.github.push", "data": {"head_commit": {"url": "https://github.com/acme/shop/commit/a"}}}
    assert provider_link(github_push) == "https://github.com/acme/shop/commit/a"
    run = {
        "type": "com.github.workflow_run.completed",
        "data": {"workflow_run": {"html_url": "https://github.com/r/1"}},
    }
    assert provider_link(run) == "https://github.com/r/1"
    circleci = {"type": "com.circleci.workflow-completed", "data": {"workflow": {"url": "https://app.circleci.com/w"}}}
    assert provider_link(circleci) == "https://app.circleci.com/w"
    # Only https links: a payload's javascript: or http: URL is not made a link.
    assert provider_link({"type": "com.github.push", "data": {"compare": "javascript:alert(1)"}}) is None
    assert provider_link({"type": "com.example.other", "data": {}}) is None


def test_a_push_of_a_tag_or_a_deleted_branch_is_not_a_head() -> None:
    base = {"type": "com.github.push", "id": "d", "data": {"repository": {"full_name": "Acme/Shop"}}}
    head = push({**base, "data": {**base["data"], "ref": "refs/heads/main", "after": A}}, NOW)
    assert (head.repository, head.branch, head.commit, head.time) == (REPO, "main", A, NOW)
    for ref, after in (("refs/tags/v1", A), ("refs/heads/main", "0" * 40)):
        with pytest.raises(ValueError, match="not a push"):
            push({**base, "data": {**base["data"], "ref": ref, "after": after}}, NOW)


async def _client(board: Board, status: FeedStatus | None = None) -> tuple[TestClient[Any, Any], BoardServer]:
    server = BoardServer(board, fetcher=None, worker=None, feed_status=lambda: status or _live(), clock=lambda: NOW)
    client = TestClient(TestServer(server.app()))
    await client.start_server()
    return client, server


def _live() -> FeedStatus:
    return FeedStatus(connected=True, caught_up=True)


def _run(test: Callable[[], Any]) -> None:
    asyncio.run(test())


def test_pages_say_the_state_in_words_and_name_the_superseding_commit(policies: Policies) -> None:
    async def test() -> None:
        board = Board(policies)
        client, _ = await _client(board)
        try:
            empty = await (await client.get("/")).text()
            assert "No decisions yet" in empty and "shop-worker" in empty and "staging" in empty
            board.apply(_decision("ready", "shop", "staging", D, NOW, image=f"ghcr.io/acme/shop:{D}"))
            board.apply(_decision("superseded", "shop", "staging", C, NOW, superseded_by=D))
            board.apply(
                _decision("expired", "shop-worker", "production", C, NOW, missing=("check lint (latest: failure)",))
            )
            board.apply(_outcome("upgraded", "shop", "staging", D, NOW))
            grid = await client.get("/")
            assert grid.headers["Content-Security-Policy"].startswith("default-src 'none'")
            text = await grid.text()
            assert '<span class="tone good">running</span>' in text and f"/commits/acme/shop/{D}" in text
            page = await (await client.get(f"/commits/acme/shop/{C}")).text()
            assert "superseded by" in page and f"/commits/acme/shop/{D}" in page and D in page
            assert "waited for check lint (latest: failure)" in page
            short = await client.get(f"/commits/acme/shop/{C[:7]}", allow_redirects=False)
            assert short.status == 302 and short.headers["Location"] == f"/commits/acme/shop/{C}"
            unknown = await client.get("/commits/acme/shop/0123456")
            assert unknown.status == 404 and "no known commit" in await unknown.text()
            timeline = await (await client.get("/timeline?kind=superseded")).text()
            assert C[:7] in timeline and f">{D[:7]}<" in timeline  # the superseded row names D
            assert "upgraded</span>" not in timeline
            assert (await client.get("/healthz")).status == 200
        finally:
            await client.close()

    _run(test)


def test_error_states_are_said(policies: Policies) -> None:
    async def test() -> None:
        client, _ = await _client(Board(policies), FeedStatus(connected=False, error="all brokers down"))
        try:
            text = await (await client.get("/")).text()
            assert "broker unreachable" in text and "all brokers down" in text
        finally:
            await client.close()

    _run(test)


def test_live_updates_reach_an_open_page_as_rendered_fragments(policies: Policies) -> None:
    async def test() -> None:
        board = Board(policies)
        client, server = await _client(board)
        try:
            grid = await client.get("/live?view=grid")
            timeline = await client.get("/live?view=timeline&service=shop-worker")
            assert (await grid.content.readuntil(b"\n\n")).startswith(b"retry:")
            await timeline.content.readuntil(b"\n\n")
            server.publish(_decision("ready", "shop", "staging", A, NOW, image="i:a"))
            server.publish(_decision("ready", "shop-worker", "production", A, NOW, image="i:w"))
            message = await asyncio.wait_for(grid.content.readuntil(b"\n\n"), 5)
            assert message.startswith(b"event: entry\ndata: ")
            cells = json.loads(message.split(b"data: ", 1)[1])["cells"]
            assert set(cells) == {"cell-shop-staging", "cell-shop-production"}
            # The timeline filtered to shop-worker gets only its row.
            row = json.loads((await asyncio.wait_for(timeline.content.readuntil(b"\n\n"), 5)).split(b"data: ", 1)[1])
            assert "shop-worker / production" in row["row"]
            grid.close()
            timeline.close()
        finally:
            await client.close()

    _run(test)


def test_a_binary_mode_record_is_read_as_its_event() -> None:
    """The webhook server keeps the provider's payload byte for byte as the record's value (binary mode)."""
    payload = {"ref": "refs/heads/main", "after": A, "repository": {"full_name": "acme/shop"}}
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"delivery-1"),
        ("ce_source", b"https://github.com/acme/shop"),
        ("ce_type", b"com.github.push"),
        ("content-type", b"application/json"),
    ]
    event = event_of(RawRecord("github.events", 0, 5, b"k", json.dumps(payload).encode(), headers))
    assert event["type"] == "com.github.push" and event["id"] == "delivery-1" and event["data"] == payload
    assert push(event, NOW) == Push(REPO, "main", A, NOW, "delivery-1")


def test_a_worker_that_does_not_answer_is_said_on_the_grid(policies: Policies) -> None:
    from streams.board.worker_client import WorkerClient  # noqa: PLC0415
    from streams.local.processes import free_port  # noqa: PLC0415

    async def test() -> None:
        board = Board(policies)
        board.add_push(Push(REPO, "main", A, NOW, "d1"))
        worker = WorkerClient(f"http://127.0.0.1:{free_port()}", timeout_s=1)  # nothing listens there
        server = BoardServer(board, fetcher=None, worker=worker, feed_status=_live, clock=lambda: NOW)
        client = TestClient(TestServer(server.app()))
        await client.start_server()
        try:
            await server.refresh_explanations()
            text = await (await client.get("/")).text()
            assert "worker unreachable" in text and "worker unreachable: not known" in text
        finally:
            await client.close()

    _run(test)
