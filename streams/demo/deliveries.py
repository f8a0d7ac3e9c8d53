"""A repository's history as signed webhook deliveries, built from real payloads (templates/) with their commits,
names, outcomes and times replaced: what GitHub and CircleCI would send for it."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from streams.domain.signatures import circleci_signature, github_signature

NULL_SHA = "0" * 40


@dataclass(frozen=True)
class Delivery:
    path: str  # the endpoint, e.g. /webhooks/github
    body: bytes
    headers: Mapping[str, str]
    label: str = ""  # what it says, for people reading the demo


@dataclass(frozen=True)
class Secrets:
    github: bytes = field(repr=False)
    circleci: bytes = field(repr=False)


@cache
def template(name: str) -> dict[str, Any]:
    text = resources.files("streams.demo").joinpath("templates", name).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def sha(label: str) -> str:
    """A stable 40-hex commit id for a readable label."""
    return uuid.uuid5(uuid.NAMESPACE_URL, label).hex + uuid.uuid5(uuid.NAMESPACE_DNS, label).hex[:8]


def github_delivery(event: str, payload: Any, secret: bytes, label: str = "", delivery: str | None = None) -> Delivery:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(secret, body),
        "User-Agent": "GitHub-Hookshot/autodeploy-demo",
    }
    return Delivery("/webhooks/github", body, headers, label)


def circleci_delivery(payload: Any, secret: bytes, label: str = "") -> Delivery:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    event_type = payload.get("type", "") if isinstance(payload, dict) else ""
    headers = {
        "Content-Type": "application/json",
        "circleci-event-type": str(event_type),
        "circleci-signature": circleci_signature(secret, body),
        "User-Agent": "CircleCI-Webhook/1.0",
    }
    return Delivery("/webhooks/circleci", body, headers, label)


@dataclass
class History:
    """Deliveries in the order GitHub and CircleCI would send them; times advance one second per delivery."""

    secrets: Secrets
    repository: str = "acme/shop"  # owner/name on github.com
    branch: str = "main"
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=5))
    deliveries: list[Delivery] = field(default_factory=list)

    def _time(self) -> str:
        moment = self.start + timedelta(seconds=len(self.deliveries))
        return moment.isoformat().replace("+00:00", "Z")

    def _repository(self) -> dict[str, Any]:
        owner, name = self.repository.split("/", 1)
        return {
            "full_name": self.repository,
            "name": name,
            "url": f"https://api.github.com/repos/{self.repository}",
            "html_url": f"https://github.com/{self.repository}",
            "owner": {"login": owner},
        }

    def push(self, before: str, after: str, *, label: str = "") -> History:
        payload = copy.deepcopy(template("github-push.json"))
        payload.update(
            ref=f"refs/heads/{self.branch}",
            before=before,
            after=after,
            forced=False,
            created=False,
            deleted=False,
            repository={**payload["repository"], **self._repository()},
        )
        payload["head_commit"] = {**(payload.get("head_commit") or {}), "id": after, "timestamp": self._time()}
        self.deliveries.append(github_delivery("push", payload, self.secrets.github, label))
        return self

    def actions(self, commit: str, conclusion: str, *, name: str, attempt: int = 1, label: str = "") -> History:
        """A GitHub Actions workflow run completed."""
        payload = copy.deepcopy(template("github-workflow_run.json"))
        payload["repository"] = {**payload["repository"], **self._repository()}
        payload["workflow_run"].update(
            name=name,
            head_sha=commit,
            head_branch=self.branch,
            run_attempt=attempt,
            status="completed",
            conclusion=conclusion,
            updated_at=self._time(),
        )
        self.deliveries.append(github_delivery("workflow_run", payload, self.secrets.github, label))
        return self

    def circleci(self, commit: str, status: str, *, name: str, label: str = "") -> History:
        """A CircleCI workflow completed."""
        payload = copy.deepcopy(template("circleci-workflow-completed.json"))
        url = f"https://github.com/{self.repository}"
        payload["id"] = str(uuid.uuid4())
        payload["happened_at"] = self._time()
        payload["project"] = {**payload["project"], "slug": f"gh/{self.repository}"}
        payload["workflow"] = {**payload["workflow"], "id": str(uuid.uuid4()), "name": name, "status": status}
        payload["pipeline"]["vcs"].update(
            revision=commit, branch=self.branch, origin_repository_url=url, target_repository_url=url
        )
        self.deliveries.append(circleci_delivery(payload, self.secrets.circleci, label))
        return self
