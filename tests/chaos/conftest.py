"""The fault suite (`make chaos`): each test records its figures, printed at the end of the run (and with -s as it
goes), so that CI logs show what was sent, acknowledged, found and lost."""

from __future__ import annotations

from pathlib import Path

import pytest

_FIGURES: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.chaos)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("fault suite figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


def figures(test: str, **values: object) -> None:
    """Print one test's figures now and again in the run's summary."""
    line = f"{test}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())
    print(f"\n{line}", flush=True)
    _FIGURES.append(line)
