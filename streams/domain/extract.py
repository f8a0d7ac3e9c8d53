"""Facts from events: which CloudEvents on github.events, ci.events and deploy.gates say something the rules use.

`facts_from_event` is pure and total: an event autodeploy does not use, or a payload that does not hold what its type
promises (a field missing or of the wrong JSON type), gives no facts rather than an exception, so one odd delivery
never stops the worker. Repositories are spelled as the Kafka keys spell them (webhook_mapping), so facts from
GitHub, CircleCI and CDEvents about one repository meet.

Job-level events (`com.circleci.job-completed`, GitHub `workflow_job`) give no facts: in v1 a required check is a
whole workflow, and a job's result is already part of its workflow's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote

from streams.domain.circleci_mapping import circleci_attributes, circleci_commit
from streams.domain.facts import (
    BranchPushed,
    ChangeMerged,
    CheckFinished,
    CheckId,
    CheckKind,
    EventRef,
    Fact,
    GateFact,
    ImagePublished,
    Outcome,
)
from streams.domain.gate_extract import GATE_EXTRACTORS
from streams.domain.policy import normalise_repository
from streams.domain.untrusted import commit_value, get
from streams.domain.webhook_mapping import UnmappableDelivery, github_partitionkey

__all__ = ["facts_from_event"]

_ZERO_COMMIT: Final = "0" * 40

# GitHub check-run and workflow-run conclusions. Branch protection counts success, neutral and skipped as passing
# (docs: "About status checks"), and so does autodeploy: a workflow skipped by its `if:` blocks nothing.
# action_required waits for a person (e.g. approving a fork's run) and then runs, so it is not finished: PENDING.
# stale is GitHub giving up on a run that never finished: not a failure of the code, so CANCELLED.
_CONCLUSIONS: Final[Mapping[str, Outcome]] = {
    "success": Outcome.SUCCESS,
    "neutral": Outcome.SUCCESS,
    "skipped": Outcome.SUCCESS,
    "failure": Outcome.FAILURE,
    "timed_out": Outcome.FAILURE,
    "startup_failure": Outcome.FAILURE,
    "cancelled": Outcome.CANCELLED,
    "stale": Outcome.CANCELLED,
    "action_required": Outcome.PENDING,
}
_STATUS_STATES: Final[Mapping[str, Outcome]] = {
    "success": Outcome.SUCCESS,
    "failure": Outcome.FAILURE,
    "error": Outcome.ERROR,
    "pending": Outcome.PENDING,
}
# CircleCI spells it "canceled"; "unauthorized" (a restricted context refused the run) is the commit's failure to pass.
_CIRCLECI_STATUSES: Final[Mapping[str, Outcome]] = {
    "success": Outcome.SUCCESS,
    "failed": Outcome.FAILURE,
    "error": Outcome.ERROR,
    "canceled": Outcome.CANCELLED,
    "unauthorized": Outcome.FAILURE,
}
_PIPELINE_OUTCOMES: Final[Mapping[str, Outcome]] = {
    "success": Outcome.SUCCESS,
    "failure": Outcome.FAILURE,
    "cancel": Outcome.CANCELLED,
    "error": Outcome.ERROR,
}
# A result spelled in a way no table above knows is not a pass: ERROR keeps the check from counting as green
# while saying that autodeploy, not the code, could not tell.
_UNKNOWN: Final = Outcome.ERROR

# OCI distribution: a repository path is lowercase components; a tag is at most 128 word characters, dots and dashes.
_IMAGE_PATH: Final = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*")
_REGISTRY: Final = re.compile(r"(?:[a-z0-9-]+\.)*[a-z0-9-]+(?::[0-9]+)?")
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST: Final = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+")
_OCI_REVISION: Final = "org.opencontainers.image.revision"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return parsed if parsed.year > 1 else None  # Go's zero time means "unknown"


def _github_repository(event: str, data: Mapping[str, Any]) -> str | None:
    if not isinstance(data, Mapping):
        return None
    key = github_partitionkey(data)
    # Without a repository the key falls back to the organisation (`github.com/<org>`): no fact is about that.
    return key if key.count("/") == 2 else None


def _conclusion(value: object) -> Outcome:
    conclusion = _str(value)
    return Outcome.PENDING if conclusion is None else _CONCLUSIONS.get(conclusion, _UNKNOWN)  # None: not finished


# ---------------------------------------------------------------------------------------------------------------
# GitHub


def _push(data: Mapping[str, Any], ref: EventRef, _: str | None) -> list[Fact]:
    git_ref, before, after = _str(data.get("ref")), commit_value(data.get("before")), commit_value(data.get("after"))
    repository = _github_repository("push", data)
    if git_ref is None or not git_ref.startswith("refs/heads/") or before is None or after is None or not repository:
        return []  # tags, and pushes without the history they promise
    branch = git_ref.removeprefix("refs/heads/")
    if not branch:
        return []
    deleted = data.get("deleted") is True or after == _ZERO_COMMIT
    return [BranchPushed(repository, branch, before, after, data.get("forced") is True, deleted, ref)]


def _pull_request_closed(data: Mapping[str, Any], ref: EventRef, _: str | None) -> list[Fact]:
    # merge_commit_sha is GitHub's test merge on every open or closed PR: only `merged` says it reached the branch.
    if get(data, "pull_request.merged") is not True:
        return []
    branch, commit = _str(get(data, "pull_request.base.ref")), commit_value(get(data, "pull_request.merge_commit_sha"))
    repository = _github_repository("pull_request", data)
    if branch is None or commit is None or repository is None:
        return []
    return [ChangeMerged(repository, branch, commit, ref)]


def _workflow_run(data: Mapping[str, Any], ref: EventRef, _: str | None) -> list[Fact]:
    # The run's name is what the Actions UI and branch protection show; octokit's examples leave it empty, and
    # then the workflow's own name (the CloudEvent subject) is the same thing.
    name = _str(get(data, "workflow_run.name")) or _str(get(data, "workflow.name"))
    commit, repository = commit_value(get(data, "workflow_run.head_sha")), _github_repository("workflow_run", data)
    attempt = get(data, "workflow_run.run_attempt")
    attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1 else 1
    if name is None or commit is None or repository is None:
        return []
    if not ref.type.endswith(".completed"):
        outcome = Outcome.PENDING  # requested / in_progress, even when an early conclusion is already set
    else:
        outcome = _conclusion(get(data, "workflow_run.conclusion"))
    return [CheckFinished(repository, commit, CheckId(CheckKind.GITHUB_ACTIONS, name), attempt, outcome, ref)]


def _check_run(data: Mapping[str, Any], ref: EventRef, _: str | None) -> list[Fact]:
    name, commit = _str(get(data, "check_run.name")), commit_value(get(data, "check_run.head_sha"))
    repository = _github_repository("check_run", data)
    if name is None or commit is None or repository is None:
        return []
    outcome = _conclusion(get(data, "check_run.conclusion"))
    # Check runs have no attempt number; a rerun is a new run of the same name. The fold orders results of one
    # attempt by time, so the time is when this run finished, not when its webhook was sent or received.
    finished = _instant(get(data, "check_run.completed_at"))
    ref = replace(ref, time=finished or ref.time)
    return [CheckFinished(repository, commit, CheckId(CheckKind.CHECK_RUN, name), 1, outcome, ref)]


def _status(data: Mapping[str, Any], ref: EventRef, _: str | None) -> list[Fact]:
    name, commit, state = _str(data.get("context")), commit_value(data.get("sha")), _str(data.get("state"))
    repository = _github_repository("status", data)
    if name is None or commit is None or state is None or repository is None:
        return []
    outcome = _STATUS_STATES.get(state, _UNKNOWN)
    return [CheckFinished(repository, commit, CheckId(CheckKind.STATUS, name), 1, outcome, ref)]


def _package_published(data: Mapping[str, Any], ref: EventRef, _: str | None) -> list[Fact]:
    package = data.get("package") if isinstance(data.get("package"), Mapping) else data.get("registry_package")
    kind = " ".join(str(get(package, key)).lower() for key in ("package_type", "ecosystem"))
    # GHCR pushes every manifest of a multi-arch image as its own untagged version: only the tagged one (the index)
    # is something to deploy. The tag is empty, not absent, on the others.
    tag = _str(get(package, "package_version.container_metadata.tag.name"))
    namespace, name = _str(get(package, "namespace")), _str(get(package, "name"))
    repository = _github_repository("package", data)
    if "container" not in kind and "docker" not in kind:
        return []
    if tag is None or namespace is None or name is None or repository is None or not _TAG.fullmatch(tag):
        return []
    path = f"{namespace}/{name}".lower()  # registries store repository paths lowercase; tags keep their case
    package_url = _str(get(package, "package_version.package_url")) or ""
    host = package_url.split("/", 1)[0].lower() if "/" in package_url else ""
    registry = host if "." in host and _REGISTRY.fullmatch(host) else "ghcr.io"
    if not _IMAGE_PATH.fullmatch(path):
        return []
    # The OCI revision label, when the image was built with it, names the commit; GitHub also copies it to `revision`.
    labels = get(package, "package_version.container_metadata.labels")
    all_labels = get(labels, "all_labels")
    commit = commit_value(all_labels.get(_OCI_REVISION) if isinstance(all_labels, Mapping) else None)
    commit = commit or commit_value(get(labels, "revision"))
    return [ImagePublished(repository, commit, f"{registry}/{path}:{tag}", ref)]


# ---------------------------------------------------------------------------------------------------------------
# CircleCI and CDEvents


def _circleci_workflow(data: Mapping[str, Any], ref: EventRef, partitionkey: str | None) -> list[Fact]:
    # A rerun is a new workflow id with the same name and no attempt number: attempt 1, ordered by happened_at.
    name, status, commit = (
        _str(get(data, "workflow.name")),
        _str(get(data, "workflow.status")),
        circleci_commit(data),
    )
    try:
        attributes = circleci_attributes(data)
        repository: str | None = attributes.partitionkey
        time = attributes.time or ref.time
    except UnmappableDelivery:  # no usable `type` in the payload: the envelope's key still names the repository
        repository, time = normalise_repository(partitionkey), ref.time
    # A bare `circleci.com` key (no project slug, no repository URL) names no repository at all.
    if name is None or status is None or commit is None or repository is None or "/" not in repository:
        return []
    outcome = _CIRCLECI_STATUSES.get(status, _UNKNOWN)
    ref = replace(ref, time=time)
    return [CheckFinished(repository, commit, CheckId(CheckKind.CIRCLECI, name), 1, outcome, ref)]


def _cdevent_origin(data: Mapping[str, Any], partitionkey: str | None) -> tuple[str | None, str | None]:
    # CDEvents 0.5 has no field for the commit or repository; the catalog asks producers to put them in customData.
    repository = normalise_repository(get(data, "customData.repository")) or normalise_repository(partitionkey)
    return repository, commit_value(get(data, "customData.commit"))


def _pipelinerun_finished(data: Mapping[str, Any], ref: EventRef, partitionkey: str | None) -> list[Fact]:
    repository, commit = _cdevent_origin(data, partitionkey)
    name, outcome = _str(get(data, "subject.content.pipelineName")), _str(get(data, "subject.content.outcome"))
    if repository is None or commit is None or name is None or outcome is None:
        return []
    result = _PIPELINE_OUTCOMES.get(outcome, _UNKNOWN)
    return [CheckFinished(repository, commit, CheckId(CheckKind.PIPELINE, name), 1, result, ref)]


def _oci_image(purl: object) -> str | None:
    """`pkg:oci/<name>@<digest>?repository_url=<registry>/<ns>&tag=<tag>` as `<registry>/<ns>/<name>:<tag>`."""
    text = purl.strip() if isinstance(purl, str) else ""
    scheme, _, rest = text.partition(":")
    kind, _, rest = rest.lstrip("/").partition("/")
    if scheme.lower() != "pkg" or kind.lower() != "oci":
        return None  # another package type (a jar, a Go module) is no image
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    name, _, version = rest.partition("@")
    qualifiers = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
    tag, digest = unquote(qualifiers.get("tag", "")), unquote(version)
    repository_url = unquote(qualifiers.get("repository_url", "")).lower().rstrip("/")
    repository_url = repository_url.split("://", 1)[-1]
    # Without repository_url the registry is unknown, and no policy's image could be matched against it.
    image = f"{repository_url}/{unquote(name).lower()}"
    registry, _, path = image.partition("/")
    if not repository_url or not _REGISTRY.fullmatch(registry) or not _IMAGE_PATH.fullmatch(path):
        return None
    if tag:
        return f"{image}:{tag}" if _TAG.fullmatch(tag) else None
    return f"{image}@{digest}" if _DIGEST.fullmatch(digest) else None


def _artifact_published(data: Mapping[str, Any], ref: EventRef, partitionkey: str | None) -> list[Fact]:
    repository, commit = _cdevent_origin(data, partitionkey)
    image = _oci_image(get(data, "subject.id"))
    if repository is None or image is None:
        return []
    return [ImagePublished(repository, commit, image, ref)]


_Extractor = (
    Callable[[Mapping[str, Any], EventRef, str | None], list[Fact]]
    | Callable[[Mapping[str, Any], EventRef, str | None], list[GateFact]]
)
_EXTRACTORS: Final[Mapping[str, _Extractor]] = {
    "com.github.push": _push,
    "com.github.pull_request.closed": _pull_request_closed,
    "com.github.workflow_run.requested": _workflow_run,
    "com.github.workflow_run.in_progress": _workflow_run,
    "com.github.workflow_run.completed": _workflow_run,
    "com.github.check_run.completed": _check_run,
    "com.github.status": _status,
    "com.github.package.published": _package_published,
    "com.github.registry_package.published": _package_published,
    "com.circleci.workflow-completed": _circleci_workflow,
    "dev.cdevents.pipelinerun.finished.0.3.0": _pipelinerun_finished,
    "dev.cdevents.artifact.published.0.3.0": _artifact_published,
    **GATE_EXTRACTORS,  # deploy.gates (the catalog keeps each type on its topic)
}


def facts_from_event(
    ce_type: str,
    source: str,
    event_id: str,
    time: datetime,
    data: Any,
    *,
    partitionkey: str | None = None,
    topic: str = "",
    partition: int = -1,
    offset: int = -1,
    received: datetime | None = None,
) -> list[Fact | GateFact]:
    """The facts one CloudEvent states; [] for an event type autodeploy does not read or a payload it cannot use.

    `time` is the CloudEvent time (aware; a naive one is taken as UTC). Check runs and CircleCI workflows carry
    their own finish time, which replaces it, because the fold orders results of one check by time. `received` is
    the Kafka record's timestamp (the webhook server's receipt).
    """
    extractor = _EXTRACTORS.get(ce_type)
    if extractor is None or not isinstance(data, Mapping):
        return []
    aware = time if time.tzinfo is not None else time.replace(tzinfo=UTC)
    return list(
        extractor(data, EventRef(source, event_id, ce_type, aware, topic, partition, offset, received), partitionkey)
    )
