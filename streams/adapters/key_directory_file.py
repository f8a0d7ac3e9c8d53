"""Reading the key directory file (YAML, or JSON which YAML reads too): the file here, its checks in the domain."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.adapters.policy_file import _UniqueKeyLoader
from streams.domain.key_document import KeyDirectoryError, TrustConfig, parse_key_directory

__all__ = ["load_key_directory"]


def load_key_directory(path: Path) -> TrustConfig:
    """The trusted keys and the must-be-signed rules of `path`; KeyDirectoryError says what is wrong and where.

    A key given twice in one mapping is an error (the same loader as the policy file's): a second `revoked_at`
    silently winning over the first would be a security decision nobody made.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KeyDirectoryError(str(path), "", f"cannot read the key directory: {e}") from e
    loader = _UniqueKeyLoader(text)
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as e:
        raise KeyDirectoryError(str(path), "", f"is not valid YAML: {e}") from e
    finally:
        loader.dispose()
    return parse_key_directory(doc, str(path))
