"""Reading JSON that a provider (or an attacker with a stolen secret) sent: a field of the wrong type is missing."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final


def get(data: object, path: str) -> object:
    """The value at a dotted path, or None as soon as a step is not a JSON object."""
    node = data
    for key in _steps(path):
        # Parsed JSON is dicts: the exact type check spares the ABC's slower isinstance on the hot path.
        if type(node) is not dict and not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


@functools.lru_cache(maxsize=1024)  # paths are the code's constants
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def text_value(value: object) -> str | None:
    """A JSON string or integer as text (ids are integers); anything else, or an empty string, is missing."""
    if isinstance(value, bool):  # bool is an int, but "True" is no id
        return None
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # beyond Python's int-to-str digit limit: no real id is that long
            return None
    return value if isinstance(value, str) and value else None


_COMMIT: Final = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1, or SHA-256 object format


def commit_value(value: object) -> str | None:
    """A commit SHA, lowercase; anything else is missing."""
    text = value.lower() if isinstance(value, str) else None
    return text if text is not None and _COMMIT.fullmatch(text) else None


_URI_REFERENCE: Final = re.compile(r"[^\s\x00-\x1f\x7f]+")


def uri_value(value: object) -> str | None:
    # A URI-reference never holds whitespace or control characters; such a value is not worth passing on as source.
    return value if isinstance(value, str) and _URI_REFERENCE.fullmatch(value) else None


def time_value(value: object) -> datetime | None:
    """An ISO-8601 string or epoch seconds (GitHub's push payload mixes both) as an aware datetime."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            parsed = datetime.fromtimestamp(value, UTC) if value > 0 else None
        elif isinstance(value, str):
            parsed = datetime.fromisoformat(value)
        else:
            parsed = None
    except (ValueError, OverflowError, OSError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # both providers write UTC; a missing offset is not a local time
        parsed = parsed.replace(tzinfo=UTC)
    # Go's zero time (0001-01-01T00:00:00Z, seen in GHCR package versions) means "unknown", not year one.
    return None if parsed.year <= 1 else parsed


_NOT_SEGMENT: Final = re.compile(r"[^a-z0-9_]+")


def type_segment(value: object) -> str | None:
    """A header or payload value made fit for one dot-separated segment of a CloudEvent type."""
    if not isinstance(value, str):
        return None
    return _NOT_SEGMENT.sub("_", value.strip().lower()).strip("_") or None


_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")


def path_name(value: object) -> str | None:
    """An owner or repository name as GitHub, GitLab and Bitbucket allow them; '.' and '..' would read as paths."""
    if isinstance(value, str) and _NAME.fullmatch(value) and value not in {".", ".."}:
        return value
    return None
