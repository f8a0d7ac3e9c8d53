"""Which CloudEvent attributes a CircleCI outbound webhook delivery gets: `com.circleci.<type>`, by analogy with the
GitHub adapter (`webhook_mapping`), keyed by the repository the pipeline built, as GitHub's events are."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from streams.domain.untrusted import get, path_name, text_value, time_value
from streams.domain.webhook_mapping import MAX_EVENT_NAME, EnvelopeAttributes, UnmappableDelivery

__all__ = ["circleci_attributes", "circleci_commit", "repository_key"]

_CIRCLECI_TYPE: Final = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_CIRCLECI_SUBJECTS: Final[Mapping[str, str]] = {"workflow-completed": "workflow.name", "job-completed": "job.name"}
_SLUG: Final = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+")
_SLUG_HOSTS: Final[Mapping[str, str]] = {
    "gh": "github.com",
    "github": "github.com",
    "bb": "bitbucket.org",
    "bitbucket": "bitbucket.org",
    "gl": "gitlab.com",
    "gitlab": "gitlab.com",
}
# https://host/o/n(.git), ssh://git@host:22/o/n.git and scp-like git@host:o/n.git, as CircleCI reports clone URLs.
_GIT_URL: Final = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://)?(?:[^@/\s]+@)?(?P<host>[A-Za-z0-9.-]+)(?::[0-9]+)?[:/](?P<path>\S+)"
)
# Tried after the vcs map and the project slug: GitLab, GitHub App and Bitbucket DC pipelines have neither.
_TRIGGER_REPO_URLS: Final = (
    "pipeline.trigger_parameters.github_app.repo_url",
    "pipeline.trigger_parameters.gitlab.repo_url",
    "pipeline.trigger_parameters.git.repo_url",
    "pipeline.trigger_parameters.git.checkout_url",
    "pipeline.trigger_parameters.gitlab.web_url",
)
_COMMIT: Final = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def repository_key(url: object) -> str | None:
    """`https://github.com/Owner/Name.git` as `github.com/owner/name`."""
    match = _GIT_URL.fullmatch(url.strip()) if isinstance(url, str) else None
    if match is None:
        return None
    parts = match["path"].strip("/").removesuffix(".git").split("/")
    if len(parts) < 2 or not all(path_name(part) for part in parts):
        return None
    return "/".join([match["host"], *parts]).lower()


def _circleci_partitionkey(payload: Mapping[str, Any], slug: str | None) -> str:
    # The target repository first: a pull request from a fork builds in the target's project, whose GitHub events
    # carry the target as repository.
    for path in ("pipeline.vcs.target_repository_url", "pipeline.vcs.origin_repository_url"):
        if key := repository_key(get(payload, path)):
            return key
    if slug is not None:
        vcs, _, rest = slug.partition("/")
        # GitHub App projects are `circleci/<org id>/<project id>`: no repository name in them.
        if vcs.lower() in _SLUG_HOSTS and rest.count("/") == 1:
            return f"{_SLUG_HOSTS[vcs.lower()]}/{rest}".lower()
    for path in _TRIGGER_REPO_URLS:
        if key := repository_key(get(payload, path)):
            return key
    # Ids, not names: case is kept because CircleCI's project ids are case-sensitive.
    return f"circleci.com/{slug}" if slug else "circleci.com"


def circleci_attributes(payload: Mapping[str, Any]) -> EnvelopeAttributes:
    """The CloudEvent attributes of a CircleCI outbound webhook delivery."""
    if not isinstance(payload, Mapping):
        raise UnmappableDelivery("CircleCI delivery is not a JSON object")
    raw = payload.get("type")
    if raw is None:
        raise UnmappableDelivery("CircleCI delivery has no `type`")
    kind = raw.strip().lower() if isinstance(raw, str) else None
    if kind is None or len(kind) > MAX_EVENT_NAME or not _CIRCLECI_TYPE.fullmatch(kind):
        raise UnmappableDelivery(f"CircleCI delivery has an invalid `type`: {raw!r:.80}")
    slug_value = get(payload, "project.slug")
    slug = slug_value if isinstance(slug_value, str) and _SLUG.fullmatch(slug_value) else None
    subject_path = _CIRCLECI_SUBJECTS.get(kind)
    return EnvelopeAttributes(
        type=f"com.circleci.{kind}",
        source=f"https://circleci.com/api/v2/project/{quote(slug)}" if slug else "https://circleci.com",
        subject=text_value(get(payload, subject_path)) if subject_path else None,
        time=time_value(payload.get("happened_at")),
        partitionkey=_circleci_partitionkey(payload, slug),
    )


def circleci_commit(payload: Mapping[str, Any]) -> str | None:
    """The built commit's full SHA, lowercased: GitHub's head_sha is what it is joined with, so nothing shorter."""
    if not isinstance(payload, Mapping):
        return None
    for path in ("pipeline.vcs.revision", "pipeline.trigger_parameters.git.checkout_sha"):
        value = get(payload, path)
        if isinstance(value, str) and _COMMIT.fullmatch(value.lower()):
            return value.lower()
    return None
