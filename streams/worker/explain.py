"""`GET /readiness/<owner>/<repo>/<sha>` and `autodeploy why`: which facts a commit has, which it lacks, per service.

The commit may be a unique prefix of a known commit's SHA, as git accepts one: people copy the short SHAs that
`git log --oneline` and GitHub show.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from streams.domain.cdevents import rfc3339
from streams.domain.facts import EventRef
from streams.domain.promotion import EnvironmentStatus
from streams.domain.readiness import CommitExplanation
from streams.domain.readiness_state import RepositoryState

MIN_PREFIX = 4  # git's minimum abbreviation: a shorter one would match half a repository's commits
_HEX = re.compile(r"[0-9a-f]+")
_WHOLE_SHA = (40, 64)  # SHA-1, SHA-256
AMBIGUOUS_STATUS = 409  # the page's answer to an ambiguous prefix, with its candidates


class AmbiguousCommit(ValueError):
    """A prefix that starts more than one known commit; `candidates` are their full SHAs, sorted."""

    def __init__(self, repository: str, prefix: str, candidates: Sequence[str]) -> None:
        listed = "".join(f"\n  {c}" for c in candidates)
        super().__init__(f"commit {prefix} is ambiguous in {repository}: it starts {len(candidates)} commits:{listed}")
        self.repository = repository
        self.prefix = prefix
        self.candidates = tuple(candidates)


def resolve_commit(state: RepositoryState, commit: str) -> str:
    """The full SHA of the known commit `commit` abbreviates (itself if it is known whole, or matches none: then the
    answer says what is known of it, nothing). Raises AmbiguousCommit when it starts several."""
    commit = commit.lower()
    if commit in state.commits or commit in state.tombstones:
        return commit
    if len(commit) < MIN_PREFIX or not _HEX.fullmatch(commit):
        return commit
    # Pruned commits keep their decisions as tombstones: a prefix of one resolves as the whole SHA would.
    matches = sorted(
        {c for c in state.commits if c.startswith(commit)} | {c for c in state.tombstones if c.startswith(commit)}
    )
    if len(matches) > 1:
        raise AmbiguousCommit(state.repository, commit, matches)
    return matches[0] if matches else commit


def ambiguous_document(error: AmbiguousCommit) -> dict[str, Any]:
    return {
        "error": "ambiguous commit prefix",
        "repository": error.repository,
        "commit": error.prefix,
        "candidates": list(error.candidates),
    }


def to_document(
    repository: str,
    commit: str,
    explanations: Sequence[CommitExplanation],
    environments: Mapping[str, Sequence[EnvironmentStatus]] | None = None,
) -> dict[str, Any]:
    """`environments`: per service promoted through environments, its later environments' statuses."""
    later = environments or {}
    return {
        "repository": repository,
        "commit": commit,
        "services": [
            {
                "service": e.service,
                "branch": e.branch,
                "decision": e.status,
                "waiting": e.waiting,
                "superseded_by": e.superseded_by,
                "expires_at": rfc3339(e.deadline) if e.deadline else None,
                "present": [_ref(r) for r in e.present],
                "missing": list(e.missing),
                "other_facts": [_ref(r) for r in e.other],
                "environments": [_environment(status) for status in later.get(e.service, ())],
            }
            for e in explanations
        ],
    }


def _environment(status: EnvironmentStatus) -> dict[str, Any]:
    return {
        "environment": status.environment,
        "decision": status.status,
        "holds": list(status.holds),
        "missing": list(status.missing),
        "soak_ends_at": rfc3339(status.soak_ends) if status.soak_ends else None,
        "superseded_by": status.superseded_by,
        "reason": status.reason,
    }


def _ref(ref: EventRef) -> dict[str, Any]:
    return {
        "type": ref.type,
        "id": ref.id,
        "source": ref.source,
        "time": rfc3339(ref.time),
        "topic": ref.topic,
        "partition": ref.partition,
        "offset": ref.offset,
    }


def render(document: dict[str, Any]) -> str:
    """The terminal form of `to_document`'s output."""
    commit = document["commit"]
    lines = [f"{document['repository']} @ {commit}"]  # whole SHAs: this is where people copy them
    if len(commit) not in _WHOLE_SHA:  # the worker answers a prefix it knows with the whole SHA
        lines[0] += " (no commit known to the worker starts with this)"
    if not document["services"]:
        lines.append("  no service deploys from this repository")
    for service in document["services"]:
        state = service["decision"] or ("waiting" if service["waiting"] else "not seen on its branch yet")
        if service["superseded_by"]:
            state += f" by {service['superseded_by']}"
        if service["expires_at"]:
            state += f" (expires {service['expires_at']})"
        lines.append(f"  {service['service']} ({service['branch']}): {state}")
        lines += [
            f"    has     {f['type']} id={f['id']} at {f['time']} ({f['topic']}:{f['partition']}@{f['offset']})"
            for f in service["present"]
        ]
        lines += [f"    missing {m}" for m in service["missing"]]
        for environment in service.get("environments", ()):
            lines.append(f"  -> {environment['environment']}: {_environment_state(environment)}")
            lines += [f"    holds   {h}" for h in environment["holds"]]
            lines += [f"    missing {m}" for m in environment["missing"]]
    return "\n".join(lines)


def _environment_state(environment: Mapping[str, Any]) -> str:
    state = str(environment["decision"] or "waiting")
    if environment["superseded_by"]:
        state += f" by {environment['superseded_by']}"
    if environment["decision"] == "rejected" and environment["reason"]:
        state += f" ({environment['reason']})"
    return state


def fetch(base_url: str, repository: str, commit: str, timeout: float = 10.0) -> dict[str, Any]:
    """Ask a worker's web server (it routes the question to the worker that owns the repository)."""
    owner_repo = repository.removeprefix("github.com/")
    url = f"{base_url.rstrip('/')}/readiness/{owner_repo}/{commit}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - operator-given worker URL
            document: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.code == AMBIGUOUS_STATUS:
            answer = json.loads(body)
            raise AmbiguousCommit(answer["repository"], answer["commit"], answer["candidates"]) from e
        raise RuntimeError(f"{url}: HTTP {e.code}: {body.decode(errors='replace')[:300]}") from e
    except OSError as e:
        raise RuntimeError(f"cannot reach the worker at {url}: {e}") from e
    return document
