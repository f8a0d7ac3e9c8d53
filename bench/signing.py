"""Signing and verification in process, per event: what one signature costs with each algorithm and library
autodeploy could use, alone and inside the full path (a webhook's record signed, a join record verified).

The webhook and join benchmarks measure signing and verification as a ratio of throughput on the shared machine,
where their noise is larger than the cost; these figures are CPU time on one thread, the smallest of --trials runs
(the run least disturbed by the machine's other work), so they compare the choices.

    python -m bench.signing [--trials 15]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import record
from bench.join import events
from streams.domain.webhook_mapping import github_attributes
from streams.events.decoding import RawRecord
from streams.events.dsse_keys import SigningKey, implementation, signature_check
from streams.events.encoding import structured_record
from streams.events.signing import DirectoryVerifier, signed_record
from streams.webhooks.provider_events import provider_event
from tests.support.fixtures import fixture
from tests.support.signing import directory_entry, write_directory

PUSH = fixture("github/push.with-new-branch.payload.json").read_bytes()
MESSAGE = b"DSSEv1 46 https://cloudevents.io/verifiability/dsse/v0.1 58 " + b'{"core":"' + b"A" * 44 + b'"}'
ED25519 = SigningKey("bench-ed25519", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
P256 = SigningKey("bench-p256", ec.derive_private_key(7**77 % (2**255), ec.SECP256R1()))


class OpenSslEd25519(SigningKey):
    """Ed25519 signed through `cryptography` (OpenSSL), as autodeploy did before libsodium: for comparison."""

    def sign(self, message: bytes) -> bytes:
        assert isinstance(self.private_key, Ed25519PrivateKey)
        return self.private_key.sign(message)


def _openssl_check(key: SigningKey) -> Callable[[bytes, bytes], bool]:
    public = key.private_key.public_key()
    assert not isinstance(public, ec.EllipticCurvePublicKey)

    def check(signature: bytes, message: bytes) -> bool:
        try:
            public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    return check


def _per_call_us(action: Callable[[], object], calls: int, trials: int) -> float:
    """CPU time of one call in microseconds: the smallest of `trials` runs of `calls` calls."""
    best = float("inf")
    for _ in range(trials):
        start = time.thread_time()
        for _ in range(calls):
            action()
        best = min(best, time.thread_time() - start)
    return best / calls * 1e6


def _choice(
    label: str, key: SigningKey, check: Callable[[bytes, bytes], bool], work: Path, trials: int
) -> dict[str, Any]:
    signature = key.sign(MESSAGE)
    assert check(signature, MESSAGE)
    payload = orjson.loads(PUSH)
    attributes = github_attributes("push", payload)
    event = provider_event(attributes, "bench-1", PUSH, datetime.now(UTC))
    records = [
        RawRecord(r.topic, 0, i, r.key, r.value, tuple(r.headers))
        for i, r in enumerate(itertools.islice(events(20, 20, checks=2, key=key), 150))
    ]
    verifier = DirectoryVerifier(write_directory(work / f"{key.key_id}.yaml", directory_entry(key)))
    verifier._verifier._public[key.key_id] = check  # the library under measurement
    at = datetime.now(UTC)
    assert all(verifier.verify_record(r, at) is not None for r in records)

    def verify_all() -> None:
        for r in records:
            verifier.verify_record(r, at)

    return {
        "choice": label,
        "sign us": _per_call_us(lambda: key.sign(MESSAGE), 300, trials),
        "verify us": _per_call_us(lambda: check(signature, MESSAGE), 200, trials),
        "webhook record signed us": _per_call_us(lambda: signed_record(event, "t", key), 200, trials),
        "join record verified us": _per_call_us(verify_all, 1, trials) / len(records),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=15)
    args = parser.parse_args()
    openssl_ed25519 = OpenSslEd25519(ED25519.key_id, ED25519.private_key)
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp:
        work = Path(tmp)
        choices = [
            (f"{implementation(ED25519)} (autodeploy's)", ED25519, signature_check(ED25519.public_key())),
            ("Ed25519, cryptography (OpenSSL)", openssl_ed25519, _openssl_check(ED25519)),
            (implementation(P256), P256, signature_check(P256.public_key())),
        ]
        rows = [_choice(label, key, check, work, args.trials) for label, key, check in choices]
        payload = orjson.loads(PUSH)
        unsigned_event = provider_event(github_attributes("push", payload), "bench-1", PUSH, datetime.now(UTC))
        unsigned = _per_call_us(lambda: structured_record(unsigned_event, "t"), 200, args.trials)
    print(
        f"signing: a webhook's record unsigned costs {unsigned:.1f} us ({len(PUSH):,}-byte push); CPU time, one thread"
    )
    record("signing", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
