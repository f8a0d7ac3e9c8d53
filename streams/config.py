"""Settings read from the environment, in this one place, into frozen dataclasses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str | None
    topics_catalog: Path
    topic_prefix: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            topics_catalog=Path(env.get("AUTODEPLOY_TOPICS_CATALOG") or REPO_ROOT / "topics" / "catalog.yaml"),
            topic_prefix=env.get("AUTODEPLOY_TOPIC_PREFIX", ""),
        )
