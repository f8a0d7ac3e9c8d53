"""Prometheus's HTTP query API (instant and range queries), read-only."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any


class PrometheusQueryError(RuntimeError):
    """Prometheus could not be reached or refused the query (the message says which; the subclasses too)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when an answer came


class PrometheusUnreachable(PrometheusQueryError):
    """No answer from Prometheus: refused connection, timeout, or a proxy's 5xx page instead of the API's JSON."""


class PrometheusBadQuery(PrometheusQueryError):
    """Prometheus refused the expression itself (errorType bad_data: a PromQL parse or type error)."""


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> Any:
        query = urllib.parse.urlencode(params)
        status = 200
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=self.timeout) as response:  # noqa: S310
                doc = json.load(response)
        except urllib.error.HTTPError as e:  # 400/422: a bad query; the body says why
            status = e.code
            try:
                doc = json.load(e)
            except (OSError, http.client.HTTPException, ValueError) as not_json:
                # Prometheus answers its API in JSON even when it fails; anything else is what stands in front of it.
                error = PrometheusUnreachable if e.code >= 500 else PrometheusQueryError
                raise error(f"{self.url}{path} {params}: HTTP {e.code}", status=e.code) from not_json
        except (OSError, http.client.HTTPException) as e:
            raise PrometheusUnreachable(f"{self.url}{path}: {e}") from e
        except ValueError as e:
            raise PrometheusQueryError(f"{self.url}{path}: not JSON: {e}") from e
        if doc.get("status") != "success":
            error = PrometheusBadQuery if doc.get("errorType") == "bad_data" else PrometheusQueryError
            raise error(f"{params.get('query', path)}: {doc.get('errorType')}: {doc.get('error')}", status=status)
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector or scalar result of `expr` now; a scalar comes back as one sample without labels."""
        data = self._get("/api/v1/query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[dict[str, Any]]:
        """Matrix: one entry per series, with `values` as [unix time, "value"] pairs."""
        params = {"query": expr, "start": str(start.timestamp()), "end": str(end.timestamp()), "step": str(step_s)}
        return list(self._get("/api/v1/query_range", params)["result"])

    def check_syntax(self, expr: str) -> None:
        """Raise PrometheusBadQuery when `expr` does not parse; nothing is evaluated.

        /api/v1/format_query (Prometheus 2.38 and later) parses without touching the data. Where it is missing (an
        older Prometheus, or another server of the same API), an instant query at time 0 parses the same way and
        finds no data to work on.
        """
        try:
            self._get("/api/v1/format_query", {"query": expr})
        except PrometheusQueryError as e:
            if e.status != 404:
                raise
            self._get("/api/v1/query", {"query": expr, "time": "0"})

    def get(self, path: str) -> Any:
        return self._get(path, {})
