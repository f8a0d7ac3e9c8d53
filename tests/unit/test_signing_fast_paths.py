"""What signing does its own way for speed gives what the plain definitions give: the envelope and material JSON
(`json.dumps` compact), the time's normal form (`fromisoformat`, UTC, `strftime`), the core digest (SHA-256 over the
concatenated digests), and Ed25519 with libsodium (`cryptography`'s signatures and verdicts)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events.dsse import Envelope, Signature, read_json
from streams.events.dsse_keys import SigningKey, implementation, verify_signature
from streams.events.verification_material import (
    CORE_ATTRIBUTES,
    UnsupportedAttribute,
    VerificationMaterial,
    core_digest,
    normalize_time,
)


def _reference_envelope(envelope: Envelope) -> bytes:
    import base64  # noqa: PLC0415

    signatures = [
        {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()}
        if s.keyid
        else {"sig": base64.b64encode(s.sig).decode()}
        for s in envelope.signatures
    ]
    doc = {
        "payloadType": envelope.payload_type,
        "payload": base64.b64encode(envelope.payload).decode(),
        "signatures": signatures,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # no lone surrogates: UTF-8 has none


@settings(max_examples=300, deadline=None)
@given(_text, st.binary(max_size=40), st.lists(st.tuples(_text, st.binary(max_size=64)), max_size=3))
def test_the_envelope_is_the_compact_json_dumps(
    payload_type: str, payload: bytes, signatures: list[tuple[str, bytes]]
) -> None:
    envelope = Envelope(payload_type, payload, tuple(Signature(k, s) for k, s in signatures))
    assert envelope.to_json() == _reference_envelope(envelope)


@given(st.binary(min_size=32, max_size=32))
def test_the_material_without_extensions_is_the_compact_json_dumps(core: bytes) -> None:
    import base64  # noqa: PLC0415

    expected = json.dumps({"core": base64.b64encode(core).decode()}, separators=(",", ":")).encode()
    assert VerificationMaterial(core).to_json() == expected


def _reference_time(value: str | datetime) -> str:
    moment = datetime.fromisoformat(value.strip().upper()) if isinstance(value, str) else value
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_zones = st.sampled_from([None, UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-9, minutes=-30))])


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_zones), st.booleans())
def test_the_time_normal_form_is_the_plain_definitions(moment: datetime, as_text: bool) -> None:
    value: str | datetime = moment
    if as_text:
        value = moment.isoformat().replace("+00:00", "Z") if moment.tzinfo else moment.isoformat()
    assert normalize_time(value) == _reference_time(value)


@pytest.mark.parametrize("text", ["2026-02-30T10:00:00Z", "2026-12-03T24:00:00Z", "2026-12-03T10:00:60Z"])
def test_a_time_that_does_not_exist_is_refused_on_the_quick_path_too(text: str) -> None:
    with pytest.raises(UnsupportedAttribute):
        normalize_time(text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(CORE_ATTRIBUTES), _text), st.binary(max_size=64))
def test_the_core_digest_is_the_digest_of_the_concatenated_digests(attributes: dict[str, str], data: bytes) -> None:
    attributes["time"] = "2026-12-03T10:49:12.5+01:00"

    def sha(value: bytes) -> bytes:
        return hashlib.sha256(value).digest()

    parts = [
        sha(_reference_time(attributes[name]).encode() if name == "time" else attributes.get(name, "").encode())
        for name in CORE_ATTRIBUTES
    ]
    assert core_digest(attributes, data) == sha(b"".join([*parts, sha(data)]))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_libsodium_makes_the_signature_cryptography_makes_and_both_accept_it(seed: bytes, message: bytes) -> None:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    key = SigningKey("k", private)
    signature = key.sign(message)
    assert signature == private.sign(message)  # Ed25519 is deterministic: the same bytes from both libraries
    assert verify_signature(key.public_key(), signature, message)
    private.public_key().verify(signature, message)  # cryptography's check, raising if it disagreed


@pytest.mark.parametrize(
    "bend",
    [
        lambda sig, msg: (sig[:-1] + bytes([sig[-1] ^ 1]), msg),
        lambda sig, msg: (sig, msg + b"x"),
        lambda sig, msg: (sig[:63], msg),
        lambda sig, msg: (sig + b"\0", msg),
        lambda sig, msg: (b"", msg),
    ],
    ids=["signature bit", "message byte", "short", "long", "empty"],
)
def test_a_bent_ed25519_signature_is_refused_by_both_libraries(bend: Any) -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    message = b"DSSEv1 4 type 5 hello"
    signature, signed = bend(SigningKey("k", private).sign(message), message)
    assert not verify_signature(private.public_key(), signature, signed)
    with pytest.raises(InvalidSignature):
        private.public_key().verify(signature, signed)


def test_the_benchmarks_name_the_library() -> None:
    assert implementation(SigningKey("k", Ed25519PrivateKey.generate())).startswith("Ed25519, libsodium (PyNaCl ")
    assert implementation(SigningKey("k", ec.generate_private_key(ec.SECP256R1()))).startswith(
        "ECDSA P-256, cryptography "
    )


def _reference_json(raw: bytes) -> str:
    def refuse(name: str) -> object:
        raise json.JSONDecodeError(f"{name} is not JSON", name, 0)

    try:
        return repr(json.loads(raw.decode("utf-8"), parse_constant=refuse))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return type(e).__name__


def _read(raw: bytes) -> str:
    try:
        return repr(read_json(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return type(e).__name__


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(_json_values, st.booleans(), st.binary(max_size=2), st.integers(min_value=0))
def test_json_read_by_msgspec_first_reads_as_the_standard_library(
    value: Any, ascii_only: bool, noise: bytes, at: int
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")
    assert _read(text) == _reference_json(text)
    where = at % (len(text) + 1)
    bent = text[:where] + noise + text[where:]
    assert _read(bent) == _reference_json(bent)


@pytest.mark.parametrize(
    "raw", [b'{"a": NaN}', b'{"a": "\\ud800"}', b'{"a": 1, "a": 2}', b"[1e999]", b"\xff", b"12345678901234567890123"]
)
def test_json_the_two_readers_differ_on_is_answered_by_the_standard_library(raw: bytes) -> None:
    assert _read(raw) == _reference_json(raw)
