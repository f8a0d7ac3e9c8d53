"""Request bodies as strict JSON, with Python objects built only for the fields the mapping reads.

A webhook body is validated whole, but only a dozen of its fields are read (the repository, a ref, a time) and its
bytes are published as they came. Parsing it into dicts made the server build and free every object of a whole
push, its largest single cost. A `Projection` decodes with msgspec into a structure holding just the paths the mapping
declares (`webhook_mapping.github_paths`): msgspec checks the grammar of everything it skips, Python's UTF-8 decoder
checks the bytes of the strings it skips, and whatever msgspec does not take (a field of another shape, a malformed
body) goes to orjson, which decides and explains, exactly as for a body parsed whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import orjson


class MalformedJson(ValueError):
    """The body is not one strict UTF-8 JSON document."""


def loads(body: bytes) -> Any:
    """The whole document as Python objects."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedJson(str(e)) from e


_Tree = dict[str, "_Tree | None"]  # a path segment -> its children (None: read the value whole)


class Projection:
    """Decodes a JSON object keeping only `paths` (dotted): the result holds those of them that are present."""

    def __init__(self, paths: Iterable[str]) -> None:
        tree: _Tree = {}
        for path in sorted(paths, key=lambda p: p.count(".")):
            node: _Tree | None = tree
            steps = path.split(".")
            for step in steps[:-1]:
                node = node.setdefault(step, {}) if node is not None else None
            if node is not None:
                node[steps[-1]] = None  # a whole value: any deeper path is inside it already
        self._decoder = msgspec.json.Decoder(_struct(tree, "Body"))

    def loads(self, body: bytes) -> Any:
        try:
            body.decode("utf-8")  # msgspec checks the escapes of strings it skips, not their bytes
            return msgspec.to_builtins(self._decoder.decode(body))
        except (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return loads(body)  # not the expected shape, or not JSON: orjson parses it whole, or says why not


def _struct(tree: _Tree, name: str) -> Any:
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for i, (key, children) in enumerate(tree.items()):
        attribute = f"f{i}"  # JSON keys need not be identifiers
        rename[attribute] = key
        kind = Any if children is None else _struct(children, f"{name}_{i}") | None
        fields.append((attribute, kind, None))
    return msgspec.defstruct(name, fields, rename=rename, omit_defaults=True, forbid_unknown_fields=False)
