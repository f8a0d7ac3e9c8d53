"""What other packages import from the readiness modules is in their `__all__`: their public surface says so."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.config import REPO_ROOT

STREAMS = REPO_ROOT / "streams"
MODULES = ("streams.domain.readiness", "streams.domain.readiness_state")


def imported_names(module: str) -> Iterator[tuple[Path, str]]:
    """(file, name) for every `from <module> import name` in streams/ outside the module itself, in functions too."""
    own = STREAMS.parent / (module.replace(".", "/") + ".py")
    for path in sorted(STREAMS.rglob("*.py")):
        if path == own:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                yield from ((path, alias.name) for alias in node.names)


@pytest.mark.parametrize("module", MODULES)
def test_every_name_imported_from_the_module_is_in_its_all(module: str) -> None:
    public = set(importlib.import_module(module).__all__)
    imported = list(imported_names(module))
    assert imported, f"nothing imports {module}: the test would prove nothing"
    missing = sorted(
        {f"{name} (imported by {path.relative_to(REPO_ROOT)})" for path, name in imported if name not in public}
    )
    assert not missing, f"{module}.__all__ lacks " + ", ".join(missing)


@pytest.mark.parametrize("module", MODULES)
def test_every_name_in_all_exists(module: str) -> None:
    loaded = importlib.import_module(module)
    assert [name for name in loaded.__all__ if not hasattr(loaded, name)] == []
