"""Verification after a rollout: an environment's `verify` checks, asked of Prometheus until their windows end.

Each check is evaluated now and then every interval until its own window ends; its last evaluation is what it
concluded. An answer that cannot be judged (Prometheus unreachable, a refused or failing query, no series) is
inconclusive, never passed: a check with `inconclusive: fail` fails on it at once, one with `hold` keeps asking and
holds the commit if its last evaluation was still inconclusive. A value that breaks the condition fails at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from streams.adapters.prometheus_api import PrometheusBadQuery, PrometheusQueryError, PrometheusUnreachable
from streams.domain.environments import EnvironmentPolicy, Inconclusive, VerifyCheck
from streams.domain.policy import Policies

__all__ = ["CheckOutcome", "Query", "Verdict", "Verification", "Verifier", "evaluate", "unparsable_queries"]

Verdict = Literal["passed", "failed", "inconclusive"]
# PrometheusAPI.query: one {"metric": labels, "value": [time, "value"]} per series; raises PrometheusQueryError.
Query = Callable[[str], Sequence[Mapping[str, Any]]]

# A startup check has neither commit nor image yet: stand-ins that keep the query's syntax as a rollout's would.
_EXAMPLE_COMMIT: Final = "0" * 40


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    query: str  # as rendered for the rollout
    verdict: Verdict
    value: float | None  # the value that broke the condition, or the one nearest to breaking it; None without one
    detail: str

    @property
    def reason(self) -> str:
        if self.verdict == "failed" and self.value is not None:
            return f"verify {self.name}: {self.detail}; query: {self.query}"
        return f"verify {self.name} {self.verdict}: {self.detail}; query: {self.query}"


@dataclass(frozen=True)
class Verification:
    verdict: Verdict
    checks: tuple[CheckOutcome, ...]

    @property
    def reason(self) -> str:
        """One line: the check that decided a failed or inconclusive verdict, or every check's value."""
        for verdict in ("failed", "inconclusive"):
            deciding = next((c for c in self.checks if c.verdict == verdict), None)
            if deciding is not None:
                return deciding.reason
        if not self.checks:
            return "nothing to verify"
        return "verify passed: " + ", ".join(f"{c.name} {c.detail}" for c in self.checks)


def evaluate(check: VerifyCheck, query: str, ask: Query) -> CheckOutcome:
    """One evaluation of one check; `inconclusive: fail` is applied by the caller."""
    series, problem = _values(query, ask)
    if problem is not None:
        return CheckOutcome(check.name, query, "inconclusive", None, problem)
    condition = check.condition
    for labels, value in series:
        if not condition.holds(value):
            return CheckOutcome(check.name, query, "failed", value, f"{value:g} (needs {condition}){_at(labels)}")
    nearest = min((value for _, value in series), key=lambda v: abs(v - condition.threshold))
    return CheckOutcome(check.name, query, "passed", nearest, f"{nearest:g} ({condition})")


def _values(query: str, ask: Query) -> tuple[list[tuple[dict[str, str], float]], str | None]:
    """Every series' labels and value, or why there is nothing to judge."""
    try:
        answer = ask(query)
    except PrometheusUnreachable as e:
        return [], f"Prometheus unreachable ({e})"
    except PrometheusBadQuery as e:
        return [], f"Prometheus refused the query ({e})"
    except PrometheusQueryError as e:
        return [], f"the query failed ({e})"
    if not answer:
        return [], "no series"
    try:
        return [(dict(s["metric"]), float(s["value"][1])) for s in answer], None
    except (KeyError, IndexError, TypeError, ValueError) as e:
        return [], f"an answer that is not a number ({e!r})"


def _at(labels: Mapping[str, str]) -> str:
    """The series, so a person can find it among several."""
    if not labels:
        return ""
    return " at {" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class Verifier:
    def __init__(
        self,
        query: Query,
        interval_s: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """`sleep` defaults to waiting on the stop event, so that stopping does not wait for the interval's end."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self._query, self._interval, self._clock, self._sleep = query, interval_s, clock, sleep

    def verify(
        self, environment: EnvironmentPolicy, fields: Mapping[str, str], stop: threading.Event | None = None
    ) -> Verification:
        """Evaluate the environment's checks from now until the longest window ends, or until one fails."""
        if stop is None:
            stop = threading.Event()
        checks = environment.verify
        queries = [check.render(**fields) for check in checks]
        start = self._clock()
        ends = [start + check.window.total_seconds() for check in checks]
        last: dict[int, CheckOutcome] = {}
        open_ = set(range(len(checks)))
        while open_:
            if stop.is_set():
                return self._stopped(checks, queries, last, open_)
            now = self._clock()
            for i in sorted(open_):
                outcome = evaluate(checks[i], queries[i], self._query)
                if outcome.verdict == "inconclusive" and checks[i].inconclusive is Inconclusive.FAIL:
                    outcome = CheckOutcome(
                        outcome.name, outcome.query, "failed", None, f"{outcome.detail}, counted as failed"
                    )
                last[i] = outcome
                if outcome.verdict == "failed":
                    return Verification("failed", self._in_order(checks, queries, last))
                if now >= ends[i]:
                    open_.discard(i)
            if open_:
                # A last evaluation at each window's end exactly, not up to an interval after it.
                wake = min(now + self._interval, *(ends[i] for i in open_))
                self._wait(max(0.0, wake - self._clock()), stop)
        outcomes = self._in_order(checks, queries, last)
        verdict: Verdict = "inconclusive" if any(o.verdict == "inconclusive" for o in outcomes) else "passed"
        return Verification(verdict, outcomes)

    def _wait(self, seconds: float, stop: threading.Event) -> None:
        if self._sleep is None:
            stop.wait(seconds)
        else:
            self._sleep(seconds)

    @staticmethod
    def _in_order(
        checks: Sequence[VerifyCheck], queries: Sequence[str], last: Mapping[int, CheckOutcome]
    ) -> tuple[CheckOutcome, ...]:
        return tuple(
            last.get(i, CheckOutcome(check.name, queries[i], "inconclusive", None, "not evaluated"))
            for i, check in enumerate(checks)
        )

    def _stopped(
        self,
        checks: Sequence[VerifyCheck],
        queries: Sequence[str],
        last: Mapping[int, CheckOutcome],
        open_: set[int],
    ) -> Verification:
        """Stopped before a window's end: the checks still open concluded nothing, whatever they answered so far."""
        cut = {
            i: CheckOutcome(check.name, queries[i], "inconclusive", None, "stopped before the window's end")
            for i, check in enumerate(checks)
            if i in open_
        }
        return Verification("inconclusive", self._in_order(checks, queries, {**last, **cut}))


def unparsable_queries(policies: Policies, check_syntax: Callable[[str], None]) -> list[tuple[str, str]]:
    """(field, problem) for each verify query Prometheus does not parse; none past the point Prometheus cannot answer.

    `check_syntax` is PrometheusAPI.check_syntax. Queries are rendered with the service's own name, environment and
    namespace (a field outside quotes changes the syntax), and a stand-in commit and image.
    """
    problems: list[tuple[str, str]] = []
    verdicts: dict[str, str | None] = {}  # rendered query -> problem: services often share their queries
    for service in policies.services:
        image = service.image_for(_EXAMPLE_COMMIT) or f"{service.image_from_package}:{_EXAMPLE_COMMIT}"
        for e, environment in enumerate(service.promotion):
            fields = {
                "service": service.name,
                "environment": environment.name,
                "namespace": environment.target.namespace,
                "commit": _EXAMPLE_COMMIT,
                "image": image,
            }
            for c, check in enumerate(environment.verify):
                query = check.render(**fields)
                if query not in verdicts:
                    try:
                        check_syntax(query)
                        verdicts[query] = None
                    except PrometheusBadQuery as error:
                        verdicts[query] = str(error)
                    except PrometheusQueryError:
                        return problems  # unreachable, or no way to ask: the rest are checked when they run
                problem = verdicts[query]
                if problem is not None:
                    problems.append((f"services.{service.name}.environments[{e}].verify[{c}].query", problem))
    return problems
