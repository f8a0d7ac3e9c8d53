"""The worker's memory knobs come from the environment, with the documented defaults."""

from __future__ import annotations

from streams.config import WorkerSettings
from streams.worker.state_store import DEFAULT_CACHE_COMMITS


def test_cache_and_block_cache_defaults() -> None:
    settings = WorkerSettings.from_env({})
    assert settings.cache_commits == DEFAULT_CACHE_COMMITS == 50_000
    assert settings.block_cache_bytes == 16 * 1024 * 1024


def test_cache_commits_from_the_environment() -> None:
    settings = WorkerSettings.from_env({"AUTODEPLOY_WORKER_CACHE_COMMITS": "10000"})
    assert settings.cache_commits == 10_000
