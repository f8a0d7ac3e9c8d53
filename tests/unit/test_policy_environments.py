"""`environments:` in autodeploy.yaml: staging -> production with gates, every mistake naming its field."""

from __future__ import annotations

import copy
import math
from datetime import timedelta
from typing import Any

import pytest

from streams.domain.environments import Comparison, EnvironmentPolicy, Inconclusive, KubernetesTarget
from streams.domain.policy_document import PolicyError, parse_policies

ERRORS = {
    "name": "error-ratio",
    "query": 'sum(rate(http_errors_total{namespace="$namespace", image="$image"}[1m])) / sum(rate(http_total[1m]))',
    "condition": "< 0.05",
    "window": "2m",
}
STAGING: dict[str, Any] = {
    "name": "staging",
    "kubernetes": {"namespace": "shop-staging", "deployment": "shop", "container": "app"},
    "verify": [ERRORS],
}
PRODUCTION: dict[str, Any] = {
    "name": "production",
    "kubernetes": {"namespace": "shop", "deployment": "shop", "container": "app", "context": "prod-eu"},
    "after": "staging",
    "soak": "10m",
    "approval": "required",
}
SHOP: dict[str, Any] = {
    "repository": "acme/shop",
    "branch": "main",
    "required_checks": [{"circleci": "build-test"}],
    "image": "ghcr.io/acme/shop:{sha}",
    "environments": [STAGING, PRODUCTION],
}


def document(environments: list[Any] | None = None, **service: Any) -> dict[str, Any]:
    shop = copy.deepcopy(SHOP)
    if environments is not None:
        shop["environments"] = environments
    shop.update(service)
    return {"services": {"shop": shop}}


def env(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_two_environments_with_every_gate() -> None:
    [shop] = parse_policies(document(), "t").services
    staging, production = shop.environments
    assert (shop.environment, shop.target) == ("staging", KubernetesTarget("shop-staging", "shop", "app"))
    assert staging.after is None and not staging.gated
    [check] = staging.verify
    assert (check.name, check.condition, check.window, check.inconclusive) == (
        "error-ratio",
        Comparison("<", 0.05),
        timedelta(minutes=2),
        Inconclusive.HOLD,
    )
    assert check.render(namespace="shop-staging", image="ghcr.io/acme/shop:abc").startswith(
        'sum(rate(http_errors_total{namespace="shop-staging", image="ghcr.io/acme/shop:abc"}'
    )
    assert production == EnvironmentPolicy(
        "production",
        KubernetesTarget("shop", "shop", "app", "prod-eu"),
        after="staging",
        soak=timedelta(minutes=10),
        approval=True,
    )
    assert shop.environment_named("production") is production


def test_a_policy_without_environments_has_one() -> None:
    service = {k: v for k, v in SHOP.items() if k != "environments"}
    service["kubernetes"] = {"namespace": "shop", "deployment": "shop", "container": "app"}
    [shop] = parse_policies({"services": {"shop": service}}, "t").services
    assert shop.promotion == ()
    assert shop.environments == (EnvironmentPolicy("production", KubernetesTarget("shop", "shop", "app")),)


@pytest.mark.parametrize(
    ("doc", "field", "problem"),
    [
        (document(kubernetes=STAGING["kubernetes"]), "services.shop.kubernetes", "exactly one of kubernetes and"),
        (document(environment="prod"), "services.shop.environment", "name each one there"),
        (document([]), "services.shop.environments", "must be a list of environments"),
        (document([env(STAGING), env(STAGING)]), "services.shop.environments[1].name", "repeats 'staging'"),
        (document([env(STAGING, name="Staging")]), "services.shop.environments[0].name", "a name such as staging"),
        (document([env(STAGING, after="qa")]), "services.shop.environments[0].after", "the first environment"),
        (document([env(STAGING, approval="required")]), "services.shop.environments[0].approval", "first"),
        (document([STAGING, env(PRODUCTION, after="qa")]), "services.shop.environments[1].after", "(staging)"),
        (
            document([STAGING, env(PRODUCTION, after="production")]),
            "services.shop.environments[1].after",
            "listed before this one",
        ),
        (document([STAGING, env(PRODUCTION, after=None)]), "services.shop.environments[1].soak", "needs `after`"),
        (document([STAGING, env(PRODUCTION, soak="10 min")]), "services.shop.environments[1].soak", "15m"),
        (document([STAGING, env(PRODUCTION, approval=True)]), "services.shop.environments[1].approval", "required"),
        (
            document([STAGING, env(PRODUCTION, approvel="required")]),
            "services.shop.environments[1].approvel",
            "did you mean approval?",
        ),
        (
            document([STAGING, env(PRODUCTION, kubernetes=STAGING["kubernetes"])]),
            "services.shop.environments[1].kubernetes",
            "environment 'staging' already",
        ),
        (
            document([STAGING, env(PRODUCTION, kubernetes={**PRODUCTION["kubernetes"], "context": "a b"})]),
            "services.shop.environments[1].kubernetes.context",
            "kubeconfig context",
        ),
        (document([env(STAGING, verify=[])]), "services.shop.environments[0].verify", "a list of checks"),
        (
            document([env(STAGING, verify=[ERRORS, ERRORS])]),
            "services.shop.environments[0].verify[1].name",
            "repeats",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, condition="below 0.05")])]),
            "services.shop.environments[0].verify[0].condition",
            "a comparison such as '< 0.05'",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, condition="< nan")])]),
            "services.shop.environments[0].verify[0].condition",
            "comparison",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, window=None)])]),
            "services.shop.environments[0].verify[0].window",
            "is required",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, inconclusive="pass")])]),
            "services.shop.environments[0].verify[0].inconclusive",
            "hold, fail",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, query='up{job="$job"}')])]),
            "services.shop.environments[0].verify[0].query",
            "got $job",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, query="cost > 5$")])]),
            "services.shop.environments[0].verify[0].query",
            "$$",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, query="sum(rate(x[1m])")])]),
            "services.shop.environments[0].verify[0].query",
            "'(' is never closed",
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, query='up{job="api}')])]),
            "services.shop.environments[0].verify[0].query",
            'unterminated " string',
        ),
        (
            document([env(STAGING, verify=[env(ERRORS, query="rate(x[1m)]")])]),
            "services.shop.environments[0].verify[0].query",
            "unexpected ')'",
        ),
    ],
)
def test_wrong_environments_name_the_field(doc: Any, field: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policies(doc, "autodeploy.yaml")
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_brackets_inside_strings_and_escaped_quotes_are_not_counted() -> None:
    query = 'count(up{job=~"api(-v[0-9])?", msg="say \\"hi\\" )"}) > 0 and $$ignored'
    check = {**ERRORS, "query": query}
    [shop] = parse_policies(document([env(STAGING, verify=[check])]), "t").services
    assert shop.environments[0].verify[0].render(image="x") == query.replace("$$", "$")


def test_a_deployment_is_one_service_s_in_one_cluster_context() -> None:
    other = copy.deepcopy(SHOP)
    other["image"] = "ghcr.io/acme/other:{sha}"
    other["environments"] = [env(STAGING, kubernetes={**STAGING["kubernetes"], "context": "other-cluster"})]
    policies = parse_policies({"services": {"shop": SHOP, "other": other}}, "t")  # same names, another cluster
    assert len(policies.services) == 2
    other["environments"] = [STAGING]
    with pytest.raises(PolicyError, match="which service shop already deploys") as caught:
        parse_policies({"services": {"shop": SHOP, "other": other}}, "t")
    assert caught.value.field == "services.other.environments[0].kubernetes"


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("< 0.05", 0.04, True),
        ("< 0.05", 0.05, False),
        ("<=0.05", 0.05, True),
        (">= 0.99", 1.0, True),
        ("== 0", 0.0, True),
        ("!= 0", 0.0, False),
        ("> 1e3", 1001.0, True),
        ("< 0.05", math.nan, False),
        ("!= 1", math.nan, False),
    ],
)
def test_comparisons(text: str, value: float, holds: bool) -> None:
    assert Comparison.parse(text).holds(value) is holds
