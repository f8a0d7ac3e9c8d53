"""Reading the policy file (`autodeploy.yaml`): the file and its YAML here, the checks in streams.domain."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from streams.domain.policy import Policies
from streams.domain.policy_document import PolicyError, parse_policies

__all__ = ["load_policies"]

# libyaml's parser where PyYAML was built with it: a policy file of thousands of services loads much faster
# (docs/performance.md has the figures).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]  # chosen at import: mypy sees a variable
    """SafeLoader that refuses a key given twice in one mapping, where PyYAML would silently keep the last."""

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


def load_policies(path: Path) -> Policies:
    """Read and check the policy file; PolicyError says what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(str(path), "", f"cannot read the policy file: {e}") from e
    loader = _UniqueKeyLoader(text)
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as e:
        raise PolicyError(str(path), "", f"is not valid YAML: {e}") from e
    finally:
        loader.dispose()
    return parse_policies(doc, str(path))
