"""`autodeploy why` takes a unique prefix of a commit's SHA, as git does, and prints whole SHAs."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streams.commands import why_cmds
from streams.domain.readiness_state import CommitRecord, RepositoryState, StrMap, Verdict
from streams.worker.explain import AmbiguousCommit, ambiguous_document, render, resolve_commit

SUPERSEDED = "090b906f1c7e6b2a0f3d4c5b6a79881726354433"
NEWER = "090b2a4e8d1f00112233445566778899aabbccdd"
PRUNED = "7e57ab1e0000000000000000000000000000beef"
REPO = "github.com/acme/shop"
AT = datetime(2024, 1, 1, tzinfo=UTC)


def state() -> RepositoryState:
    return RepositoryState(
        repository=REPO,
        commits=StrMap({SUPERSEDED: CommitRecord(seq=0), NEWER: CommitRecord(seq=1)}),
        tombstones={PRUNED: {"shop": Verdict("superseded", NEWER, AT)}},
    )


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [
        (SUPERSEDED, SUPERSEDED),
        ("090b906", SUPERSEDED),  # the short SHA the demo and `git log --oneline` print
        ("090B906", SUPERSEDED),  # SHAs are case-insensitive
        ("090b2", NEWER),
        ("7e57ab", PRUNED),  # pruned commits keep their decisions: a prefix finds them too
        ("deadbeef", "deadbeef"),  # unknown: asked as given, and answered with nothing known
        ("090", "090"),  # shorter than git's 4 digits: never a prefix (it would match half a repository)
    ],
)
def test_a_unique_prefix_resolves_to_the_whole_sha(asked: str, resolved: str) -> None:
    assert resolve_commit(state(), asked) == resolved


def test_an_ambiguous_prefix_is_an_error_listing_every_candidate() -> None:
    with pytest.raises(AmbiguousCommit) as raised:
        resolve_commit(state(), "090b")
    assert raised.value.candidates == (NEWER, SUPERSEDED)  # sorted
    assert f"\n  {NEWER}\n  {SUPERSEDED}" in str(raised.value)


def document(commit: str, superseded_by: str | None) -> dict[str, Any]:
    return {
        "repository": REPO,
        "commit": commit,
        "services": [
            {
                "service": "shop",
                "branch": "main",
                "decision": "superseded" if superseded_by else None,
                "waiting": False,
                "superseded_by": superseded_by,
                "expires_at": None,
                "present": [],
                "missing": [],
                "other_facts": [],
            }
        ],
    }


def test_render_prints_whole_shas() -> None:
    text = render(document(SUPERSEDED, NEWER))
    assert text.splitlines()[0] == f"{REPO} @ {SUPERSEDED}"
    assert f"shop (main): superseded by {NEWER}" in text


def test_render_says_when_a_prefix_matched_no_known_commit() -> None:
    assert "no commit known to the worker starts with this" in render(document("deadbeef", None))
    assert "no commit known" not in render(document(SUPERSEDED, None))


class FakeWorker(BaseHTTPRequestHandler):
    """The worker's /readiness page, answering from `state()` as the worker does."""

    def do_GET(self) -> None:
        commit = self.path.rsplit("/", 1)[1]
        try:
            status, body = 200, document(resolve_commit(state(), commit), None)
        except AmbiguousCommit as e:
            status, body = 409, ambiguous_document(e)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def worker_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWorker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def why(worker_url: str, commit: str) -> int:
    return why_cmds.run(argparse.Namespace(repository="acme/shop", commit=commit, worker=worker_url, json=False))


def test_why_with_a_short_sha_explains_the_whole_one(worker_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert why(worker_url, "090b906") == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{REPO} @ {SUPERSEDED}"


def test_why_with_an_ambiguous_prefix_lists_the_candidates(worker_url: str) -> None:
    with pytest.raises(AmbiguousCommit, match=f"ambiguous in {REPO}.*\n  {NEWER}\n  {SUPERSEDED}"):
        why(worker_url, "090b")


@pytest.mark.parametrize("commit", ["090", "not-a-sha", "g" * 40])
def test_why_refuses_what_cannot_be_a_sha(commit: str) -> None:
    with pytest.raises(ValueError, match="not a commit SHA"):
        why("http://127.0.0.1:9", commit)  # refused before any request
