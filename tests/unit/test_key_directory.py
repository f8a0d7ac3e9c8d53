"""The key directory's rules (streams.domain.keys), its file (adapters/key_directory_file.py), and their use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.adapters.key_directory_file import load_key_directory
from streams.domain.key_document import KeyDirectoryError
from streams.domain.keys import KeyDirectory, KeyRefusal, SignaturePolicy, SigningRule, TrustedKey
from streams.events.ce_wire import WireEvent
from streams.events.dsse_keys import SigningKey
from streams.events.verifiability import KeyNotAccepted, Verifier, sign

T0 = datetime(2026, 12, 1, tzinfo=UTC)
OLD = SigningKey("webhooks-2026-06", Ed25519PrivateKey.generate())
NEW = SigningKey("webhooks-2026-12", Ed25519PrivateKey.generate())


def _pem(key: SigningKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return raw.decode()


def _entry(key: SigningKey, **times: datetime) -> TrustedKey:
    return TrustedKey(key.key_id, _pem(key), sources=("autodeploy/webhooks",), types=("dev.autodeploy.*",), **times)


EVENT = {"specversion": "1.0", "id": "1", "source": "autodeploy/webhooks", "type": "dev.autodeploy.push"}


def test_source_and_type_patterns() -> None:
    key = _entry(NEW)
    assert key.refusal("autodeploy/webhooks", "dev.autodeploy.push", T0) is None
    assert key.refusal("autodeploy/worker", "dev.autodeploy.push", T0) is KeyRefusal.SOURCE
    assert key.refusal("autodeploy/webhooks", "dev.other.push", T0) is KeyRefusal.TYPE
    assert key.refusal("AUTODEPLOY/webhooks", "dev.autodeploy.push", T0) is KeyRefusal.SOURCE  # case-sensitive
    nothing = TrustedKey("k", "pem", sources=(), types=("*",))
    assert nothing.refusal("autodeploy/webhooks", "t", T0) is KeyRefusal.SOURCE


def test_validity_window() -> None:
    key = _entry(NEW, not_before=T0, not_after=T0 + timedelta(days=90))
    assert key.refusal("autodeploy/webhooks", "dev.autodeploy.push", T0 - timedelta(seconds=1)) is (
        KeyRefusal.NOT_YET_VALID
    )
    assert key.refusal("autodeploy/webhooks", "dev.autodeploy.push", T0) is None
    assert key.refusal("autodeploy/webhooks", "dev.autodeploy.push", T0 + timedelta(days=90)) is KeyRefusal.EXPIRED


def test_revocation_refuses_later_signatures_and_keeps_earlier_ones() -> None:
    revoked = T0 + timedelta(days=3)
    directory = KeyDirectory([_entry(OLD, revoked_at=revoked), _entry(NEW, not_before=T0)])
    verifier = Verifier(directory, SignaturePolicy.everything())
    signed_by_old = WireEvent({**EVENT, "dssematerial": sign(WireEvent(EVENT, b""), OLD)}, b"")
    verified = verifier.verify(signed_by_old, revoked - timedelta(seconds=1))
    assert verified is not None
    assert verified.key_id == OLD.key_id
    with pytest.raises(KeyNotAccepted) as refused:
        verifier.verify(signed_by_old, revoked)
    assert refused.value.refusal is KeyRefusal.REVOKED
    signed_by_new = WireEvent({**EVENT, "dssematerial": sign(WireEvent(EVENT, b""), NEW)}, b"")
    after = verifier.verify(signed_by_new, revoked + timedelta(days=1))  # rotation: the new key carries on
    assert after is not None
    assert after.key_id == NEW.key_id


def test_a_key_not_allowed_for_the_source_is_refused_even_with_a_good_signature() -> None:
    verifier = Verifier(KeyDirectory([_entry(NEW)]), SignaturePolicy.everything())
    event = {**EVENT, "source": "autodeploy/deploy-agent"}
    with pytest.raises(KeyNotAccepted) as refused:
        verifier.verify(WireEvent({**event, "dssematerial": sign(WireEvent(event, b""), NEW)}, b""), T0)
    assert refused.value.refusal is KeyRefusal.SOURCE


def test_directory_rules() -> None:
    with pytest.raises(ValueError, match="twice"):
        KeyDirectory([_entry(NEW), _entry(NEW)])
    with pytest.raises(ValueError, match="timezone"):
        _entry(NEW, not_before=datetime(2026, 12, 1))  # the naive time under test
    with pytest.raises(ValueError, match="later"):
        _entry(NEW, not_before=T0, not_after=T0)


def test_signature_policy() -> None:
    policy = SignaturePolicy((SigningRule(source="autodeploy/*"), SigningRule(type="dev.cdevents.service.deployed.*")))
    assert policy.requires_signature("autodeploy/webhooks", "anything")
    assert policy.requires_signature("elsewhere", "dev.cdevents.service.deployed.0.2.0")
    assert not policy.requires_signature("elsewhere", "dev.cdevents.change.merged.0.2.0")
    assert not SignaturePolicy().requires_signature("autodeploy/webhooks", "x")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_format(tmp_path: Path) -> None:
    pem = _pem(NEW).replace("\n", "\n      ")
    path = _write(
        tmp_path,
        f"""
keys:
  - id: webhooks-2026-12
    public_key: |
      {pem}
    sources: ["autodeploy/webhooks"]
    types: ["dev.autodeploy.*"]
    not_before: 2026-12-01T00:00:00Z
    not_after: "2027-06-01T00:00:00+00:00"
    revoked_at: null
require_signatures:
  - source: "autodeploy/*"
""",
    )
    trust = load_key_directory(path)
    key = trust.keys.get("webhooks-2026-12")
    assert key is not None
    assert (key.not_before, key.not_after) == (T0, datetime(2027, 6, 1, tzinfo=UTC))
    assert trust.policy.requires_signature("autodeploy/worker", "x")
    event = WireEvent({**EVENT, "dssematerial": sign(WireEvent(EVENT, b""), NEW)}, b"")
    assert Verifier(trust.keys, trust.policy).verify(event, T0) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys: {}", "keys: must be a list"),
        ("keys: [{id: a, sources: ['*'], types: ['*']}]", "missing: public_key"),
        ("keys: [{id: a, public_key: x, sources: ['*'], types: ['*']}]", "PEM"),
        ("keys: []\nrequire_signature: []", "unknown keys: require_signature"),
        ("keys: []\nkeys: []", "twice"),
        (
            "keys: [{id: a, public_key: '-----BEGIN PUBLIC KEY-----', sources: ['*'], types: ['*'],"
            " revoked_at: 2026-12-01T00:00:00}]",
            "timezone",
        ),
        ("keys: [{id: a, public_key: '-----BEGIN PUBLIC KEY-----', sources: [], types: ['*']}]", "non-empty list"),
    ],
)
def test_a_wrong_file_says_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(KeyDirectoryError, match=message):
        load_key_directory(_write(tmp_path, text))


def test_a_bad_public_key_fails_when_the_verifier_is_built() -> None:
    bad = TrustedKey("k", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", ("*",), ("*",))
    with pytest.raises(ValueError, match="PEM"):
        Verifier(KeyDirectory([bad]), SignaturePolicy())
