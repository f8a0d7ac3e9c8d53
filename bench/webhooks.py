"""Webhook ingest: HMAC-signed GitHub pushes/s and latency through the real server into Kafka, against the same
aiohttp stack answering 200 without work, measured in the same run with the same load generator (wrk).

The server runs twice side by side: as deployed, signing each event it publishes (the tests' Ed25519 key, DSSE), and
with AUTODEPLOY_INSECURE_NO_SIGNATURES=1 (unsigned); every round measures the bare stack and both, so the cost of
signing is the ratio signed / unsigned of the same run.

    python -m bench.webhooks [--seconds 8] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, broker, cpu_seconds, process, record, signing_algorithm
from streams import catalog
from streams.adapters.kafka_admin import TopicAdmin
from streams.catalog.plan import make_plan
from streams.domain.signatures import github_signature
from streams.local.processes import free_port
from tests.support.fixtures import fixture

SECRET = b"bench-secret"
PAYLOAD = fixture("github/push.with-new-branch.payload.json")

LUA = """
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-Hub-Signature-256"] = "{signature}"
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-GitHub-Delivery"] = "bench-{run}-" .. n
  return wrk.format()
end
"""


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"wrk printed a latency this benchmark cannot read: {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(url: str, script: Path, seconds: int, connections: int, pid: int) -> dict[str, float]:
    """wrk's figures, and the server's (`pid`) CPU time per request over the run."""
    cpu = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    cpu = cpu_seconds(pid) - cpu
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s*50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "cpu_us": cpu / requests * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="autodeploy-bench-") as tmp:
        work = Path(tmp)
        body = PAYLOAD.read_bytes()
        (work / "body.json").write_bytes(body)
        with broker(work) as bootstrap:
            prefix = f"bench{free_port()}-"
            cat = catalog.load(ROOT / "topics" / "catalog.yaml").with_prefix(prefix)
            admin = TopicAdmin(bootstrap)
            admin.apply(make_plan(cat, admin.describe(t.name for t in cat.topics), admin.broker_count()))
            try:
                rows = _measure(work, bootstrap, prefix, body, args)
            finally:
                admin.delete(t.name for t in cat.topics)
    record("webhooks", rows)
    return 0


def _measure(work: Path, bootstrap: str, prefix: str, body: bytes, args: argparse.Namespace) -> list[dict[str, Any]]:
    bare_port, real_port, unsigned_port = free_port(), free_port(), free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "GITHUB_WEBHOOK_SECRETS": SECRET.decode(),
        "AUTODEPLOY_TOPIC_PREFIX": prefix,
    }
    bare_argv = [sys.executable, "-m", "bench.bare_server", "--port", str(bare_port)]
    real_argv = [sys.executable, "-m", "streams.cli", "webhooks", "--port", str(real_port)]
    unsigned_argv = [sys.executable, "-m", "streams.cli", "webhooks", "--port", str(unsigned_port)]
    unsigned_env = {**env, "AUTODEPLOY_INSECURE_NO_SIGNATURES": "1", "AUTODEPLOY_SIGNING_KEY": ""}
    servers = (("bare", bare_port), ("autodeploy", real_port), ("unsigned", unsigned_port))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in servers}
    algorithm = signing_algorithm()
    print(f"webhooks: the server signs with {algorithm}; the unsigned round runs AUTODEPLOY_INSECURE_NO_SIGNATURES=1")
    with (
        process(bare_argv, work / "bare.log", f"http://127.0.0.1:{bare_port}/webhooks/github") as bare_proc,
        process(real_argv, work / "real.log", f"http://127.0.0.1:{real_port}/healthz", env) as real_proc,
        process(
            unsigned_argv, work / "unsigned.log", f"http://127.0.0.1:{unsigned_port}/healthz", unsigned_env
        ) as unsigned_proc,
    ):
        pids = {"bare": bare_proc.pid, "autodeploy": real_proc.pid, "unsigned": unsigned_proc.pid}
        for round_ in range(args.rounds + 1):  # round 0 warms them up and is discarded
            for name, port in servers:
                script = work / f"{name}-{round_}.lua"
                script.write_text(
                    LUA.format(body=work / "body.json", signature=github_signature(SECRET, body), run=f"{name}{round_}")
                )
                seconds = 2 if round_ == 0 else args.seconds
                result = wrk(f"http://127.0.0.1:{port}/webhooks/github", script, seconds, args.connections, pids[name])
                if round_:
                    runs[name].append(result)
            if round_:
                bare_rps, signed_rps, unsigned_rps = (runs[name][-1]["rps"] for name, _ in servers)
                signed_cpu, unsigned_cpu = (runs[name][-1]["cpu_us"] for name in ("autodeploy", "unsigned"))
                print(
                    f"round {round_}: bare aiohttp {bare_rps:,.0f}/s, signed {signed_rps:,.0f}/s,"
                    f" unsigned {unsigned_rps:,.0f}/s, signed/unsigned {signed_rps / unsigned_rps:.3f};"
                    f" server CPU per webhook signed {signed_cpu:.0f} us, unsigned {unsigned_cpu:.0f} us",
                    flush=True,
                )
    bare, real, unsigned = (
        {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]} for name, _ in servers
    )
    print(json.dumps(runs), file=sys.stderr)
    return [
        {
            "metric": f"webhooks/s, signed ({algorithm})",
            "autodeploy": real["rps"],
            "baseline (bare aiohttp)": bare["rps"],
            "ratio": real["rps"] / bare["rps"],
            "goal": ">= 0.5",
        },
        {
            "metric": "p50 latency ms",
            "autodeploy": real["p50_ms"],
            "baseline (bare aiohttp)": bare["p50_ms"],
            "ratio": real["p50_ms"] / bare["p50_ms"],
            "goal": "",
        },
        {
            "metric": "p99 latency ms",
            "autodeploy": real["p99_ms"],
            "baseline (bare aiohttp)": bare["p99_ms"],
            "ratio": real["p99_ms"] / bare["p99_ms"],
            "goal": "",
        },
        {
            "metric": "non-2xx responses",
            "autodeploy": real["non_2xx"] + unsigned["non_2xx"],
            "baseline (bare aiohttp)": bare["non_2xx"],
            "ratio": None,
            "goal": "0",
        },
        {
            "metric": "webhooks/s, unsigned (AUTODEPLOY_INSECURE_NO_SIGNATURES=1)",
            "autodeploy": unsigned["rps"],
            "baseline (bare aiohttp)": bare["rps"],
            "ratio": unsigned["rps"] / bare["rps"],
            "goal": "",
        },
        {
            # Paired by round: the load of the shared machine drifts between rounds more than within one.
            "metric": "webhooks/s signed / unsigned (median of the rounds' ratios; baseline column: unsigned)",
            "autodeploy": real["rps"],
            "baseline (bare aiohttp)": unsigned["rps"],
            "ratio": statistics.median(
                s["rps"] / u["rps"] for s, u in zip(runs["autodeploy"], runs["unsigned"], strict=True)
            ),
            "goal": ">= 0.9",
        },
        {
            # CPU time of the server process (all its threads) per request: what signing costs wherever it runs.
            "metric": "server CPU us per webhook, signed / unsigned (baseline column: unsigned)",
            "autodeploy": real["cpu_us"],
            "baseline (bare aiohttp)": unsigned["cpu_us"],
            "ratio": statistics.median(
                s["cpu_us"] / u["cpu_us"] for s, u in zip(runs["autodeploy"], runs["unsigned"], strict=True)
            ),
            "goal": "",
        },
        {
            "metric": "bare aiohttp server CPU us per request",
            "autodeploy": None,
            "baseline (bare aiohttp)": bare["cpu_us"],
            "ratio": None,
            "goal": "",
        },
        {
            "metric": "p50 latency ms signed / unsigned (baseline column: unsigned)",
            "autodeploy": real["p50_ms"],
            "baseline (bare aiohttp)": unsigned["p50_ms"],
            "ratio": real["p50_ms"] / unsigned["p50_ms"],
            "goal": "",
        },
    ]


if __name__ == "__main__":
    sys.exit(main())
