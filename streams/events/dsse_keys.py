"""Signing and verifying DSSE's PAE: Ed25519, and ECDSA P-256 with SHA-256 as raw r||s.

Raw r||s (32 + 32 bytes, big-endian) rather than DER because that is what the CloudEvents vectors carry; ECDSA
signs deterministically (RFC 6979), so a signature is reproducible and needs no random source at signing time.

Keys are `cryptography`'s (PEM files, generation, the key directory) and so is ECDSA. Ed25519 signatures are made and
checked with libsodium (PyNaCl) on the same key bytes: it signs in ~20 us and verifies in ~50 us where `cryptography`
(OpenSSL) takes ~31 and ~97 on the same machine (docs/performance.md), and one signature per event is most of what
signing and verifying cost. Ed25519 is deterministic, so both libraries make the very same signature (a test holds
them to it); libsodium's verification is the stricter of the two (it also refuses small-order points and
non-canonical encodings of the key and of R, which no honest signer produces).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

__all__ = [
    "PublicKey",
    "SigningKey",
    "UnsupportedKey",
    "implementation",
    "load_public_key",
    "signature_check",
    "verify_signature",
]

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
_P256_SCALAR = 32
_ED25519_SIGNATURE = 64


class UnsupportedKey(ValueError):
    """Not a key this extension signs with here: only Ed25519 and ECDSA over P-256."""


def _check_curve(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> None:
    # One curve only: the raw r||s framing and SHA-256 are fixed for P-256, and the spec avoids algorithm agility.
    if not isinstance(key.curve, ec.SECP256R1):
        raise UnsupportedKey(f"ECDSA keys must be on P-256, not {key.curve.name}")


def load_public_key(pem: str | bytes) -> PublicKey:
    """A PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`) of an Ed25519 or P-256 key."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise UnsupportedKey(f"not a PEM public key: {e}") from e
    if isinstance(key, ec.EllipticCurvePublicKey):
        _check_curve(key)
        return key
    if isinstance(key, Ed25519PublicKey):
        return key
    raise UnsupportedKey(f"unsupported key type {type(key).__name__}: use Ed25519 or ECDSA P-256")


def implementation(key: PublicKey | SigningKey) -> str:
    """The algorithm and the library that sign and verify with `key`, as benchmarks and logs name them."""
    public = key.public_key() if isinstance(key, SigningKey) else key
    if isinstance(public, Ed25519PublicKey):
        return f"Ed25519, libsodium (PyNaCl {version('pynacl')})"
    return f"ECDSA P-256, cryptography {version('cryptography')}"


def verify_signature(key: PublicKey, signature: bytes, message: bytes) -> bool:
    """True if `signature` is `key`'s over `message`; any malformed signature is simply not valid."""
    return signature_check(key)(signature, message)


def signature_check(key: PublicKey) -> Callable[[bytes, bytes], bool]:
    """`verify_signature` for one key, with what the key gives prepared once: (signature, message) -> valid."""
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes_raw()

        def ed25519(signature: bytes, message: bytes) -> bool:
            if len(signature) != _ED25519_SIGNATURE:
                return False
            try:
                nacl.bindings.crypto_sign_open(signature + message, raw)
            except nacl.exceptions.BadSignatureError:
                return False
            return True

        return ed25519

    def p256(signature: bytes, message: bytes) -> bool:
        if len(signature) != 2 * _P256_SCALAR:
            return False
        r = int.from_bytes(signature[:_P256_SCALAR], "big")
        s = int.from_bytes(signature[_P256_SCALAR:], "big")
        try:
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    return p256


@dataclass(frozen=True)
class SigningKey:
    """A private key and the key id its signatures carry (the id consumers look it up by)."""

    key_id: str
    private_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    # libsodium's form of an Ed25519 key: the 32-byte seed, then the public key.
    _sodium_secret: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        if not self.key_id:
            raise ValueError("a signing key needs a key id: consumers look keys up by it")
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            _check_curve(self.private_key)
        else:
            secret = self.private_key.private_bytes_raw() + self.private_key.public_key().public_bytes_raw()
            object.__setattr__(self, "_sodium_secret", secret)

    def __repr__(self) -> str:  # the private key never reaches a log through repr
        return f"SigningKey(key_id={self.key_id!r}, {type(self.private_key).__name__})"

    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.private_key, Ed25519PrivateKey):
            return nacl.bindings.crypto_sign(message, self._sodium_secret)[:_ED25519_SIGNATURE]
        der = self.private_key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_P256_SCALAR, "big") + s.to_bytes(_P256_SCALAR, "big")
