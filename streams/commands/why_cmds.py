"""`autodeploy why <owner>/<repo> <sha>`: why a commit is (not) ready, asked of a running worker."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from streams.config import WhySettings
from streams.domain.policy import normalise_repository
from streams.worker.explain import MIN_PREFIX, fetch, render

_SHA_OR_PREFIX = re.compile(rf"[0-9a-f]{{{MIN_PREFIX},64}}")  # SHA-1 (40) or SHA-256 (64), or a prefix of one


def register(sub: Any) -> None:
    parser = sub.add_parser("why", help="which facts a commit has and lacks, per service (asks a running worker)")
    parser.add_argument("repository", help="owner/repo (or github.com/owner/repo)")
    parser.add_argument("commit", help=f"the commit SHA, or a unique prefix of it ({MIN_PREFIX} digits at least)")
    parser.add_argument(
        "--worker",
        default=None,
        help="the worker's web address (default $AUTODEPLOY_WORKER_URL or http://127.0.0.1:6066)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    repository = normalise_repository(args.repository)
    if repository is None:
        raise ValueError(f"not a repository: {args.repository!r} (expected owner/repo)")
    commit = args.commit.lower()
    if not _SHA_OR_PREFIX.fullmatch(commit):
        raise ValueError(f"not a commit SHA: {args.commit!r} (expected {MIN_PREFIX} to 64 hex digits)")
    document = fetch(args.worker or WhySettings.from_env().worker_url, repository, commit)
    print(json.dumps(document, indent=2) if args.json else render(document))
    return 0
