"""trim_heap hands freed heap memory back to the operating system, and is a no-op where there is no malloc_trim."""

from __future__ import annotations

import os
import platform
from typing import Any

import pytest

from streams.worker import heap
from streams.worker.heap import trim_heap

CHUNK = 64 * 1024  # through malloc's heap: below its mmap threshold (128 KiB, and the dynamic one only grows)
CHUNKS = 2000


def _resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_chunks_between_live_ones_leave_the_resident_set_after_a_trim() -> None:
    chunks = [bytearray(CHUNK) for _ in range(CHUNKS)]  # bytearray(n) writes its pages: they are resident
    kept = chunks[::2]  # holes between live chunks: free() cannot give them back by itself, malloc_trim can
    del chunks
    before = _resident_bytes()
    released = trim_heap()
    after = _resident_bytes()
    freed = CHUNK * CHUNKS // 2
    assert released is True
    # Most of the freed half leaves the resident set (each hole is a whole 64 KiB: all its inner pages can go).
    assert before - after > freed // 2, f"resident set {before} -> {after}, {freed} bytes were freed"
    assert all(len(c) == CHUNK for c in kept)  # the live chunks are untouched (and alive until the measure is done)


def test_without_malloc_trim_it_answers_none(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoTrim:  # a C library such as musl's or macOS's: loads, but has no malloc_trim
        def __init__(self, name: Any) -> None:
            pass

        def __getattr__(self, name: str) -> Any:
            raise AttributeError(name)

    monkeypatch.setattr(heap.ctypes, "CDLL", NoTrim)
    assert trim_heap() is None


def test_without_a_loadable_c_library_it_answers_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def unloadable(name: Any) -> Any:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(heap.ctypes, "CDLL", unloadable)
    monkeypatch.setattr(heap.ctypes.util, "find_library", lambda name: None)
    assert trim_heap() is None
