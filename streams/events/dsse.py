"""DSSE v1.0.2 (secure-systems-lab/dsse): the pre-authentication encoding and the JSON envelope.

Written here rather than taken from securesystemslib's `dsse.Envelope`: that class keys signatures by key id (an
envelope with two signatures under one id, or none, cannot be read), mutates the dict it parses, and its ECDSA keys
sign and verify DER signatures with random nonces, while the CloudEvents vectors carry raw r||s from RFC 6979. The
framing is a few lines; the cryptography is `cryptography`'s (streams/events/dsse_keys.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass

import msgspec

__all__ = ["Envelope", "EnvelopeError", "Signature", "b64decode_either", "pae", "parse_envelope", "read_json"]


_DECODE = msgspec.json.Decoder().decode


class EnvelopeError(ValueError):
    """The bytes are not a DSSE JSON envelope: not UTF-8, not JSON, or a required field missing or mistyped."""


def pae(payload_type: str, body: bytes) -> bytes:
    """PAE(UTF8(type), body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body: what is signed, so that neither
    the payload type nor the boundary between type and body can be changed without breaking the signature."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def b64decode_either(text: str) -> bytes:
    """Standard or URL-safe Base64, as DSSE requires verifiers to accept; anything else (stray characters, bad
    padding) is an error rather than silently skipped, which `base64.b64decode` does without validate=True."""
    data = text.encode("ascii", errors="strict")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        return base64.b64decode(data, altchars=b"-_", validate=True)


@dataclass(frozen=True)
class Signature:
    keyid: str  # unset and empty are the same (envelope.md); an unauthenticated hint, never a decision by itself
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_json(self) -> bytes:
        """Compact JSON with the members in the order the CloudEvents vectors use, so a re-signed vector compares
        byte for byte: `json.dumps(doc, separators=(",", ":"), ensure_ascii=False)`, written out by hand because
        that call was a tenth of signing an event (the strings are encoded once and kept)."""
        signatures = b",".join(
            b'{"keyid":%b,"sig":"%b"}' % (_json_string(s.keyid), base64.b64encode(s.sig))
            if s.keyid
            else b'{"sig":"%b"}' % base64.b64encode(s.sig)
            for s in self.signatures
        )
        return b'{"payloadType":%b,"payload":"%b","signatures":[%b]}' % (
            _json_string(self.payload_type),
            base64.b64encode(self.payload),
            signatures,
        )


@functools.lru_cache(maxsize=64)  # a process signs with a key id or two, under one payload type
def _json_string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8")


def _string(doc: dict[str, object], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise EnvelopeError(f"envelope field {name!r} must be a string")
    return value


def _reject_constant(name: str) -> object:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def read_json(raw: bytes) -> object:
    """`json.loads` with NaN and infinities refused, read by msgspec where it can: what msgspec takes, the standard
    library reads to the same values, so it is asked only about the rest (lone surrogates, numbers past a double,
    broken JSON) and says what it thinks of them. (Not orjson: it reads an integer past 64 bits as a float.)"""
    try:
        return _DECODE(raw)
    except msgspec.DecodeError:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def parse_envelope(raw: bytes) -> Envelope:
    """The envelope in `raw` (UTF-8 JSON). Unknown members are ignored, as envelope.md requires."""
    try:
        doc = read_json(raw)
    except UnicodeDecodeError as e:
        raise EnvelopeError(f"the envelope is not UTF-8: {e}") from e
    except json.JSONDecodeError as e:
        raise EnvelopeError(f"the envelope is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise EnvelopeError("the envelope is not a JSON object")
    payload_type = _string(doc, "payloadType")
    try:
        payload = b64decode_either(_string(doc, "payload"))
    except (binascii.Error, UnicodeEncodeError) as e:
        raise EnvelopeError(f"the envelope's payload is not Base64: {e}") from e
    entries = doc.get("signatures")
    if not isinstance(entries, list):
        raise EnvelopeError("envelope field 'signatures' must be a list")
    signatures = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise EnvelopeError("a signature must be a JSON object")
        keyid = entry.get("keyid", "")
        if not isinstance(keyid, str):
            raise EnvelopeError("a signature's keyid must be a string")
        try:
            sig = b64decode_either(_string(entry, "sig"))
        except (binascii.Error, UnicodeEncodeError) as e:
            raise EnvelopeError(f"a signature is not Base64: {e}") from e
        signatures.append(Signature(keyid, sig))
    return Envelope(payload_type, payload, tuple(signatures))
