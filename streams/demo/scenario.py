"""The demo scenario: what is sent, step by step, and what the pipeline must answer to each step.

Five commits A to E of the policy's repository, on its deploy branch:
1. A is pushed; CircleCI passes, a GitHub Actions check fails, its rerun (attempt 2) passes: A ready, rolled out.
2. B's CI results arrive before its push (out of order): B ready once pushed, rolled out.
3. C is pushed and waits for a check; D is pushed on top and its checks pass: D ready, C superseded by D (never
   deployed); C's missing result arrives late and changes nothing. D is rolled out.
4. (With a demo application to set its error ratio, and a service that verifies) E's checks pass but its image
   fails the first `verify` check on its way: rolled back there and rejected for every later environment.
A service with environments is promoted through them: a ready commit rolls out to the first, and to each later one
once its gates open (`after`, `soak`); the step waits for all of it. Every step waits for its outcomes before the next
one starts, so the agent never sees two ready decisions of a service at once (which would make it skip the older one:
correct, but not the same run twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from streams.demo.deliveries import NULL_SHA, Delivery, History, Secrets, sha
from streams.domain.facts import CheckKind
from streams.domain.policy import Policies, ServicePolicy

Topic = Literal["readiness", "rollout"]
ROLLED_OUT = "rolled out"  # an expected rollout outcome: `deployed` (the first) or `upgraded`
COMMITS = ("A", "B", "C", "D")
BAD_COMMIT: Final = "E"
BAD_ERROR_RATIO: Final = 0.4  # what the demo application reports for the bad commit's image


class ScenarioError(ValueError):
    """The policy file cannot be played by the demo (e.g. a kind of check it cannot send)."""


@dataclass(frozen=True)
class Expected:
    topic: Topic
    service: str
    environment: str
    kind: str  # readiness: ready|superseded|expired|rejected; rollout: ROLLED_OUT or an outcome kind
    commit: str

    def matches(self, topic: Topic, service: str, environment: str, kind: str, commit: str) -> bool:
        wanted_kind = kind in ("deployed", "upgraded") if self.kind == ROLLED_OUT else kind == self.kind
        return (self.topic, self.service, self.environment, self.commit) == (
            topic,
            service,
            environment,
            commit,
        ) and wanted_kind


@dataclass(frozen=True)
class Step:
    title: str
    deliveries: tuple[Delivery, ...]
    expected: frozenset[Expected]
    error_ratios: Mapping[str, float] = field(default_factory=dict)  # image -> ratio, set before the deliveries


@dataclass(frozen=True)
class Scenario:
    repository: str  # github.com/<owner>/<name>
    services: tuple[ServicePolicy, ...]
    commits: dict[str, str]  # label (A..E) -> sha
    steps: tuple[Step, ...]
    final: dict[tuple[str, str], str] = field(default_factory=dict)  # (service, environment) -> image at the end

    def label(self, commit: str) -> str | None:
        return next((name for name, value in self.commits.items() if value == commit), None)


def demo_services(policies: Policies, repository: str | None = None) -> tuple[ServicePolicy, ...]:
    """The services of `repository` (default: the first service's) that the demo can play for."""
    if not policies.services:
        raise ScenarioError("the policy file has no services")
    repository = repository or policies.services[0].repository
    services = tuple(s for s in policies.services if s.repository == repository)
    if not services:
        raise ScenarioError(f"no service deploys {repository}")
    for service in services:
        if service.image_template is None:
            raise ScenarioError(f"service {service.name}: the demo needs an image template (it sends no packages)")
        if service.branch != services[0].branch:
            raise ScenarioError(f"services of {repository} deploy different branches: the demo needs one")
        unsupported = [
            c for c in service.required_checks if c.kind not in (CheckKind.CIRCLECI, CheckKind.GITHUB_ACTIONS)
        ]
        if unsupported:
            raise ScenarioError(f"service {service.name}: the demo sends only CircleCI and GitHub Actions workflows")
        approved = [e.name for e in service.environments if e.approval]
        if approved:
            raise ScenarioError(
                f"service {service.name}: environment {approved[0]} needs an approval, which the demo cannot give "
                "(`autodeploy approve` is a person's)"
            )
    if not any(c.kind is CheckKind.GITHUB_ACTIONS for s in services for c in s.required_checks):
        raise ScenarioError("the demo needs a required GitHub Actions workflow (it fails once, then its rerun passes)")
    return services


def verifies(services: tuple[ServicePolicy, ...]) -> bool:
    """Whether a bad commit can be shown: some service checks its rollouts against Prometheus."""
    return any(e.verify for s in services for e in s.environments)


def _promoted(service: ServicePolicy, commit: str, environments: int | None = None) -> list[Expected]:
    """A good commit: ready for and rolled out to every environment (or the first `environments`), in order."""
    return [
        expected
        for environment in service.environments[:environments]
        for expected in (
            Expected("readiness", service.name, environment.name, "ready", commit),
            Expected("rollout", service.name, environment.name, ROLLED_OUT, commit),
        )
    ]


def _verifying(service: ServicePolicy) -> int | None:
    """The index of the first environment with `verify` checks: where a bad image is stopped."""
    return next((i for i, e in enumerate(service.environments) if e.verify), None)


def _stopped(service: ServicePolicy, commit: str) -> list[Expected]:
    """The bad commit: promoted up to the first environment that verifies, rolled out there (the rollout completes),
    then rolled back when its check fails, and rejected for every later environment."""
    at = _verifying(service)
    if at is None:
        return _promoted(service, commit)
    name = service.environments[at].name
    return [
        *_promoted(service, commit, at),
        Expected("readiness", service.name, name, "ready", commit),
        Expected("rollout", service.name, name, ROLLED_OUT, commit),
        Expected("rollout", service.name, name, "rolledback", commit),
        *(Expected("readiness", service.name, e.name, "rejected", commit) for e in service.environments[at + 1 :]),
    ]


def build(
    policies: Policies, secrets: Secrets, run_id: str, repository: str | None = None, *, bad_commit: bool = False
) -> Scenario:
    """`bad_commit`: add step 4, for a demo application that reports BAD_ERROR_RATIO for E's images."""
    services = demo_services(policies, repository)
    repo = services[0].repository
    labels = COMMITS + ((BAD_COMMIT,) if bad_commit else ())
    commits = {name: sha(f"{repo}/{run_id}/{name}") for name in labels}
    a, b, c, d = (commits[name] for name in COMMITS)
    checks = sorted({check for s in services for check in s.required_checks}, key=lambda c: (c.kind.value, c.name))
    actions = [check.name for check in checks if check.kind is CheckKind.GITHUB_ACTIONS]
    circleci = [check.name for check in checks if check.kind is CheckKind.CIRCLECI]
    history = History(secrets, repository=repo.removeprefix("github.com/"), branch=services[0].branch)

    def passes(commit: str, label: str, names: list[str], kind: str) -> None:
        for name in names:
            if kind == "circleci":
                history.circleci(commit, "success", name=name, label=f"CircleCI {name} passed for {label}")
            else:
                history.actions(commit, "success", name=name, label=f"GitHub Actions {name} passed for {label}")

    def step(title: str, start: int, expected: list[Expected], ratios: Mapping[str, float] | None = None) -> Step:
        return Step(title, tuple(history.deliveries[start:]), frozenset(expected), dict(ratios or {}))

    def promoted(commit: str) -> list[Expected]:
        return [e for s in services for e in _promoted(s, commit)]

    history.push(NULL_SHA, a, label="push A")
    passes(a, "A", circleci, "circleci")
    history.actions(a, "failure", name=actions[0], label=f"GitHub Actions {actions[0]} failed for A")
    passes(a, "A", actions[1:], "actions")
    history.actions(a, "success", name=actions[0], attempt=2, label=f"GitHub Actions {actions[0]} rerun passed for A")
    steps = [step("A is pushed; a check fails, its rerun passes: A is ready and rolls out", 0, promoted(a))]
    start = len(history.deliveries)
    passes(b, "B (before its push)", circleci, "circleci")
    passes(b, "B (before its push)", actions, "actions")
    history.push(a, b, label="push B on A")
    title = "B's CI results arrive before its push: B is ready once pushed, and rolls out"
    steps.append(step(title, start, promoted(b)))
    start = len(history.deliveries)
    history.push(b, c, label="push C on B")
    passes(c, "C", circleci, "circleci")
    history.push(c, d, label="push D on C")
    passes(d, "D", circleci, "circleci")
    passes(d, "D", actions, "actions")
    passes(c, "C (late)", actions, "actions")
    superseded = [Expected("readiness", s.name, s.environments[0].name, "superseded", c) for s in services]
    steps.append(
        step(
            "C waits for a check while D, pushed on top, gets ready: C is superseded, D rolls out",
            start,
            superseded + promoted(d),
        )
    )
    final = {(s.name, e.name): s.image_for(d) or "" for s in services for e in s.environments}
    if bad_commit:
        e = commits[BAD_COMMIT]
        start = len(history.deliveries)
        history.push(d, e, label="push E on D")
        passes(e, "E", circleci, "circleci")
        passes(e, "E", actions, "actions")
        ratios = {s.image_for(e) or "": BAD_ERROR_RATIO for s in services if _verifying(s) is not None}
        steps.append(
            step(
                f"E passes its checks, but its image fails verification (error ratio {BAD_ERROR_RATIO:g}): "
                "rolled back there, never promoted further",
                start,
                [x for s in services for x in _stopped(s, e)],
                ratios,
            )
        )
        for s in services:
            reached = s.environments[: _verifying(s)]  # where E runs at the end: up to where it was stopped
            final.update({(s.name, env.name): s.image_for(e) or "" for env in reached})
    return Scenario(repo, services, commits, tuple(steps), final)
