"""End-to-end latency: the last required check's webhook sent -> the deploy agent's patch seen on the Deployment.

The whole pipeline as `autodeploy up` runs it (webhook server, readiness worker and deploy agent as processes, the
local broker and control plane), one service (`shop` of autodeploy.yaml, in a namespace of its own). Ready commits
are posted at a steady rate (push, CircleCI, then the GitHub Actions result that makes each ready: its send time is
the start); a watch on the Deployment stamps the moment its image becomes the commit's (the patch landed; the
rollout itself is not included). The agent rolls out one at a time and skips a ready commit when a newer one is
already queued, so a rate faster than rollouts shows up as skipped commits, not as latency. Goal: p99 < 500 ms.
Reported, not asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from bench.common import ROOT, broker, process, record
from streams import catalog
from streams.adapters.kafka_admin import TopicAdmin
from streams.adapters.policy_file import load_policies
from streams.catalog.plan import make_plan
from streams.demo.deliveries import NULL_SHA, History, Secrets, sha
from streams.demo.play import http_post
from streams.domain.policy import ServicePolicy
from streams.local import cluster, processes
from streams.local.demo_deployments import ensure_demo_deployments

GOAL_P99_MS = 500.0


class PatchWatch:
    """Stamps when the Deployment's first container image becomes each image it is told to wait for."""

    def __init__(self, api: Any, namespace: str, name: str) -> None:
        self._apps, self._namespace, self._name = client.AppsV1Api(api), namespace, name
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            with contextlib.suppress(Exception):  # a dropped watch is simply restarted; the bench reports misses
                for event in stream.stream(
                    self._apps.list_namespaced_deployment,
                    self._namespace,
                    field_selector=f"metadata.name={self._name}",
                    timeout_seconds=30,
                ):
                    now = time.time()
                    image = event["object"].spec.template.spec.containers[0].image
                    self.seen.setdefault(image, now)
                    if self._stop.is_set():
                        break

    def wait(self, image: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while image not in self.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.seen.get(image)

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def control_plane() -> Iterator[Path]:
    started = cluster.status().running is False
    info = cluster.up(progress=lambda line: print(f"cluster: {line}", file=sys.stderr, flush=True))
    try:
        yield info.kubeconfig
    finally:
        if started:
            cluster.down()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup(
    bootstrap: str, kubeconfig: Path, work: Path, run_id: str
) -> tuple[ServicePolicy, dict[str, str], dict[str, int]]:
    """Topics, a policy file with `shop` alone in a namespace of its own, its Deployment; the processes' settings."""
    namespace = f"bench-{run_id}"
    prefix = f"bench-e2e-{run_id}-"
    cat = catalog.load(ROOT / "topics" / "catalog.yaml").with_prefix(prefix)
    admin = TopicAdmin(bootstrap)
    admin.apply(make_plan(cat, admin.describe(t.name for t in cat.topics), admin.broker_count()))
    policy_file = work / "autodeploy.yaml"
    text = (ROOT / "autodeploy.yaml").read_text().replace("namespace: shop,", f"namespace: {namespace},")
    policy_file.write_text(text.split("  # One repository, two services")[0])  # `shop` only
    policies = load_policies(policy_file)
    (shop,) = policies.services
    ensure_demo_deployments(kubeconfig, policies)
    key = secrets.token_hex(16)
    ports = {name: processes.free_port() for name in ("webhooks", "worker", "agent")}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTODEPLOY_TOPIC_PREFIX": prefix,
        "AUTODEPLOY_CONFIG": str(policy_file),
        "GITHUB_WEBHOOK_SECRETS": key,
        "CIRCLECI_WEBHOOK_SECRETS": key,
        "AUTODEPLOY_WORKER_ID": f"bench-e2e-readiness-{run_id}",
        "AUTODEPLOY_WORKER_DATADIR": str(work / "worker"),
        "AUTODEPLOY_WORKER_PORT": str(ports["worker"]),
        "AUTODEPLOY_WORKER_LAG": "0",
        "KUBECONFIG": str(kubeconfig),
        "AUTODEPLOY_DEPLOY_GROUP": f"bench-e2e-agent-{run_id}",
        "AUTODEPLOY_DEPLOY_METRICS_PORT": str(ports["agent"]),
        "AUTODEPLOY_DEPLOY_METRICS_HOST": "127.0.0.1",
    }
    return shop, env, ports


def run(commits: int, interval: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    os.environ["AUTODEPLOY_STATE_DIR"] = str(work / "state")  # our own broker and plane, never the user's
    run_id = secrets.token_hex(3)
    with broker(work) as bootstrap, control_plane() as kubeconfig:
        shop, env, ports = setup(bootstrap, kubeconfig, work, run_id)
        key = env["GITHUB_WEBHOOK_SECRETS"]
        cli = [sys.executable, "-m", "streams.cli"]
        url = f"http://127.0.0.1:{ports['webhooks']}"
        with (
            process([*cli, "webhooks", "--port", str(ports["webhooks"])], work / "webhooks.log", f"{url}/readyz", env),
            process(
                [*cli, "worker", "--loglevel", "warning"],
                work / "worker.log",
                f"http://127.0.0.1:{ports['worker']}/",
                env,
            ),
            process([*cli, "deploy-agent"], work / "agent.log", f"http://127.0.0.1:{ports['agent']}/metrics", env),
        ):
            api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
            watcher = PatchWatch(api, shop.target.namespace, shop.target.deployment)
            post = http_post(url)
            history = History(Secrets(key.encode(), key.encode()), repository="acme/shop")
            previous = NULL_SHA

            def ready_commit(label: str) -> tuple[str, float]:
                """Send one commit's push and checks; the image to wait for and the last check's send time."""
                nonlocal previous
                commit = sha(f"{run_id}/{label}")
                start = len(history.deliveries)
                history.push(previous, commit).circleci(commit, "success", name="build-test")
                history.actions(commit, "success", name="lint")
                previous = commit
                *first, last = history.deliveries[start:]
                for delivery in first:
                    post(delivery)
                sent = time.time()
                status, body = post(last)
                if status != 200:
                    raise RuntimeError(f"webhook answered {status}: {body}")
                return shop.image_for(commit) or "", sent

            image, _ = ready_commit("warm-up")  # consumers joined, caches warm
            if watcher.wait(image, 180) is None:
                raise RuntimeError(f"warm-up commit never deployed: {processes.tail(work / 'agent.log')}")
            sent: dict[str, float] = {}
            began = time.monotonic()
            for i in range(commits):
                time.sleep(max(0.0, began + i * interval - time.monotonic()))
                image, at = ready_commit(str(i))
                sent[image] = at
            watcher.wait(image, 120)  # the last one is never skipped: nothing newer is queued behind it
            time.sleep(2)
            watcher.stop()
            latencies = [(watcher.seen[i] - t) * 1000 for i, t in sent.items() if i in watcher.seen]
    return {
        "benchmark": "webhook -> Deployment patched",
        "commits": commits,
        "rate_per_s": round(1 / interval, 2),
        "patched": len(latencies),
        "skipped": commits - len(latencies),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "goal": f"p99 < {GOAL_P99_MS:.0f} ms",
        "met": bool(latencies) and percentile(latencies, 99) < GOAL_P99_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=150, help="ready commits to post (default 150)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between commits (default 1.0)")
    args = parser.parse_args()
    record("e2e", [run(args.commits, args.interval)])


if __name__ == "__main__":
    main()
