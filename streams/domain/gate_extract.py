"""Gate facts from the events on deploy.gates: rollouts completed or rolled back, verifications, approvals.

Pure and total like streams.domain.extract (which dispatches here by type): an event that lacks what its type
promises gives no fact. The deploy agent names service, repository and commit in customData (CDEvents 0.5 has no
field for them) and the environment where CDEvents has one; an approval carries them in its content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from streams.domain.facts import Approved, EventRef, GateFact, RolledBack, RolloutCompleted, VerificationPassed
from streams.domain.policy import normalise_repository
from streams.domain.untrusted import commit_value, get

__all__ = ["APPROVAL_TYPE", "GATE_EXTRACTORS"]

APPROVAL_TYPE: Final = "dev.cdeventsx.autodeploy-approval.granted.0.1.0"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _where(data: Mapping[str, Any], base: str) -> tuple[str, str, str] | None:
    """(service, repository, commit) under `base` (customData, or an approval's content)."""
    service = _str(get(data, f"{base}.service"))
    repository = normalise_repository(get(data, f"{base}.repository"))
    commit = commit_value(get(data, f"{base}.commit"))
    if service is None or repository is None or commit is None:
        return None
    return service, repository, commit


def _completed(data: Mapping[str, Any], ref: EventRef, _key: str | None) -> list[GateFact]:
    where, environment = _where(data, "customData"), _str(get(data, "subject.content.environment.id"))
    if where is None or environment is None or get(data, "customData.dryRun") is True:
        return []
    service, repository, commit = where
    return [RolloutCompleted(repository, service, environment, commit, ref)]


def _rolled_back(data: Mapping[str, Any], ref: EventRef, _key: str | None) -> list[GateFact]:
    where, environment = _where(data, "customData"), _str(get(data, "subject.content.environment.id"))
    if where is None or environment is None or get(data, "customData.dryRun") is True:
        return []
    service, repository, commit = where
    reason = _str(get(data, "customData.reason")) or "rolled back"
    return [RolledBack(repository, service, environment, commit, reason, ref)]


def _verified(data: Mapping[str, Any], ref: EventRef, _key: str | None) -> list[GateFact]:
    """Only a success is a gate fact: a failure is followed by the rollback, which rejects the commit."""
    where, environment = _where(data, "customData"), _str(get(data, "subject.content.environment.id"))
    if where is None or environment is None or get(data, "subject.content.outcome") != "success":
        return []
    service, repository, commit = where
    return [VerificationPassed(repository, service, environment, commit, ref)]


def _approved(data: Mapping[str, Any], ref: EventRef, _key: str | None) -> list[GateFact]:
    where = _where(data, "subject.content")
    environment, approver = _str(get(data, "subject.content.environment")), _str(get(data, "subject.content.approver"))
    if where is None or environment is None or approver is None:
        return []
    service, repository, commit = where
    return [Approved(repository, service, environment, commit, approver, ref)]


GATE_EXTRACTORS: Final[Mapping[str, Callable[[Mapping[str, Any], EventRef, str | None], list[GateFact]]]] = {
    "dev.cdevents.service.deployed.0.3.0": _completed,
    "dev.cdevents.service.upgraded.0.3.0": _completed,
    "dev.cdevents.service.rolledback.0.3.0": _rolled_back,
    "dev.cdevents.testsuiterun.finished.0.3.0": _verified,
    APPROVAL_TYPE: _approved,
}
