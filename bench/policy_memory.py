"""What the loaded policy file costs a process: memory and load time of 20,000 services (bench/join.py's policy, the
one bench/rss.py's worker runs with), against the same process with a 1-service policy, measured in the same run.

Each round is a fresh process that imports the policy loader, loads a 1-service policy (imports, compiled patterns,
caches: the baseline), then the large one, asks its indexes once (for_repository, service) and collects garbage:

- RSS: VmRSS after that minus VmRSS at the baseline, then again after `malloc_trim` (the worker trims its heap after
  each table recovery, streams/worker/heap.py); goal < 20 MB;
- Python's own allocations (tracemalloc, in another fresh process, as it slows the load): kept after the load, and
  the peak during it;
- the load's time, against libyaml's parse of the same file into events alone (the floor of any YAML reading).

The median of --rounds rounds.

    python -m bench.policy_memory [--services 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def _rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError("no VmRSS")


def child(small: Path, large: Path, traced: bool) -> dict[str, float]:
    """In a fresh process: the load of `large` after that of `small`."""
    import yaml  # noqa: PLC0415 - the measured process imports only what loading a policy needs

    from streams.adapters.policy_file import load_policies  # noqa: PLC0415 - same

    load_policies(small)
    gc.collect()
    before = _rss()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    policies = load_policies(large)
    policies.for_repository("github.com/acme/repo0")
    policies.service("svc0")
    load_s = time.perf_counter() - started
    gc.collect()
    if traced:
        kept, peak = tracemalloc.get_traced_memory()
        return {"kept": kept / MB, "peak": peak / MB, "services": len(policies.services)}
    loaded = _rss()
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    trimmed = _rss()
    started = time.perf_counter()
    with large.open(encoding="utf-8") as file:
        for _ in yaml.parse(file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            pass
    parse_s = time.perf_counter() - started
    return {"before": before, "loaded": loaded, "trimmed": trimmed, "load_s": load_s, "parse_s": parse_s}


def _run(small: Path, large: Path, traced: bool) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.policy_memory", "--child", str(small), str(large)]
    out = subprocess.run([*argv, *(["--traced"] if traced else [])], check=True, capture_output=True, text=True)
    found: dict[str, float] = json.loads(out.stdout)
    return found


def _row(metric: str, value: float, baseline: float | None, goal: str = "") -> dict[str, Any]:
    ratio = value / baseline if baseline else None
    return {"metric": metric, "autodeploy": value, "baseline": baseline, "ratio": ratio, "goal": goal}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, traced=args.traced)))
        return 0
    # Here, not at the top: the measured processes import this module, and must not import the benchmarks' tools.
    from bench.common import record  # noqa: PLC0415
    from bench.join import policy_yaml  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp:
        small, large = Path(tmp) / "one.yaml", Path(tmp) / "many.yaml"
        small.write_text(policy_yaml(1))
        large.write_text(policy_yaml(args.services))
        runs = [_run(small, large, traced=False) for _ in range(args.rounds)]
        traces = [_run(small, large, traced=True) for _ in range(args.rounds)]

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    n = f"{args.services:,} services"
    before, loaded = median(runs, "before"), median(runs, "loaded")
    kept = median(traces, "kept")
    rows = [
        _row(f"process RSS MB, {n} loaded (baseline: 1-service policy)", loaded, before),
        _row(f"policy's RSS MB, {n}", statistics.median(r["loaded"] - r["before"] for r in runs), None, "< 20"),
        _row(
            f"policy's RSS MB, {n}, after malloc_trim",
            statistics.median(r["trimmed"] - r["before"] for r in runs),
            None,
        ),
        _row(f"Python allocations kept MB, {n}", kept, None),
        _row(f"Python allocations kept per service, bytes, {n}", kept * MB / args.services, None),
        _row(f"Python allocations peak during the load MB, {n}", median(traces, "peak"), None),
        _row(f"load s, {n} (baseline: libyaml's parse events alone)", median(runs, "load_s"), median(runs, "parse_s")),
    ]
    record("policy_memory", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
