"""Signing and verifying CloudEvents (streams.events.verifiability): round trips in both modes, tampering, modes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.domain.keys import KeyDirectory, SignaturePolicy, SigningRule, TrustedKey
from streams.events.ce_wire import binary_header, from_binary, from_structured, with_material_structured
from streams.events.dsse_keys import SigningKey
from streams.events.verifiability import (
    BadSignature,
    CoreDigestMismatch,
    ExtDigestMismatch,
    MalformedEvent,
    MalformedMaterial,
    Mode,
    Scope,
    SignatureRequired,
    UnknownKey,
    Verifier,
    sign,
)
from streams.events.verification_material import AttributeType, normalize_time

AT = datetime(2026, 12, 3, tzinfo=UTC)
ED = SigningKey("webhooks-1", Ed25519PrivateKey.generate())
P256 = SigningKey("agent-1", ec.generate_private_key(ec.SECP256R1()))
DATA = b'{"ref": "refs/heads/main",  "sha": "0123abc"}'  # odd spacing on purpose: the bytes are what is signed


def _pem(key: SigningKey) -> str:
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def _verifier(mode: Mode = Mode.STRICT, **options: object) -> Verifier:
    keys = KeyDirectory(
        TrustedKey(k.key_id, _pem(k), sources=("autodeploy/*",), types=("dev.autodeploy.*",)) for k in (ED, P256)
    )
    return Verifier(keys, SignaturePolicy.everything(), mode=mode, **options)  # type: ignore[arg-type]


def _structured(**extra: object) -> bytes:
    head = {
        "specversion": "1.0",
        "id": "d-1",
        "source": "autodeploy/webhooks",
        "type": "dev.autodeploy.push",
        "time": "2026-12-03T10:49:12.123456+01:00",
        "datacontenttype": "application/json",
        "exta": "value1",
        "extn": 7,
        "extunsigned": "x",
        **extra,
    }
    return json.dumps(head)[:-1].encode() + b', "data": ' + DATA + b"}"


def _signed_structured(key: SigningKey = ED, names: tuple[str, ...] = ("exta", "extn")) -> bytes:
    record = _structured()
    return with_material_structured(record, sign(from_structured(record), key, names))


@pytest.mark.parametrize("key", [ED, P256], ids=["ed25519", "p256"])
def test_structured_round_trip(key: SigningKey) -> None:
    verified = _verifier().verify(from_structured(_signed_structured(key)), AT)
    assert verified is not None
    assert verified.key_id == key.key_id
    assert verified.scope is Scope.CORE_AND_EXTENSIONS
    assert verified.attributes["exta"] == "value1"
    assert verified.attributes["extn"] == 7
    assert "extunsigned" not in verified.attributes  # strict: unsigned extension attributes never reach the caller
    assert "dssematerial" not in verified.attributes


def test_the_structured_data_bytes_are_the_member_as_written() -> None:
    assert from_structured(_structured()).data == DATA
    text = b'{"datacontenttype": "text/plain", "data": "caf\\u00e9"}'
    assert from_structured(text).data == "café".encode()
    assert from_structured(b'{"data_base64": "8J+koQ=="}').data == base64.b64decode("8J+koQ==")
    assert from_structured(b'{"id": "1"}').data == b""


def test_a_member_given_twice_is_refused() -> None:
    with pytest.raises(MalformedEvent, match="twice"):
        from_structured(_structured()[:-1] + b', "data": {}}')


@pytest.mark.parametrize("key", [ED, P256], ids=["ed25519", "p256"])
def test_binary_round_trip_and_the_same_signature_in_both_modes(key: SigningKey) -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"d-1"),
        ("ce_source", b"autodeploy/webhooks"),
        ("ce_type", b"dev.autodeploy.push"),
        ("ce_time", b"2026-12-03T09:49:12Z"),
        ("content-type", b"application/json"),
        ("ce_exta", b"value1"),
        ("ce_extn", b"7"),
        ("traceparent", b"not an attribute"),
    ]
    material = sign(from_binary(headers, DATA), key, ["exta", "extn"], {"extn": AttributeType.INTEGER})
    received = from_binary([*headers, binary_header(material)], DATA)
    verified = _verifier(extension_types={"extn": AttributeType.INTEGER}).verify(received, AT)
    assert verified is not None
    assert verified.scope is Scope.CORE_AND_EXTENSIONS
    # The same event in structured mode verifies with the material made in binary mode: same digests.
    structured = with_material_structured(_structured(), material)
    assert _verifier().verify(from_structured(structured), AT) is not None


def test_tampering_with_a_data_byte_is_detected() -> None:
    record = _signed_structured()
    forged = record.replace(b"0123abc", b"0123abd")
    with pytest.raises(CoreDigestMismatch):
        _verifier().verify(from_structured(forged), AT)
    reformatted = record.replace(b'",  "sha"', b'", "sha"')  # a re-serialization is tampering too
    with pytest.raises(CoreDigestMismatch):
        _verifier().verify(from_structured(reformatted), AT)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"id": "d-1"', b'"id": "d-2"'),
        (b'"type": "dev.autodeploy.push"', b'"type": "dev.autodeploy.pushed"'),
        (b'"time": "2026-12-03T10:49:12.123456+01:00"', b'"time": "2026-12-03T10:49:13+01:00"'),
        (b'"datacontenttype": "application/json", ', b""),
    ],
)
def test_tampering_with_a_core_attribute_is_detected(old: bytes, new: bytes) -> None:
    record = _signed_structured()
    assert old in record
    with pytest.raises(CoreDigestMismatch):
        _verifier().verify(from_structured(record.replace(old, new)), AT)


def test_the_time_digest_is_second_precision_in_utc() -> None:
    record = _signed_structured()
    same_instant = record.replace(b"2026-12-03T10:49:12.123456+01:00", b"2026-12-03T09:49:12.999Z")
    assert _verifier().verify(from_structured(same_instant), AT) is not None
    assert normalize_time("2026-05-13T10:49:12.123456+01:00") == "2026-05-13T09:49:12Z"
    assert normalize_time("2026-05-13T09:49:12") == "2026-05-13T09:49:12Z"  # no zone: UTC


@pytest.mark.parametrize(("old", "new"), [(b'"exta": "value1"', b'"exta": "value2"'), (b'"extn": 7, ', b"")])
def test_changing_or_stripping_a_signed_extension_is_detected(old: bytes, new: bytes) -> None:
    record = _signed_structured()
    with pytest.raises(ExtDigestMismatch):
        _verifier().verify(from_structured(record.replace(old, new)), AT)


def test_an_unsigned_extension_may_change_and_is_passed_apart_in_passthrough_mode() -> None:
    record = _signed_structured().replace(b'"extunsigned": "x"', b'"extunsigned": "y"')
    verified = _verifier(Mode.PASSTHROUGH).verify(from_structured(record), AT)
    assert verified is not None
    assert verified.unverified == {"extunsigned": "y"}
    assert "extunsigned" not in verified.attributes


def test_core_only_mode_returns_no_extensions_and_skips_their_digest() -> None:
    record = _signed_structured().replace(b'"exta": "value1"', b'"exta": "changed"')
    verified = _verifier(Mode.CORE_ONLY).verify(from_structured(record), AT)
    assert verified is not None
    assert verified.scope is Scope.CORE
    assert set(verified.attributes) <= {"id", "source", "specversion", "type", "datacontenttype", "time"}


def test_undeclared_types_can_be_skipped_instead_of_inferred() -> None:
    verified = _verifier(infer_extension_types=False).verify(from_structured(_signed_structured()), AT)
    assert verified is not None
    assert verified.scope is Scope.EXTENSIONS_SKIPPED
    assert "exta" not in verified.attributes


def test_a_stripped_signature_is_a_failure_where_the_policy_requires_one() -> None:
    with pytest.raises(SignatureRequired):
        _verifier().verify(from_structured(_structured()), AT)
    keys = KeyDirectory([])
    lenient = Verifier(keys, SignaturePolicy((SigningRule(source="github/*"),)))
    assert lenient.verify(from_structured(_structured()), AT) is None  # not covered: passes as unsigned


def test_a_signature_by_an_unknown_key_or_a_wrong_key() -> None:
    stranger = SigningKey("stranger", Ed25519PrivateKey.generate())
    with pytest.raises(UnknownKey):
        _verifier().verify(from_structured(_signed_structured(stranger)), AT)
    impostor = SigningKey("webhooks-1", Ed25519PrivateKey.generate())  # claims a known key id
    with pytest.raises(BadSignature):
        _verifier().verify(from_structured(_signed_structured(impostor)), AT)


@pytest.mark.parametrize(
    "material",
    [
        "not base64!",
        base64.b64encode(b"\xff\xfe").decode(),
        base64.b64encode(b"{").decode(),
        base64.b64encode(b'{"payloadType": "other", "payload": "", "signatures": []}').decode(),
    ],
)
def test_malformed_material_is_discarded(material: str) -> None:
    record = with_material_structured(_structured(), material)
    with pytest.raises(MalformedMaterial):
        _verifier().verify(from_structured(record), AT)


def test_signing_refuses_a_bad_list_and_an_existing_material_is_not_digested() -> None:
    with pytest.raises(ValueError, match="repeats"):
        sign(from_structured(_structured()), ED, ["exta", "exta"])
    with pytest.raises(ValueError, match="dssematerial"):
        sign(from_structured(_structured()), ED, ["dssematerial"])
    once = from_structured(_signed_structured())
    assert sign(once, ED, ["exta", "extn"]) == sign(from_structured(_structured()), ED, ["exta", "extn"])
