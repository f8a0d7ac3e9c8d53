"""Verification against a real Prometheus (Debian's) scraping an application's error ratio per image: a good image
passes, a bad one fails with its value, a Prometheus that stops never lets a check pass, and the startup check names
a query Prometheus does not parse."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.adapters.prometheus_api import PrometheusAPI
from streams.deploy.verification import Verification, Verifier, unparsable_queries
from streams.domain.environments import Comparison, EnvironmentPolicy, Inconclusive, KubernetesTarget, VerifyCheck
from streams.domain.policy_document import parse_policies
from streams.local import processes
from streams.local.prometheus import Prometheus, binary
from tests.support.app_metrics import METRIC, AppMetrics
from tests.support.services import unavailable

NAMESPACE = "shop-staging"
QUERY = f'{METRIC}{{service="$service", namespace="$namespace", image="$image"}}'
WINDOW = timedelta(seconds=3)
INTERVAL_S = 0.5


@pytest.fixture(scope="module")
def app() -> Iterator[AppMetrics]:
    metrics = AppMetrics()
    yield metrics
    metrics.close()


def _started(workdir: Path, app: AppMetrics) -> Prometheus:
    try:
        binary("prometheus")
    except FileNotFoundError as e:
        unavailable("Prometheus", e)
    prometheus = Prometheus(workdir, {"app": app.address}, [])
    prometheus.start()
    return prometheus


@pytest.fixture(scope="module")
def prometheus(app: AppMetrics, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    prometheus = _started(tmp_path_factory.mktemp("verification"), app)
    yield prometheus
    prometheus.stop()


def _deployed(app: AppMetrics, prometheus: Prometheus, error_ratio: float) -> dict[str, str]:
    """A rollout's fields, its image's error ratio served and scraped already (the application has been running)."""
    image = f"registry.example/shop:{uuid.uuid4().hex[:12]}"
    app.set(image, NAMESPACE, "shop", error_ratio)
    fields = {"service": "shop", "environment": "staging", "namespace": NAMESPACE, "image": image}
    deadline = time.monotonic() + 30  # Prometheus's first scrape comes a few seconds after its start
    while not prometheus.api.query(VerifyCheck("q", QUERY, Comparison.parse("< 1"), WINDOW).render(**fields)):
        assert time.monotonic() < deadline, f"{image} not scraped:\n{processes.tail(prometheus.log)}"
        time.sleep(0.2)
    return fields


def _staging(inconclusive: Inconclusive = Inconclusive.HOLD, window: timedelta = WINDOW) -> EnvironmentPolicy:
    check = VerifyCheck("error-ratio", QUERY, Comparison.parse("< 0.05"), window, inconclusive)
    return EnvironmentPolicy("staging", KubernetesTarget(NAMESPACE, "shop", "app"), verify=(check,))


def _timed(verify: Any) -> tuple[Verification, float]:
    started = time.monotonic()
    result = verify()
    return result, time.monotonic() - started


def test_a_good_image_passes_at_the_window_end(app: AppMetrics, prometheus: Prometheus) -> None:
    fields = _deployed(app, prometheus, 0.01)
    verifier = Verifier(prometheus.api.query, INTERVAL_S)
    result, took = _timed(lambda: verifier.verify(_staging(), fields))
    assert result.verdict == "passed", result.reason
    assert took >= WINDOW.total_seconds()
    assert result.reason == "verify passed: error-ratio 0.01 (< 0.05)"


def test_a_bad_image_fails_at_once_with_its_value(app: AppMetrics, prometheus: Prometheus) -> None:
    fields = _deployed(app, prometheus, 0.12)
    verifier = Verifier(prometheus.api.query, INTERVAL_S)
    result, took = _timed(lambda: verifier.verify(_staging(), fields))
    assert result.verdict == "failed", result.reason
    assert took < WINDOW.total_seconds()
    assert result.reason.startswith("verify error-ratio: 0.12 (needs < 0.05) at {")
    assert f'image="{fields["image"]}"' in result.reason
    assert result.checks[0].value == 0.12


def test_prometheus_stopping_during_verification_never_passes(app: AppMetrics, tmp_path: Path) -> None:
    """Two rollouts verified at once, one check holding and one failing on an inconclusive answer."""
    prometheus = _started(tmp_path / "prometheus", app)
    window = timedelta(seconds=4)
    answered: dict[Inconclusive, list[float]] = {i: [] for i in Inconclusive}
    outcomes: dict[Inconclusive, tuple[Verification, float]] = {}

    def verify(inconclusive: Inconclusive, fields: dict[str, str]) -> None:
        def query(expr: str) -> list[dict[str, Any]]:
            answer = prometheus.api.query(expr)
            answered[inconclusive].append(float(answer[0]["value"][1]))
            return answer

        verifier = Verifier(query, INTERVAL_S)
        outcomes[inconclusive] = _timed(lambda: verifier.verify(_staging(inconclusive, window), fields))

    try:
        rollouts = {i: _deployed(app, prometheus, 0.01) for i in Inconclusive}
        threads = [threading.Thread(target=verify, args=(i, fields)) for i, fields in rollouts.items()]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while min(len(a) for a in answered.values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        prometheus.stop()
        before_the_stop = {i: list(a) for i, a in answered.items()}
        for thread in threads:
            thread.join(30)
    finally:
        prometheus.stop()
    for passing in before_the_stop.values():  # each check passed until Prometheus stopped
        assert len(passing) >= 2 and set(passing) == {0.01}
    held, held_took = outcomes[Inconclusive.HOLD]
    assert held.verdict == "inconclusive", held.reason
    assert held_took >= window.total_seconds()
    assert held.reason.startswith("verify error-ratio inconclusive: Prometheus unreachable (")
    failed, failed_took = outcomes[Inconclusive.FAIL]
    assert failed.verdict == "failed", failed.reason
    assert failed_took < window.total_seconds()
    assert failed.reason.startswith("verify error-ratio failed: Prometheus unreachable (")


def test_the_startup_check_names_the_query_prometheus_does_not_parse(prometheus: Prometheus) -> None:
    verify = [
        {"name": "error-ratio", "query": QUERY, "condition": "< 0.05", "window": "1m"},
        {"name": "latency", "query": f"rate({METRIC}[1m]) >", "condition": "< 1", "window": "1m"},
        {"name": "rate", "query": f'rate({METRIC}{{image="$image"}})', "condition": "< 1", "window": "1m"},
    ]
    service = {
        "repository": "acme/shop",
        "branch": "main",
        "required_checks": [{"circleci": "build-test"}],
        "image": "registry.example/shop:{sha}",
        "environments": [
            {"name": "staging", "kubernetes": {"namespace": NAMESPACE, "deployment": "shop", "container": "app"}},
            {
                "name": "production",
                "kubernetes": {"namespace": "shop", "deployment": "shop", "container": "app"},
                "after": "staging",
                "verify": verify,
            },
        ],
    }
    policies = parse_policies({"services": {"shop": service}}, "t")
    problems = dict(unparsable_queries(policies, prometheus.api.check_syntax))
    assert list(problems) == [
        "services.shop.environments[1].verify[1].query",
        "services.shop.environments[1].verify[2].query",
    ]
    assert "parse error" in problems["services.shop.environments[1].verify[1].query"]
    assert "expected type range vector" in problems["services.shop.environments[1].verify[2].query"]
    nobody = PrometheusAPI(f"http://127.0.0.1:{processes.free_port()}", timeout=2)
    assert unparsable_queries(policies, nobody.check_syntax) == []
