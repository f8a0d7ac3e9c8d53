"""The deploy policies of `autodeploy.yaml`, checked before anything is deployed by them.

This is given the document as parsed (mappings, lists, strings; streams.adapters.policy_file reads and parses the
file) and turns it into Policies, or says what is wrong. It is strict on purpose. A typo in a key, a check kind or a
Kubernetes name would otherwise not fail but quietly deploy something else, or nothing: unknown keys and malformed
names are errors (a key given twice too, which the file's reader refuses), and every error names the field
(`services.shop.required_checks[0]`) so it can be fixed without reading this code.
"""

from __future__ import annotations

import contextlib
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final, TypeVar

from streams.domain.environments import EnvironmentPolicy, KubernetesTarget
from streams.domain.facts import CheckId, CheckKind
from streams.domain.freeze import FreezeWindow
from streams.domain.policy import Policies, ServicePolicy, normalise_repository
from streams.domain.policy_environments import parse_environments, parse_target
from streams.domain.policy_fields import (
    SLUG,
    FieldError,
    known,
    mapping,
    matching,
    parse_duration,
    plain_text,
)
from streams.domain.policy_freeze import FreezeFieldError, parse_freeze

__all__ = ["PolicyBuilder", "PolicyError", "parse_duration", "parse_policies"]


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; `field` is the dotted path of the offending value."""

    def __init__(self, where: str, field: str, problem: str) -> None:
        self.where, self.field, self.problem = where, field, problem
        super().__init__(": ".join(part for part in (where, field, problem) if part))


DEFAULT_ENVIRONMENT: Final = "production"
DEFAULT_READINESS_TTL: Final = timedelta(hours=24)

# git check-ref-format, less its rarely met corners: no control characters, spaces, ~^:?*[\, "..", "@{", "//", a
# component starting with "." or a name ending in ".lock", "." or "/".
_BRANCH: Final = re.compile(r"(?![/.])(?!@$)(?!.*(?:\.\.|@\{|//|/\.|\.lock$|\.$|/$))[^\x00-\x20\x7f~^:?*\[\\]+")
# An image reference as the OCI distribution spec allows it, the registry first.
_PATH: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_REGISTRY: Final = r"(?:[a-z0-9-]+\.)+[a-z0-9-]+(?::[0-9]+)?|localhost(?::[0-9]+)?|[a-z0-9-]+:[0-9]+"
_IMAGE_NAME: Final = re.compile(rf"(?:{_REGISTRY})/{_PATH}")
_IMAGE: Final = re.compile(rf"(?:{_REGISTRY})/{_PATH}:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
_TEMPLATE_FIELDS: Final = frozenset({"sha", "short_sha"})
_EXAMPLE_SHA: Final = "0123456789abcdef0123456789abcdef01234567"

_CHECK_KINDS: Final = ", ".join(kind.value for kind in CheckKind)
_SERVICE_KEYS: Final = ("repository", "branch", "required_checks")
_SERVICE_OPTIONAL: Final = (
    "kubernetes",
    "environments",
    "image",
    "image_from_package",
    "environment",
    "readiness_ttl",
    "freeze",
    "max_failed_rollouts",
)
DEFAULT_MAX_FAILED_ROLLOUTS: Final = 3
_TOP_KEYS: Final = ("services",)
_TOP_OPTIONAL: Final = ("freeze",)
_T = TypeVar("_T")


def _checks(value: object, field: str) -> tuple[CheckId, ...]:
    # An empty list would deploy every push unchecked: that must be a decision made in code review, not in YAML.
    if not isinstance(value, list) or not value:
        raise FieldError(field, f"must be a non-empty list of checks such as {{circleci: build-test}}, got {value!r}")
    checks: list[CheckId] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise FieldError(where, f"must be one kind and its name, such as {{circleci: build-test}}, got {item!r}")
        [(kind, name)] = item.items()
        if kind not in {k.value for k in CheckKind}:
            raise FieldError(f"{where}.{kind}", f"must be one of {_CHECK_KINDS}")
        check = CheckId(CheckKind(kind), plain_text(name, f"{where}.{kind}"))
        if check in checks:
            raise FieldError(where, f"repeats {kind} {name!r}")
        checks.append(check)
    return tuple(checks)


def _image_template(value: object, field: str) -> str:
    template = plain_text(value, field)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise FieldError(field, f"is not a valid template ({e}); write literal braces as {{{{ }}}}") from e
    used = {name for _, name, _, _ in parts if name is not None}
    if used - _TEMPLATE_FIELDS or any(spec or conversion for _, _, spec, conversion in parts):
        raise FieldError(field, "may use only {sha} and {short_sha}, without conversions or format specs")
    # Without the commit in it every commit would deploy one moving tag, and nothing says which code runs.
    if not used:
        raise FieldError(field, "must contain {sha} or {short_sha}")
    example = template.format(sha=_EXAMPLE_SHA, short_sha=_EXAMPLE_SHA[:7])
    if not _IMAGE.fullmatch(example):
        raise FieldError(
            field, f"must give an image such as ghcr.io/acme/shop:{{sha}} (registry first), got {example!r}"
        )
    return template


def _freeze(value: object, field: str) -> tuple[FreezeWindow, ...]:
    try:
        return parse_freeze(value, field)
    except FreezeFieldError as e:
        raise FieldError(e.field, e.problem) from e


def _max_failed_rollouts(doc: Mapping[str, Any], field: str) -> int:
    value = doc.get("max_failed_rollouts", DEFAULT_MAX_FAILED_ROLLOUTS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise FieldError(f"{field}.max_failed_rollouts", f"must be a whole number from 1 to 100, got {value!r}")
    return value


def _service(
    name: object, value: object, field: str, global_freeze: tuple[FreezeWindow, ...], share: _Share
) -> ServicePolicy:
    if not isinstance(name, str) or not SLUG.fullmatch(name):
        raise FieldError(field, "service names must match [a-z0-9][a-z0-9-]* (at most 63 characters)")
    doc = mapping(value, field, _SERVICE_KEYS, _SERVICE_OPTIONAL)
    repository = normalise_repository(doc["repository"])
    if repository is None:
        raise FieldError(f"{field}.repository", "must be github.com/<owner>/<name>, <owner>/<name> or its https URL")
    branch = matching(doc["branch"], f"{field}.branch", _BRANCH, "a branch name such as main")
    if branch.startswith("refs/"):
        raise FieldError(f"{field}.branch", "must be the branch name alone, without refs/heads/")
    if ("image" in doc) == ("image_from_package" in doc):
        raise FieldError(f"{field}.image", "exactly one of image and image_from_package is required")
    checks = _checks(doc["required_checks"], f"{field}.required_checks")
    template = _image_template(doc["image"], f"{field}.image") if "image" in doc else None
    package = None
    if "image_from_package" in doc:
        # Registries store repository paths lowercase, and published-package facts are spelled so.
        package = plain_text(doc["image_from_package"], f"{field}.image_from_package").lower()
        if not _IMAGE_NAME.fullmatch(package):
            raise FieldError(f"{field}.image_from_package", "must be an image name without tag, e.g. ghcr.io/acme/shop")
    promotion, target, environment = _where(doc, field, share)
    ttl = DEFAULT_READINESS_TTL
    if "readiness_ttl" in doc:
        try:
            ttl = parse_duration(doc["readiness_ttl"])
        except ValueError as e:
            raise FieldError(f"{field}.readiness_ttl", str(e)) from e
    freeze = global_freeze + (_freeze(doc["freeze"], f"{field}.freeze") if "freeze" in doc else ())
    return ServicePolicy(
        name,
        share(repository),
        share(branch),
        share(tuple(share(check) for check in checks)),
        template,
        share(package),
        target,
        share(environment),
        share(ttl),
        share(freeze),
        _max_failed_rollouts(doc, field),
        promotion,
    )


def _where(
    doc: Mapping[str, Any], field: str, share: _Share
) -> tuple[tuple[EnvironmentPolicy, ...], KubernetesTarget, str]:
    """(environments if listed, the first one's target and name): where the service's ready commits deploy."""
    if ("kubernetes" in doc) == ("environments" in doc):
        raise FieldError(f"{field}.kubernetes", "exactly one of kubernetes and environments is required")
    if "environments" in doc:
        if "environment" in doc:
            raise FieldError(f"{field}.environment", "goes with kubernetes; with environments, name each one there")
        promotion = parse_environments(doc["environments"], f"{field}.environments", share)
        return promotion, promotion[0].target, promotion[0].name
    target = parse_target(doc["kubernetes"], f"{field}.kubernetes", share, contexts=False)
    environment = DEFAULT_ENVIRONMENT
    if "environment" in doc:
        environment = matching(doc["environment"], f"{field}.environment", SLUG, "a name such as production")
    return (), target, environment


class _Share:
    """One object for equal values: the services of a file repeat the same branch, checks, containers, time to
    live and freeze windows, and each kept its own copy (docs/performance.md, the policy's memory). Everything
    shared is immutable."""

    def __init__(self) -> None:
        self._seen: dict[object, object] = {}

    def __call__(self, value: _T) -> _T:
        shared: _T = self._seen.setdefault(value, value)  # type: ignore[assignment]  # equal, so of the same type
        return shared


class PolicyBuilder:
    """Policies built from the policy file's parts in the order a reader meets them, one service at a time, so
    that a file of thousands of services never exists whole as parsed data (streams.adapters.policy_file walks the
    file so; docs/performance.md has what that saves). Each method raises PolicyError for a wrong part.

    The checks are parse_policies' own, in the file's order: with several mistakes in a file, the first one met is
    reported (parse_policies checks the top-level keys before any service)."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._keys: set[str] = set()
        self._services: list[ServicePolicy] = []
        self._owners: dict[tuple[str, str, str], str] = {}
        self._global_freeze: tuple[FreezeWindow, ...] = ()
        self._share = _Share()

    def key(self, key: object) -> None:
        """A top-level key, before its value."""
        with self._errors():
            known(key, "", (*_TOP_KEYS, *_TOP_OPTIONAL))
            self._keys.add(str(key))

    def freeze(self, value: object) -> None:
        """The value of the top-level `freeze`: windows of every service."""
        with self._errors():
            self._global_freeze = self._share(_freeze(value, "freeze"))
            # A file may give `freeze` after `services`: the services met before it hold its windows too.
            self._services = [replace(s, freeze=self._share(self._global_freeze + s.freeze)) for s in self._services]

    def services(self, value: object) -> None:
        """The value of the top-level `services`, whole (`service` takes them one at a time)."""
        with self._errors():
            if not isinstance(value, dict) or not value:
                raise FieldError("services", "must map at least one service name to its policy")
        for name, service in value.items():
            self.service(name, service)

    def service(self, name: object, value: object) -> None:
        """One entry of `services`."""
        field = f"services.{name}"
        with self._errors():
            service = _service(name, value, field, self._global_freeze, self._share)
            for index, environment in enumerate(service.environments):
                target = environment.target
                key = (target.context or "", target.namespace, target.deployment)
                where = f"{field}.environments[{index}].kubernetes" if service.promotion else f"{field}.kubernetes"
                if key in self._owners:
                    raise FieldError(
                        where, f"deploys {key[1]}/{key[2]}, which service {self._owners[key]} already deploys"
                    )
            for environment in service.environments:
                target = environment.target
                self._owners[(target.context or "", target.namespace, target.deployment)] = service.name
        self._services.append(service)

    def build(self) -> Policies:
        with self._errors():
            if "services" not in self._keys:
                raise FieldError("services", "is required")
            if not self._services:
                raise FieldError("services", "must map at least one service name to its policy")
        return Policies(tuple(self._services))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except FieldError as e:
            raise PolicyError(self._where, e.field, e.problem) from None


def parse_policies(doc: Any, where: str) -> Policies:
    """The policies in a parsed document (None for an empty file); `where` (the file, usually) starts every error
    message."""
    builder = PolicyBuilder(where)
    try:
        if doc is None:
            raise FieldError("services", "is required (the file is empty)")
        top = mapping(doc, "", _TOP_KEYS, _TOP_OPTIONAL)
    except FieldError as e:
        raise PolicyError(where, e.field, e.problem) from None
    builder.key("services")
    if "freeze" in top:
        builder.freeze(top["freeze"])
    builder.services(top["services"])
    return builder.build()
