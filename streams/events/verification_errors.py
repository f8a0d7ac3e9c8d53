"""Why a CloudEvent's verification failed: one exception class per reason, all `VerificationFailed`.

`reason` is a short code for metrics and dead-letter headers. Every one of them means: discard the event.
"""

from __future__ import annotations

from streams.domain.keys import KeyRefusal

__all__ = [
    "BadSignature",
    "CoreDigestMismatch",
    "ExtDigestMismatch",
    "KeyNotAccepted",
    "MalformedEvent",
    "MalformedMaterial",
    "SignatureRequired",
    "UnknownKey",
    "UnknownPayloadType",
    "UnsupportedExtension",
    "VerificationFailed",
]


class VerificationFailed(ValueError):
    """The event must be discarded; `reason` is a short code for metrics and dead-letter headers."""

    reason = "verification_failed"


class SignatureRequired(VerificationFailed):
    """No `dssematerial` on an event the policy says must be signed: maybe stripped on the way (downgrade attack)."""

    reason = "unsigned"


class MalformedMaterial(VerificationFailed):
    """`dssematerial` is not Base64, not a UTF-8 JSON DSSE envelope, or its payload breaks the material's rules
    (not JSON, a digest not 32 bytes, cases 8a-8e)."""

    reason = "malformed_material"


class UnknownPayloadType(MalformedMaterial):
    reason = "unknown_payload_type"


class MalformedEvent(VerificationFailed):
    """Not a CloudEvent whose digest can be computed: broken JSON, a member given twice, a core attribute that is
    not a string, an unreadable time."""

    reason = "malformed_event"


class UnsupportedExtension(VerificationFailed):
    """A signed extension attribute has a value no CloudEvents type serializes, or not its declared type (8f)."""

    reason = "unsupported_attribute"


class UnknownKey(VerificationFailed):
    """No signature names a key id the directory knows."""

    reason = "unknown_key"


class KeyNotAccepted(VerificationFailed):
    """The signature's key is known but may not sign this event now (`refusal` says which rule)."""

    reason = "key_not_accepted"

    def __init__(self, message: str, refusal: KeyRefusal) -> None:
        super().__init__(message)
        self.refusal = refusal


class BadSignature(VerificationFailed):
    """An accepted key's signature does not verify over the envelope's payload."""

    reason = "bad_signature"


class CoreDigestMismatch(VerificationFailed):
    """The signature is good but the core attributes or the data changed on the way."""

    reason = "core_digest_mismatch"


class ExtDigestMismatch(VerificationFailed):
    """The signature is good but a signed extension attribute changed (or was removed) on the way."""

    reason = "ext_digest_mismatch"
