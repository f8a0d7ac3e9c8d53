"""Signing key files: a PEM (PKCS#8) private key per signing process, written 0600, never logged.

`autodeploy keys generate` writes one and prints the public entry the key directory needs; the processes read theirs
from AUTODEPLOY_SIGNING_KEY (streams/config.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.events.dsse_keys import PublicKey, SigningKey, UnsupportedKey

__all__ = ["KeyFileError", "generate_key_file", "load_signing_key", "public_pem"]


class KeyFileError(ValueError):
    """The signing key file cannot be used (missing, unreadable, not a private key we sign with); permanent."""


def load_signing_key(path: Path, key_id: str) -> SigningKey:
    """The private key of `path` with the key id its signatures carry. The message of an error names the file, never
    its contents."""
    try:
        pem = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read the signing key {path}: {e.strerror or e}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: unsupported key type {type(key).__name__}: use Ed25519 or ECDSA P-256")
    try:
        return SigningKey(key_id, key)
    except (ValueError, UnsupportedKey) as e:
        raise KeyFileError(f"{path}: {e}") from None


def public_pem(key: PublicKey | SigningKey) -> str:
    public = key.public_key() if isinstance(key, SigningKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def generate_key_file(path: Path, key_id: str, *, algorithm: str = "ed25519") -> SigningKey:
    """A new private key written to `path` (created 0600; an existing file is never overwritten)."""
    private: Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "ed25519":
        private = Ed25519PrivateKey.generate()
    elif algorithm == "p256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise KeyFileError(f"unknown algorithm {algorithm!r}: use ed25519 or p256")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} exists: a key file is never overwritten") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return SigningKey(key_id, private)
