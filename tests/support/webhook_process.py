"""`autodeploy webhooks` as operators run it, in its own process, for the fault suite."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from streams.local import processes
from tests.support.webhooks import CIRCLECI_SECRET, EVENTS_TOKEN, GITHUB_SECRET


@contextlib.contextmanager
def webhook_server(bootstrap: str, prefix: str, log: Path, **env: str) -> Iterator[str]:
    """Yields the server's base URL once /healthz answers; stopped on exit."""
    port = processes.free_port()
    proc = processes.start(
        [sys.executable, "-m", "streams.cli", "webhooks", "--port", str(port)],
        log,
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AUTODEPLOY_TOPIC_PREFIX": prefix,
            "GITHUB_WEBHOOK_SECRETS": GITHUB_SECRET.decode(),
            "CIRCLECI_WEBHOOK_SECRETS": CIRCLECI_SECRET.decode(),
            "AUTODEPLOY_EVENTS_TOKENS": EVENTS_TOKEN.decode(),
            **env,
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the webhook server exited: {processes.tail(log)}")
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the webhook server never answered: {processes.tail(log)}") from None
                time.sleep(0.2)
        yield url
    finally:
        processes.stop(proc.pid, timeout=10)
