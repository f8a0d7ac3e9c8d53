"""A CloudEvent as it travels, for signing and verifying: its attributes and the exact bytes of its data.

Which bytes are the data (and so digested):

- **binary mode** (Kafka binding): the record's value, verbatim; attributes are the `ce_` headers and `content-type`.
- **structured mode, JSON format**: `data_base64` decoded; otherwise the `data` member's value exactly as it
  appears in the record, from its first to its last byte, when `datacontenttype` is absent or JSON (`{"a": 1}` is
  digested with its spaces, never re-serialized); for any other content type a JSON string member is the text, and
  its UTF-8 bytes (unescaped) are digested. Those are the bytes a binary-mode record of the same event carries, so a
  signature survives a change of mode. No `data` member: the empty sequence.

The structured record is read member by member, so a member given twice (a second `data` or `dssematerial` an
intermediary appended) is refused instead of one copy silently winning. Two readers give the same answer: msgspec
checks the whole record and hands back each member's bytes without building the data, and a short walk over the
top level locates them and sees every member name; a record that reader does not take whole (broken JSON, a
repeated member, NaN, a lone surrogate) is read again by the standard library's decoder, which decides and says why.
The first is what a well-formed record costs (a tenth of the second on a 7 KB push); the second is the reference,
and a test holds the two to the same result on every record it can make.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.formats.json import JSONFormat

from streams.events.verification_errors import MalformedEvent
from streams.events.verification_material import MATERIAL_ATTRIBUTE

__all__ = [
    "MalformedEvent",
    "WireEvent",
    "binary_header",
    "from_binary",
    "from_sdk",
    "from_structured",
    "with_material_structured",
    "with_member_structured",
]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_RAW_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_OPEN = re.compile(rb"[ \t\n\r]*\{")
# A member's name and its colon; JSON strings hold no raw control characters, so `.` needs no DOTALL.
_NAME = re.compile(rb'[ \t\n\r]*"([^"\\]*(?:\\.[^"\\]*)*)"[ \t\n\r]*:[ \t\n\r]*')
_AFTER = re.compile(rb"[ \t\n\r]*([,}])")
# What autodeploy writes (encoding.py): compact, string attributes without escapes, `data` last.
_COMPACT_HEAD = re.compile(rb'\{((?:"[^"\\]*":"[^"\\]*",)*)"data":')
_COMPACT_PAIR = re.compile(rb'"([^"\\]*)":"([^"\\]*)"')
_SIMPLE = re.compile(rb'[ \t\n\r]*"([^"\\]*)"[ \t\n\r]*:[ \t\n\r]*"([^"\\]*)"[ \t\n\r]*([,}])')
_CE_PREFIX = "ce_"
_CONTENT_TYPE = "content-type"


@dataclass(frozen=True)
class WireEvent:
    attributes: Mapping[str, object]
    data: bytes

    @property
    def material(self) -> object:
        return self.attributes.get(MATERIAL_ATTRIBUTE)


def _json_media(content_type: object) -> bool:
    return content_type is None or (
        isinstance(content_type, str) and JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type) is not None
    )


def _members(text: str) -> list[tuple[str, Any, tuple[int, int]]]:
    """The top-level members of a JSON object: (name, value, (start, end) of the value in `text`)."""
    index = _WHITESPACE.match(text, 0).end()  # type: ignore[union-attr]  # the pattern matches the empty string
    if text[index : index + 1] != "{":
        raise MalformedEvent("a structured CloudEvent is a JSON object")
    index = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    members: list[tuple[str, Any, tuple[int, int]]] = []
    if text[index : index + 1] == "}":
        index += 1
    else:
        while True:
            name, index = _DECODER.raw_decode(text, index)
            if not isinstance(name, str):
                raise MalformedEvent("a member name must be a string")
            index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
            if text[index : index + 1] != ":":
                raise MalformedEvent(f"expected ':' after member {name!r}")
            start = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
            value, end = _DECODER.raw_decode(text, start)
            members.append((name, value, (start, end)))
            index = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
            separator = text[index : index + 1]
            index = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
            if separator == "}":
                break
            if separator != ",":
                raise MalformedEvent("expected ',' or '}' between members")
    if text[index:].strip(" \t\n\r"):
        raise MalformedEvent("bytes after the JSON object")
    return members


def from_structured(value: bytes) -> WireEvent:
    """A structured-mode JSON record value (see the module's docstring for the data bytes)."""
    return _quick(value) or _exact(value)


def _quick(value: bytes) -> WireEvent | None:
    """The event, read without decoding its data; None where only `_exact` may answer (anything unusual)."""
    try:
        value.decode("utf-8")  # msgspec does not check the bytes of the strings it skips
        raws = _RAW_MEMBERS.decode(value)
    except (UnicodeDecodeError, msgspec.DecodeError):
        return None
    members = _compact(value, raws) or _walk(value, raws)
    if members is None or ("data" in members and "data_base64" in members):
        return None
    attributes = {name: member for name, (member, _) in members.items() if name not in ("data", "data_base64")}
    data = b""
    if "data_base64" in members:
        encoded = members["data_base64"][0]
        if not isinstance(encoded, str):
            return None
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError:  # binascii.Error, or a character outside ASCII
            return None
    elif "data" in members:
        start, end = members["data"][1]
        if _json_media(attributes.get("datacontenttype")) or value[start : start + 1] != b'"':
            data = value[start:end]
        else:
            try:
                data = str(_member_value(value, start, end)).encode("utf-8")
            except UnicodeEncodeError:
                return None
    return WireEvent(attributes, data)


def _walk(value: bytes, raws: Mapping[str, msgspec.Raw]) -> dict[str, tuple[object, tuple[int, int]]] | None:
    """Each top-level member's value (`data`'s left unread) and span, in the record's order; None for a record that
    repeats a member or that this walk does not follow."""
    opening = _OPEN.match(value)
    if opening is None or not raws:
        return None
    members: dict[str, tuple[object, tuple[int, int]]] = {}
    index = opening.end()
    while True:
        step = _SIMPLE.match(value, index)
        if step is not None:  # a string without escapes: every attribute autodeploy writes
            name, member = step.group(1).decode("utf-8"), step.group(2).decode("utf-8")
            span = (step.start(2) - 1, step.end(2) + 1)
        else:
            named = _NAME.match(value, index)
            raw = None if named is None else raws.get(name := _member_name(named.group(1)))
            if named is None or raw is None:
                return None
            span = (named.end(), named.end() + len(raw))
            # msgspec keeps a repeated member's last copy: bytes here that are not that copy are a record `_exact`
            # refuses. Compared as bytes: memoryviews compare item by item.
            if not value.startswith(bytes(raw), span[0]):
                return None
            member = None if name == "data" else _member_value(value, *span)
            step = _AFTER.match(value, span[1])
            if step is None:
                return None
        if name in members:
            return None
        members[name] = (member, span)
        index = step.end()
        if value[index - 1 : index] == b"}":
            return members if len(members) == len(raws) else None  # fewer names than members: one repeated


def _compact(value: bytes, raws: Mapping[str, msgspec.Raw]) -> dict[str, tuple[object, tuple[int, int]]] | None:
    """`_walk` in two regular expressions for a record laid out as autodeploy writes it; None for any other."""
    head = _COMPACT_HEAD.match(value)
    data = raws.get("data")
    if head is None or data is None:
        return None
    end = head.end() + len(data)
    # Only the closing brace after `data`'s bytes: it is the last member and starts right after its name (a data
    # value never ends in whitespace), and, not among the pairs, the only `data`.
    if value[end:].strip(b" \t\n\r") != b"}":
        return None
    pairs = _COMPACT_PAIR.findall(value, 1, head.end())
    members: dict[str, tuple[object, tuple[int, int]]] = {
        name.decode("utf-8"): (member.decode("utf-8"), (0, 0)) for name, member in pairs
    }
    members["data"] = (None, (head.end(), end))
    return members if len(members) == len(pairs) + 1 == len(raws) else None  # else a name repeated


def _member_name(raw: bytes) -> str:
    return raw.decode("utf-8") if b"\\" not in raw else str(json.loads(b'"' + raw + b'"'))


def _member_value(value: bytes, start: int, end: int) -> Any:
    """A member's value as the standard library reads it."""
    return json.loads(value[start:end].decode("utf-8"))


def _exact(value: bytes) -> WireEvent:
    """The reference reader: the standard library's decoder, member by member; says what is wrong."""
    try:
        text = value.decode("utf-8")
        members = _members(text)
    except UnicodeDecodeError as e:
        raise MalformedEvent(f"not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise MalformedEvent(f"not JSON: {e}") from None
    names = [name for name, _, _ in members]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MalformedEvent(f"members given twice: {repeated}")
    attributes = {name: value for name, value, _ in members if name not in ("data", "data_base64")}
    data = b""
    for name, member, (start, end) in members:
        if name == "data_base64":
            if not isinstance(member, str):
                raise MalformedEvent("data_base64 must be a string")
            try:
                data = base64.b64decode(member, validate=True)
            except ValueError:  # binascii.Error, or a character outside ASCII
                raise MalformedEvent("data_base64 is not Base64") from None
        elif name == "data":
            if not _json_media(attributes.get("datacontenttype")) and isinstance(member, str):
                try:
                    data = member.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate escape (`"\\ud800"`) is no text
                    raise MalformedEvent("data is not Unicode text") from None
            else:
                data = text[start:end].encode("utf-8")  # valid UTF-8 re-encodes to the very bytes it came from
    if "data" in names and "data_base64" in names:
        raise MalformedEvent("both data and data_base64")
    return WireEvent(attributes, data)


def from_binary(headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> WireEvent:
    """A binary-mode Kafka record: `ce_<name>` headers (UTF-8) and `content-type` as `datacontenttype`."""
    attributes: dict[str, object] = {}
    for header, raw in headers:
        lowered = header.lower()
        if lowered == _CONTENT_TYPE:
            name = "datacontenttype"
        elif lowered.startswith(_CE_PREFIX):
            name = lowered[len(_CE_PREFIX) :]
        else:
            continue
        if name in attributes:
            raise MalformedEvent(f"attribute {name!r} given twice")
        try:
            attributes[name] = (raw or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEvent(f"header {header!r} is not UTF-8") from None
    return WireEvent(attributes, value or b"")


def from_sdk(event: BaseCloudEvent) -> WireEvent:
    """An SDK event whose data is the bytes that will travel (as autodeploy's producers build them) or None. Data
    given as a dict or str has no bytes yet, so it cannot be signed: the serializer would choose them later."""
    data = event.get_data()
    if data is not None and not isinstance(data, bytes | bytearray):
        raise MalformedEvent("sign the event's data as the bytes that travel, not a parsed value")
    return WireEvent(dict(event.get_attributes()), bytes(data or b""))


def with_material_structured(value: bytes, material: str) -> bytes:
    """The structured record with `dssematerial` added as its last member; the other bytes, the data's among them,
    stay as they were, so the digest just computed still holds."""
    event = from_structured(value)
    if MATERIAL_ATTRIBUTE in event.attributes:
        raise MalformedEvent("the event already carries dssematerial")
    return with_member_structured(value, MATERIAL_ATTRIBUTE, material)


def with_member_structured(value: bytes, name: str, member: str) -> bytes:
    """A structured record (a JSON object, already read) with a string member appended; the other bytes kept."""
    head = value.rstrip(b" \t\n\r")
    empty = head[:-1].rstrip(b" \t\n\r").endswith(b"{")
    added = json.dumps(name).encode() + b":" + json.dumps(member).encode()
    return head[:-1] + (added if empty else b"," + added) + b"}"


def binary_header(material: str) -> tuple[str, bytes]:
    """The header that carries `dssematerial` in binary mode."""
    return (_CE_PREFIX + MATERIAL_ATTRIBUTE, material.encode("ascii"))
