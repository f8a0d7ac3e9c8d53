"""Facts from every relevant corpus payload, and no exception from any payload."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.extract import facts_from_event
from streams.domain.facts import (
    BranchPushed,
    ChangeMerged,
    CheckFinished,
    CheckId,
    CheckKind,
    EventRef,
    Fact,
    ImagePublished,
    Outcome,
)
from tests.support.fixtures import FIXTURES, fixtures

GITHUB = FIXTURES / "github"
CIRCLECI = FIXTURES / "circleci"
CONFORMANCE = FIXTURES / "cdevents" / "spec-v0.5.1" / "conformance"

T = datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)  # the CloudEvent time the tests pass in
SOURCE, ID = "https://api.github.com/repos/o/r", "delivery-1"

HELLO = "github.com/codertocat/hello-world"
OCTO = "github.com/octo-org/octo-repo"
CDVIZ = "github.com/aaaaa-aaa/aaaaa-aaaaaaaaa"
ZERO = "0" * 40
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
RUN_SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625"
CHECK_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
CDVIZ_RUN_SHA = "1a11a11a11111111aa11a1111aaaa11111aaaa11"
EXTRA = "c0ffee0000000000000000000000000000000001"  # a commit the tests put into customData


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def ref(ce_type: str, time: datetime = T) -> EventRef:
    return EventRef(SOURCE, ID, ce_type, time, "github.events", 2, 42)


def extract(ce_type: str, data: Any, partitionkey: str | None = None) -> list[Fact]:
    return facts_from_event(
        ce_type, SOURCE, ID, T, data, partitionkey=partitionkey, topic="github.events", partition=2, offset=42
    )


def check(
    repository: str, commit: str, kind: CheckKind, name: str, outcome: Outcome, ce_type: str, *, attempt: int = 1
) -> CheckFinished:
    return CheckFinished(repository, commit, CheckId(kind, name), attempt, outcome, ref(ce_type))


def at(fact: CheckFinished, time: str) -> CheckFinished:
    return CheckFinished(
        fact.repository, fact.commit, fact.check, fact.attempt, fact.outcome, ref(fact.ref.type, utc(time))
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


PUSH, MERGED = "com.github.push", "com.github.pull_request.closed"
RUN, RUN_REQUESTED, RUN_IN_PROGRESS = (
    f"com.github.workflow_run.{a}" for a in ("completed", "requested", "in_progress")
)
CHECK_RUN, STATUS = "com.github.check_run.completed", "com.github.status"
PACKAGE, REGISTRY_PACKAGE = "com.github.package.published", "com.github.registry_package.published"
CIRCLECI_WORKFLOW, CIRCLECI_JOB = "com.circleci.workflow-completed", "com.circleci.job-completed"
PIPELINE, ARTIFACT = "dev.cdevents.pipelinerun.finished.0.3.0", "dev.cdevents.artifact.published.0.3.0"
GA, CR, ST, CC = CheckKind.GITHUB_ACTIONS, CheckKind.CHECK_RUN, CheckKind.STATUS, CheckKind.CIRCLECI

GITHUB_CASES: list[tuple[str, str, list[Fact]]] = [
    # octokit's push.payload.json and its organization twin delete a tag: tags are no branch history.
    (PUSH, "push.payload.json", []),
    (PUSH, "push.with-organization.payload.json", []),
    (PUSH, "push.with-new-branch.payload.json", [BranchPushed(HELLO, "master", ZERO, SHA, False, False, ref(PUSH))]),
    (
        PUSH,
        "push.with-no-username-committer.payload.json",
        [BranchPushed(HELLO, "master", ZERO, SHA, False, False, ref(PUSH))],
    ),
    (
        PUSH,
        "cdviz/push.event.02.json",
        [BranchPushed(CDVIZ, "db-branch-3", ZERO, "1aaaa11111111aa1111a11a11a1a11aaa1111111", False, False, ref(PUSH))],
    ),
    (
        PUSH,
        "cdviz/push.event.08.json",
        [
            BranchPushed(
                CDVIZ,
                "release-plz-2025-04-27T12-58-32Z-tmp-2489034745",
                ZERO,
                "11a11a1111aa1aa1111111aa1a11111a1a111a11",
                False,
                False,
                ref(PUSH),
            )
        ],
    ),
    # Closed unmerged, although merge_commit_sha is set.
    (MERGED, "pull_request.closed.payload.json", []),
    (
        MERGED,
        "cdviz/pull_request.closed.01.json",
        [ChangeMerged(CDVIZ, "main", "44d21f9752bb9eb3952238ff7e25965b8f779d51", ref(MERGED))],
    ),
    # octokit's workflow_run.name is "": the workflow's name stands in.
    (RUN, "workflow_run.completed.payload.json", [check(OCTO, RUN_SHA, GA, "test", Outcome.SUCCESS, RUN)]),
    (
        RUN,
        "workflow_run.completed.with-pull-requests.payload.json",
        [check(OCTO, RUN_SHA, GA, "test", Outcome.SUCCESS, RUN)],
    ),
    (
        RUN_REQUESTED,
        "workflow_run.requested.payload.json",
        [check(OCTO, RUN_SHA, GA, "test", Outcome.PENDING, RUN_REQUESTED)],
    ),
    # requested, yet status completed with conclusion action_required: waiting for approval is not finished.
    (
        RUN_REQUESTED,
        "workflow_run.requested.with-conclusion.payload.json",
        [check(OCTO, RUN_SHA, GA, "test", Outcome.PENDING, RUN_REQUESTED)],
    ),
    (RUN, "cdviz/workflow_run.completed.json", [check(CDVIZ, CDVIZ_RUN_SHA, GA, "aa", Outcome.SUCCESS, RUN)]),
    (
        RUN_IN_PROGRESS,
        "cdviz/workflow_run.in_progress.json",
        [check(CDVIZ, CDVIZ_RUN_SHA, GA, "AaaaAaaaaa", Outcome.PENDING, RUN_IN_PROGRESS)],
    ),
    (
        RUN_REQUESTED,
        "cdviz/workflow_run.requested.json",
        [check(CDVIZ, CDVIZ_RUN_SHA, GA, "Aaaaaaa", Outcome.PENDING, RUN_REQUESTED)],
    ),
    # Check runs are timed by completed_at, not by the CloudEvent.
    (
        CHECK_RUN,
        "check_run.completed.payload.json",
        [at(check(HELLO, CHECK_SHA, CR, "Octocoders-linter", Outcome.SUCCESS, CHECK_RUN), "2019-05-15T15:21:12Z")],
    ),
    (
        CHECK_RUN,
        "check_run.completed.1.payload.json",
        [at(check(HELLO, CHECK_SHA, CR, "Octocoders-linter", Outcome.FAILURE, CHECK_RUN), "2019-05-15T15:21:12Z")],
    ),
    (
        CHECK_RUN,
        "check_run.completed.with-organization.payload.json",
        [at(check(HELLO, CHECK_SHA, CR, "Octocoders-linter", Outcome.SUCCESS, CHECK_RUN), "2019-05-15T15:21:12Z")],
    ),
    (
        CHECK_RUN,
        "cdviz/check_run.completed.json",
        [
            at(
                check(
                    CDVIZ, "0a911053a049294a128690ab0e488e3a96c4fe4d", CR, "Aaaaaaa-aaa AA", Outcome.SUCCESS, CHECK_RUN
                ),
                "2025-01-24T14:10:38Z",
            )
        ],
    ),
    (STATUS, "status.payload.json", [check(HELLO, SHA, ST, "default", Outcome.SUCCESS, STATUS)]),
    (
        STATUS,
        "status.with-author-committer-null.payload.json",
        [check(HELLO, SHA, ST, "default", Outcome.SUCCESS, STATUS)],
    ),
    (STATUS, "status.with-installation.payload.json", [check(HELLO, SHA, ST, "default", Outcome.SUCCESS, STATUS)]),
    # octokit's "docker" packages are untagged manifests; the npm one is no image at all.
    (PACKAGE, "package.published.docker.payload.json", []),
    (PACKAGE, "package.published.npm.payload.json", []),
    (REGISTRY_PACKAGE, "registry_package.published.docker.payload.json", []),
    # GHCR: of five deliveries for one push, only the tagged image index is an image to deploy.
    (PACKAGE, "cdviz/package.published.json", []),
    (
        PACKAGE,
        "cdviz/package.published.4.json",
        [ImagePublished(CDVIZ, None, "ghcr.io/aaaaa-aaa/aaaaa-aaaaaaaaa:1.1.1", ref(PACKAGE))],
    ),
]


@pytest.mark.parametrize(("ce_type", "name", "expected"), GITHUB_CASES, ids=[c[1] for c in GITHUB_CASES])
def test_github_corpus(ce_type: str, name: str, expected: list[Fact]) -> None:
    assert extract(ce_type, load(GITHUB / name)) == expected


def cc(repository: str, commit: str, name: str, outcome: Outcome, happened_at: str) -> CheckFinished:
    return at(check(repository, commit, CC, name, outcome, CIRCLECI_WORKFLOW), happened_at)


CIRCLECI_CASES: list[tuple[str, list[Fact]]] = [
    (
        "docs/workflow-completed.github-oauth-bitbucket-cloud.docs.json",
        [
            cc(
                "github.com/circleci/webhook-service",
                "1dc6aa69429bff4806ad6afe58d3d8f57e25973e",
                "build-test-deploy",
                Outcome.SUCCESS,
                "2021-09-01T22:49:34.317Z",
            )
        ],
    ),
    (
        "docs/workflow-completed.gitlab-githubapp-bbdc.docs.json",
        [
            cc(
                "gitlab.com/circleci/hello-world",
                "850a1519f25d14e968649cc420d1bd381715c05c",
                "build",
                Outcome.FAILURE,
                "2022-05-27T16:20:13.954328Z",
            )
        ],
    ),
    (
        "zulip/bitbucket_manual_workflow_completed.json",
        [
            cc(
                "bitbucket.org/hariprashant1/circleci-webhook-testing",
                "cab5eacb4ccee2710529894425341fa20a48fe6a",
                "sample",
                Outcome.SUCCESS,
                "2022-11-07T11:45:47.000864Z",
            )
        ],
    ),
    (
        "zulip/bitbucket_workflow_completed.json",
        [
            cc(
                "bitbucket.org/hariprashant1/circleci-webhook-testing",
                "8ab595d2de95767993472837df2cb7884519a92b",
                "sample",
                Outcome.SUCCESS,
                "2022-11-07T15:42:15.076628Z",
            )
        ],
    ),
    (
        "zulip/github_tag_workflow_completed.json",
        [
            cc(
                "github.com/prah23/circleci-webhook-test",
                "0e6e66c14e61fbcd95db716b0f30d67dbcce7814",
                "sample",
                Outcome.SUCCESS,
                "2022-11-08T11:13:21.949388Z",
            )
        ],
    ),
    (
        "zulip/github_workflow_completed.json",
        [
            cc(
                "github.com/zulip-testing/circleci-webhook-test",
                "a5e30a908224e46626a796d058289475f6d387b5",
                "sample",
                Outcome.SUCCESS,
                "2022-09-20T12:54:38.733348Z",
            )
        ],
    ),
    (
        "zulip/gitlab_workflow_completed.json",
        [
            cc(
                "gitlab.com/zulip-testing/circleci-webhook-test",
                "c31f86994c54672f97b5bd5e544315b7bd40e4c1",
                "sample",
                Outcome.SUCCESS,
                "2022-09-30T21:03:15.110144Z",
            )
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), CIRCLECI_CASES, ids=[c[0] for c in CIRCLECI_CASES])
def test_circleci_corpus(name: str, expected: list[Fact]) -> None:
    assert extract(CIRCLECI_WORKFLOW, load(CIRCLECI / name)) == expected


@pytest.mark.parametrize(
    "path", fixtures("circleci", "*/*job_completed.json") + fixtures("circleci/docs", "job-*.json")
)
def test_circleci_jobs_are_no_facts(path: Path) -> None:
    assert extract(CIRCLECI_JOB, load(path)) == []


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("success", Outcome.SUCCESS),
        ("failed", Outcome.FAILURE),
        ("error", Outcome.ERROR),
        ("canceled", Outcome.CANCELLED),
        ("unauthorized", Outcome.FAILURE),
        ("something-new", Outcome.ERROR),
    ],
)
def test_circleci_statuses(status: str, outcome: Outcome) -> None:
    payload = load(CIRCLECI / "zulip/github_workflow_completed.json")
    payload["workflow"]["status"] = status
    [fact] = extract(CIRCLECI_WORKFLOW, payload)
    assert isinstance(fact, CheckFinished)
    assert fact.outcome is outcome


def test_circleci_without_a_commit_or_repository_is_no_fact() -> None:
    payload = load(CIRCLECI / "zulip/github_workflow_completed.json")
    no_commit = copy.deepcopy(payload)
    no_commit["pipeline"]["vcs"]["revision"] = None
    assert extract(CIRCLECI_WORKFLOW, no_commit) == []
    no_repository = copy.deepcopy(payload)
    del no_repository["project"], no_repository["pipeline"]["vcs"]["target_repository_url"]
    del no_repository["pipeline"]["vcs"]["origin_repository_url"]
    assert extract(CIRCLECI_WORKFLOW, no_repository) == []


def test_circleci_payload_without_type_takes_the_envelope_key() -> None:
    payload = load(CIRCLECI / "zulip/github_workflow_completed.json")
    del payload["type"], payload["happened_at"]
    [fact] = extract(CIRCLECI_WORKFLOW, payload, partitionkey="github.com/Zulip-Testing/circleci-webhook-test")
    assert isinstance(fact, CheckFinished)
    assert fact.repository == "github.com/zulip-testing/circleci-webhook-test"
    assert fact.ref.time == T


def with_origin(path: Path, **custom: str) -> dict[str, Any]:
    data: dict[str, Any] = load(path)
    data["customData"] = custom
    return data


def test_cdevents_pipelinerun_finished_conformance() -> None:
    data = with_origin(
        CONFORMANCE / "pipelinerun_finished.json", commit=EXTRA.upper(), repository="github.com/Acme/Shop"
    )
    assert extract(PIPELINE, data) == [
        CheckFinished(
            "github.com/acme/shop", EXTRA, CheckId(CheckKind.PIPELINE, "myPipeline"), 1, Outcome.FAILURE, ref(PIPELINE)
        )
    ]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("success", Outcome.SUCCESS),
        ("failure", Outcome.FAILURE),
        ("cancel", Outcome.CANCELLED),
        ("error", Outcome.ERROR),
    ],
)
def test_cdevents_pipeline_outcomes_and_key_fallback(outcome: str, expected: Outcome) -> None:
    data = with_origin(CONFORMANCE / "pipelinerun_finished.json", commit=EXTRA)
    data["subject"]["content"]["outcome"] = outcome
    [fact] = extract(PIPELINE, data, partitionkey="github.com/acme/shop")
    assert isinstance(fact, CheckFinished)
    assert (fact.repository, fact.outcome) == ("github.com/acme/shop", expected)


def test_cdevents_pipeline_without_commit_or_repository_is_no_fact() -> None:
    assert extract(PIPELINE, load(CONFORMANCE / "pipelinerun_finished.json"), partitionkey="github.com/a/b") == []
    assert extract(PIPELINE, with_origin(CONFORMANCE / "pipelinerun_finished.json", commit=EXTRA)) == []


def test_cdevents_artifact_published() -> None:
    # The conformance example's subject is a Go module, which is no image.
    golang = with_origin(CONFORMANCE / "artifact_published.json", commit=EXTRA, repository="github.com/acme/shop")
    assert extract(ARTIFACT, golang) == []
    # cdviz's purl for the GHCR package above, with its digest percent-encoded as purl requires.
    tagged = copy.deepcopy(golang)
    tagged["subject"]["id"] = "pkg:oci/shop@sha256%3Aabc123?repository_url=ghcr.io/Acme&tag=v1.2.3"
    assert extract(ARTIFACT, tagged) == [
        ImagePublished("github.com/acme/shop", EXTRA, "ghcr.io/acme/shop:v1.2.3", ref(ARTIFACT))
    ]
    by_digest = copy.deepcopy(golang)
    by_digest["subject"]["id"] = "pkg:oci/shop@sha256:abc123?repository_url=https://registry.example.com:5000/team/"
    [fact] = extract(ARTIFACT, by_digest)
    assert isinstance(fact, ImagePublished)
    assert fact.image == "registry.example.com:5000/team/shop@sha256:abc123"
    no_registry = copy.deepcopy(golang)
    no_registry["subject"]["id"] = "pkg:oci/shop@sha256:abc123?tag=v1"
    assert extract(ARTIFACT, no_registry) == []


def test_cdviz_purl_shape() -> None:
    expected = load(FIXTURES / "cdevents/cdviz-github-expected/package.published.4.json")
    data = {"subject": {"id": expected["subject"]["id"]}, "customData": {"repository": CDVIZ}}
    [fact] = extract(ARTIFACT, data)
    assert isinstance(fact, ImagePublished)
    assert (fact.image, fact.commit) == ("ghcr.io/aaaaa-aaa/aaaaa-aaaaaaaaa:1.1.1", None)


def test_branch_deletion_and_force_push() -> None:
    payload = load(GITHUB / "push.with-new-branch.payload.json")
    payload.update(before=SHA, after=ZERO, created=False, deleted=True, head_commit=None)
    assert extract(PUSH, payload) == [BranchPushed(HELLO, "master", SHA, ZERO, False, True, ref(PUSH))]
    payload.update(before=SHA, after=RUN_SHA, deleted=False, forced=True)
    assert extract(PUSH, payload) == [BranchPushed(HELLO, "master", SHA, RUN_SHA, True, False, ref(PUSH))]


@pytest.mark.parametrize(
    ("conclusion", "outcome"),
    [
        ("success", Outcome.SUCCESS),
        ("neutral", Outcome.SUCCESS),
        ("skipped", Outcome.SUCCESS),
        ("failure", Outcome.FAILURE),
        ("timed_out", Outcome.FAILURE),
        ("startup_failure", Outcome.FAILURE),
        ("cancelled", Outcome.CANCELLED),
        ("stale", Outcome.CANCELLED),
        ("action_required", Outcome.PENDING),
        (None, Outcome.PENDING),
        ("brand_new", Outcome.ERROR),
    ],
)
def test_workflow_run_and_check_run_conclusions(conclusion: str | None, outcome: Outcome) -> None:
    run = load(GITHUB / "workflow_run.completed.payload.json")
    run["workflow_run"].update(conclusion=conclusion, run_attempt=3, name="CI")
    assert extract(RUN, run) == [check(OCTO, RUN_SHA, GA, "CI", outcome, RUN, attempt=3)]
    check_run = load(GITHUB / "check_run.completed.payload.json")
    check_run["check_run"].update(conclusion=conclusion, completed_at=None)
    assert extract(CHECK_RUN, check_run) == [check(HELLO, CHECK_SHA, CR, "Octocoders-linter", outcome, CHECK_RUN)]


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("success", Outcome.SUCCESS),
        ("failure", Outcome.FAILURE),
        ("error", Outcome.ERROR),
        ("pending", Outcome.PENDING),
    ],
)
def test_status_states(state: str, outcome: Outcome) -> None:
    payload = load(GITHUB / "status.payload.json")
    payload.update(state=state, context="ci/unit")
    assert extract(STATUS, payload) == [check(HELLO, SHA, ST, "ci/unit", outcome, STATUS)]


def test_tagged_package_takes_the_commit_from_the_oci_revision_label() -> None:
    payload = load(GITHUB / "registry_package.published.docker.payload.json")
    payload["registry_package"]["package_version"]["container_metadata"]["tag"]["name"] = "nightly"
    # The mock's namespace already ends in a repository name; the image path is still namespace/name as specified.
    assert extract(REGISTRY_PACKAGE, payload) == [
        ImagePublished(
            "github.com/codertocat/hello-world-npm",
            "6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b",
            "ghcr.io/codertocat/hello-world/hello-world-npm:nightly",
            ref(REGISTRY_PACKAGE),
        )
    ]


def test_unused_types_wrong_data_and_naive_times() -> None:
    push = load(GITHUB / "push.with-new-branch.payload.json")
    assert extract("com.github.push.extra", push) == []
    assert extract(PUSH, [push]) == []
    assert extract(PUSH, None) == []
    assert extract("com.github.check_run.created", load(GITHUB / "check_run.created.payload.json")) == []
    [fact] = facts_from_event(PUSH, SOURCE, ID, datetime(2025, 1, 1), push)  # naive on purpose
    assert fact.ref.time == datetime(2025, 1, 1, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    [fact] = facts_from_event(PUSH, SOURCE, ID, datetime(2025, 1, 1, tzinfo=plus_two), push)
    assert fact.ref.time.utcoffset() == timedelta(hours=2)


# ---------------------------------------------------------------------------------------------------------------
# Never raises


def _tagged_artifact() -> dict[str, Any]:
    data = with_origin(CONFORMANCE / "artifact_published.json", commit=EXTRA, repository="acme/shop")
    data["subject"]["id"] = "pkg:oci/shop@sha256%3Aabc?repository_url=ghcr.io/acme&tag=v1"
    return data


# (type, payload) pairs that give facts, so that mutating them explores the paths past the first checks.
SEEDS: list[tuple[str, Any]] = [
    *((t, load(GITHUB / name)) for t, name, _ in GITHUB_CASES),
    *((CIRCLECI_WORKFLOW, load(CIRCLECI / name)) for name, _ in CIRCLECI_CASES),
    (PIPELINE, with_origin(CONFORMANCE / "pipelinerun_finished.json", commit=EXTRA, repository="acme/shop")),
    (ARTIFACT, _tagged_artifact()),
]
TYPES = sorted({t for t, _ in SEEDS} | {CIRCLECI_JOB, "com.github.other"})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# Values that pass the first checks (hex SHAs, refs, purls) so the generator gets past them.
plausible = st.sampled_from(
    [RUN_SHA, ZERO, "refs/heads/main", "refs/heads/", "pkg:oci/x@y?tag=", "pkg:oci/@?repository_url=/", "", 0, True]
)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, Any]:
    """Arbitrary JSON under any type, or a corpus payload with a few values anywhere replaced by arbitrary JSON."""
    if draw(st.booleans()):
        return draw(st.sampled_from(TYPES)), draw(json_values)
    ce_type, seed = draw(st.sampled_from(SEEDS))
    payload = copy.deepcopy(seed)
    for _ in range(draw(st.integers(0, 3))):
        node = payload
        while isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], dict) or draw(st.booleans()):
                node[key] = draw(json_values | plausible)
                break
            node = node[key]
    return ce_type, payload


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events(), key=st.none() | st.text(max_size=20))
def test_random_json_never_raises(event: tuple[str, Any], key: str | None) -> None:
    ce_type, data = event
    facts = facts_from_event(ce_type, SOURCE, ID, T, data, partitionkey=key)
    for fact in facts:
        assert fact.ref.type == ce_type
        assert fact.ref.time.tzinfo is not None
        assert fact.repository == fact.repository.lower()
