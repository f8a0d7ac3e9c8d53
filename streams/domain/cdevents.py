"""What every CDEvent autodeploy emits shares: the spec version and how times are written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

SPEC_VERSION: Final = "0.5.1"


def rfc3339(moment: datetime) -> str:
    """UTC with a `Z`, as CloudEvents and CDEvents examples write it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
