"""Verification after a rollout against a fake Prometheus and a fake clock: what passes, fails, stays inconclusive."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from streams.adapters.prometheus_api import PrometheusBadQuery, PrometheusQueryError, PrometheusUnreachable
from streams.deploy.verification import Verifier, unparsable_queries
from streams.domain.environments import Comparison, EnvironmentPolicy, Inconclusive, KubernetesTarget, VerifyCheck
from streams.domain.policy_document import parse_policies

QUERY = 'max(shop:error_ratio{namespace="$namespace", image="$image"})'
FIELDS = {"service": "shop", "environment": "staging", "namespace": "shop-staging", "image": "ghcr.io/acme/shop:abc"}
RENDERED = 'max(shop:error_ratio{namespace="shop-staging", image="ghcr.io/acme/shop:abc"})'
WINDOW_S = 60
INTERVAL_S = 10

Answer = list[dict[str, Any]] | Exception


def sample(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, value]}


class FakePrometheus:
    """Answers by the fake clock's time; records when it was asked."""

    def __init__(self, answer: Callable[[float], Answer]) -> None:
        self.answer, self.now, self.asked = answer, 0.0, list[tuple[float, str]]()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def query(self, expr: str) -> list[dict[str, Any]]:
        self.asked.append((self.now, expr))
        answer = self.answer(self.now)
        if isinstance(answer, Exception):
            raise answer
        return answer


def check(
    name: str = "error-ratio",
    condition: str = "< 0.05",
    window_s: int = WINDOW_S,
    inconclusive: Inconclusive = Inconclusive.HOLD,
) -> VerifyCheck:
    return VerifyCheck(name, QUERY, Comparison.parse(condition), timedelta(seconds=window_s), inconclusive)


def staging(*checks: VerifyCheck) -> EnvironmentPolicy:
    return EnvironmentPolicy("staging", KubernetesTarget("shop-staging", "shop", "app"), verify=checks)


def run(answer: Callable[[float], Answer], *checks: VerifyCheck) -> tuple[Any, FakePrometheus]:
    fake = FakePrometheus(answer)
    verifier = Verifier(fake.query, INTERVAL_S, clock=fake.clock, sleep=fake.sleep)
    return verifier.verify(staging(*(checks or (check(),))), FIELDS), fake


UNREACHABLE = PrometheusUnreachable("http://prometheus:9090/api/v1/query: [Errno 111] Connection refused")


def test_passes_when_every_evaluation_holds_until_the_window_ends() -> None:
    result, fake = run(lambda _: [sample("0.01")])
    assert result.verdict == "passed"
    assert [t for t, _ in fake.asked] == [0, 10, 20, 30, 40, 50, 60]  # the last one at the window's end
    assert {q for _, q in fake.asked} == {RENDERED}
    assert (result.checks[0].value, result.reason) == (0.01, "verify passed: error-ratio 0.01 (< 0.05)")


def test_a_violating_value_fails_at_once_naming_the_query_and_the_value() -> None:
    result, fake = run(lambda t: [sample("0.01" if t < 20 else "0.12")])
    assert result.verdict == "failed"
    assert fake.now == 20  # not the window's end
    assert result.checks[0].value == 0.12
    assert result.reason == f"verify error-ratio: 0.12 (needs < 0.05); query: {RENDERED}"


def test_nan_fails() -> None:
    result, _ = run(lambda _: [sample("NaN")])
    assert (result.verdict, result.reason.split(";")[0]) == ("failed", "verify error-ratio: nan (needs < 0.05)")


def test_every_series_must_satisfy_the_condition() -> None:
    many = [sample("0.01", pod="a"), sample("0.2", pod="b"), sample("0.02", pod="c")]
    result, fake = run(lambda _: many)
    assert (result.verdict, fake.now) == ("failed", 0)
    assert 'verify error-ratio: 0.2 (needs < 0.05) at {pod="b"}' in result.reason
    result, _ = run(lambda _: [sample("0.01", pod="a"), sample("0.04", pod="b")])
    assert result.verdict == "passed"
    assert result.checks[0].value == 0.04  # the nearest to breaking the condition


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (UNREACHABLE, "Prometheus unreachable (http://prometheus:9090/api/v1/query: [Errno 111] Connection refused)"),
        (PrometheusBadQuery("x: bad_data: parse error"), "Prometheus refused the query (x: bad_data: parse error)"),
        (PrometheusQueryError("x: execution: too many samples"), "the query failed (x: execution: too many samples)"),
    ],
)
def test_an_error_throughout_the_window_is_inconclusive_with_hold(error: Exception, detail: str) -> None:
    result, fake = run(lambda _: error)
    assert (result.verdict, fake.now) == ("inconclusive", WINDOW_S)
    assert result.reason == f"verify error-ratio inconclusive: {detail}; query: {RENDERED}"


def test_no_series_is_inconclusive_never_passed() -> None:
    result, _ = run(lambda _: [])
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("verify error-ratio inconclusive: no series;")


def test_unreachable_at_the_window_end_is_inconclusive_after_passing_evaluations() -> None:
    result, fake = run(lambda t: [sample("0.01")] if t < 50 else UNREACHABLE)
    assert (result.verdict, fake.now) == ("inconclusive", WINDOW_S)
    assert "Prometheus unreachable" in result.reason


def test_unreachable_with_inconclusive_fail_fails_at_once() -> None:
    result, fake = run(lambda t: [sample("0.01")] if t < 30 else UNREACHABLE, check(inconclusive=Inconclusive.FAIL))
    assert (result.verdict, fake.now) == ("failed", 30)
    assert result.checks[0].value is None
    assert result.reason.startswith("verify error-ratio failed: Prometheus unreachable (")
    assert "counted as failed" in result.reason


def test_no_series_with_inconclusive_fail_fails() -> None:
    result, fake = run(lambda _: [], check(inconclusive=Inconclusive.FAIL))
    assert (result.verdict, fake.now) == ("failed", 0)


def test_a_recovery_within_the_window_passes() -> None:
    result, _ = run(lambda t: UNREACHABLE if t < 20 else ([] if t < 40 else [sample("0.01")]))
    assert result.verdict == "passed"


def test_each_check_is_evaluated_until_its_own_window_ends() -> None:
    short, long_ = check("short", window_s=15), check("long", condition="<= 1", window_s=WINDOW_S)
    # The short check's query is the same text: it answers a failing value only after its window has ended.
    result, fake = run(lambda t: [sample("0.01" if t <= 15 else "0.5")], short, long_)
    assert result.verdict == "passed"
    assert [t for t, _ in fake.asked] == [0, 0, 10, 10, 15, 15, 25, 35, 45, 55, 60]
    assert result.reason == "verify passed: short 0.01 (< 0.05), long 0.5 (<= 1)"


def test_one_failing_check_fails_the_verification_whatever_the_others_say() -> None:
    high = check("throughput", condition="> 100")
    result, _ = run(lambda _: [sample("0.01")], check(), high)
    assert result.verdict == "failed"
    assert result.reason.startswith("verify throughput: 0.01 (needs > 100);")
    assert [c.verdict for c in result.checks] == ["passed", "failed"]


def test_a_stop_ends_early_as_inconclusive() -> None:
    stop = threading.Event()
    fake = FakePrometheus(lambda _: [sample("0.01")])

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if fake.now >= 20:
            stop.set()

    result = Verifier(fake.query, INTERVAL_S, clock=fake.clock, sleep=sleep).verify(staging(check()), FIELDS, stop)
    assert (result.verdict, fake.now) == ("inconclusive", 20)
    assert result.reason.startswith("verify error-ratio inconclusive: stopped before the window's end;")


def test_an_environment_without_checks_passes_without_asking() -> None:
    fake = FakePrometheus(lambda _: UNREACHABLE)
    result = Verifier(fake.query, INTERVAL_S, clock=fake.clock, sleep=fake.sleep).verify(staging(), FIELDS)
    assert (result.verdict, result.checks, fake.asked) == ("passed", (), [])


def test_the_real_sleep_is_the_stop_event() -> None:
    """Without an injected sleep, a stop wakes the verifier at once instead of at the interval's end."""
    stop = threading.Event()

    def stop_while_answering(_: float) -> Answer:
        stop.set()  # before the verifier's first wait
        return [sample("0.01")]

    fake = FakePrometheus(stop_while_answering)
    verifier = Verifier(fake.query, 3600, clock=fake.clock)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(verifier.verify(staging(check()), FIELDS, stop)))
    thread.daemon = True
    thread.start()
    thread.join(5)
    assert [r.verdict for r in results] == ["inconclusive"]


POLICY: dict[str, Any] = {
    "services": {
        "shop": {
            "repository": "acme/shop",
            "branch": "main",
            "required_checks": [{"circleci": "build-test"}],
            "image": "ghcr.io/acme/shop:{sha}",
            "environments": [
                {
                    "name": "staging",
                    "kubernetes": {"namespace": "shop-staging", "deployment": "shop", "container": "app"},
                    "verify": [
                        {"name": "error-ratio", "query": QUERY, "condition": "< 0.05", "window": "2m"},
                        {"name": "latency", "query": 'up{image="$image"} >', "condition": "< 1", "window": "2m"},
                    ],
                },
            ],
        },
    },
}


def test_the_startup_check_names_each_query_prometheus_refuses() -> None:
    asked: list[str] = []

    def check_syntax(expr: str) -> None:
        asked.append(expr)
        if expr.endswith(">"):
            raise PrometheusBadQuery(f"{expr}: bad_data: 1:40: parse error: unexpected end of input")

    doc = copy.deepcopy(POLICY)
    doc["services"]["cart"] = copy.deepcopy(doc["services"]["shop"])
    doc["services"]["cart"]["environments"][0]["kubernetes"]["deployment"] = "cart"
    problems = unparsable_queries(parse_policies(doc, "t"), check_syntax)
    assert [field for field, _ in problems] == [
        "services.shop.environments[0].verify[1].query",
        "services.cart.environments[0].verify[1].query",
    ]
    assert "parse error: unexpected end of input" in problems[0][1]
    assert len(asked) == 2  # the same rendered queries asked once
    assert asked[0] == f'max(shop:error_ratio{{namespace="shop-staging", image="ghcr.io/acme/shop:{"0" * 40}"}})'


def test_the_startup_check_says_nothing_when_prometheus_is_unreachable() -> None:
    def check_syntax(expr: str) -> None:
        raise UNREACHABLE

    assert unparsable_queries(parse_policies(POLICY, "t"), check_syntax) == []
