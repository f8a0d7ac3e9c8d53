"""A small repository history as signed webhook deliveries, with the tests' secrets (see streams/demo/deliveries)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from streams.demo import deliveries
from streams.demo.deliveries import Secrets, sha
from tests.support.webhooks import CIRCLECI_SECRET, GITHUB_SECRET

__all__ = ["History", "payloads", "sha"]


@dataclass
class History(deliveries.History):
    """The demo's history builder for acme/shop, signed with the secrets the tests' webhook servers hold."""

    secrets: Secrets = field(default_factory=lambda: Secrets(GITHUB_SECRET, CIRCLECI_SECRET))


def payloads(history: History) -> list[Any]:
    return [json.loads(d.body) for d in history.deliveries]
