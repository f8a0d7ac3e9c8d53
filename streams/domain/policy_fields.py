"""The pieces the policy file's parsers share: a field error naming the dotted path, and the checks of one value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

__all__ = ["DNS_LABEL", "SLUG", "FieldError", "join", "known", "mapping", "matching", "parse_duration", "plain_text"]

# Service and environment names are Kafka keys and Kubernetes label values (63 at most).
SLUG: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
DNS_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123, as Kubernetes checks names
_DURATION: Final = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNITS: Final[Mapping[str, str]] = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class FieldError(Exception):
    """A field is wrong; the policy's parser adds where the document came from."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def parse_duration(value: object) -> timedelta:
    """`90s`, `15m`, `2h` or `1d` as a timedelta; one number and one unit, greater than zero."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be a duration such as 90s, 15m, 2h or 1d, got {value!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def mapping(value: object, field: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FieldError(field, f"must be a mapping with {', '.join(required)}")
    allowed = (*required, *optional)
    for key in value:
        known(key, field, allowed)
    for key in required:
        if key not in value:
            raise FieldError(join(field, key), "is required")
    return value


def known(key: object, field: str, allowed: tuple[str, ...]) -> None:
    if key not in allowed:
        near = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean {near[0]}?" if near else f"allowed: {', '.join(allowed)}"
        raise FieldError(join(field, key), f"unknown key ({hint})")


def join(field: str, key: object) -> str:
    return f"{field}.{key}" if field else str(key)


def plain_text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise FieldError(field, f"must be a non-empty string without surrounding spaces, got {value!r}")
    return value


def matching(value: object, field: str, pattern: re.Pattern[str], what: str) -> str:
    given = plain_text(value, field)
    if not pattern.fullmatch(given):
        raise FieldError(field, f"must be {what}, got {given!r}")
    return given
