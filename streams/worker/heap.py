"""Handing heap memory freed by a table recovery back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def trim_heap() -> bool | None:
    """glibc keeps freed heap memory for reuse, so a recovery's transient buffers (changelog records, decoded states
    read once) stay in the worker's RSS long after they are gone (docs/performance.md: what `bench/rss.py` measured
    with and without this call). Returns whether memory was released; None where the C library has no
    `malloc_trim` (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    released = bool(trim(0))
    log.debug("malloc_trim released=%s", released)
    return released
