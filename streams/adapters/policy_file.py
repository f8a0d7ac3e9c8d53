"""Reading the policy file (`autodeploy.yaml`): the file and its YAML here, the checks in streams.domain."""

from __future__ import annotations

from pathlib import Path

from streams.adapters.yaml_files import UnreadableYaml, read_yaml
from streams.domain.policy import Policies
from streams.domain.policy_document import PolicyError, parse_policies

__all__ = ["load_policies"]


def load_policies(path: Path) -> Policies:
    """Read and check the policy file; PolicyError says what is wrong and where."""
    try:
        doc = read_yaml(path, "the policy file")
    except UnreadableYaml as e:
        raise PolicyError(str(path), "", str(e)) from e
    return parse_policies(doc, str(path))
