"""Which CloudEvent attributes a GitHub or CircleCI webhook delivery gets, decided from its event name and payload.

GitHub deliveries follow the CloudEvents GitHub adapter table (cloudevents/spec `cloudevents/adapters/github.md`),
encoded below as `_GITHUB_RULES`; CircleCI deliveries get the analogous `com.circleci.<type>` mapping. The Kafka key
(`partitionkey`) is the repository as `<host>/<owner>/<name>`, lowercased, so that GitHub and CI facts about one
repository land in the same partition and can be joined.

Deliveries are authenticated before they get here, but the mapping still treats every value as untrusted: the
event name comes from a header, and a field of the wrong JSON type counts as missing rather than raising. The only
exception is `UnmappableDelivery`, raised when no valid CloudEvent `type` can be built at all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from streams.domain.untrusted import get

__all__ = [
    "EnvelopeAttributes",
    "UnmappableDelivery",
    "circleci_attributes",
    "circleci_commit",
    "github_attributes",
    "github_paths",
]


@dataclass(frozen=True)
class EnvelopeAttributes:
    """The CloudEvent attributes (and Kafka key) of one webhook delivery; `id` and `data` are the caller's."""

    type: str
    source: str
    subject: str | None
    time: datetime | None  # timezone-aware; None means "use the receipt time"
    partitionkey: str


class UnmappableDelivery(ValueError):
    """The delivery cannot become a CloudEvent: it has no usable event type."""


# ---------------------------------------------------------------------------------------------------------------
# Reading untrusted JSON


def _text(value: object) -> str | None:
    """A JSON string or integer as text (ids are integers); anything else, or an empty string, is missing."""
    if isinstance(value, bool):  # bool is an int, but "True" is no id
        return None
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # beyond Python's int-to-str digit limit: no real id is that long
            return None
    return value if isinstance(value, str) and value else None


_URI_REFERENCE: Final = re.compile(r"[^\s\x00-\x1f\x7f]+")


def _uri(value: object) -> str | None:
    # A URI-reference never holds whitespace or control characters; such a value is not worth passing on as source.
    return value if isinstance(value, str) and _URI_REFERENCE.fullmatch(value) else None


def _time(value: object) -> datetime | None:
    """An ISO-8601 string or epoch seconds (GitHub's push payload mixes both) as an aware datetime."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            parsed = datetime.fromtimestamp(value, UTC) if value > 0 else None
        elif isinstance(value, str):
            parsed = datetime.fromisoformat(value)
        else:
            parsed = None
    except (ValueError, OverflowError, OSError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # both providers write UTC; a missing offset is not a local time
        parsed = parsed.replace(tzinfo=UTC)
    # Go's zero time (0001-01-01T00:00:00Z, seen in GHCR package versions) means "unknown", not year one.
    return None if parsed.year <= 1 else parsed


_NOT_SEGMENT: Final = re.compile(r"[^a-z0-9_]+")
_MAX_EVENT_NAME: Final = 64  # GitHub's longest event name has 31 characters


def _segment(value: object) -> str | None:
    """A header or payload value made fit for one dot-separated segment of a CloudEvent type."""
    if not isinstance(value, str):
        return None
    return _NOT_SEGMENT.sub("_", value.strip().lower()).strip("_") or None


@functools.lru_cache(maxsize=512)  # X-GitHub-Event names: a few dozen in practice
def _event_segment(event: str) -> str | None:
    return _segment(event)


_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")


def _name(value: object) -> str | None:
    """An owner or repository name as GitHub, GitLab and Bitbucket allow them; '.' and '..' would read as paths."""
    if isinstance(value, str) and _NAME.fullmatch(value) and value not in {".", ".."}:
        return value
    return None


# ---------------------------------------------------------------------------------------------------------------
# GitHub


@dataclass(frozen=True)
class _Rule:
    """One row of the adapter table. Paths are dotted; `|` separates fallbacks tried in order; "" means Omit.

    `suffix` is the path whose value becomes the type's last segment; `time` "" means "Current time" (None).
    """

    suffix: str
    source: str
    subject: str
    time: str


_REPOSITORY_URL: Final = "repository.url"
_COMMIT_COMMENT_URL: Final = "comment.url + / + comment.commit_id"
_SENDER_URL_PARENT: Final = "sender.url without /username"
_GITHUB_COM: Final = "https://github.com"
_RELEASE_TIME: Final = "release.<action>_at"
_RELEASE_TIMES: Final[Mapping[str, str]] = {
    "created": "release.created_at",
    "published": "release.published_at",
    "released": "release.published_at",
    "prereleased": "release.published_at",
}
_UNKNOWN_EVENT: Final = _Rule("action", _REPOSITORY_URL, "", "")

# Keys are X-GitHub-Event names, taken from each row's `com.github.<event>` type rather than its CamelCase title
# (InstallationRepositoryEvent is `installation_repositories`, GitHubAppAuthorizationEvent `github_app_authorization`).
# Deviations from the table, each for a reason given in the table's own loose ends:
#   status: the table's "com.github.status." # + state ? is settled as com.github.status (the state is in data).
#   membership: the table says com.github.membership.<scope>.<action>; scope is always "team", so it is dropped to keep
#     every type at com.github.<event>[.<segment>].
#   discussion: the table puts discussion.updated_at in the dataschema row and "Current time" in time; swapped back.
#   page_build: "pusher.updated_at" does not exist in the payload; build.updated_at is what was meant.
#   security_advisory: the literal `github.com` is made the absolute https://github.com like every other source.
#   check_run and others: "X unless null then Y" is written X|Y.
_GITHUB_RULES: Final[Mapping[str, _Rule]] = {
    "branch_protection_configuration": _Rule("action", _REPOSITORY_URL, "", ""),
    "branch_protection_rule": _Rule("action", _REPOSITORY_URL, "rule.id", "rule.updated_at"),
    "check_run": _Rule("action", _REPOSITORY_URL, "check_run.id", "check_run.completed_at|check_run.started_at"),
    "check_suite": _Rule("action", _REPOSITORY_URL, "check_suite.id", "check_suite.updated_at"),
    "code_scanning_alert": _Rule("action", _REPOSITORY_URL, "alert.number", ""),
    "commit_comment": _Rule("action", _COMMIT_COMMENT_URL, "comment.id", "comment.updated_at"),
    "content_reference": _Rule("action", _REPOSITORY_URL, "content_reference.id", ""),
    "create": _Rule("ref_type", _REPOSITORY_URL, "ref", ""),
    "custom_property": _Rule("action", _REPOSITORY_URL, "definition.property_name", ""),
    "custom_property_values": _Rule("action", _REPOSITORY_URL, "", ""),
    "delete": _Rule("ref_type", _REPOSITORY_URL, "ref", ""),
    "dependabot_alert": _Rule("action", _REPOSITORY_URL, "alert.id", ""),
    "deploy_key": _Rule("action", _REPOSITORY_URL, "key.id", "key.deleted_at|key.created_at"),
    "deployment": _Rule("", _REPOSITORY_URL, "deployment.id", "deployment.updated_at"),
    "deployment_protection_rule": _Rule("action", "deployment.url", "deployment.id", ""),
    "deployment_review": _Rule("action", "deployment.url", "workflow_run.id", ""),
    "deployment_status": _Rule(
        "deployment_status.state", "deployment.url", "deployment_status.url", "deployment_status.updated_at"
    ),
    "discussion": _Rule("action", _REPOSITORY_URL, "discussion.id", "discussion.updated_at"),
    "discussion_comment": _Rule("action", _REPOSITORY_URL, "discussion.id", "comment.updated_at"),
    "fork": _Rule("", _REPOSITORY_URL, "forkee.url", "forkee.created_at"),
    "github_app_authorization": _Rule("", "sender.url", "", ""),
    "gollum": _Rule("", _REPOSITORY_URL, "", ""),
    "installation": _Rule("action", "installation.account.url", "installation.id", "installation.updated_at"),
    "installation_repositories": _Rule(
        "action", "installation.account.url", "installation.id", "installation.updated_at"
    ),
    "installation_target": _Rule("action", "installation.account.url", "installation.id", ""),
    "issue_comment": _Rule("action", "issue.url", "comment.id", "comment.updated_at"),
    "issues": _Rule("action", _REPOSITORY_URL, "issue.number", "issue.updated_at"),
    "label": _Rule("action", _REPOSITORY_URL, "label.name", ""),
    "marketplace_purchase": _Rule("action", _SENDER_URL_PARENT, "marketplace_purchase.account.login", "effective_date"),
    "member": _Rule("action", _REPOSITORY_URL, "member.login", ""),
    "membership": _Rule("action", "team.url", "member.login", ""),
    "merge_group": _Rule("action", _REPOSITORY_URL, "merge_group.head_ref", ""),
    "meta": _Rule("action", _REPOSITORY_URL, "hook_id", "hook.updated_at"),
    "milestone": _Rule("action", _REPOSITORY_URL, "milestone.number", "milestone.updated_at"),
    "organization": _Rule("action", "organization.url", "membership.user.login", ""),
    "org_block": _Rule("action", "organization.url", "blocked_user.login", ""),
    "package": _Rule("action", _REPOSITORY_URL, "package.id", "package.updated_at|package.created_at"),
    "page_build": _Rule("", _REPOSITORY_URL, "build.url", "build.updated_at"),
    "project_card": _Rule("action", _REPOSITORY_URL, "project_card.id", "project_card.updated_at"),
    "project_column": _Rule("action", _REPOSITORY_URL, "project_column.id", "project_column.updated_at"),
    "project": _Rule("action", _REPOSITORY_URL, "project.id", "project.updated_at"),
    "projects_v2": _Rule("action", _REPOSITORY_URL, "projects_v2.id", "projects_v2.updated_at"),
    "projects_v2_item": _Rule("action", _REPOSITORY_URL, "projects_v2_item.id", "projects_v2_item.updated_at"),
    "projects_v2_status_update": _Rule(
        "action", _REPOSITORY_URL, "projects_v2_status_update.id", "projects_v2_status_update.updated_at"
    ),
    "public": _Rule("", "repository.owner.url", "repository.name", "repository.updated_at"),
    "pull_request": _Rule("action", _REPOSITORY_URL, "number", "pull_request.updated_at"),
    "pull_request_review": _Rule("action", "pull_request.url", "review.id", "review.submitted_at"),
    "pull_request_review_comment": _Rule("action", "pull_request.url", "comment.id", "pull_request.updated_at"),
    "pull_request_review_thread": _Rule("action", "pull_request.url", "pull_request.id", ""),
    "push": _Rule("", _REPOSITORY_URL, "ref", ""),
    "registry_package": _Rule("action", _REPOSITORY_URL, "registry_package.html_url", "registry_package.updated_at"),
    "release": _Rule("action", _REPOSITORY_URL, "release.id", _RELEASE_TIME),
    "repository": _Rule("action", "repository.owner.url", "repository.name", "repository.updated_at"),
    "repository_advisory": _Rule(
        "action", _REPOSITORY_URL, "repository_advisory.ghsa_id", "repository_advisory.updated_at"
    ),
    "repository_dispatch": _Rule("action", "repository.owner.url", "", ""),
    "repository_import": _Rule("", "repository.owner.url", "repository.name", "repository.updated_at"),
    "repository_ruleset": _Rule("action", "repository.owner.url", "repository.name", "repository.updated_at"),
    "repository_vulnerability_alert": _Rule("action", _REPOSITORY_URL, "alert.id", ""),
    "secret_scanning_alert": _Rule("action", _REPOSITORY_URL, "alert.number", "alert.updated_at|alert.created_at"),
    "secret_scanning_alert_location": _Rule(
        "action", _REPOSITORY_URL, "alert.number", "alert.updated_at|alert.created_at"
    ),
    "security_advisory": _Rule("action", _GITHUB_COM, "security_advisory.ghsa_id", "security_advisory.updated_at"),
    "security_and_analysis": _Rule("", _REPOSITORY_URL, "", ""),
    "sponsorship": _Rule("action", _REPOSITORY_URL, "sponsorship.sponsor.login", ""),
    "star": _Rule("action", _REPOSITORY_URL, "", "starred_at"),
    "status": _Rule("", _REPOSITORY_URL, "sha", "updated_at"),
    "team": _Rule("action", _REPOSITORY_URL, "team.id", "updated_at"),
    "team_add": _Rule("action", _REPOSITORY_URL, "team.id", ""),
    "watch": _Rule("action", _REPOSITORY_URL, "", ""),
    "workflow_dispatch": _Rule("", _REPOSITORY_URL, "workflow", ""),
    "workflow_job": _Rule("action", _REPOSITORY_URL, "workflow_job.name", ""),
    "workflow_run": _Rule("action", _REPOSITORY_URL, "workflow.name", ""),
}


def _repository_api_url(payload: Mapping[str, Any]) -> str | None:
    url = _uri(get(payload, "repository.url"))
    # push deliveries (the octokit example, and GitHub's legacy push shape) carry the web URL in repository.url;
    # recover the API URL every other event uses, so one repository's events share one source.
    if url is not None and url == get(payload, "repository.html_url"):
        hooks = _uri(get(payload, "repository.hooks_url"))
        if hooks is not None and hooks.endswith("/hooks"):
            return hooks.removesuffix("/hooks")
    return url


def _commit_comment_url(payload: Mapping[str, Any]) -> str | None:
    url, commit = _uri(get(payload, "comment.url")), _uri(get(payload, "comment.commit_id"))
    return f"{url}/{commit}" if url and commit else None


def _sender_url_parent(payload: Mapping[str, Any]) -> str | None:
    url = _uri(get(payload, "sender.url"))
    parent = url.rstrip("/").rpartition("/")[0] if url else ""
    return parent or None


def _github_source(rule: _Rule, payload: Mapping[str, Any]) -> str:
    for token in rule.source.split("|"):
        if token == _GITHUB_COM:
            return _GITHUB_COM
        if token == _REPOSITORY_URL:
            found = _repository_api_url(payload)
        elif token == _COMMIT_COMMENT_URL:
            found = _commit_comment_url(payload)
        elif token == _SENDER_URL_PARENT:
            found = _sender_url_parent(payload)
        else:
            found = _uri(get(payload, token))
        if found:
            return found
    # The table's field is missing (org-level hooks have no repository): fall back from the narrowest owner to the
    # widest, so that source is never empty.
    login = _name(get(payload, "sender.login"))
    return (
        _repository_api_url(payload)
        or _uri(get(payload, "organization.url"))
        or _uri(get(payload, "sender.url"))
        or (f"{_GITHUB_COM}/{login}" if login else _GITHUB_COM)
    )


def github_partitionkey(payload: Mapping[str, Any]) -> str:
    """`github.com/<owner>/<name>` of the delivery's repository (`github.com/<org>` or `github.com` without one)."""
    return _github_partitionkey(payload)


def _github_partitionkey(payload: Mapping[str, Any]) -> str:
    full_name = get(payload, "repository.full_name")
    owner, _, name = full_name.partition("/") if isinstance(full_name, str) else ("", "", "")
    valid = _name(owner) and _name(name)
    if not valid:
        owner = _name(get(payload, "repository.owner.login")) or ""
        name = _name(get(payload, "repository.name")) or ""
        valid = owner and name
    if valid:
        return f"github.com/{owner}/{name}".lower()
    org = _name(get(payload, "organization.login"))
    return f"github.com/{org}".lower() if org else "github.com"


def _github_time(rule: _Rule, action: str | None, payload: Mapping[str, Any]) -> datetime | None:
    paths = rule.time
    if paths == _RELEASE_TIME:
        # "release.*_at value based on action": a release has created_at and published_at; any other action
        # (edited, deleted, unpublished) happened after both, so only an updated_at would say when.
        paths = _RELEASE_TIMES.get(action or "", "release.updated_at")
    for path in filter(None, paths.split("|")):
        if (found := _time(get(payload, path))) is not None:
            return found
    return None


# Read for every event: the repository's URLs and names (source and key), with owner fallbacks.
_ALWAYS_READ: Final = (
    "action",
    "repository.url",
    "repository.html_url",
    "repository.hooks_url",
    "repository.full_name",
    "repository.owner.login",
    "repository.name",
    "organization.login",
    "organization.url",
    "sender.login",
    "sender.url",
)
_SOURCE_TOKEN_PATHS: Final[Mapping[str, tuple[str, ...]]] = {
    _REPOSITORY_URL: (),
    _COMMIT_COMMENT_URL: ("comment.url", "comment.commit_id"),
    _SENDER_URL_PARENT: (),
    _GITHUB_COM: (),
}


@functools.lru_cache(maxsize=512)  # per event name; names come from a header, so the cache is bounded
def github_paths(event: str) -> frozenset[str]:
    """Every dotted path `github_attributes(event, payload)` may read: a payload cut down to these maps the same.

    Lets the webhook server build Python objects for a few fields instead of the whole payload.
    """
    rule = _GITHUB_RULES.get(_event_segment(event) or "", _UNKNOWN_EVENT)
    if rule.time == _RELEASE_TIME:
        times: tuple[str, ...] = (*_RELEASE_TIMES.values(), "release.updated_at")
    else:
        times = tuple(rule.time.split("|"))
    sources = tuple(p for token in rule.source.split("|") for p in _SOURCE_TOKEN_PATHS.get(token, (token,)))
    return frozenset(p for p in (*_ALWAYS_READ, rule.suffix, rule.subject, *times, *sources) if p)


def github_attributes(event: str, payload: Mapping[str, Any]) -> EnvelopeAttributes:
    """The CloudEvent attributes of a GitHub delivery; `event` is the X-GitHub-Event header."""
    name = _event_segment(event)
    if name is None or len(name) > _MAX_EVENT_NAME:
        raise UnmappableDelivery(f"GitHub delivery has no usable event name (X-GitHub-Event {event!r:.80})")
    if not isinstance(payload, Mapping):
        raise UnmappableDelivery(f"GitHub {name} delivery is not a JSON object")
    rule = _GITHUB_RULES.get(name, _UNKNOWN_EVENT)
    # An event documented with an action but delivered without one (team_add, 2015-era deployment_status) keeps the
    # bare com.github.<event> type rather than failing.
    suffix = _segment(get(payload, rule.suffix)) if rule.suffix else None
    action = _segment(payload.get("action"))
    subject = _text(get(payload, rule.subject)) if rule.subject else None
    return EnvelopeAttributes(
        type=f"com.github.{name}.{suffix}" if suffix else f"com.github.{name}",
        source=_github_source(rule, payload),
        subject=subject,
        time=_github_time(rule, action, payload),
        partitionkey=_github_partitionkey(payload),
    )


# ---------------------------------------------------------------------------------------------------------------
# CircleCI

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


def _repository_key(url: object) -> str | None:
    """`https://github.com/Owner/Name.git` as `github.com/owner/name`."""
    match = _GIT_URL.fullmatch(url.strip()) if isinstance(url, str) else None
    if match is None:
        return None
    parts = match["path"].strip("/").removesuffix(".git").split("/")
    if len(parts) < 2 or not all(_name(part) for part in parts):
        return None
    return "/".join([match["host"], *parts]).lower()


def _circleci_partitionkey(payload: Mapping[str, Any], slug: str | None) -> str:
    # The target repository first: a pull request from a fork builds in the target's project, whose GitHub events
    # carry the target as repository.
    for path in ("pipeline.vcs.target_repository_url", "pipeline.vcs.origin_repository_url"):
        if key := _repository_key(get(payload, path)):
            return key
    if slug is not None:
        vcs, _, rest = slug.partition("/")
        # GitHub App projects are `circleci/<org id>/<project id>`: no repository name in them.
        if vcs.lower() in _SLUG_HOSTS and rest.count("/") == 1:
            return f"{_SLUG_HOSTS[vcs.lower()]}/{rest}".lower()
    for path in _TRIGGER_REPO_URLS:
        if key := _repository_key(get(payload, path)):
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
    if kind is None or len(kind) > _MAX_EVENT_NAME or not _CIRCLECI_TYPE.fullmatch(kind):
        raise UnmappableDelivery(f"CircleCI delivery has an invalid `type`: {raw!r:.80}")
    slug_value = get(payload, "project.slug")
    slug = slug_value if isinstance(slug_value, str) and _SLUG.fullmatch(slug_value) else None
    subject_path = _CIRCLECI_SUBJECTS.get(kind)
    return EnvelopeAttributes(
        type=f"com.circleci.{kind}",
        source=f"https://circleci.com/api/v2/project/{quote(slug)}" if slug else "https://circleci.com",
        subject=_text(get(payload, subject_path)) if subject_path else None,
        time=_time(payload.get("happened_at")),
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
