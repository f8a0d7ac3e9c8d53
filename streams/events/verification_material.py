"""The verifiability extension's digests and its VERIFICATION_MATERIAL (the DSSE payload), per the spec's text.

Attributes are taken as they travel: a structured-mode JSON member (str, bool or int), a binary-mode header (str),
or an SDK value (str, datetime, bytes). `data` is always the bytes as they travel (see streams/events/ce_wire.py).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from streams.events.dsse import read_json

__all__ = [
    "CORE_ATTRIBUTES",
    "MATERIAL_ATTRIBUTE",
    "PAYLOAD_TYPE",
    "AttributeType",
    "InvalidMaterial",
    "UnsupportedAttribute",
    "VerificationMaterial",
    "canonical_bytes",
    "core_digest",
    "ext_digest",
    "normalize_time",
    "parse_material",
]

PAYLOAD_TYPE = "https://cloudevents.io/verifiability/dsse/v0.1"
MATERIAL_ATTRIBUTE = "dssematerial"
# The order is the digest's: changing it changes every signature.
CORE_ATTRIBUTES = ("id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time")
_EMPTY_DIGEST = hashlib.sha256(b"").digest()
_DIGEST_SIZE = 32
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
# Already UTC at whole or finer seconds, as autodeploy's producers write it: the normal form is its first 19
# characters and a Z, once `fromisoformat` has said the date and time exist (years from 1000: see below).
_UTC_SECONDS = re.compile(r"[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")
_sha256 = hashlib.sha256
_INT32 = range(-(2**31), 2**31)


class AttributeType(enum.Enum):
    """The CloudEvents types an attribute value is canonicalized by (spec: Canonical Value Serialization)."""

    BOOLEAN = "Boolean"
    INTEGER = "Integer"
    STRING = "String"
    BINARY = "Binary"
    URI = "URI"
    URI_REFERENCE = "URI-reference"
    TIMESTAMP = "Timestamp"


class UnsupportedAttribute(ValueError):
    """A value that no CloudEvents type serializes (an object, an array, a float...) or that its declared type does
    not accept (case 8f: such an attribute is never signed, and an event naming it is discarded)."""


class InvalidMaterial(ValueError):
    """The VERIFICATION_MATERIAL breaks the spec's rules (cases 8a-8e, a digest not 32 bytes, not a JSON object)."""


def normalize_time(value: object) -> str:
    """RFC 3339 in UTC with second precision: `2026-05-13T10:49:12.123456+01:00` becomes `2026-05-13T09:49:12Z`.

    A time without a zone is UTC, as the spec says (protobuf timestamps carry none). The subsecond part is cut, not
    rounded: SDKs keep different precision, and cutting is what every one of them can reproduce.
    """
    if isinstance(value, str):
        if _UTC_SECONDS.fullmatch(value):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise UnsupportedAttribute(f"not an RFC 3339 timestamp: {value!r}") from None
            return value[:19] + "Z"
        text = value.strip()
        try:
            # fromisoformat takes `Z` and any number of fraction digits from 3.11 on; RFC 3339 allows `t`/`z` too.
            moment = datetime.fromisoformat(text.upper())
        except ValueError:
            raise UnsupportedAttribute(f"not an RFC 3339 timestamp: {value!r}") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise UnsupportedAttribute(f"a Timestamp must be a string or a datetime, not {type(value).__name__}")
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment.year < 1000:  # strftime does not pad such a year (`999-...`); kept as it signed
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.isoformat()[:19] + "Z"  # the same text, in half the time


def infer_type(value: object) -> AttributeType:
    """The type of an extension value nobody declared, from what the wire gave: JSON `true`/`1`/`"x"`, SDK bytes or
    datetimes. A Binary or Timestamp extension that travels as a string must be declared, or it digests as a
    String (and then fails to verify, never verifies wrongly)."""
    if isinstance(value, bool):
        return AttributeType.BOOLEAN
    if isinstance(value, int):
        return AttributeType.INTEGER
    if isinstance(value, str):
        return AttributeType.STRING
    if isinstance(value, bytes | bytearray):
        return AttributeType.BINARY
    if isinstance(value, datetime):
        return AttributeType.TIMESTAMP
    raise UnsupportedAttribute(f"a {type(value).__name__} value has no CloudEvents type")


def canonical_bytes(value: object, kind: AttributeType) -> bytes:  # noqa: PLR0911  # one return per type
    """The byte sequence the spec hashes for `value` of CloudEvents type `kind`."""
    if kind is AttributeType.BOOLEAN:
        if isinstance(value, bool):
            return b"true" if value else b"false"
        if value in ("true", "false"):  # binary mode: a header carries the string encoding
            return str(value).encode()
        raise UnsupportedAttribute(f"not a Boolean: {value!r}")
    if kind is AttributeType.INTEGER:
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value not in _INT32:
            raise UnsupportedAttribute(f"not an Integer (32-bit, no fraction or exponent): {value!r}")
        return str(value).encode()
    if kind is AttributeType.BINARY:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        if isinstance(value, str):  # the string encoding of Binary is Base64; the digest is over the raw bytes
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error:
                raise UnsupportedAttribute(f"not Base64 (Binary): {value!r}") from None
        raise UnsupportedAttribute(f"not Binary: {value!r}")
    if kind is AttributeType.TIMESTAMP:
        return normalize_time(value).encode()
    if not isinstance(value, str):  # String, URI, URI-reference: the string itself
        raise UnsupportedAttribute(f"not a {kind.value}: {value!r}")
    return value.encode("utf-8")


def _digest_of(value: bytes | None) -> bytes:
    return _EMPTY_DIGEST if value is None else hashlib.sha256(value).digest()


def core_digest(attributes: Mapping[str, object], data: bytes) -> bytes:
    """CORE_DIGEST: SHA256 over the SHA256 of each core attribute (absent: of the empty sequence), then of `data`.

    Absent and empty are the same digest; the spec accepts that (Security Considerations).
    """
    outer = _sha256()
    for name in CORE_ATTRIBUTES:
        value = attributes.get(name)
        if value is None:
            outer.update(_EMPTY_DIGEST)
        elif name == "time":
            outer.update(_sha256(normalize_time(value).encode()).digest())
        elif isinstance(value, str):
            outer.update(_sha256(value.encode("utf-8")).digest())
        else:
            raise UnsupportedAttribute(f"the {name} attribute must be a string, not {type(value).__name__}")
    outer.update(_sha256(data).digest())
    return outer.digest()


def ext_digest(
    attributes: Mapping[str, object], names: Sequence[str], types: Mapping[str, AttributeType] | None = None
) -> bytes:
    """EXT_DIGEST over the attributes `names`, in that order; `types` declares the ones not inferable from values."""
    parts = []
    for name in names:
        value = attributes.get(name)
        if value is None:
            parts.append(_EMPTY_DIGEST)
            continue
        kind = (types or {}).get(name) or infer_type(value)
        parts.append(_digest_of(canonical_bytes(value, kind)))
    return hashlib.sha256(b"".join(parts)).digest()


def check_signed_names(names: Sequence[str]) -> None:
    """The rules on `signedextattrs` (8a-8c): signing refuses such a list, verification discards its event."""
    if len(set(names)) != len(names):
        raise InvalidMaterial(f"signedextattrs repeats a name: {list(names)}")
    core = sorted(set(names) & set(CORE_ATTRIBUTES))
    if core:
        raise InvalidMaterial(f"signedextattrs names core context attributes: {core}")
    if MATERIAL_ATTRIBUTE in names:
        raise InvalidMaterial("signedextattrs names dssematerial itself")


@dataclass(frozen=True)
class VerificationMaterial:
    core: bytes
    ext: bytes | None = None
    signedextattrs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.core) != _DIGEST_SIZE or (self.ext is not None and len(self.ext) != _DIGEST_SIZE):
            raise InvalidMaterial("core and ext must be 32-byte SHA-256 digests")
        if (self.ext is None) != (self.signedextattrs is None):
            raise InvalidMaterial("ext and signedextattrs must both be present or both be absent")
        if self.signedextattrs is not None:
            check_signed_names(self.signedextattrs)

    def to_json(self) -> bytes:
        """Compact JSON, members in the spec's order: the serialization the vectors' payloads use."""
        if self.ext is None:  # what autodeploy signs: json.dumps's bytes, without the call
            return b'{"core":"%b"}' % base64.b64encode(self.core)
        doc: dict[str, object] = {"core": base64.b64encode(self.core).decode("ascii")}
        if self.signedextattrs is not None:
            doc["ext"] = base64.b64encode(self.ext).decode("ascii")
            doc["signedextattrs"] = list(self.signedextattrs)
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _digest_field(doc: Mapping[str, object], name: str) -> bytes | None:
    value = doc.get(name)
    if value is None and name not in doc:
        return None
    if not isinstance(value, str):
        raise InvalidMaterial(f"{name} must be a Base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise InvalidMaterial(f"{name} is not Base64") from None


def parse_material(payload: bytes) -> VerificationMaterial:
    """The DSSE payload as VERIFICATION_MATERIAL, checked (verification protocol step 6); unknown members ignored."""
    try:
        doc = read_json(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidMaterial(f"the payload is not a JSON object: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidMaterial("the payload is not a JSON object")
    core = _digest_field(doc, "core")
    if core is None:
        raise InvalidMaterial("core is missing")
    names = doc.get("signedextattrs")
    if "signedextattrs" in doc and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise InvalidMaterial("signedextattrs must be an array of strings")
    return VerificationMaterial(core, _digest_field(doc, "ext"), tuple(names) if names is not None else None)
