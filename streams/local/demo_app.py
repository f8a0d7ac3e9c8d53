"""The demo's application, as its metrics would show it: what `autodeploy up` runs for staging's `verify` check.

kwok's pods run nothing, so this stands in for them: at each scrape it lists the Deployments of the local control
plane and reports, per Deployment and the image its pod template runs, that image's error ratio. Every image has 0
unless `autodeploy demo` set another (PUT /error-ratio {"image": ..., "ratio": ...}): a bad commit is one whose image
fails. Prometheus scrapes /metrics; the policy's query selects by namespace and image.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

METRIC: Final = "autodeploy_demo_error_ratio"
HELP: Final = f"# HELP {METRIC} Share of requests that failed, per image.\n# TYPE {METRIC} gauge\n"

# (namespace, deployment, container, image) of each container of each Deployment.
Workloads = Callable[[], Iterable[tuple[str, str, str, str]]]


class DemoAppError(RuntimeError):
    """The demo application cannot be reached or refused a change."""


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def sample_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def exposition(samples: Iterable[tuple[Mapping[str, str], float]]) -> str:
    """The text format of METRIC's samples."""
    lines = [HELP.rstrip("\n")]
    for labels, value in samples:
        rendered = ",".join(f'{name}="{label_value(v)}"' for name, v in sorted(labels.items()))
        lines.append(f"{METRIC}{{{rendered}}} {sample_value(value)}")
    return "\n".join(lines) + "\n"


def cluster_workloads(kubeconfig: Path) -> Workloads:
    """Every container of every Deployment on the cluster of `kubeconfig`, read anew at each call."""
    from kubernetes import client, config  # noqa: PLC0415 - kubernetes is slow to import; only `up` needs it

    api = client.AppsV1Api(config.new_client_from_config(config_file=str(kubeconfig)))  # type: ignore[no-untyped-call]

    def workloads() -> list[tuple[str, str, str, str]]:
        found = []
        for deployment in api.list_deployment_for_all_namespaces(_request_timeout=5).items:
            meta, spec = deployment.metadata, deployment.spec
            if meta is None or spec is None or spec.template.spec is None:
                continue
            for container in spec.template.spec.containers:
                found.append((str(meta.namespace), str(meta.name), str(container.name), str(container.image or "")))
        return found

    return workloads


class DemoApp:
    """Serves at 127.0.0.1:`port` (0: a free one) from a daemon thread until `close`."""

    def __init__(self, workloads: Workloads, port: int = 0) -> None:
        self._workloads = workloads
        self._ratios: dict[str, float] = {}
        self._lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self._answer(404, "GET /metrics, PUT /error-ratio\n")
                    return
                try:
                    body = app.metrics()
                except Exception as e:  # noqa: BLE001 - any failure to list is "the application is down"
                    log.warning("cannot list the Deployments error=%r", e)
                    self._answer(503, f"cannot list the Deployments: {e}\n")
                    return
                self._answer(200, body, "text/plain; version=0.0.4; charset=utf-8")

            def do_PUT(self) -> None:
                if self.path != "/error-ratio":
                    self._answer(404, "PUT /error-ratio\n")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    change = json.loads(self.rfile.read(min(length, 65536)))
                    image, ratio = str(change["image"]), float(change["ratio"])
                except (ValueError, KeyError, TypeError) as e:
                    self._answer(400, f'expected {{"image": "<image>", "ratio": <number>}}: {e}\n')
                    return
                app.set_error_ratio(image, ratio)
                self._answer(204, "")

            def _answer(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
                data = body.encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # every scrape: noise
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-app", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def set_error_ratio(self, image: str, ratio: float) -> None:
        with self._lock:
            self._ratios[image] = ratio

    def metrics(self) -> str:
        with self._lock:
            ratios = dict(self._ratios)
        samples = [
            ({"namespace": namespace, "deployment": deployment, "container": container, "image": image}, 0.0)
            for namespace, deployment, container, image in sorted(self._workloads())
        ]
        return exposition((labels, ratios.get(labels["image"], value)) for labels, value in samples)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def set_error_ratio(address: str, image: str, ratio: float, timeout: float = 10.0) -> None:
    """Ask the demo application at host:port to report `ratio` for `image` from now on."""
    request = urllib.request.Request(
        f"http://{address}/error-ratio",
        data=json.dumps({"image": image, "ratio": ratio}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - same
            response.read()
    except urllib.error.HTTPError as e:
        raise DemoAppError(f"the demo application at {address} answered {e.code}: {e.read()[:200]!r}") from e
    except OSError as e:
        raise DemoAppError(f"cannot reach the demo application at {address}: {e}") from e
