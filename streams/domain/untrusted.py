"""Reading JSON that a provider (or an attacker with a stolen secret) sent: a field of the wrong type is missing."""

from __future__ import annotations

import functools
from collections.abc import Mapping


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
