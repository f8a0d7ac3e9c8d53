"""Webhook signature checks: HMAC-SHA256 of the raw body, constant-time compare, several secrets for rotation."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def _matches(secrets: Sequence[bytes], body: bytes, digest_hex: str) -> bool:
    try:
        given = bytes.fromhex(digest_hex)
    except ValueError:
        return False
    # Check every secret even after a match: the time taken must not tell which secret (or how many) exist.
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(hmac.digest(secret, body, "sha256"), given)
    return found


def github_signature_valid(secrets: Sequence[bytes], body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex>`."""
    if not header or not header.startswith("sha256="):
        return False
    return _matches(secrets, body, header[len("sha256=") :].strip())


def circleci_signature_valid(secrets: Sequence[bytes], body: bytes, header: str | None) -> bool:
    """`circleci-signature: v1=<hex>[,v2=...]`; only v1 counts, so a forger cannot downgrade to a weaker scheme."""
    if not header:
        return False
    v1 = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    return any(_matches(secrets, body, candidate) for candidate in v1)


def github_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def circleci_signature(secret: bytes, body: bytes) -> str:
    return "v1=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
