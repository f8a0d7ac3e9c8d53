"""Where downloaded artifacts, builds and the state of local services live (read by `streams.config`)."""

from __future__ import annotations

from pathlib import Path

from streams.config import LocalSettings


def cache_dir() -> Path:
    """`$AUTODEPLOY_CACHE_DIR`, else `$XDG_CACHE_HOME/autodeploy`, else `~/.cache/autodeploy`."""
    return LocalSettings.from_env().cache_dir


def state_dir() -> Path:
    """Pid, address and data files of running local services; `$AUTODEPLOY_STATE_DIR` isolates tests."""
    return LocalSettings.from_env().state_dir
