"""A deployed application's /metrics as a test sets it: one error-ratio gauge per image, for Prometheus to scrape."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from streams.local.demo_app import METRIC, exposition

__all__ = ["METRIC", "AppMetrics"]


class AppMetrics:
    """Serves at 127.0.0.1 on a free port from a daemon thread until `close`."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # every scrape: noise in a test's output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="app-metrics", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def set(self, image: str, namespace: str, service: str, value: float) -> None:
        with self._lock:
            self._values[(image, namespace, service)] = value

    def remove(self, image: str, namespace: str, service: str) -> None:
        with self._lock:
            self._values.pop((image, namespace, service), None)

    def exposition(self) -> str:
        with self._lock:
            values = sorted(self._values.items())
        return exposition(
            ({"image": image, "namespace": namespace, "service": service}, value)
            for (image, namespace, service), value in values
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
