"""A service's `environments:` list in the policy file, checked as strictly as the rest of it.

environments:
  - name: staging
    kubernetes: {namespace: shop-staging, deployment: shop, container: app}
    verify:
      - name: error-ratio
        query: 'shop:error_ratio{namespace="$namespace", image="$image"}'
        condition: "< 0.05"
        window: 2m
        inconclusive: hold          # or fail; hold is the default
  - name: production
    kubernetes: {namespace: shop, deployment: shop, container: app, context: prod}
    after: staging
    soak: 10m
    approval: required
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from streams.domain.environments import (
    QUERY_FIELDS,
    Comparison,
    EnvironmentPolicy,
    Inconclusive,
    KubernetesTarget,
    VerifyCheck,
)
from streams.domain.policy_fields import (
    DNS_LABEL,
    SLUG,
    FieldError,
    mapping,
    matching,
    parse_duration,
    plain_text,
)

__all__ = ["KUBERNETES_KEYS", "parse_environments", "parse_target"]

KUBERNETES_KEYS: Final = ("namespace", "deployment", "container")
_KUBERNETES_OPTIONAL: Final = ("context",)
_ENVIRONMENT_KEYS: Final = ("name", "kubernetes")
_ENVIRONMENT_OPTIONAL: Final = ("after", "soak", "approval", "verify")
_VERIFY_KEYS: Final = ("name", "query", "condition", "window")
_VERIFY_OPTIONAL: Final = ("inconclusive",)
_CONTEXT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:/-]{0,252}")  # kubeconfig context names are free-form
_PAIRS: Final = {")": "(", "]": "[", "}": "{"}

Share = Callable[[Any], Any]


def parse_target(value: object, field: str, share: Share, *, contexts: bool) -> KubernetesTarget:
    """A `kubernetes:` mapping; `context` only where `contexts` (inside `environments`)."""
    k8s = mapping(value, field, KUBERNETES_KEYS, _KUBERNETES_OPTIONAL if contexts else ())
    label = "a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    namespace, deployment, container = (
        share(matching(k8s[key], f"{field}.{key}", DNS_LABEL, label)) for key in KUBERNETES_KEYS
    )
    context = None
    if "context" in k8s:
        context = share(matching(k8s["context"], f"{field}.context", _CONTEXT, "a kubeconfig context name"))
    return KubernetesTarget(namespace, deployment, container, context)


def parse_environments(value: object, field: str, share: Share) -> tuple[EnvironmentPolicy, ...]:
    if not isinstance(value, list) or not value:
        raise FieldError(
            field, "must be a list of environments, each {name, kubernetes[, after, soak, approval, verify]}"
        )
    environments: list[EnvironmentPolicy] = []
    for index, item in enumerate(value):
        environment = _environment(item, f"{field}[{index}]", environments, share)
        environments.append(environment)
    return tuple(environments)


def _environment(value: object, field: str, earlier: list[EnvironmentPolicy], share: Share) -> EnvironmentPolicy:
    doc = mapping(value, field, _ENVIRONMENT_KEYS, _ENVIRONMENT_OPTIONAL)
    name = share(matching(doc["name"], f"{field}.name", SLUG, "a name such as staging"))
    if any(e.name == name for e in earlier):
        raise FieldError(f"{field}.name", f"repeats {name!r}")
    target = parse_target(doc["kubernetes"], f"{field}.kubernetes", share, contexts=True)
    for other in earlier:
        if (other.target.context, other.target.namespace, other.target.deployment) == (
            target.context,
            target.namespace,
            target.deployment,
        ):
            raise FieldError(f"{field}.kubernetes", f"is the Deployment of environment {other.name!r} already")
    if not earlier and ({"after", "soak", "approval"} & doc.keys()):
        # The first environment takes what the readiness rules decide: a gate there has nothing to wait for.
        first = sorted({"after", "soak", "approval"} & doc.keys())[0]
        raise FieldError(
            f"{field}.{first}",
            "the first environment takes the commits ready by the service's rules; gate a later environment instead",
        )
    after = None
    if "after" in doc:
        after = plain_text(doc["after"], f"{field}.after")
        if not any(e.name == after for e in earlier):
            names = ", ".join(e.name for e in earlier)
            raise FieldError(
                f"{field}.after", f"must name an environment listed before this one ({names}), got {after!r}"
            )
    soak = None
    if "soak" in doc:
        if after is None:
            raise FieldError(f"{field}.soak", "needs `after`: the environment the commit soaks in")
        soak = share(_duration(doc["soak"], f"{field}.soak"))
    approval = False
    if "approval" in doc:
        if doc["approval"] not in ("required", "none"):
            raise FieldError(f"{field}.approval", f"must be required or none, got {doc['approval']!r}")
        approval = doc["approval"] == "required"
    verify = _verify(doc["verify"], f"{field}.verify") if "verify" in doc else ()
    return EnvironmentPolicy(name, target, after, soak, approval, verify)


def _verify(value: object, field: str) -> tuple[VerifyCheck, ...]:
    if not isinstance(value, list) or not value:
        raise FieldError(field, "must be a list of checks, each {name, query, condition, window[, inconclusive]}")
    checks: list[VerifyCheck] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        doc = mapping(item, where, _VERIFY_KEYS, _VERIFY_OPTIONAL)
        name = matching(doc["name"], f"{where}.name", SLUG, "a name such as error-ratio")
        if any(c.name == name for c in checks):
            raise FieldError(f"{where}.name", f"repeats {name!r}")
        query = _query(doc["query"], f"{where}.query")
        try:
            condition = Comparison.parse(plain_text(doc["condition"], f"{where}.condition"))
        except ValueError as e:
            raise FieldError(f"{where}.condition", str(e)) from e
        window = _duration(doc["window"], f"{where}.window")
        inconclusive = Inconclusive.HOLD
        if "inconclusive" in doc:
            allowed = ", ".join(i.value for i in Inconclusive)
            if doc["inconclusive"] not in {i.value for i in Inconclusive}:
                raise FieldError(f"{where}.inconclusive", f"must be one of {allowed}, got {doc['inconclusive']!r}")
            inconclusive = Inconclusive(doc["inconclusive"])
        checks.append(VerifyCheck(name, query, condition, window, inconclusive))
    return tuple(checks)


def _query(value: object, field: str) -> str:
    """What can be checked of PromQL without Prometheus: the template's fields, brackets and quotes."""
    query = plain_text(value, field)
    template = string.Template(query)
    if not template.is_valid():
        raise FieldError(field, "has a `$` that names no field; write a literal $ as $$")
    unknown = set(template.get_identifiers()) - QUERY_FIELDS
    if unknown:
        raise FieldError(field, f"may name only ${', $'.join(sorted(QUERY_FIELDS))}, got ${sorted(unknown)[0]}")
    problem = _unbalanced(query)
    if problem:
        raise FieldError(field, f"is not PromQL: {problem}")
    return query


def _unbalanced(query: str) -> str | None:
    """The first bracket or quote left open or closed twice, skipping string literals as PromQL lexes them."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for char in query:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in _PAIRS and (not stack or stack.pop() != _PAIRS[char]):
            return f"unexpected {char!r}"
    if quote is not None:
        return f"unterminated {quote} string"
    return f"{stack[-1]!r} is never closed" if stack else None


def _duration(value: object, field: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise FieldError(field, str(e)) from e
