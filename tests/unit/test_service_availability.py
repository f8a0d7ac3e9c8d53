"""A missing real service (a binary, a broker, a cluster) skips a test on a laptop and fails it under CI."""

from __future__ import annotations

import pytest

from streams.local.prometheus import binary
from tests.support.services import unavailable


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_under_ci_a_missing_service_fails_the_test(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="promtool is not available: not on PATH"):
        unavailable("promtool", FileNotFoundError("not on PATH"))


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_elsewhere_a_missing_service_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="promtool is not available"):
        unavailable("promtool", FileNotFoundError("not on PATH"))


def test_a_missing_prometheus_binary_says_which_package_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FileNotFoundError, match=r"apt-get install prometheus"):
        binary("promtool-of-another-name")
