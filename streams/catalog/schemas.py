"""Validate an event's `data` against the JSON Schema the catalog declares for its type."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from streams.catalog.model import EventType


@cache
def _registry(root: Path) -> Registry[Any]:
    """Every schema under the catalog's schemas/ by `$id`: CDEvents schemas reference their links by `$id`."""
    resources = []
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "$id" in doc:
            resources.append((doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@cache
def _validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    root = path.parent
    while root.name != "schemas" and root != root.parent:
        root = root.parent
    return Draft202012Validator(schema, registry=_registry(root))


def data_errors(event_type: EventType, data: Any) -> list[str]:
    """Why `data` does not fit its declared schema; empty when it fits or the type only has a reference."""
    if event_type.schema_path is None:
        return []
    validator = _validator(event_type.schema_path)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    ][:10]
