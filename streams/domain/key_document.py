"""The key directory file's document (already parsed from YAML or JSON) checked into a directory and a policy.

The file format is in docs/verifiability.md. Every problem names the field, so a wrong file is fixed from its error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.domain.keys import KeyDirectory, SignaturePolicy, SigningRule, TrustedKey

__all__ = ["KeyDirectoryError", "TrustConfig", "parse_key_directory"]

_KEY_FIELDS = ("id", "public_key", "sources", "types")
_KEY_OPTIONAL = ("not_before", "not_after", "revoked_at")


class KeyDirectoryError(ValueError):
    """The file (`where`) is wrong at `field`: `problem`."""

    def __init__(self, where: str, field: str, problem: str) -> None:
        super().__init__(f"{where}: {field + ': ' if field else ''}{problem}")
        self.where, self.field, self.problem = where, field, problem


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class TrustConfig:
    keys: KeyDirectory
    policy: SignaturePolicy


def _mapping(value: object, field: str, required: tuple[str, ...], optional: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(field, "must be a mapping")
    unknown = sorted(str(k) for k in value if k not in required + optional)
    if unknown:  # a misspelt `revoked_at` must not pass as a key that is still good
        raise _Invalid(field, "unknown keys: " + ", ".join(unknown))
    missing = [k for k in required if k not in value]
    if missing:
        raise _Invalid(field, "missing: " + ", ".join(missing))
    return value


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(field, "must be a non-empty string")
    return value


def _patterns(value: object, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _Invalid(field, "must be a non-empty list of patterns")
    return tuple(_text(item, f"{field}[{index}]") for index, item in enumerate(value))


def _moment(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(field, f"is not an RFC 3339 time: {value!r}") from None
    if not isinstance(value, datetime):
        raise _Invalid(field, "must be an RFC 3339 time")
    if value.utcoffset() is None:  # a naive time is a different instant on every machine's clock
        raise _Invalid(field, "must give a timezone (e.g. 2027-01-01T00:00:00Z)")
    return value


def _key(value: object, field: str) -> TrustedKey:
    entry = _mapping(value, field, _KEY_FIELDS, _KEY_OPTIONAL)
    pem = _text(entry["public_key"], f"{field}.public_key")
    if "BEGIN PUBLIC KEY" not in pem:
        raise _Invalid(f"{field}.public_key", "must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
    try:
        return TrustedKey(
            key_id=_text(entry["id"], f"{field}.id"),
            public_key_pem=pem,
            sources=_patterns(entry["sources"], f"{field}.sources"),
            types=_patterns(entry["types"], f"{field}.types"),
            not_before=_moment(entry.get("not_before"), f"{field}.not_before"),
            not_after=_moment(entry.get("not_after"), f"{field}.not_after"),
            revoked_at=_moment(entry.get("revoked_at"), f"{field}.revoked_at"),
        )
    except ValueError as e:
        raise _Invalid(field, str(e)) from None


def _rule(value: object, field: str) -> SigningRule:
    entry = _mapping(value, field, (), ("source", "type"))
    if not entry:
        raise _Invalid(field, "give a source or a type pattern (or both)")
    return SigningRule(
        source=_text(entry.get("source", "*"), f"{field}.source"), type=_text(entry.get("type", "*"), f"{field}.type")
    )


def parse_key_directory(doc: Any, where: str) -> TrustConfig:
    """`keys:` (a list of entries) and `require_signatures:` (a list of source/type patterns, may be empty)."""
    try:
        top = _mapping(doc, "", ("keys",), ("require_signatures",))
        if not isinstance(top["keys"], list):
            raise _Invalid("keys", "must be a list")
        keys = [_key(entry, f"keys[{index}]") for index, entry in enumerate(top["keys"])]
        rules_doc = top.get("require_signatures") or []
        if not isinstance(rules_doc, list):
            raise _Invalid("require_signatures", "must be a list")
        rules = tuple(_rule(entry, f"require_signatures[{index}]") for index, entry in enumerate(rules_doc))
        try:
            directory = KeyDirectory(keys)
        except ValueError as e:
            raise _Invalid("keys", str(e)) from None
    except _Invalid as e:
        raise KeyDirectoryError(where, e.field, e.problem) from None
    return TrustConfig(directory, SignaturePolicy(rules))
