"""Where downloaded artifacts, builds and the state of local services live."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$AUTODEPLOY_CACHE_DIR`, else `$XDG_CACHE_HOME/autodeploy`, else `~/.cache/autodeploy`."""
    explicit = os.environ.get("AUTODEPLOY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "autodeploy"


def state_dir() -> Path:
    """Pid, address and data files of running local services; `$AUTODEPLOY_STATE_DIR` isolates tests."""
    explicit = os.environ.get("AUTODEPLOY_STATE_DIR")
    return Path(explicit) if explicit else cache_dir() / "state"
