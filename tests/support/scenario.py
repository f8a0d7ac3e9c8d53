"""A small repository history as signed webhook deliveries, built from real corpus payloads with their commits,
names and outcomes replaced."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.fixtures import FIXTURES
from tests.support.webhooks import Delivery, circleci_delivery, github_delivery

REPOSITORY = {
    "full_name": "acme/shop",
    "name": "shop",
    "url": "https://api.github.com/repos/acme/shop",
    "html_url": "https://github.com/acme/shop",
    "owner": {"login": "acme"},
}
_PUSH = json.loads((FIXTURES / "github" / "push.with-new-branch.payload.json").read_text())
_RUN = json.loads((FIXTURES / "github" / "workflow_run.completed.payload.json").read_text())
_WORKFLOW = json.loads(
    (FIXTURES / "circleci" / "docs" / "workflow-completed.github-oauth-bitbucket-cloud.docs.json").read_text()
)


def sha(label: str) -> str:
    """A stable 40-hex commit id for a readable label."""
    return uuid.uuid5(uuid.NAMESPACE_URL, label).hex + uuid.uuid5(uuid.NAMESPACE_DNS, label).hex[:8]


@dataclass
class History:
    """Deliveries in the order GitHub and CircleCI would send them; times advance one second per delivery."""

    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=5))
    deliveries: list[Delivery] = field(default_factory=list)

    def _time(self) -> str:
        moment = self.start + timedelta(seconds=len(self.deliveries))
        return moment.isoformat().replace("+00:00", "Z")

    def push(self, before: str, after: str, *, branch: str = "main", forced: bool = False) -> History:
        payload = copy.deepcopy(_PUSH)
        payload.update(
            ref=f"refs/heads/{branch}",
            before=before,
            after=after,
            forced=forced,
            created=False,
            deleted=False,
            repository={**payload["repository"], **REPOSITORY},
        )
        payload["head_commit"] = {**(payload.get("head_commit") or {}), "id": after, "timestamp": self._time()}
        self.deliveries.append(github_delivery("push", payload))
        return self

    def actions(self, commit: str, conclusion: str, *, name: str = "lint", attempt: int = 1) -> History:
        payload = copy.deepcopy(_RUN)
        payload["repository"] = {**payload["repository"], **REPOSITORY}
        payload["workflow_run"].update(
            name=name,
            head_sha=commit,
            head_branch="main",
            run_attempt=attempt,
            status="completed",
            conclusion=conclusion,
            updated_at=self._time(),
        )
        self.deliveries.append(github_delivery("workflow_run", payload))
        return self

    def circleci(self, commit: str, status: str, *, name: str = "build-test") -> History:
        payload = copy.deepcopy(_WORKFLOW)
        payload["id"] = str(uuid.uuid4())
        payload["happened_at"] = self._time()
        payload["project"] = {**payload["project"], "slug": "gh/acme/shop"}
        payload["workflow"] = {**payload["workflow"], "id": str(uuid.uuid4()), "name": name, "status": status}
        vcs = payload["pipeline"]["vcs"]
        vcs.update(
            revision=commit,
            branch="main",
            origin_repository_url="https://github.com/acme/shop",
            target_repository_url="https://github.com/acme/shop",
        )
        self.deliveries.append(circleci_delivery(payload))
        return self


def payloads(history: History) -> list[Any]:
    return [json.loads(d.body) for d in history.deliveries]
