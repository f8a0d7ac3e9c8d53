"""Facts: what the readiness rules know, taken from provider and CI events. Pure data, no I/O.

A fact says that something happened to a commit of a repository, and remembers the event it came from (`EventRef`)
so that every decision can name the webhooks behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class EventRef:
    """Where a fact came from: the CloudEvent (`source` + `id` identify it) and its place in Kafka."""

    source: str
    id: str
    type: str
    time: datetime
    topic: str = ""
    partition: int = -1
    offset: int = -1
    # When the webhook server received it: the Kafka record's timestamp, which its producer sets at receipt. The start
    # of the pipeline latency; None in states written before it was recorded.
    received: datetime | None = None


class CheckKind(StrEnum):
    CIRCLECI = "circleci"  # a CircleCI workflow, by name
    GITHUB_ACTIONS = "github_actions"  # a GitHub Actions workflow run, by workflow name
    CHECK_RUN = "check_run"  # a GitHub check run, by name
    STATUS = "status"  # a GitHub commit status, by context
    PIPELINE = "pipeline"  # a CDEvents pipelinerun from another CI system, by pipelineName


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    ERROR = "error"
    PENDING = "pending"  # started or queued: not finished, replaces nothing final of a later attempt


@dataclass(frozen=True, slots=True)
class CheckId:
    kind: CheckKind
    name: str


@dataclass(frozen=True, slots=True)
class BranchPushed:
    """`before` -> `after` on `branch`; `forced` starts a new history; `deleted` removes the branch head."""

    repository: str  # github.com/<owner>/<name>, lowercase
    branch: str
    before: str
    after: str
    forced: bool
    deleted: bool
    ref: EventRef


@dataclass(frozen=True, slots=True)
class ChangeMerged:
    """A pull request was merged into `branch` as `commit` (GitHub also sends the push that follows)."""

    repository: str
    branch: str
    commit: str
    ref: EventRef


@dataclass(frozen=True, slots=True)
class CheckFinished:
    """A CI check of `commit` reached `outcome` at `attempt` (1 for the first run, higher for reruns)."""

    repository: str
    commit: str
    check: CheckId
    attempt: int
    outcome: Outcome
    ref: EventRef


@dataclass(frozen=True, slots=True)
class ImagePublished:
    """A container image was published; `commit` when the event says which commit it was built from."""

    repository: str
    commit: str | None
    image: str  # <registry>/<path>:<tag> or @<digest>
    ref: EventRef


Fact = BranchPushed | ChangeMerged | CheckFinished | ImagePublished


# Gate facts: what happened to a commit in one of its service's environments (streams.domain.promotion). The deploy
# agent reports rollouts and verifications, a person approvals; each names the service, which the join's key (the
# repository) does not.


@dataclass(frozen=True, slots=True)
class RolloutCompleted:
    """The commit's rollout in `environment` completed: every replica of its image available."""

    repository: str
    service: str
    environment: str
    commit: str
    ref: EventRef


@dataclass(frozen=True, slots=True)
class VerificationPassed:
    """Every verify query of `environment` held for the commit over its window."""

    repository: str
    service: str
    environment: str
    commit: str
    ref: EventRef


@dataclass(frozen=True, slots=True)
class RolledBack:
    """The commit was taken out of `environment`: its rollout failed, or a verify query did (`reason` says which)."""

    repository: str
    service: str
    environment: str
    commit: str
    reason: str
    ref: EventRef


@dataclass(frozen=True, slots=True)
class Approved:
    """A person (`approver`, as their verified key names them) approved the commit for `environment`."""

    repository: str
    service: str
    environment: str
    commit: str
    approver: str
    ref: EventRef


GateFact = RolloutCompleted | VerificationPassed | RolledBack | Approved
