from __future__ import annotations

import sys
import time
from pathlib import Path

from streams.local import processes


def test_a_started_process_is_alive_until_stopped_with_its_children(tmp_path: Path) -> None:
    # The child spawns a grandchild: stop() must take the whole group, as the JVM's helpers would be.
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    script += "print('started', flush=True); time.sleep(60)"
    proc = processes.start([sys.executable, "-c", script], tmp_path / "log")
    for _ in range(100):
        if "started" in processes.tail(tmp_path / "log"):
            break
        proc.poll()
        time.sleep(0.05)
    assert processes.alive(proc.pid)
    processes.stop(proc.pid, timeout=5)
    assert not processes.alive(proc.pid)
    assert proc.poll() is not None


def test_state_files_round_trip_and_a_missing_one_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "svc" / "state.json"
    assert processes.read_state(path) is None
    processes.write_state(path, {"pid": 1, "address": "127.0.0.1:1"})
    assert processes.read_state(path) == {"pid": 1, "address": "127.0.0.1:1"}


def test_tail_gives_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert processes.tail(log, 2) == "line 98\nline 99"
    assert "no log" in processes.tail(tmp_path / "absent")
