"""Validate an event's `data` against the JSON Schema the catalog declares for its type.

jsonschema-rs (Rust) rather than the pure-Python jsonschema: the worker validates every event it reads, and the
pure-Python validator was a large share of its CPU (docs/performance.md has the figures).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from streams.catalog.model import EventType

MAX_ERRORS = 10


@cache
def _registry(root: Path) -> jsonschema_rs.Registry:
    """Every schema under the catalog's schemas/ by `$id`: CDEvents schemas reference their links by `$id`."""
    resources = []
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "$id" in doc:
            resources.append((doc["$id"], doc))
    return jsonschema_rs.Registry(resources)


@cache
def _validator(path: Path) -> Any:
    schema = json.loads(path.read_text(encoding="utf-8"))
    root = path.parent
    while root.name != "schemas" and root != root.parent:
        root = root.parent
    return jsonschema_rs.validator_for(schema, registry=_registry(root))


def data_errors(event_type: EventType, data: Any) -> list[str]:
    """Why `data` does not fit its declared schema; empty when it fits or the type only has a reference."""
    if event_type.schema_path is None:
        return []
    validator = _validator(event_type.schema_path)
    if validator.is_valid(data):  # the common case, without building error objects
        return []
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.instance_path])
    return [f"{'/'.join(str(p) for p in e.instance_path) or '(root)'}: {e.message}" for e in errors][:MAX_ERRORS]
