"""The YAML reader builds from libyaml's events what PyYAML's SafeLoader builds from its node graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.adapters.yaml_files import UnreadableYaml, YamlReader, read_yaml

SAME_AS_SAFE_LOAD = [
    "",
    "# only a comment\n",
    "---\n",
    "plain\n",
    "[1, -2, 0x1f, 0o17, 1.5, .inf, true, False, null, ~, '3', \"yes\", 2026-12-23, 2026-12-23T00:00:00Z]\n",
    "a: {b: [1, {c: d}], e: !!str 12, f: !!int '7', g: !!float '1'}\n1: one\n2.5: two\nnull: three\n",
    "text: |\n  two\n  lines\nfolded: >\n  one\n  line\n",
    "base: &b {x: 1, y: [1, 2]}\nother: *b\nlist: &l [a, b]\nagain: *l\nscalar: &s 5\nsame: *s\n",
    "base: &b {x: 1, y: 2}\nmerged: {<<: *b, y: 3, z: 4}\n",
    "a: &a {x: 1}\nb: &b {y: 2}\nc: {<<: [*a, *b], z: 3}\n",
    "a: &a {x: 1}\nb: {<<: *a}\n",
    "services:\n  one: &one\n    branch: main\n  two:\n    <<: *one\n    image: x\n",
]


@pytest.mark.parametrize("text", SAME_AS_SAFE_LOAD)
def test_documents_as_safe_load_builds_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    assert read_yaml(path, "the file") == yaml.safe_load(text)


def test_aliases_are_the_anchored_object(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a: &a [1]\nb: *a\n", encoding="utf-8")
    doc = read_yaml(path, "the file")
    assert doc["a"] is doc["b"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: 1\na: 2\n", "found the key 'a' twice"),
        ("a: {b: 1, b: 1}\n", "found the key 'b' twice"),
        ("a: *missing\n", "found undefined alias"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
        ("a: [1\n", "is not valid YAML"),
        ("a: !!set {x}\n", "is not supported"),
        ("a: !custom 1\n", "could not determine a constructor"),
        ("a: {<<: 1}\n", "expected a mapping or list of mappings for merging"),
        ("{[1]: 2}\n", "unhashable"),
    ],
)
def test_what_is_not_read(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UnreadableYaml, match=problem):
        read_yaml(path, "the file")


def test_a_mapping_walked_key_by_key() -> None:
    seen: list[tuple[Any, Any]] = []
    with YamlReader("a: 1\nb: {c: 2, d: [3]}\ne: 4\n") as reader:
        assert reader.document()
        assert reader.at_mapping()
        for key in reader.mapping_keys():
            if reader.at_mapping():
                seen += [(f"{key}.{inner}", reader.value()) for inner in reader.mapping_keys()]
            else:
                seen.append((key, reader.value()))
        reader.end()
    assert seen == [("a", 1), ("b.c", 2), ("b.d", [3]), ("e", 4)]


def test_a_walked_mapping_refuses_twice_the_same_key_and_merge_keys() -> None:
    with YamlReader("a: 1\na: 2\n") as reader, pytest.raises(UnreadableYaml, match="found the key 'a' twice"):
        reader.document()
        for _ in reader.mapping_keys():
            reader.value()
    with YamlReader("x: &x {a: 1}\n<<: *x\n") as reader, pytest.raises(UnreadableYaml, match="merge key"):
        reader.document()
        for _ in reader.mapping_keys():
            reader.value()


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(UnreadableYaml, match="cannot read the file"):
        read_yaml(tmp_path / "missing.yaml", "the file")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: 1\nb: \xff\xfe\n")
    with pytest.raises(UnreadableYaml, match="cannot read the file"):
        read_yaml(bad, "the file")
