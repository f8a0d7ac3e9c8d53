"""The repository is self-contained: its tests, benchmarks and CI read test data from tests/fixtures only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.fixtures import FIXTURES, MissingFixtureError, fixture, fixtures

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file does not match itself; the corpus joined as a path counts too.
OUTSIDE_CORPUS = re.compile(r"shar" r"ed/corpus|\.\./shared|\"shar" r"ed\"\s*/\s*\"corpus\"")


def test_nothing_reads_a_corpus_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("streams", "tests", "bench", ".ci")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE_CORPUS.search(line)
    ]
    assert offenders == []


def test_the_pattern_finds_what_it_is_for() -> None:
    assert OUTSIDE_CORPUS.search("ROOT.parent / " + '"shar' + 'ed" / "corpus"')
    assert OUTSIDE_CORPUS.search("cat ../" + "shar" + "ed/corpus/github/push.json")
    assert OUTSIDE_CORPUS.search("see ../" + "shar" + "ed/notes")
    assert OUTSIDE_CORPUS.search("tests/fixtures/github/push.json") is None


def test_every_fixture_has_its_source_and_every_source_its_fixture() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", sources, flags=re.MULTILINE))
    present = {
        str(path.relative_to(FIXTURES)) for path in FIXTURES.rglob("*") if path.is_file() and path.name != "SOURCES.md"
    }
    assert present - listed == set(), "fixtures without a row in SOURCES.md"
    assert listed - present == set(), "rows in SOURCES.md without a fixture"


def test_every_license_a_fixture_names_is_shipped() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    row = r"^\| `[^`]+` \| [^|]+ \| [^|]+ \| [^|]+ \| (MIT|Apache-2\.0|CC-BY-4\.0|MPL-2\.0) \|"
    licenses = set(re.findall(row, sources, re.MULTILINE))
    assert licenses == {"MIT", "Apache-2.0", "CC-BY-4.0", "MPL-2.0"}
    assert len(fixtures("LICENSES", "*.txt")) == 10


def test_a_missing_fixture_is_an_error_not_an_empty_set() -> None:
    with pytest.raises(MissingFixtureError, match=r"no-such\.json"):
        fixture("github/no-such.json")
    with pytest.raises(MissingFixtureError, match="nothing-here"):
        fixtures("github", "nothing-here-*.json")
