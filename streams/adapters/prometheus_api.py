"""Prometheus's HTTP query API (instant and range queries), read-only."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any


class PrometheusQueryError(RuntimeError):
    """Prometheus could not be reached or refused the query (the message says which)."""


class PrometheusAPI:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=self.timeout) as response:  # noqa: S310
                doc = json.load(response)
        except urllib.error.HTTPError as e:  # 400/422: a bad query; the body says why
            try:
                doc = json.load(e)
            except ValueError:
                raise PrometheusQueryError(f"{path} {params}: HTTP {e.code}") from e
        except (OSError, ValueError) as e:
            raise PrometheusQueryError(f"{self.url}{path}: {e}") from e
        if doc.get("status") != "success":
            raise PrometheusQueryError(f"{params.get('query', path)}: {doc.get('errorType')}: {doc.get('error')}")
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

    def get(self, path: str) -> Any:
        return self._get(path, {})
