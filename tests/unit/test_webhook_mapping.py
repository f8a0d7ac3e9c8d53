from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.circleci_mapping import circleci_attributes, circleci_commit
from streams.domain.webhook_mapping import EnvelopeAttributes, UnmappableDelivery, github_attributes
from tests.support.fixtures import FIXTURES, fixtures

# tests/unit/<this file> -> /work/main -> /work; the corpus is shared between checkouts, not part of the repository.
GITHUB = FIXTURES / "github"
CIRCLECI = FIXTURES / "circleci"

GITHUB_TYPE = re.compile(r"^com\.github\.[a-z0-9_]+(\.[a-z0-9_]+)?$")
CIRCLECI_TYPE = re.compile(r"^com\.circleci\.[a-z0-9]+([-_][a-z0-9]+)*$")
REPOSITORY_KEY = re.compile(r"^github\.com/[a-z0-9_.-]+/[a-z0-9_.-]+$")
ANY_GITHUB_KEY = re.compile(r"^github\.com(/[a-z0-9_.-]+){0,2}$")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def github_corpus() -> list[tuple[str, Path]]:
    """(X-GitHub-Event, payload file) for every GitHub delivery in the corpus."""
    octokit = [p for p in fixtures("github") if p.name != "signature-test-vectors.json"]
    cdviz = [p for p in fixtures("github/cdviz") if not p.name.endswith(".headers.json")]
    zulip = [GITHUB / "zulip" / "deployment_status__failure.json"]
    return [(p.name.split(".")[0], p) for p in octokit + cdviz] + [("deployment_status", p) for p in zulip]


def circleci_corpus() -> list[Path]:
    # The docs' invalid GitLab job-completed sample lives in invalid-verbatim.yaml, not as .json; parsing is still
    # checked here so that an unparsable .json added later is skipped, not mistaken for a mapping failure.
    found = []
    for path in sorted([*fixtures("circleci/docs"), *fixtures("circleci/zulip")]):
        try:
            load(path)
        except json.JSONDecodeError:
            continue
        found.append(path)
    return found


def gh(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = load(GITHUB / name)
    return payload


def assert_well_formed(attrs: EnvelopeAttributes) -> None:
    assert attrs.source and not re.search(r"\s", attrs.source)
    assert attrs.time is None or attrs.time.utcoffset() is not None
    assert attrs.subject is None or (isinstance(attrs.subject, str) and attrs.subject)


# --- GitHub: the whole corpus --------------------------------------------------------------------------------


def test_the_corpus_holds_the_expected_github_deliveries() -> None:
    assert len(github_corpus()) == 47 + 18 + 1  # octokit, cdviz without the header files, zulip


@pytest.mark.parametrize(
    ("event", "path"), github_corpus(), ids=lambda v: str(v.relative_to(GITHUB)) if isinstance(v, Path) else v
)
def test_every_github_delivery_in_the_corpus_maps(event: str, path: Path) -> None:
    payload = load(path)
    attrs = github_attributes(event, payload)
    assert GITHUB_TYPE.match(attrs.type)
    assert attrs.type == f"com.github.{event}" or attrs.type.startswith(f"com.github.{event}.")
    assert_well_formed(attrs)
    if isinstance(payload.get("repository"), dict):
        assert REPOSITORY_KEY.match(attrs.partitionkey)
        assert attrs.partitionkey == "github.com/" + payload["repository"]["full_name"].lower()
    else:
        assert ANY_GITHUB_KEY.match(attrs.partitionkey)


# --- GitHub: exact expectations ------------------------------------------------------------------------------


def test_push_of_a_tag_deletion() -> None:
    attrs = github_attributes("push", gh("push.payload.json"))
    assert attrs == EnvelopeAttributes(
        type="com.github.push",
        # repository.url is the web URL in this push payload; the API URL is recovered so all events agree.
        source="https://api.github.com/repos/Codertocat/Hello-World",
        subject="refs/tags/simple-tag",
        time=None,  # the table says "Current time" for push
        partitionkey="github.com/codertocat/hello-world",
    )


def test_push_whose_repository_url_is_already_the_api_url() -> None:
    attrs = github_attributes("push", gh("cdviz/push.event.02.json"))
    assert attrs.source == "https://api.github.com/repos/aaaaa-aaa/aaaaa-aaaaaaaaa"
    assert attrs.subject == "refs/heads/db-branch-3"


def test_pull_request_closed_unmerged_and_merged() -> None:
    closed = github_attributes("pull_request", gh("pull_request.closed.payload.json"))
    assert closed == EnvelopeAttributes(
        type="com.github.pull_request.closed",
        source="https://api.github.com/repos/Codertocat/Hello-World",
        subject="2",
        time=utc("2019-05-15T15:21:18"),
        partitionkey="github.com/codertocat/hello-world",
    )
    merged = github_attributes("pull_request", gh("cdviz/pull_request.closed.01.json"))
    assert (merged.type, merged.subject) == ("com.github.pull_request.closed", "97")
    assert merged.partitionkey == "github.com/aaaaa-aaa/aaaaa-aaaaaaaaa"


def test_workflow_run_completed() -> None:
    attrs = github_attributes("workflow_run", gh("workflow_run.completed.payload.json"))
    assert attrs == EnvelopeAttributes(
        type="com.github.workflow_run.completed",
        source="https://api.github.com/repos/octo-org/octo-repo",
        subject="test",  # workflow.name
        time=None,
        partitionkey="github.com/octo-org/octo-repo",
    )


def test_check_run_completed_and_check_suite() -> None:
    run = github_attributes("check_run", gh("check_run.completed.payload.json"))
    assert run == EnvelopeAttributes(
        type="com.github.check_run.completed",
        source="https://api.github.com/repos/Codertocat/Hello-World",
        subject="128620228",
        time=utc("2019-05-15T15:21:12"),
        partitionkey="github.com/codertocat/hello-world",
    )
    suite = github_attributes("check_suite", gh("check_suite.completed.payload.json"))
    assert (suite.type, suite.subject, suite.time) == (
        "com.github.check_suite.completed",
        "118578147",
        utc("2019-05-15T15:21:14"),
    )


def test_check_run_not_completed_falls_back_to_started_at() -> None:
    payload = gh("check_run.created.payload.json")
    payload["check_run"] = {**payload["check_run"], "completed_at": None, "started_at": "2019-05-15T15:21:01Z"}
    assert github_attributes("check_run", payload).time == utc("2019-05-15T15:21:01")


def test_status_has_no_state_suffix() -> None:
    attrs = github_attributes("status", gh("status.payload.json"))
    assert attrs == EnvelopeAttributes(
        type="com.github.status",
        source="https://api.github.com/repos/Codertocat/Hello-World",
        subject="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        time=utc("2019-05-15T15:20:55"),
        partitionkey="github.com/codertocat/hello-world",
    )


def test_create_types_by_ref_type() -> None:
    tag = github_attributes("create", gh("create.payload.json"))
    assert (tag.type, tag.subject, tag.time) == ("com.github.create.tag", "simple-tag", None)
    branch = github_attributes("create", gh("cdviz/create.event.01.json"))
    assert (branch.type, branch.subject) == ("com.github.create.branch", "db-branch-3")
    deleted = github_attributes("delete", {"ref": "feature", "ref_type": "branch", "repository": {"full_name": "o/n"}})
    assert (deleted.type, deleted.subject, deleted.partitionkey) == (
        "com.github.delete.branch",
        "feature",
        "github.com/o/n",
    )


def test_package_published() -> None:
    ghcr = github_attributes("package", gh("cdviz/package.published.4.json"))
    assert ghcr == EnvelopeAttributes(
        type="com.github.package.published",
        source="https://api.github.com/repos/aaaaa-aaa/aaaaa-aaaaaaaaa",
        subject="1111111",
        time=utc("2025-01-24T14:31:36"),
        partitionkey="github.com/aaaaa-aaa/aaaaa-aaaaaaaaa",
    )
    npm = github_attributes("package", gh("package.published.npm.payload.json"))
    assert (npm.type, npm.subject, npm.partitionkey) == (
        "com.github.package.published",
        "10696",
        "github.com/codertocat/hello-world-npm",
    )
    registry = github_attributes("registry_package", gh("registry_package.published.docker.payload.json"))
    assert registry.type == "com.github.registry_package.published"
    assert registry.subject == "https://github.com/Codertocat/hello-world/packages/10696"


def test_package_zero_times_are_unknown() -> None:
    payload = gh("cdviz/package.published.4.json")
    payload["package"] = {**payload["package"], "updated_at": "0001-01-01T00:00:00Z", "created_at": None}
    assert github_attributes("package", payload).time is None
    payload["package"]["created_at"] = "2024-12-12T19:14:56Z"  # "updated_at unless null then created_at"
    assert github_attributes("package", payload).time == utc("2024-12-12T19:14:56")


def test_deployment_status_types_by_state_with_or_without_action() -> None:
    modern = github_attributes("deployment_status", gh("deployment_status.payload.json"))
    assert modern == EnvelopeAttributes(
        type="com.github.deployment_status.success",
        source="https://api.github.com/repos/Codertocat/Hello-World/deployments/145988746",  # deployment.url
        subject="https://api.github.com/repos/Codertocat/Hello-World/deployments/145988746/statuses/209916254",
        time=utc("2019-05-15T15:20:55"),
        partitionkey="github.com/codertocat/hello-world",
    )
    legacy = github_attributes("deployment_status", gh("zulip/deployment_status__failure.json"))
    assert (legacy.type, legacy.partitionkey) == (
        "com.github.deployment_status.failure",
        "github.com/baxterthehacker/public-repo",
    )
    no_state = github_attributes("deployment_status", {"action": "created", "deployment_status": {}})
    assert no_state.type == "com.github.deployment_status"


def test_deployment_type_has_no_action_per_the_table() -> None:
    attrs = github_attributes("deployment", gh("deployment.payload.json"))
    assert (attrs.type, attrs.subject, attrs.time) == ("com.github.deployment", "145988746", utc("2019-05-15T15:20:53"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("release.created.payload.json", utc("2019-05-15T15:19:25")),  # created_at
        ("release.published.payload.json", utc("2019-05-15T15:20:53")),  # published_at
        ("release.released.json", utc("2019-05-15T15:20:53")),
        ("release.prereleased.payload.json", utc("2019-05-15T15:20:53")),
    ],
)
def test_release_time_depends_on_the_action(name: str, expected: datetime) -> None:
    attrs = github_attributes("release", gh(name))
    assert (attrs.subject, attrs.time) == ("17372790", expected)


def test_release_edited_without_updated_at_uses_receipt_time() -> None:
    payload = {**gh("release.published.payload.json"), "action": "edited"}
    assert github_attributes("release", payload).time is None


def test_org_level_ping_falls_back_to_the_organization() -> None:
    attrs = github_attributes("ping", gh("ping.with-organization.payload.json"))
    assert attrs == EnvelopeAttributes(
        type="com.github.ping",
        source="https://api.github.com/orgs/Octocoders",
        subject=None,
        time=None,
        partitionkey="github.com/octocoders",
    )


@pytest.mark.parametrize(
    ("payload", "source", "key"),
    [
        (
            {"sender": {"login": "Octo", "url": "https://api.github.com/users/Octo"}},
            "https://api.github.com/users/Octo",
            "github.com",
        ),
        ({"sender": {"login": "Octo"}}, "https://github.com/Octo", "github.com"),
        ({"sender": {"login": "not a login"}}, "https://github.com", "github.com"),
        ({}, "https://github.com", "github.com"),
        ({"repository": {"url": "has space", "full_name": "A/B"}}, "https://github.com", "github.com/a/b"),
        (
            {"repository": {"full_name": 7, "name": "Repo", "owner": {"login": "Me"}}},
            "https://github.com",
            "github.com/me/repo",
        ),
        (
            {"repository": {"full_name": "../x/y"}, "organization": {"login": "Org"}},
            "https://github.com",
            "github.com/org",
        ),
    ],
)
def test_missing_fields_fall_back_and_never_raise(payload: dict[str, Any], source: str, key: str) -> None:
    attrs = github_attributes("watch", {"action": "started", **payload})
    assert (attrs.type, attrs.source, attrs.partitionkey) == ("com.github.watch.started", source, key)


@pytest.mark.parametrize(
    ("event", "payload", "expected_type", "source", "subject"),
    [
        # an event the table does not know still maps
        (
            "merge_queue_entry",
            {"action": "Added", "repository": {"url": "u://r"}},
            "com.github.merge_queue_entry.added",
            "u://r",
            None,
        ),
        # the table's membership type carries `scope`, which is always "team": dropped to keep two segments
        (
            "membership",
            {"action": "added", "scope": "team", "team": {"url": "u://t"}, "member": {"login": "m"}},
            "com.github.membership.added",
            "u://t",
            "m",
        ),
        # documented with an action, delivered without one
        ("team_add", {"team": {"id": 5}, "repository": {"url": "u://r"}}, "com.github.team_add", "u://r", "5"),
        # repository_dispatch's action is the client's event_type: sanitized
        (
            "repository_dispatch",
            {"action": "Deploy-Now!", "repository": {"owner": {"url": "u://o"}}},
            "com.github.repository_dispatch.deploy_now",
            "u://o",
            None,
        ),
        (
            "commit_comment",
            {"action": "created", "comment": {"id": 1, "url": "u://c", "commit_id": "abc"}},
            "com.github.commit_comment.created",
            "u://c/abc",
            "1",
        ),
        (
            "marketplace_purchase",
            {"action": "purchased", "sender": {"url": "https://api.github.com/users/x"}},
            "com.github.marketplace_purchase.purchased",
            "https://api.github.com/users",
            None,
        ),
        (
            "security_advisory",
            {"action": "published", "security_advisory": {"ghsa_id": "GHSA-1"}},
            "com.github.security_advisory.published",
            "https://github.com",
            "GHSA-1",
        ),
        (
            "installation_repositories",
            {"action": "added", "installation": {"id": 9, "account": {"url": "u://a"}}},
            "com.github.installation_repositories.added",
            "u://a",
            "9",
        ),
        ("delete", {"ref": "x"}, "com.github.delete", "https://github.com", "x"),
    ],
)
def test_table_rows_and_their_loose_ends(
    event: str, payload: dict[str, Any], expected_type: str, source: str, subject: str | None
) -> None:
    attrs = github_attributes(event, payload)
    assert (attrs.type, attrs.source, attrs.subject) == (expected_type, source, subject)


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        # epoch seconds, as in push's repository.pushed_at, where the table points at an installation time
        ("installation", {"action": "created", "installation": {"updated_at": 1557933657}}, utc("2019-05-15T15:20:57")),
        (
            "installation",
            {"action": "created", "installation": {"updated_at": "2019-05-15T15:20:57.000+02:00"}},
            datetime.fromisoformat("2019-05-15T15:20:57+02:00"),
        ),
        ("installation", {"action": "created", "installation": {"updated_at": 0}}, None),
        ("installation", {"action": "created", "installation": {"updated_at": True}}, None),
        ("installation", {"action": "created", "installation": {"updated_at": "yesterday"}}, None),
        (
            "installation",
            {"action": "created", "installation": {"updated_at": "2019-05-15T15:20:57"}},
            utc("2019-05-15T15:20:57"),
        ),
        # the table's discussion row has its time in the dataschema cell; swapped back
        (
            "discussion",
            {"action": "edited", "discussion": {"updated_at": "2021-01-01T00:00:00Z"}},
            utc("2021-01-01T00:00:00"),
        ),
        ("page_build", {"build": {"updated_at": "2021-01-01T00:00:00Z"}}, utc("2021-01-01T00:00:00")),
        ("star", {"action": "created", "starred_at": None}, None),
    ],
)
def test_times(event: str, payload: dict[str, Any], expected: datetime | None) -> None:
    assert github_attributes(event, payload).time == expected


@pytest.mark.parametrize(
    ("header", "name"), [(" Check_Run ", "check_run"), ("push\n", "push"), ("x-custom.event", "x_custom_event")]
)
def test_event_names_are_sanitized(header: str, name: str) -> None:
    assert github_attributes(header, {}).type == f"com.github.{name}"


@pytest.mark.parametrize("header", ["", "   ", "💥", "../..", "-", "a" * 65])
def test_garbage_event_names_are_unmappable(header: str) -> None:
    with pytest.raises(UnmappableDelivery, match="event name"):
        github_attributes(header, {"action": "opened"})


def test_a_payload_that_is_not_an_object_is_unmappable() -> None:
    with pytest.raises(UnmappableDelivery):
        github_attributes("push", [])  # type: ignore[arg-type]
    with pytest.raises(UnmappableDelivery):
        circleci_attributes("ping")  # type: ignore[arg-type]


# --- CircleCI ------------------------------------------------------------------------------------------------


def test_the_corpus_holds_the_expected_circleci_deliveries() -> None:
    assert len(circleci_corpus()) == 4 + 9


def test_the_invalid_docs_sample_is_not_json() -> None:
    verbatim = yaml.safe_load((CIRCLECI / "docs" / "invalid-verbatim.yaml").read_text(encoding="utf-8"))
    with pytest.raises(json.JSONDecodeError):
        json.loads(verbatim["body"])


@pytest.mark.parametrize("path", circleci_corpus(), ids=lambda p: str(p.relative_to(CIRCLECI)))
def test_every_circleci_delivery_in_the_corpus_maps(path: Path) -> None:
    payload = load(path)
    attrs = circleci_attributes(payload)
    assert attrs.type == f"com.circleci.{payload['type']}"
    assert_well_formed(attrs)
    assert attrs.time is not None
    if payload["type"] != "ping":
        assert attrs.subject
        assert re.match(r"^(github\.com|gitlab\.com|bitbucket\.org)/[a-z0-9_.-]+/[a-z0-9_.-]+$", attrs.partitionkey)
        assert circleci_commit(payload) is not None


GITHUB_OAUTH_SOURCE = "https://circleci.com/api/v2/project/github/circleci/webhook-service"
GITLAB_SOURCE = "https://circleci.com/api/v2/project/circleci/DdaVtNusHqi24D4YT3X4eu/6EkDPZoN4ZdMKKZtBkRodt"


@pytest.mark.parametrize(
    ("name", "expected", "commit"),
    [
        (
            "docs/workflow-completed.github-oauth-bitbucket-cloud.docs.json",
            EnvelopeAttributes(
                "com.circleci.workflow-completed",
                GITHUB_OAUTH_SOURCE,
                "build-test-deploy",
                utc("2021-09-01T22:49:34.317"),
                "github.com/circleci/webhook-service",
            ),
            "1dc6aa69429bff4806ad6afe58d3d8f57e25973e",
        ),
        (
            "docs/job-completed.github-oauth-bitbucket-cloud.docs.json",
            EnvelopeAttributes(
                "com.circleci.job-completed",
                GITHUB_OAUTH_SOURCE,
                "test",
                utc("2021-09-01T22:49:34.279"),
                "github.com/circleci/webhook-service",
            ),
            "1dc6aa69429bff4806ad6afe58d3d8f57e25973e",
        ),
        # no vcs map and a GitHub-App-style slug: the repository comes from the GitLab trigger parameters
        (
            "docs/workflow-completed.gitlab-githubapp-bbdc.docs.json",
            EnvelopeAttributes(
                "com.circleci.workflow-completed",
                GITLAB_SOURCE,
                "build",
                utc("2022-05-27T16:20:13.954328"),
                "gitlab.com/circleci/hello-world",
            ),
            "850a1519f25d14e968649cc420d1bd381715c05c",
        ),
        (
            "docs/job-completed.gitlab-githubapp-bbdc.docs.json",
            EnvelopeAttributes(
                "com.circleci.job-completed",
                GITLAB_SOURCE,
                "say-hello",
                utc("2022-05-27T16:20:13.954328"),
                "gitlab.com/circleci/hello-world",
            ),
            "850a1519f25d14e968649cc420d1bd381715c05c",
        ),
        (
            "zulip/github_tag_workflow_completed.json",
            EnvelopeAttributes(
                "com.circleci.workflow-completed",
                "https://circleci.com/api/v2/project/github/prah23/circleci-webhook-test",
                "sample",
                utc("2022-11-08T11:13:21.949388"),
                "github.com/prah23/circleci-webhook-test",
            ),
            "0e6e66c14e61fbcd95db716b0f30d67dbcce7814",
        ),
        (
            "zulip/bitbucket_job_completed.json",
            EnvelopeAttributes(
                "com.circleci.job-completed",
                "https://circleci.com/api/v2/project/bitbucket/hariprashant1/circleci-webhook-testing",
                "build-and-test",
                utc("2022-11-07T15:42:15.023009"),
                "bitbucket.org/hariprashant1/circleci-webhook-testing",
            ),
            "8ab595d2de95767993472837df2cb7884519a92b",
        ),
        (
            "zulip/ping.json",
            EnvelopeAttributes(
                "com.circleci.ping", "https://circleci.com", None, utc("2023-06-17T19:50:27.457981"), "circleci.com"
            ),
            None,
        ),
    ],
)
def test_circleci_samples(name: str, expected: EnvelopeAttributes, commit: str | None) -> None:
    payload = load(CIRCLECI / name)
    assert circleci_attributes(payload) == expected
    assert circleci_commit(payload) == commit


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (
            {
                "pipeline": {
                    "vcs": {
                        "origin_repository_url": "https://github.com/Fork/Name.git",
                        "target_repository_url": "https://github.com/Owner/Name.git",
                    }
                }
            },
            "github.com/owner/name",
        ),
        ({"pipeline": {"vcs": {"origin_repository_url": "https://github.com/Owner/Name/"}}}, "github.com/owner/name"),
        ({"project": {"slug": "gh/Owner/Name"}}, "github.com/owner/name"),
        ({"project": {"slug": "github/Owner/Name"}}, "github.com/owner/name"),
        ({"project": {"slug": "bb/Owner/Name"}}, "bitbucket.org/owner/name"),
        ({"project": {"slug": "gitlab/Owner/Name"}}, "gitlab.com/owner/name"),
        (
            {
                "project": {"slug": "circleci/AbC/DeF"},
                "pipeline": {"trigger_parameters": {"github_app": {"repo_url": "https://github.com/Owner/Name"}}},
            },
            "github.com/owner/name",
        ),
        (
            {
                "project": {"slug": "circleci/AbC/DeF"},
                "pipeline": {"trigger_parameters": {"git": {"repo_url": "ssh://git@github.com:22/Owner/Name.git"}}},
            },
            "github.com/owner/name",
        ),
        ({"project": {"slug": "circleci/AbC/DeF"}}, "circleci.com/circleci/AbC/DeF"),
        ({"project": {"slug": "not a slug"}}, "circleci.com"),
        ({"pipeline": {"vcs": {"target_repository_url": "https://github.com/only-owner"}}}, "circleci.com"),
    ],
)
def test_circleci_partition_keys(payload: dict[str, Any], key: str) -> None:
    assert circleci_attributes({"type": "workflow-completed", **payload}).partitionkey == key


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "no `type`"),
        ({"type": None}, "no `type`"),
        ({"type": 3}, "invalid"),
        ({"type": "a b"}, "invalid"),
        ({"type": "-x"}, "invalid"),
        ({"type": ""}, "invalid"),
    ],
)
def test_circleci_without_a_type_is_unmappable(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(UnmappableDelivery, match=message):
        circleci_attributes(payload)


def test_circleci_commit_accepts_only_full_shas() -> None:
    sha = "A" * 40
    assert circleci_commit({"pipeline": {"vcs": {"revision": sha}}}) == sha.lower()
    assert circleci_commit({"pipeline": {"vcs": {"revision": "abc123"}}}) is None
    fallback = {"pipeline": {"vcs": {"revision": None}, "trigger_parameters": {"git": {"checkout_sha": "b" * 64}}}}
    assert circleci_commit(fallback) == "b" * 64


# --- Properties ----------------------------------------------------------------------------------------------

# Keys the mapping reads, so that generated payloads reach past the first lookup.
KEYS = [
    "action",
    "ref_type",
    "ref",
    "number",
    "repository",
    "url",
    "html_url",
    "hooks_url",
    "full_name",
    "name",
    "owner",
    "login",
    "organization",
    "sender",
    "deployment",
    "deployment_status",
    "state",
    "check_run",
    "completed_at",
    "started_at",
    "updated_at",
    "created_at",
    "release",
    "published_at",
    "id",
    "workflow",
    "comment",
    "commit_id",
    "type",
    "project",
    "slug",
    "pipeline",
    "vcs",
    "target_repository_url",
    "job",
    "origin_repository_url",
    "trigger_parameters",
    "git",
    "gitlab",
    "github_app",
    "repo_url",
    "happened_at",
]
EVENTS = ["push", "create", "release", "deployment_status", "check_run", "commit_comment", "marketplace_purchase"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.sampled_from(["0001-01-01T00:00:00Z", "2019-05-15T15:20:31Z", "https://github.com/O/N.git", "gh/o/n", "tag"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(), children, max_size=5)
    ),
    max_leaves=25,
)
payloads = st.dictionaries(st.sampled_from(KEYS) | st.text(), json_values, max_size=8)


@settings(max_examples=400, deadline=None)
@given(event=st.sampled_from(EVENTS) | st.text(), payload=payloads)
def test_github_mapping_never_raises_anything_but_unmappable(event: str, payload: dict[str, Any]) -> None:
    try:
        attrs = github_attributes(event, payload)
    except UnmappableDelivery:
        return
    assert GITHUB_TYPE.match(attrs.type)
    assert ANY_GITHUB_KEY.match(attrs.partitionkey)
    assert_well_formed(attrs)


@settings(max_examples=400, deadline=None)
@given(
    payload=payloads | st.builds(lambda p, t: {**p, "type": t}, payloads, st.sampled_from(["ping", "job-completed"]))
)
def test_circleci_mapping_never_raises_anything_but_unmappable(payload: dict[str, Any]) -> None:
    try:
        attrs = circleci_attributes(payload)
    except UnmappableDelivery:
        return
    assert CIRCLECI_TYPE.match(attrs.type)
    assert_well_formed(attrs)
    commit = circleci_commit(payload)
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit)
