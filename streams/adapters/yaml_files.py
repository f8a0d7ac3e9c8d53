"""Reading a YAML file the strict way every autodeploy file is read: libyaml where PyYAML has it, a key given twice
in one mapping an error (PyYAML would silently keep the last; in a policy or a key directory that is a decision
nobody made)."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["UnreadableYaml", "read_yaml"]

# libyaml's parser where PyYAML was built with it: a policy file of thousands of services loads much faster
# (docs/performance.md has the figures).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UnreadableYaml(ValueError):
    """The file cannot be read, or is not YAML; the message says which and why (callers add which file it is)."""


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]  # chosen at import: mypy sees a variable
    """SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"found the key {key!r} twice", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def read_yaml(path: Path, what: str) -> Any:
    """The single document of `path`; `what` names the file for a person ("the policy file")."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableYaml(f"cannot read {what}: {e}") from e
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        raise UnreadableYaml(f"is not valid YAML: {e}") from e
    finally:
        loader.dispose()
