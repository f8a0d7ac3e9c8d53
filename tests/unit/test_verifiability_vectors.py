"""The spec's own test vectors (tests/fixtures/cloudevents/verifiability/test-vectors.json), held to the spec's text.

Where a vector agrees with the text it must pass exactly (signature, deterministic re-signing byte for byte, the
full digest of case 5, the discard cases 8a-8f). Where it does not, the test asserts the erratum as it is, so that a
corrected vector (or a code change that starts accepting the broken one) fails here and is looked at.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from streams.domain.keys import KeyDirectory, SignaturePolicy, TrustedKey
from streams.events.ce_wire import WireEvent, from_structured
from streams.events.dsse import Envelope, Signature, pae, parse_envelope
from streams.events.dsse_keys import SigningKey, verify_signature
from streams.events.verifiability import (
    MalformedMaterial,
    Scope,
    UnsupportedExtension,
    Verifier,
    sign,
)
from streams.events.verification_material import (
    PAYLOAD_TYPE,
    VerificationMaterial,
    core_digest,
    ext_digest,
    parse_material,
)
from tests.support.fixtures import fixture

VECTORS: dict[str, Any] = json.loads(fixture("cloudevents/verifiability/test-vectors.json").read_text("utf-8"))
CASES: dict[str, Any] = VECTORS["cases"]
AT = datetime(2026, 12, 3, tzinfo=UTC)
# The cases whose signature verifies over their own payload; 6a and 6b are errata (see below).
GOOD_SIGNATURES = ("1", "2", "3", "4", "5", "7")
JSON_PAYLOADS = ("3", "4", "5", "7")


def _private_key() -> ec.EllipticCurvePrivateKey:
    key = VECTORS["key"]
    private = ec.derive_private_key(int(key["d"]), ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    assert (numbers.x, numbers.y) == (int(key["X"]), int(key["Y"])), "d does not belong to X, Y"
    return private


SIGNING_KEY = SigningKey("testkey", _private_key())
PEM = (
    SIGNING_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def _verifier() -> Verifier:
    keys = KeyDirectory([TrustedKey("testkey", PEM, sources=("example/uri",), types=("example.type*",))])
    return Verifier(keys, SignaturePolicy.everything())


def _envelope(case: str) -> Envelope:
    return parse_envelope(base64.b64decode(CASES[case]["dssematerial"], validate=True))


def test_the_vectors_are_all_there() -> None:
    assert sorted(CASES) == ["1", "2", "3", "4", "5", "6a", "6b", "7"]
    assert sorted(VECTORS["discard"]) == ["8a", "8b", "8c", "8d", "8e", "8f"]


def test_the_dsse_protocol_vector_pae_and_signature() -> None:
    vector = VECTORS["dsse_protocol"]
    message = pae(vector["payload_type"], vector["serialized_body"].encode())
    assert message == vector["pae"].encode()
    expected = parse_envelope(json.dumps(vector["envelope"]).encode())
    assert SIGNING_KEY.sign(message) == expected.signatures[0].sig  # RFC 6979: byte for byte
    assert Envelope(vector["payload_type"], b"hello world", (Signature("", expected.signatures[0].sig),)) == expected


@pytest.mark.parametrize("case", GOOD_SIGNATURES)
def test_the_signature_verifies(case: str) -> None:
    envelope = _envelope(case)
    assert envelope.payload_type == PAYLOAD_TYPE
    assert [s.keyid for s in envelope.signatures] == ["testkey"]
    assert verify_signature(SIGNING_KEY.public_key(), envelope.signatures[0].sig, envelope.pae())


@pytest.mark.parametrize("case", GOOD_SIGNATURES)
def test_deterministic_re_signing_gives_the_same_material_byte_for_byte(case: str) -> None:
    envelope = _envelope(case)
    resigned = Envelope(PAYLOAD_TYPE, envelope.payload, (Signature("testkey", SIGNING_KEY.sign(envelope.pae())),))
    assert base64.b64encode(resigned.to_json()).decode() == CASES[case]["dssematerial"]


@pytest.mark.parametrize("case", JSON_PAYLOADS)
def test_the_payload_is_the_material_in_its_compact_serialization(case: str) -> None:
    payload = _envelope(case).payload
    assert parse_material(payload).to_json() == payload


def test_case_5_signs_from_the_event_to_the_exact_material() -> None:
    event = dict(CASES["5"]["event"])
    data = base64.b64decode(event.pop("data_base64"))
    material = sign(WireEvent(event, data), SIGNING_KEY)
    assert material == CASES["5"]["dssematerial"]
    assert base64.b64encode(core_digest(event, data)).decode() == "qCSeiZkS+hH9WiClfq6plfqYNVy2kvxWRfoBrLEzoDk="


def test_case_5_verifies_as_a_structured_event() -> None:
    record = json.dumps({**CASES["5"]["event"], "dssematerial": CASES["5"]["dssematerial"]}).encode()
    verified = _verifier().verify(from_structured(record), AT)
    assert verified is not None
    assert (verified.key_id, verified.scope) == ("testkey", Scope.CORE)


def test_cases_3_and_4_carry_one_material_since_their_times_are_one_instant() -> None:
    assert CASES["3"]["dssematerial"] == CASES["4"]["dssematerial"]
    assert CASES["3"]["event"]["time"] != CASES["4"]["event"]["time"]
    no_data = {k: v for k, v in CASES["3"]["event"].items() if k != "data"}
    other = {**no_data, "time": CASES["4"]["event"]["time"]}
    assert core_digest(no_data, b"{}") == core_digest(other, b"{}")


def test_the_ext_digests_recompute() -> None:
    event = CASES["7"]["event"]
    seven = parse_material(_envelope("7").payload)
    assert seven.signedextattrs == ("exta", "extb")
    assert ext_digest(event, ["exta", "extb"]) == seven.ext
    walkthrough = VECTORS["walkthrough"]["material"]
    assert base64.b64encode(ext_digest(event, ["exta"])).decode() == walkthrough["ext"]
    assert ext_digest(event, ["exta"]) == hashlib.sha256(hashlib.sha256(b"value1").digest()).digest()


def test_the_walkthrough_envelope_verifies() -> None:
    envelope = parse_envelope(json.dumps(VECTORS["walkthrough"]["envelope"]).encode())
    assert verify_signature(SIGNING_KEY.public_key(), envelope.signatures[0].sig, envelope.pae())
    assert json.loads(envelope.payload) == VECTORS["walkthrough"]["material"]


# Errata: the vectors that disagree with the text, asserted as they are.


@pytest.mark.parametrize("case", ["1", "2"])
def test_erratum_cases_1_and_2_carry_a_raw_digest_not_the_material(case: str) -> None:
    """An earlier revision signed the 32-byte digest itself; the text requires a JSON object, so a conforming
    verifier discards these events at step 6 although their signature is good."""
    envelope = _envelope(case)
    assert len(envelope.payload) == 32
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_material(envelope.payload)
    event = {k: v for k, v in CASES[case]["event"].items() if k != "data"}
    record = WireEvent({**event, "dssematerial": CASES[case]["dssematerial"]}, b'{"hello":"world"}')
    with pytest.raises(MalformedMaterial):
        _verifier().verify(record, AT)


@pytest.mark.parametrize("case", ["6a", "6b"])
def test_erratum_cases_6a_and_6b_do_not_verify(case: str) -> None:
    """Their payload is the material followed by one stray `=` byte (Base64 `...XX09` where `...XX0=` is meant): the
    signature is over the material without it, so over the payload as given it fails, and the payload is no JSON."""
    envelope = _envelope(case)
    assert not verify_signature(SIGNING_KEY.public_key(), envelope.signatures[0].sig, envelope.pae())
    assert envelope.payload.endswith(b"]}=")
    repaired = Envelope(PAYLOAD_TYPE, envelope.payload[:-1], envelope.signatures)
    assert verify_signature(SIGNING_KEY.public_key(), envelope.signatures[0].sig, repaired.pae())
    material = parse_material(repaired.payload)
    assert material.signedextattrs == ("exta",)
    assert material.ext == ext_digest(CASES[case]["event"], ["exta"])
    assert material.core == parse_material(_envelope("7").payload).core  # same event data as case 7
    assert CASES["6a"]["dssematerial"] == CASES["6b"]["dssematerial"]  # extb is not signed in 6b: same material


def test_erratum_the_walkthrough_signed_event_has_the_same_stray_byte() -> None:
    signed = VECTORS["walkthrough"]["signed_event"]
    envelope = parse_envelope(base64.b64decode(signed["dssematerial"]))
    assert envelope.payload.endswith(b"]}=")
    assert not verify_signature(SIGNING_KEY.public_key(), envelope.signatures[0].sig, envelope.pae())


def test_erratum_the_json_data_digests_do_not_recompute_from_the_printed_data() -> None:
    """The JSON cases' `core` depends on data bytes the text does not give: none of the obvious serializations of
    {"hello": "world"} reproduces them (the walkthrough says 6a used compact JSON; compact does not give 6a's)."""
    event = {k: v for k, v in CASES["7"]["event"].items() if k not in ("data", "exta", "extb")}
    seven = parse_material(_envelope("7").payload).core
    for data in (b'{"hello":"world"}', b'{"hello": "world"}', b'{\n  "hello" : "world"\n }', b'{"hello" : "world"}'):
        assert core_digest(event, data) != seven


# Case 8: the discard rules, each in a correctly signed envelope so that only the rule can reject it.


def _signed_material(payload: dict[str, Any]) -> str:
    digest = base64.b64encode(b"\x00" * 32).decode()
    doc = {k: (digest if isinstance(v, str) and v.startswith("<") else v) for k, v in payload.items()}
    body = json.dumps(doc, separators=(",", ":")).encode()
    envelope = Envelope(PAYLOAD_TYPE, body, ())
    signed = Envelope(PAYLOAD_TYPE, body, (Signature("testkey", SIGNING_KEY.sign(envelope.pae())),))
    return base64.b64encode(signed.to_json()).decode()


@pytest.mark.parametrize("case", ["8a", "8b", "8c", "8d", "8e"])
def test_discard_cases(case: str) -> None:
    material = _signed_material(VECTORS["discard"][case]["payload"])
    event = WireEvent({**CASES["7"]["event"], "data": None, "dssematerial": material}, b"{}")
    with pytest.raises(MalformedMaterial):
        _verifier().verify(event, AT)


@pytest.mark.parametrize("name", ["source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"])
def test_discard_case_8b_for_every_core_name(name: str) -> None:
    with pytest.raises(ValueError, match="core context attributes"):
        VerificationMaterial(b"\x00" * 32, b"\x00" * 32, ("exta", name))


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], 1.5])
def test_discard_case_8f_unsupported_type(value: object) -> None:
    attributes = {"id": "1", "source": "example/uri", "specversion": "1.0", "type": "example.type", "exta": value}
    with pytest.raises(ValueError, match="no CloudEvents type"):
        sign(WireEvent(attributes, b""), SIGNING_KEY, ["exta"])
    good = sign(WireEvent({**attributes, "exta": "v"}, b""), SIGNING_KEY, ["exta"])
    with pytest.raises(UnsupportedExtension):
        _verifier().verify(WireEvent({**attributes, "dssematerial": good}, b""), AT)
