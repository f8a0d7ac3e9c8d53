"""Runtime dependencies are what the processes import; test and report libraries stay in extras."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _imported_distributions() -> dict[str, set[str]]:
    """Distribution -> the streams/ modules importing it, for every third-party import (also those inside functions)."""
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "streams").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top == "streams" or top in sys.stdlib_module_names:
                    continue
                for dist in owners.get(top, [top]):
                    found.setdefault(dist.lower().replace("_", "-"), set()).add(str(path.relative_to(ROOT)))
    return found


def test_test_and_report_libraries_are_not_runtime_dependencies() -> None:
    runtime = _names(PROJECT["dependencies"])
    assert runtime.isdisjoint({"pytest", "testcontainers", "hypothesis", "jsonschema", "matplotlib", "mypy", "ruff"})
    assert {"pytest", "testcontainers", "hypothesis", "jsonschema"} <= _names(PROJECT["optional-dependencies"]["dev"])
    assert _names(PROJECT["optional-dependencies"]["report"]) == {"matplotlib"}


def test_every_library_the_package_imports_is_a_declared_dependency() -> None:
    runtime = _names(PROJECT["dependencies"])
    report = _names(PROJECT["optional-dependencies"]["report"])
    missing = {dist: users for dist, users in _imported_distributions().items() if dist not in runtime | report}
    assert missing == {}


def test_the_report_extra_is_imported_only_by_the_report() -> None:
    users = _imported_distributions().get("matplotlib", set())
    assert users == {"streams/lag/report.py"}


def test_the_design_cards_libraries_stay_in_the_project() -> None:
    everything = _names(PROJECT["dependencies"]) | _names(PROJECT["optional-dependencies"]["dev"])
    assert {"confluent-kafka", "faust-streaming", "cloudevents", "kubernetes", "testcontainers", "pytest"} <= everything
