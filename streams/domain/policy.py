"""Deploy policies: per service, which repository and branch, which checks must pass, which image, where it runs
(one environment, or several a commit is promoted through: streams.domain.environments)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Final

# The URL parsing behind the Kafka keys; private there because webhook_mapping's public surface is envelopes.
from streams.domain.circleci_mapping import repository_key
from streams.domain.environments import EnvironmentPolicy, KubernetesTarget
from streams.domain.facts import CheckId
from streams.domain.freeze import FreezeWindow, Frozen, active

# GitHub owners have no dots, so `github.com/acme` is never mistaken for the shorthand `<owner>/<name>`.
__all__ = ["KubernetesTarget", "Policies", "ServicePolicy", "normalise_repository"]

_SHORTHAND: Final = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+")


# Slots: a policy file may hold 20,000 services, and a __dict__ per object was most of what each one cost
# (docs/performance.md).
@dataclass(frozen=True, slots=True)
class ServicePolicy:
    name: str  # the service, also the key of deploy.readiness and deploy.events
    repository: str  # github.com/<owner>/<name>, lowercase
    branch: str  # the deploy branch, e.g. "main"
    required_checks: tuple[CheckId, ...]
    # Exactly one of the two: a template such as "ghcr.io/acme/shop:{sha}" (also {short_sha}), or the image name
    # (without tag) whose published-package event for the commit must arrive.
    image_template: str | None
    image_from_package: str | None
    target: KubernetesTarget
    environment: str
    readiness_ttl: timedelta
    freeze: tuple[FreezeWindow, ...] = ()  # the service's own windows and the file's global ones
    max_failed_rollouts: int = 3  # consecutive failed (rolled back) rollouts that open the circuit breaker
    # Set when the file lists `environments`; `target` and `environment` are then the first one's.
    promotion: tuple[EnvironmentPolicy, ...] = ()

    @property
    def environments(self) -> tuple[EnvironmentPolicy, ...]:
        """Where the service's commits go, in order; one environment for a policy without `environments`."""
        return self.promotion or (EnvironmentPolicy(self.environment, self.target),)

    def environment_named(self, name: str) -> EnvironmentPolicy | None:
        return next((e for e in self.environments if e.name == name), None)

    def frozen(self, now: datetime) -> Frozen | None:
        """The freeze window holding deploys of this service at `now`, if any."""
        return active(self.freeze, now)

    def image_for(self, commit: str) -> str | None:
        """The image of `commit` when the template decides it; None when a published-package event must."""
        if self.image_template is None:
            return None
        return self.image_template.format(sha=commit, short_sha=commit[:7])


@dataclass(frozen=True)
class Policies:
    services: tuple[ServicePolicy, ...]

    def for_repository(self, repository: str) -> tuple[ServicePolicy, ...]:
        return self._by_repository.get(repository, ())

    def service(self, name: str) -> ServicePolicy:
        found = self._by_name.get(name)
        if found is None:
            raise KeyError(f"no service {name!r} in the policy file")
        return found

    # Asked for every fact: an index rather than a scan of every service.
    @cached_property
    def _by_repository(self) -> dict[str, tuple[ServicePolicy, ...]]:
        index: dict[str, list[ServicePolicy]] = {}
        for service in self.services:
            index.setdefault(service.repository, []).append(service)
        return {repository: tuple(services) for repository, services in index.items()}

    @cached_property
    def _by_name(self) -> dict[str, ServicePolicy]:
        return {s.name: s for s in reversed(self.services)}  # reversed: the first of a (rejected) duplicate wins


def normalise_repository(value: object) -> str | None:
    """A repository as the Kafka key spells it (`github.com/<owner>/<name>`, lowercase), or None when it is none.

    Accepts the key itself, a bare `<owner>/<name>` (GitHub is meant), and the URL forms a CI system reports
    (`https://github.com/Owner/Name.git`, `git@github.com:owner/name.git`). The URL parsing is webhook_mapping's, so
    a policy, a CDEvent's customData.repository and a webhook's partition key agree on one spelling.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _SHORTHAND.fullmatch(text):
        text = f"github.com/{text}"
    return repository_key(text)
