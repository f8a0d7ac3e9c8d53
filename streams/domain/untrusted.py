"""Reading JSON that a provider (or an attacker with a stolen secret) sent: a field of the wrong type is missing."""

from __future__ import annotations

from collections.abc import Mapping


def get(data: object, path: str) -> object:
    """The value at a dotted path, or None as soon as a step is not a JSON object."""
    node = data
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node
