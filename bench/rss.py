"""Worker memory: RSS of `autodeploy worker` after folding 100k tracked commits, against the same worker idle (started,
no records) in the same run. The states of the repositories it owns stay in memory between facts, so this is the
figure that bounds how many commits a worker can track.

    python -m bench.rss [--repositories 500] [--commits 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import record
from bench.join import Offsets, Pipeline, events, pipeline, produce, wait_committed, worker
from streams.local.processes import free_port

MB = 1024 * 1024


def memory(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024 / MB  # kB
    return found


def _measure(p: Pipeline, args: argparse.Namespace, settle_s: float = 15.0) -> list[dict[str, Any]]:
    group = f"bench-rss-{free_port()}"
    with worker(p, group) as proc:
        time.sleep(settle_s)  # joined its group and recovered its (empty) table
        idle = memory(proc.pid)
        start = time.perf_counter()
        total = produce(p, events(args.repositories, args.commits // args.repositories, checks=1))
        wait_committed(Offsets(p, group))
        elapsed = time.perf_counter() - start
        time.sleep(2)  # let the last table writes land
        loaded = memory(proc.pid)
    commits = args.commits // args.repositories * args.repositories

    def row(metric: str, value: float, baseline: float | None, goal: str = "") -> dict[str, Any]:
        ratio = value / baseline if baseline else None
        return {"metric": metric, "autodeploy": value, "baseline (idle worker)": baseline, "ratio": ratio, "goal": goal}

    return [
        row(f"worker RSS MB, {commits} commits", loaded["VmRSS"], idle["VmRSS"], "< 400"),
        row("worker peak RSS MB (VmHWM)", loaded["VmHWM"], idle["VmHWM"]),
        row("events folded", total, None),
        row("events/s (produced while folding)", total / elapsed, None),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=500)
    parser.add_argument("--commits", type=int, default=100_000, help="in all; two events each (push, one check)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp,
        pipeline(Path(tmp), args.repositories, checks=1) as p,
    ):
        rows = _measure(p, args)
    record("rss", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
