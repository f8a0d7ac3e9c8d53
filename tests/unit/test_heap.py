"""The worker can hand freed heap memory back on this platform."""

from __future__ import annotations

import platform

import pytest

from streams.worker.heap import trim_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_releases_freed_memory() -> None:
    chunks = [bytes(64 * 1024) for _ in range(2000)]  # through malloc's heap, below its mmap threshold
    kept = chunks[::2]  # holes between live chunks: free() cannot give them back by itself, malloc_trim can
    del chunks
    assert trim_heap() is True
    assert len(kept) == 1000
