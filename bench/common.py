"""Shared by the benchmarks: a broker to run against, processes to start, results to print and keep."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from streams.events.dsse_keys import implementation
from streams.local import kafka, processes
from tests.support.signing import TEST_KEY, configure_session

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"


@contextlib.contextmanager
def broker(work: Path) -> Iterator[str]:
    """`KAFKA_BOOTSTRAP_SERVERS` (PLAINTEXT), else a local broker of the benchmark's own, plain: the baselines it
    compares against (Faust alone, Quix Streams, raw clients) are not configured for SASL, and a ratio is only fair
    on the same broker. The processes a benchmark starts sign and verify with the tests' key, as production
    processes do with theirs."""
    configure_session(work)
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    os.environ["AUTODEPLOY_STATE_DIR"] = str(work / "state")
    try:
        yield kafka.up(secure=False).bootstrap_servers
    finally:
        kafka.down()


@contextlib.contextmanager
def process(
    argv: Sequence[str], log: Path, ready_url: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv`, wait until `ready_url` answers; yields the process, stopped on exit."""
    proc = processes.start(argv, log, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {processes.tail(log)}")
            try:
                urllib.request.urlopen(ready_url, timeout=1).close()  # noqa: S310 - our own loopback URL
                break
            except urllib.error.HTTPError:
                break  # it answered: up, whatever it thinks of a GET
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv} not ready: {processes.tail(log)}")
            time.sleep(0.2)
        yield proc
    finally:
        processes.stop(proc.pid, timeout=10)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far, all its threads (Linux /proc): what a run cost the process
    whatever the cores it ran on, so that work moved to another thread is not counted as work saved."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signing_algorithm() -> str:
    """What signs and verifies in the benchmarks: the tests' key (tests/support/signing.py), its algorithm and the
    library that signs and verifies with it."""
    return f"DSSE, {implementation(TEST_KEY)}"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}


def record(name: str, rows: list[dict[str, Any]]) -> None:
    """Merge this benchmark's rows into results.json and print them as a table."""
    existing: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        existing = json.loads(RESULTS.read_text())
    existing.setdefault("benchmarks", {})[name] = rows
    existing["machine"] = machine()
    existing["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.write_text(json.dumps(existing, indent=2) + "\n")
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value)
