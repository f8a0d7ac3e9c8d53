"""What the readiness worker says of a waiting commit (`GET /readiness/<owner>/<repo>/<sha>`, the document `autodeploy
why` prints): which facts it has and lacks, per service, and per later environment what holds it."""

from __future__ import annotations

from typing import Any

import aiohttp


class WorkerUnreachable(RuntimeError):
    """The worker did not answer, or not with a document."""


class WorkerClient:
    def __init__(self, base_url: str, timeout_s: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def explain(self, repository: str, commit: str) -> dict[str, Any]:
        owner_repo = repository.removeprefix("github.com/")
        url = f"{self.base_url}/readiness/{owner_repo}/{commit}"
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise WorkerUnreachable(f"{url} answered {response.status}")
                document: dict[str, Any] = await response.json(content_type=None)
                return document
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise WorkerUnreachable(f"{url}: {e or type(e).__name__}") from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
