"""The demo scenario: what is sent, step by step, and what the pipeline must answer to each step.

Four commits A, B, C, D of the policy's repository, on its deploy branch:
1. A is pushed; CircleCI passes, a GitHub Actions check fails, its rerun (attempt 2) passes: A ready, rolled out.
2. B's CI results arrive before its push (out of order): B ready once pushed, rolled out.
3. C is pushed and waits for a check; D is pushed on top and its checks pass: D ready, C superseded by D (never
   deployed); C's missing result arrives late and changes nothing. D is rolled out.
Every step waits for its outcomes before the next one starts, so the agent never sees two ready decisions of a
service at once (which would make it skip the older one: correct, but not the same run twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from streams.demo.deliveries import NULL_SHA, Delivery, History, Secrets, sha
from streams.domain.facts import CheckKind
from streams.domain.policy import Policies, ServicePolicy

Topic = Literal["readiness", "rollout"]
ROLLED_OUT = "rolled out"  # an expected rollout outcome: `deployed` (the first) or `upgraded`
COMMITS = ("A", "B", "C", "D")


class ScenarioError(ValueError):
    """The policy file cannot be played by the demo (e.g. a kind of check it cannot send)."""


@dataclass(frozen=True)
class Expected:
    topic: Topic
    service: str
    kind: str  # readiness: ready|superseded|expired; rollout: ROLLED_OUT or an outcome kind
    commit: str

    def matches(self, topic: Topic, service: str, kind: str, commit: str) -> bool:
        wanted_kind = kind in ("deployed", "upgraded") if self.kind == ROLLED_OUT else kind == self.kind
        return (self.topic, self.service, self.commit) == (topic, service, commit) and wanted_kind


@dataclass(frozen=True)
class Step:
    title: str
    deliveries: tuple[Delivery, ...]
    expected: frozenset[Expected]


@dataclass(frozen=True)
class Scenario:
    repository: str  # github.com/<owner>/<name>
    services: tuple[ServicePolicy, ...]
    commits: dict[str, str]  # label (A..D) -> sha
    steps: tuple[Step, ...]
    final: dict[str, str] = field(default_factory=dict)  # service -> the image its Deployment runs at the end

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
    if not any(c.kind is CheckKind.GITHUB_ACTIONS for s in services for c in s.required_checks):
        raise ScenarioError("the demo needs a required GitHub Actions workflow (it fails once, then its rerun passes)")
    return services


def build(policies: Policies, secrets: Secrets, run_id: str, repository: str | None = None) -> Scenario:
    services = demo_services(policies, repository)
    repo = services[0].repository
    commits = {name: sha(f"{repo}/{run_id}/{name}") for name in COMMITS}
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

    def step(title: str, start: int, expected: list[Expected]) -> Step:
        return Step(title, tuple(history.deliveries[start:]), frozenset(expected))

    def each(topic: Topic, kind: str, commit: str) -> list[Expected]:
        return [Expected(topic, s.name, kind, commit) for s in services]

    history.push(NULL_SHA, a, label="push A")
    passes(a, "A", circleci, "circleci")
    history.actions(a, "failure", name=actions[0], label=f"GitHub Actions {actions[0]} failed for A")
    passes(a, "A", actions[1:], "actions")
    history.actions(a, "success", name=actions[0], attempt=2, label=f"GitHub Actions {actions[0]} rerun passed for A")
    one = step(
        "A is pushed; a check fails, its rerun passes: A is ready and rolls out",
        0,
        each("readiness", "ready", a) + each("rollout", ROLLED_OUT, a),
    )
    start = len(history.deliveries)
    passes(b, "B (before its push)", circleci, "circleci")
    passes(b, "B (before its push)", actions, "actions")
    history.push(a, b, label="push B on A")
    two = step(
        "B's CI results arrive before its push: B is ready once pushed, and rolls out",
        start,
        each("readiness", "ready", b) + each("rollout", ROLLED_OUT, b),
    )
    start = len(history.deliveries)
    history.push(b, c, label="push C on B")
    passes(c, "C", circleci, "circleci")
    history.push(c, d, label="push D on C")
    passes(d, "D", circleci, "circleci")
    passes(d, "D", actions, "actions")
    passes(c, "C (late)", actions, "actions")
    three = step(
        "C waits for a check while D, pushed on top, gets ready: C is superseded, D rolls out",
        start,
        each("readiness", "superseded", c) + each("readiness", "ready", d) + each("rollout", ROLLED_OUT, d),
    )
    final = {s.name: s.image_for(d) or "" for s in services}
    return Scenario(repo, services, commits, (one, two, three), final)
