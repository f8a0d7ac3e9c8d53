"""Signing and verifying CloudEvents with the verifiability extension (DSSE), on attributes and data bytes.

`sign(event, key)` returns the `dssematerial` value (its string encoding: Base64 of the UTF-8 DSSE envelope, as it
travels in a JSON member or a `ce_dssematerial` header). `Verifier(keys, policy).verify(event, at)` follows the
spec's verification protocol and returns what verified (`Verified`), None for an unsigned event the policy lets
through, or raises a `VerificationFailed` subclass that says why. No I/O: the caller reads the record
(streams/events/ce_wire.py turns records into `WireEvent`s) and chooses `at` (docs/verifiability.md).
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from streams.domain.keys import KeyDirectory, SignaturePolicy
from streams.events.ce_wire import WireEvent
from streams.events.dsse import Envelope, EnvelopeError, Signature, b64decode_either, pae, parse_envelope
from streams.events.dsse_keys import SigningKey, load_public_key, signature_check
from streams.events.verification_errors import (
    BadSignature,
    CoreDigestMismatch,
    ExtDigestMismatch,
    KeyNotAccepted,
    MalformedEvent,
    MalformedMaterial,
    SignatureRequired,
    UnknownKey,
    UnknownPayloadType,
    UnsupportedExtension,
    VerificationFailed,
)
from streams.events.verification_material import (
    CORE_ATTRIBUTES,
    MATERIAL_ATTRIBUTE,
    PAYLOAD_TYPE,
    AttributeType,
    InvalidMaterial,
    UnsupportedAttribute,
    VerificationMaterial,
    check_signed_names,
    core_digest,
    ext_digest,
    infer_type,
    parse_material,
)

__all__ = [
    "BadSignature",
    "CoreDigestMismatch",
    "ExtDigestMismatch",
    "KeyNotAccepted",
    "MalformedEvent",
    "MalformedMaterial",
    "Mode",
    "Scope",
    "SignatureRequired",
    "UnknownKey",
    "UnknownPayloadType",
    "UnsupportedExtension",
    "VerificationFailed",
    "Verified",
    "Verifier",
    "sign",
]


class Mode(enum.Enum):
    """What `Verified.attributes` holds besides the core (the spec's Consumer Behavior Configuration)."""

    STRICT = "strict"  # the signed extension attributes; unsigned ones are dropped
    PASSTHROUGH = "passthrough"  # as strict, plus the unsigned ones apart in `Verified.unverified`
    CORE_ONLY = "core-only"  # no extension attributes; the ext digest is not checked


class Scope(enum.Enum):
    CORE = "core"
    CORE_AND_EXTENSIONS = "core+extensions"
    EXTENSIONS_SKIPPED = "core, extensions skipped (types unknown)"


@dataclass(frozen=True)
class Verified:
    key_id: str
    scope: Scope
    attributes: Mapping[str, object]  # verified context attributes (and, per mode, extension attributes)
    unverified: Mapping[str, object] = field(default_factory=dict)  # passthrough mode only


def sign(
    event: WireEvent,
    key: SigningKey,
    signed_extensions: Sequence[str] = (),
    extension_types: Mapping[str, AttributeType] | None = None,
) -> str:
    """The `dssematerial` value for `event` (the spec's signing protocol, steps 2-8).

    Refuses (InvalidMaterial, UnsupportedAttribute) a list that repeats a name or names a core attribute or
    `dssematerial`, and an extension whose value no CloudEvents type serializes; an existing `dssematerial` is
    neither digested nor kept (the caller replaces it).
    """
    names = tuple(signed_extensions)
    check_signed_names(names)
    attributes = event.attributes
    if MATERIAL_ATTRIBUTE in attributes:
        attributes = {k: v for k, v in attributes.items() if k != MATERIAL_ATTRIBUTE}
    material = VerificationMaterial(
        core_digest(attributes, event.data),
        ext_digest(attributes, names, extension_types) if names else None,
        names or None,
    )
    payload = material.to_json()
    signature = Signature(key.key_id, key.sign(pae(PAYLOAD_TYPE, payload)))
    envelope = Envelope(PAYLOAD_TYPE, payload, (signature,))
    return base64.b64encode(envelope.to_json()).decode("ascii")


def _read_material(value: object) -> Envelope:
    """Steps 3-5: the attribute's binary value as a UTF-8 JSON envelope of this extension's payload type."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)  # already the Binary value (an SDK that decoded it)
    elif isinstance(value, str):
        try:
            raw = b64decode_either(value)
        except (binascii.Error, UnicodeEncodeError):
            raise MalformedMaterial("dssematerial is not Base64") from None
    else:
        raise MalformedMaterial(f"dssematerial must be Binary, not {type(value).__name__}")
    try:
        envelope = parse_envelope(raw)
    except EnvelopeError as e:
        raise MalformedMaterial(str(e)) from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise UnknownPayloadType(f"unknown payloadType {envelope.payload_type!r}")
    return envelope


class Verifier:
    """Verifies events against a key directory and a signing policy. Public keys are parsed once, here, so a bad
    PEM in the directory fails at start rather than at the first event it would have verified."""

    def __init__(
        self,
        keys: KeyDirectory,
        policy: SignaturePolicy,
        *,
        mode: Mode = Mode.STRICT,
        extension_types: Mapping[str, AttributeType] | None = None,
        infer_extension_types: bool = True,
    ) -> None:
        self._directory = keys
        self._public = {k.key_id: signature_check(load_public_key(k.public_key_pem)) for k in keys.entries()}
        self._policy = policy
        self._mode = mode
        self._types = dict(extension_types or {})
        self._infer = infer_extension_types

    def verify(self, event: WireEvent, at: datetime) -> Verified | None:
        """What verified, or None if the event is unsigned and the policy does not require a signature."""
        source, event_type = event.attributes.get("source"), event.attributes.get("type")
        if not isinstance(source, str) or not isinstance(event_type, str):
            raise MalformedEvent("source and type must be strings")
        value = event.material
        if value is None or value in ("", b""):  # step 2: unsigned
            if self._policy.requires_signature(source, event_type):
                raise SignatureRequired(f"events of {source} / {event_type} must be signed; this one is not")
            return None
        envelope = _read_material(value)
        try:
            material = parse_material(envelope.payload)  # step 6, 8a-8e
        except InvalidMaterial as e:
            raise MalformedMaterial(str(e)) from None
        key_id = self._check_signatures(envelope, source, event_type, at)  # step 7
        attributes = {k: v for k, v in event.attributes.items() if k != MATERIAL_ATTRIBUTE}
        names = material.signedextattrs or ()
        try:
            core = core_digest(attributes, event.data)
        except UnsupportedAttribute as e:
            raise MalformedEvent(str(e)) from None
        if core != material.core:  # step 8
            raise CoreDigestMismatch("the core attributes or the data differ from what was signed")
        try:
            scope = self._check_extensions(attributes, material, names)  # step 9
        except UnsupportedAttribute as e:
            raise UnsupportedExtension(str(e)) from None
        return self._result(key_id, scope, attributes, names)

    def _check_signatures(self, envelope: Envelope, source: str, event_type: str, at: datetime) -> str:
        """The id of the first accepted key whose signature verifies; else the most telling failure."""
        refused: KeyNotAccepted | None = None
        bad = False
        message = envelope.pae()
        for signature in envelope.signatures:
            public = self._public.get(signature.keyid)
            if public is None:
                continue  # step 7.1: only signatures by acceptable keys count
            refusal = self._directory.refusal(signature.keyid, source, event_type, at)
            if refusal is not None:
                refused = refused or KeyNotAccepted(f"key {signature.keyid!r}: {refusal.value}", refusal)
                continue
            if public(signature.sig, message):
                return signature.keyid
            bad = True
        if bad:
            raise BadSignature("no accepted key's signature verifies")
        if refused is not None:
            raise refused
        named = sorted({s.keyid for s in envelope.signatures})
        raise UnknownKey(f"no signature by a known key (key ids: {named})")

    def _check_extensions(
        self, attributes: Mapping[str, object], material: VerificationMaterial, names: Sequence[str]
    ) -> Scope:
        for name in names:  # 8f: a value no type serializes discards the event, whatever the mode
            value = attributes.get(name)
            if value is not None and name not in self._types:
                infer_type(value)
        if material.ext is None:
            return Scope.CORE
        if self._mode is Mode.CORE_ONLY:
            return Scope.CORE
        if not self._infer and any(name not in self._types for name in names):
            return Scope.EXTENSIONS_SKIPPED
        if ext_digest(attributes, names, self._types) != material.ext:
            raise ExtDigestMismatch("a signed extension attribute differs from what was signed")
        return Scope.CORE_AND_EXTENSIONS

    def _result(self, key_id: str, scope: Scope, attributes: Mapping[str, object], names: Sequence[str]) -> Verified:
        core = {k: v for k, v in attributes.items() if k in CORE_ATTRIBUTES}
        if self._mode is Mode.CORE_ONLY:
            return Verified(key_id, scope, core)
        signed = {k: v for k, v in attributes.items() if k in names} if scope is Scope.CORE_AND_EXTENSIONS else {}
        rest = {k: v for k, v in attributes.items() if k not in core and k not in signed}
        unverified = rest if self._mode is Mode.PASSTHROUGH else {}
        return Verified(key_id, scope, {**core, **signed}, unverified)
