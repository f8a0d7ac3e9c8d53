"""Reading the policy file (`autodeploy.yaml`): the file and its YAML here, the checks in streams.domain.

The file is read as libyaml parses it and its services are checked one at a time (streams.domain's PolicyBuilder):
a file of 20,000 services never exists whole as parsed YAML, which cost the worker ~190 MB that it kept
(docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

from streams.adapters.yaml_files import UnreadableYaml, open_yaml
from streams.domain.policy import Policies
from streams.domain.policy_document import PolicyBuilder, PolicyError, parse_policies

__all__ = ["load_policies"]


def load_policies(path: Path) -> Policies:
    """Read and check the policy file; PolicyError says what is wrong and where."""
    where = str(path)
    try:
        with open_yaml(path, "the policy file") as reader:
            if not reader.document():
                return parse_policies(None, where)
            if not reader.at_mapping():  # not a mapping: parse_policies says what is expected
                policies = parse_policies(reader.value(), where)
                reader.end()
                return policies
            builder = PolicyBuilder(where)
            for key in reader.mapping_keys():
                builder.key(key)
                if key == "services" and reader.at_mapping():
                    for name in reader.mapping_keys():
                        builder.service(name, reader.value())
                elif key == "services":
                    builder.services(reader.value())
                else:
                    builder.freeze(reader.value())
            reader.end()
            return builder.build()
    except UnreadableYaml as e:
        raise PolicyError(where, "", str(e)) from e
