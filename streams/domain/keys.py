"""Who may sign which CloudEvents, and which must be signed: the key directory's rules, without any cryptography.

A key is accepted for an event only if the directory knows its id, the event's `source` and `type` match the key's
patterns, and the reference time lies in the key's validity and before its revocation. The reference time is chosen
by the caller (docs/verifiability.md says why it is the time the record entered the log, not the event's `time`).

The public key itself is kept as PEM text here; the events layer (streams/events/dsse_keys.py) parses it, so the
domain stays free of cryptography libraries.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

__all__ = [
    "KeyDirectory",
    "KeyRefusal",
    "SignaturePolicy",
    "SigningRule",
    "TrustedKey",
]


class KeyRefusal(enum.Enum):
    """Why a key is not accepted for an event; the value is a short code for logs and metrics."""

    UNKNOWN = "unknown_key"
    SOURCE = "source_not_allowed"
    TYPE = "type_not_allowed"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


def _matches(patterns: tuple[str, ...], value: str) -> bool:
    # fnmatchcase, not fnmatch: the latter folds case on some platforms, and a source is case-sensitive.
    return any(fnmatchcase(value, pattern) for pattern in patterns)


@dataclass(frozen=True)
class TrustedKey:
    """One entry of the directory. `sources` and `types` are shell-style patterns (`*`, `?`, `[...]`); an entry
    with none accepts nothing, so a forgotten line never widens a key to every event. Times are timezone-aware."""

    key_id: str
    public_key_pem: str
    sources: tuple[str, ...]
    types: tuple[str, ...]
    not_before: datetime | None = None
    not_after: datetime | None = None
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("not_before", "not_after", "revoked_at"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"key {self.key_id!r}: {name} must carry a timezone")
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError(f"key {self.key_id!r}: not_after must be later than not_before")

    def refusal(self, source: str, event_type: str, at: datetime) -> KeyRefusal | None:
        """None if this key may sign an event of `source` and `event_type` at time `at`, else why not.

        Revocation is checked against the same time as validity: a signature on a record that entered the log
        before `revoked_at` was made before it and still counts; one at or after it may be the thief's.
        """
        if not _matches(self.sources, source):
            return KeyRefusal.SOURCE
        if not _matches(self.types, event_type):
            return KeyRefusal.TYPE
        if self.not_before is not None and at < self.not_before:
            return KeyRefusal.NOT_YET_VALID
        if self.not_after is not None and at >= self.not_after:
            return KeyRefusal.EXPIRED
        if self.revoked_at is not None and at >= self.revoked_at:
            return KeyRefusal.REVOKED
        return None


class KeyDirectory:
    """The trusted keys by id. Rotation is two entries side by side: the new key added, producers switched, the old
    one given a `not_after` (or a `revoked_at` when it leaked)."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        by_id: dict[str, TrustedKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise ValueError(f"key id {key.key_id!r} is given twice")
            by_id[key.key_id] = key
        self._keys: Mapping[str, TrustedKey] = by_id

    def __len__(self) -> int:
        return len(self._keys)

    def entries(self) -> tuple[TrustedKey, ...]:
        return tuple(self._keys.values())

    def get(self, key_id: str) -> TrustedKey | None:
        return self._keys.get(key_id)

    def refusal(self, key_id: str, source: str, event_type: str, at: datetime) -> KeyRefusal | None:
        key = self._keys.get(key_id)
        return KeyRefusal.UNKNOWN if key is None else key.refusal(source, event_type, at)


@dataclass(frozen=True)
class SigningRule:
    """Events whose source and type both match these patterns must be signed."""

    source: str = "*"
    type: str = "*"

    def covers(self, source: str, event_type: str) -> bool:
        return fnmatchcase(source, self.source) and fnmatchcase(event_type, self.type)


@dataclass(frozen=True)
class SignaturePolicy:
    """Which events must arrive signed. Without it a man in the middle strips `dssematerial` and the event passes as
    one that was never signed (the spec's downgrade attack); with it, such an event is a verification failure."""

    rules: tuple[SigningRule, ...] = ()

    @classmethod
    def everything(cls) -> SignaturePolicy:
        return cls((SigningRule(),))

    def requires_signature(self, source: str, event_type: str) -> bool:
        return any(rule.covers(source, event_type) for rule in self.rules)
