"""A GitHub body decoded down to the mapping's paths maps exactly as the whole payload, and is refused exactly when
orjson refuses it (one documented exception)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import catalog
from streams.domain.webhook_mapping import _GITHUB_RULES, github_attributes, github_paths
from streams.events.decoding import RawRecord, Undecodable, decode
from streams.events.encoding import structured_record
from streams.webhooks.json_bodies import MalformedJson, Projection, loads
from streams.webhooks.provider_events import provider_event
from tests.support.fixtures import FIXTURES
from tests.support.webhooks import github_corpus

ROOT = Path(__file__).resolve().parents[2]
PUSH = (FIXTURES / "github" / "push.with-new-branch.payload.json").read_bytes()


def test_the_corpus_has_payloads_to_compare() -> None:
    assert len(github_corpus()) >= 60


@pytest.mark.parametrize(("event", "path"), github_corpus(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_every_corpus_payload_maps_the_same_from_its_projection(event: str, path: Path) -> None:
    body = path.read_bytes()
    projected = Projection(github_paths(event)).loads(body)
    assert github_attributes(event, projected) == github_attributes(event, orjson.loads(body))
    assert len(orjson.dumps(projected)) < len(body)  # the point: most of the payload is never built


def test_a_projection_holds_only_the_paths_read() -> None:
    projected = Projection(github_paths("push")).loads(PUSH)
    assert projected["ref"] == "refs/heads/master"
    assert set(projected["repository"]) <= {"url", "html_url", "hooks_url", "full_name", "name", "owner"}
    assert "commits" not in projected and "head_commit" not in projected


def test_a_path_inside_a_value_read_whole_is_not_split() -> None:
    projected = Projection(["a", "a.b", "c.d"]).loads(b'{"a": {"b": 1, "x": [2]}, "c": {"d": {"e": 3}, "f": 4}}')
    assert projected == {"a": {"b": 1, "x": [2]}, "c": {"d": {"e": 3}}}


# Values of every JSON shape where the mapping expects objects and strings: wrong shapes take orjson's path.
# (Integers within 64 bits: beyond them orjson reads a float and msgspec an exact int, and ids are not that long.)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def github_payloads(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    event = draw(st.sampled_from([*_GITHUB_RULES, "unknown_event"]))
    payload: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(sorted(github_paths(event))), max_size=8)):
        node = payload
        *parents, leaf = path.split(".")
        for step in parents:
            child = node.setdefault(step, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[leaf] = draw(
                json_values | st.just("https://api.github.com/repos/o/n") | st.just("2024-01-02T03:04:05Z")
            )
    payload.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)))
    return event, payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(github_payloads())
def test_generated_payloads_map_the_same_from_their_projection(case: tuple[str, dict[str, Any]]) -> None:
    event, payload = case
    body = orjson.dumps(payload)
    assert github_attributes(event, Projection(github_paths(event)).loads(body)) == github_attributes(
        event, orjson.loads(body)
    )


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + PUSH,  # a BOM
        PUSH.replace(b'"Codertocat"', b'"Coder\xfftocat"'),  # invalid UTF-8 in a field that is skipped
        PUSH.replace(b'"Codertocat"', b'"Coder\xed\xa0\x80tocat"'),  # an encoded surrogate
        PUSH.replace(b'"master_branch"', b'"master\\qbranch"'),  # an invalid escape
        PUSH.replace(b'"master_branch"', b'"master\\ud800"'),  # a lone surrogate escape
        PUSH.replace(b'"size": 0', b'"size": NaN'),
        PUSH.replace(b'"size": 0', b'"size": 01'),
        PUSH.replace(b'"forks": 1', b'"forks": [1,]'),
        PUSH + b" x",
        PUSH[:-10],
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"",
    ],
    ids=lambda b: repr(b[:16]),
)
def test_what_orjson_refuses_is_refused(body: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    with pytest.raises(MalformedJson):
        Projection(github_paths("push")).loads(body)


def test_other_shapes_are_parsed_whole() -> None:
    projection = Projection(github_paths("push"))
    assert projection.loads(b"[1, 2]") == [1, 2]
    assert projection.loads(b'{"repository": "x", "big": 123456789012345678901234567890}') == {
        "repository": "x",
        "big": 1.2345678901234568e29,
    }


def test_the_one_difference_a_number_beyond_a_double_in_a_skipped_field() -> None:
    # Valid JSON that orjson refuses: skipped, it is accepted, and the worker dead-letters the event, naming why.
    body = PUSH.replace(b'"size": 0', b'"size": 1e400')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    projected = Projection(github_paths("push")).loads(body)
    assert projected["ref"] == "refs/heads/master"
    with pytest.raises(MalformedJson):
        loads(body)
    event = provider_event(github_attributes("push", projected), "d1", body, datetime.now(UTC))
    record = structured_record(event, "github.events")
    raw = RawRecord("github.events", 0, 0, record.key, record.value, record.headers)
    with pytest.raises(Undecodable) as refused:
        decode(raw, catalog.load(ROOT / "topics" / "catalog.yaml").topic("github.events"))
    assert refused.value.reason == "not_cloudevent"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(PUSH) - 1), st.sampled_from(list(b'{}[]",:\\0123456789eE+-.tfn \xff'))), max_size=3
    )
)
def test_corrupted_bodies_are_refused_as_orjson_refuses_them(edits: list[tuple[int, int]]) -> None:
    body = bytearray(PUSH)
    for position, byte in edits:
        body[position] = byte
    try:
        orjson.loads(bytes(body))
    except orjson.JSONDecodeError as e:
        if "infinity" not in str(e):  # see the test above
            with pytest.raises(MalformedJson):
                Projection(github_paths("push")).loads(bytes(body))
    else:
        Projection(github_paths("push")).loads(bytes(body))


def test_a_repeated_key_counts_as_its_last_value_as_in_orjson() -> None:
    body = b'{"repository": {"full_name": "a/b"}, "ref": "x", "repository": {"full_name": "c/d"}, "ref": "y"}'
    projected = Projection(github_paths("push")).loads(body)
    assert projected == {"repository": {"full_name": "c/d"}, "ref": "y"}
    assert github_attributes("push", projected) == github_attributes("push", orjson.loads(body))
