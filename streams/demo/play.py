"""Play a scenario: send each step's deliveries, then wait for its outcomes, printing them as they arrive."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from streams.demo.deliveries import Delivery
from streams.demo.scenario import Expected, Scenario
from streams.demo.watch import Observed

Post = Callable[[Delivery], tuple[int, str]]
SetErrorRatio = Callable[[str, float], None]  # image, ratio: what the demo application reports for it


class Source(Protocol):
    def poll(self, timeout: float) -> list[Observed]: ...


class DeliveryRefused(RuntimeError):
    """The webhook server did not take a delivery (not a 2xx, or not reachable)."""


def http_post(base_url: str, timeout: float = 10.0) -> Post:
    """POST to the webhook server at `base_url`; (status, body). A refused connection is a DeliveryRefused."""

    def post(delivery: Delivery) -> tuple[int, str]:
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's webhook server
            base_url.rstrip("/") + delivery.path, data=delivery.body, headers=dict(delivery.headers), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - same
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError as e:
            raise DeliveryRefused(f"cannot reach the webhook server at {base_url}: {e}") from e

    return post


@dataclass
class Summary:
    sent: int = 0
    observed: list[Observed] = field(default_factory=list)  # of the scenario's commits, in arrival order
    missing: list[Expected] = field(default_factory=list)  # expected but not seen in time
    unexpected: list[Observed] = field(default_factory=list)  # of the scenario's commits, not expected
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected


class Player:
    def __init__(
        self,
        scenario: Scenario,
        post: Post,
        source: Source,
        out: TextIO,
        step_timeout_s: float,
        *,
        set_error_ratio: SetErrorRatio | None = None,
    ) -> None:
        self._scenario, self._post, self._source, self._out = scenario, post, source, out
        self._timeout, self._set_error_ratio = step_timeout_s, set_error_ratio
        self._expected = {e for step in scenario.steps for e in step.expected}
        self.summary = Summary()

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)

    def _name(self, commit: str) -> str:
        """Label and short SHA, for the aligned outcome lines (`autodeploy why` takes the short SHA too)."""
        label = self._scenario.label(commit)
        return f"{label} ({commit[:7]})" if label else commit[:7]

    def _full_name(self, commit: str) -> str:
        """Label and whole SHA, where a person copies it (into `git show`, a browser, `autodeploy why`)."""
        label = self._scenario.label(commit)
        return f"{label} {commit}" if label else commit

    def _line(self, seen: Observed) -> str:
        detail = seen.detail
        for label, commit in self._scenario.commits.items():
            detail = detail.replace(f"by {commit}", f"by {label}")
        topic = "readiness" if seen.topic == "readiness" else "rollout  "
        where = f"{seen.service}/{seen.environment}" if seen.environment else seen.service
        return f"    {topic} {where:<24} {seen.kind:<10} {self._name(seen.commit):<12} {detail}"

    def play(self) -> Summary:
        started = time.monotonic()
        commits = set(self._scenario.commits.values())
        self._print(f"commits of {self._scenario.repository}:")
        for commit in self._scenario.commits.values():
            self._print(f"  {self._full_name(commit)}")
        for number, step in enumerate(self._scenario.steps, 1):
            self._print(f"\n{number}. {step.title}")
            for image, ratio in step.error_ratios.items():
                if self._set_error_ratio is None:
                    raise DeliveryRefused("this step needs the demo application, to set an image's error ratio")
                self._set_error_ratio(image, ratio)
                self._print(f"  the demo application now reports an error ratio of {ratio:g} for {image}")
            for delivery in step.deliveries:
                status, body = self._post(delivery)
                self.summary.sent += 1
                self._print(f"  sent {delivery.label:<56} {delivery.path:<18} -> {status}")
                if not 200 <= status < 300:
                    raise DeliveryRefused(f"{delivery.path} answered {status}: {body[:300]}")
            pending = set(step.expected)
            deadline = time.monotonic() + self._timeout
            while pending and time.monotonic() < deadline:
                for seen in self._source.poll(0.5):
                    if seen.commit not in commits:
                        continue  # someone else's commit, or an earlier run's
                    self._print(self._line(seen))
                    self.summary.observed.append(seen)
                    matched = {
                        e
                        for e in self._expected
                        if e.matches(seen.topic, seen.service, seen.environment, seen.kind, seen.commit)
                    }
                    if not matched:
                        self.summary.unexpected.append(seen)
                    pending -= matched
            if pending:
                self.summary.missing = sorted(
                    pending, key=lambda e: (e.topic, e.service, e.environment, e.kind, e.commit)
                )
                break
        self.summary.seconds = time.monotonic() - started
        self._report()
        return self.summary

    def _report(self) -> None:
        s = self.summary

        def count(topic: str, *kinds: str) -> int:
            return sum(1 for o in s.observed if o.topic == topic and o.kind in kinds)

        rejected = count("readiness", "rejected")
        rolled_back = count("rollout", "rolledback")
        self._print(
            f"\nsummary: {s.sent} webhooks sent, {count('readiness', 'ready')} ready and "
            f"{count('readiness', 'superseded')} superseded decisions"
            + (f", {rejected} rejected" if rejected else "")
            + f", {count('rollout', 'deployed', 'upgraded')} rollouts"
            + (f", {rolled_back} rolled back" if rolled_back else "")
            + f", in {s.seconds:.1f} s"
        )
        for (service, environment), image in self._scenario.final.items():
            last = [
                o
                for o in s.observed
                if (o.service, o.environment) == (service, environment)
                and o.kind in ("deployed", "upgraded", "rolledback")
            ]
            # The image tag is the whole SHA already; a rollback's detail names the image it restored.
            now = f"{last[-1].kind} {self._name(last[-1].commit)}" if last else "nothing rolled out"
            self._print(f"  {service}/{environment}: last {now}; expected running {image}")
        for expected in s.missing:
            what = (
                f"{expected.topic} {expected.kind} of {self._full_name(expected.commit)} "
                f"for {expected.service}/{expected.environment}"
            )
            self._print(f"  MISSING (not within {self._timeout:.0f} s): {what}")
        for seen in s.unexpected:
            self._print(f"  UNEXPECTED: {self._line(seen).strip()}")
        self._print("  result: " + ("every expected outcome arrived" if s.ok else "FAILED"))
        owner_repo = self._scenario.repository.removeprefix("github.com/")
        self._print(f"why a commit is (not) ready: autodeploy why {owner_repo} <sha or a prefix of it>")
