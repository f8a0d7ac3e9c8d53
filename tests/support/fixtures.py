"""The test data the repository carries: payloads, signature vectors, schemas and conformance cases (see SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class MissingFixtureError(FileNotFoundError):
    """A fixture the tests rely on is not in tests/fixtures: a broken checkout, never a reason to test less."""


def fixture(relative: str) -> Path:
    """The path of one fixture file, which must exist."""
    path = FIXTURES / relative
    if not path.is_file():
        raise MissingFixtureError(f"test fixture {relative} is missing from {FIXTURES} (see tests/fixtures/SOURCES.md)")
    return path


def fixtures(folder: str, pattern: str = "*.json", *, recursive: bool = False) -> list[Path]:
    """Fixture files of a folder, sorted; an empty match is an error, so a parametrized test cannot collect nothing."""
    root = FIXTURES / folder
    found = sorted(root.rglob(pattern) if recursive else root.glob(pattern))
    if not found:
        raise MissingFixtureError(f"no test fixtures match {folder}/{pattern} under {FIXTURES}")
    return found
