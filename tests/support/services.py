"""What a test does when a real service it needs cannot be had."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(what: str, error: BaseException) -> NoReturn:
    """Under CI a missing service fails the run; on a laptop it skips with the reason."""
    message = f"{what} is not available: {error}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
