"""The two readers of a structured record (streams/events/ce_wire.py) give the same answer on every record: the
quick one (msgspec and a walk over the top level) answers or declines, and where it declines the reference (the
standard library's decoder, member by member) decides. Records are made here: real ones, ones bent by mutations,
and generated ones with repeated names, escapes, odd spacing, NaN and lone surrogates."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.webhook_mapping import github_attributes
from streams.events.ce_wire import _RAW_MEMBERS, MalformedEvent, WireEvent, _compact, _exact, _quick, from_structured
from streams.events.signing import signed_record, signed_structured
from streams.webhooks.provider_events import provider_event
from tests.support.fixtures import fixture
from tests.support.signing import TEST_KEY


def _provider_record(kind: str, path: str) -> bytes:
    body = fixture(path).read_bytes()
    payload = json.loads(body)
    attributes = github_attributes(kind, payload) if kind else circleci_attributes(payload)
    event = provider_event(attributes, "d-1", body, datetime(2026, 12, 3, tzinfo=UTC))
    return signed_record(event, "github.events", TEST_KEY).value


REAL = [
    _provider_record("push", "github/push.with-new-branch.payload.json"),
    _provider_record("workflow_run", "github/workflow_run.completed.payload.json"),
    _provider_record("", "circleci/zulip/github_workflow_completed.json"),
]
SMALL = signed_structured(
    b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "datacontenttype": "application/json",'
    b' "data": {"a": [1, 2.5, "x\\"y"],  "b": null}}',
    TEST_KEY,
)
NAMES = ["id", "source", "type", "time", "data", "data_base64", "datacontenttype", "dssematerial", "ext", "d\u00e4ta"]


def _answer(read: Any, value: bytes) -> str:
    """What a reader says, comparable across runs (NaN is not equal to itself, its repr is)."""
    try:
        return repr(read(value))
    except MalformedEvent as e:
        return f"MalformedEvent({e})"


def _same(value: bytes) -> None:
    reference = _answer(_exact, value)
    quick = _quick(value)
    assert quick is None or repr(quick) == reference
    assert _answer(from_structured, value) == reference


@pytest.mark.parametrize("value", [*REAL, SMALL])
def test_the_quick_reader_reads_autodeploys_records_as_the_reference_does(value: bytes) -> None:
    assert _quick(value) is not None  # else every record would pay for the reference reader
    _same(value)


@pytest.mark.parametrize("value", REAL)
def test_records_as_autodeploy_writes_them_take_the_shortest_way(value: bytes) -> None:
    assert _compact(value, _RAW_MEMBERS.decode(value)) is not None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (SMALL[:-1] + b', "data": {}}', "members given twice: ['data']"),
        (SMALL[:-1] + b', "d\\u0061ta": {}}', "members given twice: ['data']"),
        (SMALL.replace(b'"id": "1"', b'"id": "1", "id": "1"'), "members given twice: ['id']"),
        (b'{"id":"1","id":"2","data":{}}', "members given twice: ['id']"),  # as autodeploy lays records out
        (b'{"id":"1","data":{},"data":{}}', "members given twice: ['data']"),
        (b'{"id":"1","data":{"a":"}"},"data":"}"}', "members given twice: ['data']"),
        (SMALL.replace(b'"id": "1"', b'"id": NaN'), None),
        (SMALL + b" x", "bytes after the JSON object"),
        (b"\xef\xbb\xbf" + SMALL, "a structured CloudEvent is a JSON object"),
        (b'{"datacontenttype": "text/plain", "data": "\\ud800"}', "data is not Unicode text"),
        (b'{"data": "eA==", "data_base64": "eA=="}', "both data and data_base64"),
        (b'{"data_base64": 1}', "data_base64 must be a string"),
        (b'{"data_base64": "e A=="}', "data_base64 is not Base64"),
        (b'{"data_base64": "\\u00e9A=="}', "data_base64 is not Base64"),
        (b'{"id": "\xff"}', "not UTF-8"),
    ],
)
def test_records_the_quick_reader_declines_are_decided_by_the_reference(value: bytes, says: str | None) -> None:
    assert _quick(value) is None
    _same(value)
    if says is not None:
        with pytest.raises(MalformedEvent, match=re.escape(says)):
            from_structured(value)


def test_the_data_bytes_are_the_member_as_written_in_both_readers() -> None:
    value = b' {"id" : "1" ,\n"data"  :  { "a" :  1 }  , "datacontenttype":"application/json"}\n'
    expected = WireEvent({"id": "1", "datacontenttype": "application/json"}, b'{ "a" :  1 }')
    assert _quick(value) == _exact(value) == expected
    text = b'{"datacontenttype": "text/plain", "data": "caf\\u00e9 \xc3\xa9"}'
    assert _quick(text) == _exact(text) == WireEvent({"datacontenttype": "text/plain"}, "café é".encode())


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
_space = st.sampled_from(["", " ", "\n", " \t "])


@st.composite
def _records(draw: st.DrawFn) -> bytes:
    """A JSON object written by hand, so that a name may repeat, with spacing and escaping of its own."""
    members = draw(st.lists(st.tuples(st.sampled_from(NAMES) | st.text(max_size=4), _values), max_size=6))
    ascii_only = draw(st.booleans())
    parts = []
    for name, value in members:
        around = draw(_space), draw(_space), draw(_space)
        text = json.dumps(value, ensure_ascii=ascii_only)
        parts.append(f"{around[0]}{json.dumps(name, ensure_ascii=ascii_only)}{around[1]}:{around[2]}{text}")
    record = draw(_space) + "{" + ",".join(parts) + draw(_space) + "}" + draw(_space)
    return record.encode("utf-8", errors="surrogatepass")


@settings(max_examples=400, deadline=None)
@given(_records())
def test_generated_records_get_the_same_answer(value: bytes) -> None:
    _same(value)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([*REAL, SMALL]), st.integers(min_value=0), st.binary(max_size=3), st.integers(0, 3))
def test_bent_records_get_the_same_answer(value: bytes, where: int, insert: bytes, cut: int) -> None:
    at = where % (len(value) + 1)
    _same(value[:at] + insert + value[at + cut :])
