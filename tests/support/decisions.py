"""Readiness decisions as the worker writes them, for tests of the deploy agent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from streams.domain.readiness import Decision

REPOSITORY = "github.com/acme/shop"


def ready_decision(image: str, *, commit: str, repository: str = REPOSITORY) -> Decision:
    """A ready decision of the service `shop` (branch main) for `commit`, naming `image`."""
    return Decision(
        kind="ready",
        service="shop",
        repository=repository,
        branch="main",
        commit=commit,
        decision_id=str(uuid.uuid4()),
        chain_id=str(uuid.uuid4()),
        facts=(),
        image=image,
        decided_at=datetime.now(UTC),
    )
