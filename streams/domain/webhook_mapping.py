"""Which CloudEvent attributes a GitHub webhook delivery gets, decided from its event name and payload; the
attributes' type, shared with the CircleCI mapping (`circleci_mapping`).

GitHub deliveries follow the CloudEvents GitHub adapter table (cloudevents/spec `cloudevents/adapters/github.md`),
encoded below as `_GITHUB_RULES`. The Kafka key (`partitionkey`) is the repository as `<host>/<owner>/<name>`,
lowercased, so that GitHub and CI facts about one repository land in the same partition and can be joined.

Deliveries are authenticated before they get here, but the mapping still treats every value as untrusted: the
event name comes from a header, and a field of the wrong JSON type counts as missing rather than raising. The only
exception is `UnmappableDelivery`, raised when no valid CloudEvent `type` can be built at all.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from streams.domain.untrusted import get, path_name, text_value, time_value, type_segment, uri_value

__all__ = [
    "MAX_EVENT_NAME",
    "EnvelopeAttributes",
    "UnmappableDelivery",
    "github_attributes",
    "github_partitionkey",
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


MAX_EVENT_NAME: Final = 64  # GitHub's longest event name has 31 characters


@functools.lru_cache(maxsize=512)  # X-GitHub-Event names: a few dozen in practice
def _event_segment(event: str) -> str | None:
    return type_segment(event)


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
    url = uri_value(get(payload, "repository.url"))
    # push deliveries (the octokit example, and GitHub's legacy push shape) carry the web URL in repository.url;
    # recover the API URL every other event uses, so one repository's events share one source.
    if url is not None and url == get(payload, "repository.html_url"):
        hooks = uri_value(get(payload, "repository.hooks_url"))
        if hooks is not None and hooks.endswith("/hooks"):
            return hooks.removesuffix("/hooks")
    return url


def _commit_comment_url(payload: Mapping[str, Any]) -> str | None:
    url, commit = uri_value(get(payload, "comment.url")), uri_value(get(payload, "comment.commit_id"))
    return f"{url}/{commit}" if url and commit else None


def _sender_url_parent(payload: Mapping[str, Any]) -> str | None:
    url = uri_value(get(payload, "sender.url"))
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
            found = uri_value(get(payload, token))
        if found:
            return found
    # The table's field is missing (org-level hooks have no repository): fall back from the narrowest owner to the
    # widest, so that source is never empty.
    login = path_name(get(payload, "sender.login"))
    return (
        _repository_api_url(payload)
        or uri_value(get(payload, "organization.url"))
        or uri_value(get(payload, "sender.url"))
        or (f"{_GITHUB_COM}/{login}" if login else _GITHUB_COM)
    )


def github_partitionkey(payload: Mapping[str, Any]) -> str:
    """`github.com/<owner>/<name>` of the delivery's repository (`github.com/<org>` or `github.com` without one)."""
    return _github_partitionkey(payload)


def _github_partitionkey(payload: Mapping[str, Any]) -> str:
    full_name = get(payload, "repository.full_name")
    owner, _, name = full_name.partition("/") if isinstance(full_name, str) else ("", "", "")
    valid = path_name(owner) and path_name(name)
    if not valid:
        owner = path_name(get(payload, "repository.owner.login")) or ""
        name = path_name(get(payload, "repository.name")) or ""
        valid = owner and name
    if valid:
        return f"github.com/{owner}/{name}".lower()
    org = path_name(get(payload, "organization.login"))
    return f"github.com/{org}".lower() if org else "github.com"


def _github_time(rule: _Rule, action: str | None, payload: Mapping[str, Any]) -> datetime | None:
    paths = rule.time
    if paths == _RELEASE_TIME:
        # "release.*_at value based on action": a release has created_at and published_at; any other action
        # (edited, deleted, unpublished) happened after both, so only an updated_at would say when.
        paths = _RELEASE_TIMES.get(action or "", "release.updated_at")
    for path in filter(None, paths.split("|")):
        if (found := time_value(get(payload, path))) is not None:
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
    if name is None or len(name) > MAX_EVENT_NAME:
        raise UnmappableDelivery(f"GitHub delivery has no usable event name (X-GitHub-Event {event!r:.80})")
    if not isinstance(payload, Mapping):
        raise UnmappableDelivery(f"GitHub {name} delivery is not a JSON object")
    rule = _GITHUB_RULES.get(name, _UNKNOWN_EVENT)
    # An event documented with an action but delivered without one (team_add, 2015-era deployment_status) keeps the
    # bare com.github.<event> type rather than failing.
    suffix = type_segment(get(payload, rule.suffix)) if rule.suffix else None
    action = type_segment(payload.get("action"))
    subject = text_value(get(payload, rule.subject)) if rule.subject else None
    return EnvelopeAttributes(
        type=f"com.github.{name}.{suffix}" if suffix else f"com.github.{name}",
        source=_github_source(rule, payload),
        subject=subject,
        time=_github_time(rule, action, payload),
        partitionkey=_github_partitionkey(payload),
    )
