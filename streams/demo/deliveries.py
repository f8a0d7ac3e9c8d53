"""A repository's history as signed webhook deliveries, built from real payloads (templates/) with their commits,
names, outcomes and times replaced: what GitHub and CircleCI would send for it.

The payload builders are the one place that edits the templates: the demo, the tests, the fault suite and the
benchmarks all build their pushes, workflow runs and CircleCI workflows here."""

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


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as GitHub and CircleCI write their times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def repository_fields(repository: str) -> dict[str, Any]:
    """The `repository` fields of a GitHub payload for `owner/name` on github.com."""
    owner, name = repository.split("/", 1)
    return {
        "full_name": repository,
        "name": name,
        "url": f"https://api.github.com/repos/{repository}",
        "html_url": f"https://github.com/{repository}",
        "owner": {"login": owner},
    }


@dataclass(frozen=True)
class Payloads:
    """Payloads of one repository (`owner/name` on github.com) and branch, as GitHub and CircleCI send them."""

    repository: str
    branch: str = "main"

    def push(self, before: str, after: str, when: datetime, *, forced: bool = False) -> dict[str, Any]:
        """`after` pushed over `before` (NULL_SHA: the first push seen); `forced` rewrites the branch's history."""
        payload = copy.deepcopy(template("github-push.json"))
        payload.update(
            ref=f"refs/heads/{self.branch}",
            before=before,
            after=after,
            forced=forced,
            created=False,
            deleted=False,
            repository={**payload["repository"], **repository_fields(self.repository)},
        )
        payload["head_commit"] = {**(payload.get("head_commit") or {}), "id": after, "timestamp": timestamp(when)}
        return payload

    def workflow_run(
        self, commit: str, conclusion: str, when: datetime, *, name: str, attempt: int = 1
    ) -> dict[str, Any]:
        """A GitHub Actions workflow run of `commit` completed; `attempt` > 1 is a rerun."""
        payload = copy.deepcopy(template("github-workflow_run.json"))
        payload["repository"] = {**payload["repository"], **repository_fields(self.repository)}
        payload["workflow_run"].update(
            name=name,
            head_sha=commit,
            head_branch=self.branch,
            run_attempt=attempt,
            status="completed",
            conclusion=conclusion,
            updated_at=timestamp(when),
        )
        return payload

    def circleci_workflow(
        self, commit: str, status: str, when: datetime, *, name: str, delivery: str = "", workflow: str = ""
    ) -> dict[str, Any]:
        """A CircleCI workflow of `commit` completed; a rerun has a new `workflow` id. Ids default to random ones."""
        payload = copy.deepcopy(template("circleci-workflow-completed.json"))
        url = f"https://github.com/{self.repository}"
        payload["id"] = delivery or str(uuid.uuid4())
        payload["happened_at"] = timestamp(when)
        payload["project"] = {**payload["project"], "slug": f"gh/{self.repository}"}
        workflow_id = workflow or str(uuid.uuid4())
        payload["workflow"] = {**payload["workflow"], "id": workflow_id, "name": name, "status": status}
        payload["pipeline"]["vcs"].update(
            revision=commit, branch=self.branch, origin_repository_url=url, target_repository_url=url
        )
        return payload


@dataclass
class History:
    """Deliveries in the order GitHub and CircleCI would send them; times advance one second per delivery."""

    secrets: Secrets
    repository: str = "acme/shop"  # owner/name on github.com
    branch: str = "main"
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=5))
    deliveries: list[Delivery] = field(default_factory=list)

    def _time(self) -> datetime:
        return self.start + timedelta(seconds=len(self.deliveries))

    def push(
        self, before: str, after: str, *, branch: str | None = None, forced: bool = False, label: str = ""
    ) -> History:
        payloads = Payloads(self.repository, branch or self.branch)
        payload = payloads.push(before, after, self._time(), forced=forced)
        self.deliveries.append(github_delivery("push", payload, self.secrets.github, label))
        return self

    def actions(
        self, commit: str, conclusion: str, *, name: str = "lint", attempt: int = 1, label: str = ""
    ) -> History:
        """A GitHub Actions workflow run completed."""
        payloads = Payloads(self.repository, self.branch)
        payload = payloads.workflow_run(commit, conclusion, self._time(), name=name, attempt=attempt)
        self.deliveries.append(github_delivery("workflow_run", payload, self.secrets.github, label))
        return self

    def circleci(self, commit: str, status: str, *, name: str = "build-test", label: str = "") -> History:
        """A CircleCI workflow completed."""
        payload = Payloads(self.repository, self.branch).circleci_workflow(commit, status, self._time(), name=name)
        self.deliveries.append(circleci_delivery(payload, self.secrets.circleci, label))
        return self
