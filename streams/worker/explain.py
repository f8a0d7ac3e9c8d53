"""`GET /readiness/<owner>/<repo>/<sha>` and `autodeploy why`: which facts a commit has, which it lacks, per service."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from streams.domain.cdevents import rfc3339
from streams.domain.facts import EventRef
from streams.domain.readiness import CommitExplanation


def to_document(repository: str, commit: str, explanations: Sequence[CommitExplanation]) -> dict[str, Any]:
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
            }
            for e in explanations
        ],
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
    lines = [f"{document['repository']} @ {document['commit']}"]
    if not document["services"]:
        lines.append("  no service deploys from this repository")
    for service in document["services"]:
        state = service["decision"] or ("waiting" if service["waiting"] else "not seen on its branch yet")
        if service["superseded_by"]:
            state += f" by {service['superseded_by'][:12]}"
        if service["expires_at"]:
            state += f" (expires {service['expires_at']})"
        lines.append(f"  {service['service']} ({service['branch']}): {state}")
        lines += [
            f"    has     {f['type']} id={f['id']} at {f['time']} ({f['topic']}:{f['partition']}@{f['offset']})"
            for f in service["present"]
        ]
        lines += [f"    missing {m}" for m in service["missing"]]
    return "\n".join(lines)


def fetch(base_url: str, repository: str, commit: str, timeout: float = 10.0) -> dict[str, Any]:
    """Ask a worker's web server (it routes the question to the worker that owns the repository)."""
    owner_repo = repository.removeprefix("github.com/")
    url = f"{base_url.rstrip('/')}/readiness/{owner_repo}/{commit}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - operator-given worker URL
            document: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}") from e
    except OSError as e:
        raise RuntimeError(f"cannot reach the worker at {url}: {e}") from e
    return document
