"""The tests' signing keys: fixed Ed25519 keys derived from their names (no key material in the repository), the
key directory that trusts them, and records signed with them for tests that write straight to input topics."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.adapters.kafka_producer import Record
from streams.adapters.key_directory_file import write_key_document
from streams.events.dsse_keys import SigningKey
from streams.events.key_files import public_pem
from streams.events.signing import signed_structured

TEST_KEY_ID = "tests"


def named_key(key_id: str = TEST_KEY_ID) -> SigningKey:
    """The same key in every run and process: derived from its id."""
    seed = hashlib.sha256(f"autodeploy test key {key_id}".encode()).digest()
    return SigningKey(key_id, Ed25519PrivateKey.from_private_bytes(seed))


TEST_KEY = named_key()
FORGER = named_key("forger")  # never in any directory


def directory_entry(key: SigningKey, **extra: Any) -> dict[str, Any]:
    return {"id": key.key_id, "public_key": public_pem(key), "sources": ["*"], "types": ["*"], **extra}


def write_directory(path: Path, *entries: dict[str, Any]) -> Path:
    write_key_document(path, {"keys": list(entries) or [directory_entry(TEST_KEY)]})
    return path


def write_key(path: Path, key: SigningKey = TEST_KEY) -> Path:
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def key_environment(directory: Path) -> dict[str, str]:
    """AUTODEPLOY_* settings of a process that signs with TEST_KEY and trusts the directory written in `directory`."""
    return {
        "AUTODEPLOY_SIGNING_KEY": str(write_key(directory / f"{TEST_KEY_ID}.pem")),
        "AUTODEPLOY_SIGNING_KEY_ID": TEST_KEY_ID,
        "AUTODEPLOY_KEY_DIRECTORY": str(write_directory(directory / "directory.yaml")),
    }


def configure_session(state: Path) -> None:
    """Every process a test starts (they inherit os.environ) signs with TEST_KEY and trusts it."""
    if "AUTODEPLOY_KEY_DIRECTORY" not in os.environ:
        os.environ.update(key_environment(state / "test-keys"))


def signed(record: Record, key: SigningKey = TEST_KEY) -> Record:
    """A structured record signed as autodeploy's webhook server signs what it publishes."""
    return Record(record.topic, record.key, signed_structured(record.value, key), record.headers)
