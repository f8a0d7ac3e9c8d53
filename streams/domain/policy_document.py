"""The deploy policies of `autodeploy.yaml`, checked before anything is deployed by them.

This is given the document as parsed (mappings, lists, strings; streams.adapters.policy_file reads and parses the
file) and turns it into Policies, or says what is wrong. It is strict on purpose. A typo in a key, a check kind or a
Kubernetes name would otherwise not fail but quietly deploy something else, or nothing: unknown keys and malformed
names are errors (a key given twice too, which the file's reader refuses), and every error names the field
(`services.shop.required_checks[0]`) so it can be fixed without reading this code.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final, TypeVar

from streams.domain.facts import CheckId, CheckKind
from streams.domain.freeze import FreezeWindow
from streams.domain.policy import KubernetesTarget, Policies, ServicePolicy, normalise_repository
from streams.domain.policy_freeze import FreezeFieldError, parse_freeze

__all__ = ["PolicyBuilder", "PolicyError", "parse_duration", "parse_policies"]


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; `field` is the dotted path of the offending value."""

    def __init__(self, where: str, field: str, problem: str) -> None:
        self.where, self.field, self.problem = where, field, problem
        super().__init__(": ".join(part for part in (where, field, problem) if part))


class _Invalid(Exception):
    """A field is wrong; `parse_policies` adds where the document came from."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field, self.problem = field, problem


DEFAULT_ENVIRONMENT: Final = "production"
DEFAULT_READINESS_TTL: Final = timedelta(hours=24)

# Service names are Kafka keys of deploy.readiness / deploy.events and Kubernetes label values (63 at most).
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DNS_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123, as Kubernetes checks names
_DURATION: Final = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNITS: Final[Mapping[str, str]] = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
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
_SERVICE_KEYS: Final = ("repository", "branch", "required_checks", "kubernetes")
_SERVICE_OPTIONAL: Final = (
    "image",
    "image_from_package",
    "environment",
    "readiness_ttl",
    "freeze",
    "max_failed_rollouts",
)
DEFAULT_MAX_FAILED_ROLLOUTS: Final = 3
_KUBERNETES_KEYS: Final = ("namespace", "deployment", "container")
_TOP_KEYS: Final = ("services",)
_TOP_OPTIONAL: Final = ("freeze",)
_T = TypeVar("_T")


def parse_duration(text: object) -> timedelta:
    """`90s`, `15m`, `2h` or `1d` as a timedelta; one number and one unit, greater than zero."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"must be a duration such as 90s, 15m, 2h or 1d, got {text!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _mapping(value: object, field: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(field, f"must be a mapping with {', '.join(required)}")
    allowed = (*required, *optional)
    for key in value:
        _known(key, field, allowed)
    for key in required:
        if key not in value:
            raise _Invalid(_join(field, key), "is required")
    return value


def _known(key: object, field: str, allowed: tuple[str, ...]) -> None:
    if key not in allowed:
        near = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean {near[0]}?" if near else f"allowed: {', '.join(allowed)}"
        raise _Invalid(_join(field, key), f"unknown key ({hint})")


def _join(field: str, key: object) -> str:
    return f"{field}.{key}" if field else str(key)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise _Invalid(field, f"must be a non-empty string without surrounding spaces, got {value!r}")
    return value


def _matching(value: object, field: str, pattern: re.Pattern[str], what: str) -> str:
    text = _text(value, field)
    if not pattern.fullmatch(text):
        raise _Invalid(field, f"must be {what}, got {text!r}")
    return text


def _checks(value: object, field: str) -> tuple[CheckId, ...]:
    # An empty list would deploy every push unchecked: that must be a decision made in code review, not in YAML.
    if not isinstance(value, list) or not value:
        raise _Invalid(field, f"must be a non-empty list of checks such as {{circleci: build-test}}, got {value!r}")
    checks: list[CheckId] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise _Invalid(where, f"must be one kind and its name, such as {{circleci: build-test}}, got {item!r}")
        [(kind, name)] = item.items()
        if kind not in {k.value for k in CheckKind}:
            raise _Invalid(f"{where}.{kind}", f"must be one of {_CHECK_KINDS}")
        check = CheckId(CheckKind(kind), _text(name, f"{where}.{kind}"))
        if check in checks:
            raise _Invalid(where, f"repeats {kind} {name!r}")
        checks.append(check)
    return tuple(checks)


def _image_template(value: object, field: str) -> str:
    template = _text(value, field)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise _Invalid(field, f"is not a valid template ({e}); write literal braces as {{{{ }}}}") from e
    used = {name for _, name, _, _ in parts if name is not None}
    if used - _TEMPLATE_FIELDS or any(spec or conversion for _, _, spec, conversion in parts):
        raise _Invalid(field, "may use only {sha} and {short_sha}, without conversions or format specs")
    # Without the commit in it every commit would deploy one moving tag, and nothing says which code runs.
    if not used:
        raise _Invalid(field, "must contain {sha} or {short_sha}")
    example = template.format(sha=_EXAMPLE_SHA, short_sha=_EXAMPLE_SHA[:7])
    if not _IMAGE.fullmatch(example):
        raise _Invalid(field, f"must give an image such as ghcr.io/acme/shop:{{sha}} (registry first), got {example!r}")
    return template


def _freeze(value: object, field: str) -> tuple[FreezeWindow, ...]:
    try:
        return parse_freeze(value, field)
    except FreezeFieldError as e:
        raise _Invalid(e.field, e.problem) from e


def _max_failed_rollouts(doc: Mapping[str, Any], field: str) -> int:
    value = doc.get("max_failed_rollouts", DEFAULT_MAX_FAILED_ROLLOUTS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise _Invalid(f"{field}.max_failed_rollouts", f"must be a whole number from 1 to 100, got {value!r}")
    return value


def _service(
    name: object, value: object, field: str, global_freeze: tuple[FreezeWindow, ...], share: _Share
) -> ServicePolicy:
    if not isinstance(name, str) or not _SLUG.fullmatch(name):
        raise _Invalid(field, "service names must match [a-z0-9][a-z0-9-]* (at most 63 characters)")
    doc = _mapping(value, field, _SERVICE_KEYS, _SERVICE_OPTIONAL)
    repository = normalise_repository(doc["repository"])
    if repository is None:
        raise _Invalid(f"{field}.repository", "must be github.com/<owner>/<name>, <owner>/<name> or its https URL")
    branch = _matching(doc["branch"], f"{field}.branch", _BRANCH, "a branch name such as main")
    if branch.startswith("refs/"):
        raise _Invalid(f"{field}.branch", "must be the branch name alone, without refs/heads/")
    if ("image" in doc) == ("image_from_package" in doc):
        raise _Invalid(f"{field}.image", "exactly one of image and image_from_package is required")
    checks = _checks(doc["required_checks"], f"{field}.required_checks")
    template = _image_template(doc["image"], f"{field}.image") if "image" in doc else None
    package = None
    if "image_from_package" in doc:
        # Registries store repository paths lowercase, and published-package facts are spelled so.
        package = _text(doc["image_from_package"], f"{field}.image_from_package").lower()
        if not _IMAGE_NAME.fullmatch(package):
            raise _Invalid(f"{field}.image_from_package", "must be an image name without tag, e.g. ghcr.io/acme/shop")
    k8s = _mapping(doc["kubernetes"], f"{field}.kubernetes", _KUBERNETES_KEYS)
    label = "a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    names = (share(_matching(k8s[key], f"{field}.kubernetes.{key}", _DNS_LABEL, label)) for key in _KUBERNETES_KEYS)
    target = KubernetesTarget(*names)
    environment = DEFAULT_ENVIRONMENT
    if "environment" in doc:
        environment = _matching(doc["environment"], f"{field}.environment", _SLUG, "a name such as production")
    ttl = DEFAULT_READINESS_TTL
    if "readiness_ttl" in doc:
        try:
            ttl = parse_duration(doc["readiness_ttl"])
        except ValueError as e:
            raise _Invalid(f"{field}.readiness_ttl", str(e)) from e
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
    )


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
        self._owners: dict[tuple[str, str], str] = {}
        self._global_freeze: tuple[FreezeWindow, ...] = ()
        self._share = _Share()

    def key(self, key: object) -> None:
        """A top-level key, before its value."""
        with self._errors():
            _known(key, "", (*_TOP_KEYS, *_TOP_OPTIONAL))
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
                raise _Invalid("services", "must map at least one service name to its policy")
        for name, service in value.items():
            self.service(name, service)

    def service(self, name: object, value: object) -> None:
        """One entry of `services`."""
        field = f"services.{name}"
        with self._errors():
            service = _service(name, value, field, self._global_freeze, self._share)
            key = (service.target.namespace, service.target.deployment)
            if key in self._owners:
                raise _Invalid(
                    f"{field}.kubernetes",
                    f"deploys {key[0]}/{key[1]}, which service {self._owners[key]} already deploys",
                )
            self._owners[key] = service.name
        self._services.append(service)

    def build(self) -> Policies:
        with self._errors():
            if "services" not in self._keys:
                raise _Invalid("services", "is required")
            if not self._services:
                raise _Invalid("services", "must map at least one service name to its policy")
        return Policies(tuple(self._services))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _Invalid as e:
            raise PolicyError(self._where, e.field, e.problem) from None


def parse_policies(doc: Any, where: str) -> Policies:
    """The policies in a parsed document (None for an empty file); `where` (the file, usually) starts every error
    message."""
    builder = PolicyBuilder(where)
    try:
        if doc is None:
            raise _Invalid("services", "is required (the file is empty)")
        top = _mapping(doc, "", _TOP_KEYS, _TOP_OPTIONAL)
    except _Invalid as e:
        raise PolicyError(where, e.field, e.problem) from None
    builder.key("services")
    if "freeze" in top:
        builder.freeze(top["freeze"])
    builder.services(top["services"])
    return builder.build()
