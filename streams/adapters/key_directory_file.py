"""Reading the key directory file (YAML, or JSON which YAML reads too): the file here, its checks in the domain."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from streams.adapters.yaml_files import UnreadableYaml, read_yaml
from streams.domain.key_document import KeyDirectoryError, TrustConfig, parse_key_directory

__all__ = ["load_key_directory", "modified", "read_key_document", "write_key_document"]


def read_key_document(path: Path) -> Any:
    """The file's document as YAML reads it (KeyDirectoryError when unreadable or not YAML)."""
    try:
        return read_yaml(path, "the key directory")
    except UnreadableYaml as e:
        raise KeyDirectoryError(str(path), "", str(e)) from e


def load_key_directory(path: Path) -> TrustConfig:
    """The trusted keys and the must-be-signed rules of `path`; KeyDirectoryError says what is wrong and where.

    A key given twice in one mapping is an error (streams/adapters/yaml_files.py): a second `revoked_at` silently
    winning over the first would be a security decision nobody made.
    """
    return parse_key_directory(read_key_document(path), str(path))


def write_key_document(path: Path, doc: Any) -> TrustConfig:
    """Check `doc` as a key directory, then replace `path` with it at once (a reader sees the old file or the new
    one, never half of one). Times are written as RFC 3339 strings."""
    trust = parse_key_directory(doc, str(path))
    text = yaml.dump(_plain(doc), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=200)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return trust


class _Dumper(yaml.SafeDumper):
    """PEM keys as literal blocks (`|`), as a person writes them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return value


def modified(path: Path) -> int:
    """The file's modification time in nanoseconds (OSError when it is gone): a change means reload it."""
    return path.stat().st_mtime_ns
