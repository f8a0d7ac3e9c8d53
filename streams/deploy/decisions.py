"""What the deploy agent does about one ready decision, given what the Deployment shows. Pure: no Kafka, no Kubernetes.

The Deployment's own `autodeploy.dev/*` annotations are the agent's only state, so a restarted agent (or a redelivered
readiness event) re-derives where it was from the cluster instead of from a store that could disagree with it:

* `readiness-event` is the decision id of the last rollout autodeploy started: equal to this decision's id means the
  patch is done already (watch it, roll it back, or report it; never patch again);
* `image` is what autodeploy last set: a container image different from it means someone changed it by hand, and
  autodeploy stops rather than overwrite a hotfix;
* `previous-image` / `previous-commit` say what to roll back to and whether this was the first rollout (deployed) or
  not (upgraded); `rolled-back-from` marks a decision whose rollout failed and was undone;
* `failed-rollouts` counts consecutive rolled-back rollouts (a completed one resets it) and `circuit-open` names the
  decision whose failure opened the circuit breaker: no deploys of the service until `autodeploy unblock` removes it;
* `waiting` holds a ready decision kept back by a freeze window (see waiting.py), deployed when the window ends.

Before any of that, `against_policy` holds the decision against the agent's own copy of the policy file: a signature
says who decided, not that what they decided is allowed (defense in depth, docs/security.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, Protocol

from streams.domain.policy import ServicePolicy

PREFIX: Final = "autodeploy.dev/"
COMMIT: Final = PREFIX + "commit"
READINESS_EVENT: Final = PREFIX + "readiness-event"
CHAIN_ID: Final = PREFIX + "chain-id"
IMAGE: Final = PREFIX + "image"
PREVIOUS_IMAGE: Final = PREFIX + "previous-image"
PREVIOUS_COMMIT: Final = PREFIX + "previous-commit"
ROLLED_BACK_FROM: Final = PREFIX + "rolled-back-from"
ROLLBACK_REASON: Final = PREFIX + "rollback-reason"
FAILED_ROLLOUTS: Final = PREFIX + "failed-rollouts"
CIRCUIT_OPEN: Final = PREFIX + "circuit-open"
WAITING: Final = PREFIX + "waiting"

READY_TYPE: Final = "dev.cdeventsx.autodeploy-readiness.ready.0.1.0"

OutcomeKind = Literal["deployed", "upgraded", "rolledback", "failed", "blocked", "skipped"]


class NotReady(ValueError):
    """The readiness event cannot be acted on (wrong type, missing image); the message says why."""


@dataclass(frozen=True)
class Ready:
    """The parts of a `ready` readiness event the agent acts on."""

    event_id: str  # the decision id: a redelivery carries the same one
    chain_id: str
    service: str
    repository: str
    commit: str
    branch: str
    image: str
    environment: str = ""  # "" in decisions written before environments: the service's first


class Observed(Protocol):
    """What the agent reads of a Deployment (`DeploymentView` fits; declared here to keep this module pure)."""

    @property
    def image(self) -> str: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...
    @property
    def rollout(self) -> str: ...  # "complete", "progressing" or "failed"
    @property
    def progressing_reason(self) -> str | None: ...


@dataclass(frozen=True)
class Nothing:
    reason: str  # e.g. already at the image


@dataclass(frozen=True)
class Patch:
    annotations: Mapping[str, str | None]  # None removes the annotation
    first: bool  # no autodeploy rollout before: the outcome is `deployed`, else `upgraded`

    @property
    def completed(self) -> OutcomeKind:
        return "deployed" if self.first else "upgraded"


@dataclass(frozen=True)
class Watch:
    """Our patch is in; the controller is still rolling it out."""


@dataclass(frozen=True)
class Rollback:
    previous_image: str
    annotations: Mapping[str, str]
    reason: str


@dataclass(frozen=True)
class Report:
    """Nothing left to change: publish `kind` (again, with the same deterministic id, if this is a redelivery)."""

    kind: OutcomeKind
    artifact: str  # the image now running
    reason: str | None = None
    annotations: Mapping[str, str | None] | None = None  # bookkeeping to write first (metadata only)
    circuit_opened: bool = False  # this decision's failure opened the circuit breaker: say so too


@dataclass(frozen=True)
class Blocked:
    reason: str


Action = Nothing | Patch | Watch | Rollback | Report | Blocked


def parse_ready(event_id: str, event_type: str, data: Any) -> Ready:
    """The ready decision in a readiness event's CDEvent (already checked against the catalog schema)."""
    if event_type != READY_TYPE:
        raise NotReady(f"event type {event_type} is not a ready decision")
    try:
        content = data["subject"]["content"]
        chain_id = str(data["context"]["chainId"])
        ready = Ready(
            event_id=event_id,
            chain_id=chain_id,
            service=str(content["service"]),
            repository=str(content["repository"]),
            commit=str(content["commit"]),
            branch=str(content.get("branch", "")),
            image=str(content.get("image") or ""),
            environment=str(content.get("environment") or ""),
        )
    except (KeyError, TypeError) as e:
        raise NotReady(f"ready decision without {e}") from e
    if not ready.image:
        raise NotReady("ready decision without an image")
    return ready


def in_environment(ready: Ready, policy: ServicePolicy) -> ServicePolicy:
    """The policy as the agent acts on it for `ready`: the target and name of the decision's environment, which the
    policy (not the decision) maps to a Deployment."""
    if not ready.environment or ready.environment == policy.environment:
        return policy
    environment = policy.environment_named(ready.environment)
    if environment is None:
        raise NotReady(f"environment {ready.environment!r} is not one of service {policy.name}'s")
    return replace(policy, target=environment.target, environment=environment.name)


def against_policy(ready: Ready, policy: ServicePolicy) -> str | None:
    """Why `ready` is not a decision the agent's own policy for its service allows (None: it is), whoever signed it.

    The target needs no check: namespace, Deployment and container come from `policy`, never from the decision.
    """
    if ready.repository != policy.repository:
        return f"repository {ready.repository} is not the service's repository {policy.repository}"
    if ready.branch and ready.branch != policy.branch:
        return f"branch {ready.branch} is not the service's deploy branch {policy.branch}"
    expected = policy.image_for(ready.commit)
    if expected is not None:
        if ready.image != expected:
            return f"image {ready.image} is not the service's image for commit {ready.commit} ({expected})"
        return None
    package = policy.image_from_package
    if package is not None and image_name(ready.image) != package:
        return f"image {ready.image} is not from the service's image repository {package}"
    return None


def image_name(image: str) -> str:
    """An image reference without its tag or digest: `ghcr.io/acme/shop:1@sha256:...` -> `ghcr.io/acme/shop`."""
    name = image.split("@", 1)[0]
    colon = name.rfind(":")
    return name[:colon] if colon > name.rfind("/") else name  # "host:5000/app" has a port, not a tag


def manual_change(current: str, expected: str) -> str:
    return f"manual change detected: image {current} is not what autodeploy set ({expected})"


def failed_rollouts(notes: Mapping[str, str]) -> int:
    try:
        return max(0, int(notes.get(FAILED_ROLLOUTS, "0")))
    except ValueError:
        return 0  # hand-edited nonsense: count afresh rather than never open or never close


def circuit_open_reason(service: str, failures: int) -> str:
    return f"circuit open after {failures} consecutive failed rollouts; `autodeploy unblock {service}` clears it"


def decide(ready: Ready, seen: Observed, max_failed_rollouts: int = 3) -> Action:
    """The next step for `ready` on a Deployment that looks like `seen`."""
    notes = seen.annotations
    if notes.get(READINESS_EVENT) == ready.event_id:
        return _ours(ready, seen, max_failed_rollouts)
    if CIRCUIT_OPEN in notes:
        return Blocked(circuit_open_reason(ready.service, failed_rollouts(notes)))
    last_set = notes.get(IMAGE)
    if last_set is not None and seen.image != last_set:
        return Blocked(manual_change(seen.image, last_set))
    if seen.image == ready.image:
        return Nothing(f"already at {ready.image}")
    previous_commit = notes.get(COMMIT, "")
    return Patch(
        {
            COMMIT: ready.commit,
            READINESS_EVENT: ready.event_id,
            CHAIN_ID: ready.chain_id,
            IMAGE: ready.image,
            PREVIOUS_IMAGE: seen.image,
            PREVIOUS_COMMIT: previous_commit,
            # A rollback mark belongs to the decision that failed; left in place, a later decision would read it as
            # its own and report a rollback after a good rollout.
            ROLLED_BACK_FROM: None,
            ROLLBACK_REASON: None,
            WAITING: None,  # a decision held back by a freeze is this one or older: either way it waits no more
        },
        first=not previous_commit,
    )


def _ours(ready: Ready, seen: Observed, max_failed_rollouts: int) -> Action:
    """This decision's patch was made already (by us, earlier, perhaps before a restart)."""
    notes = seen.annotations
    failed_image = notes.get(ROLLED_BACK_FROM)
    if failed_image is not None:
        if seen.image == notes.get(IMAGE) and seen.rollout == "progressing":
            return Watch()  # the restored image is rolling out: report once it is available again
        restored = "restored" if seen.rollout == "complete" else f"restoring (rollout {seen.rollout})"
        why = notes.get(ROLLBACK_REASON) or f"rollout of {failed_image} failed"
        return Report(
            "rolledback",
            seen.image,
            f"{why}; {restored} {seen.image}",
            circuit_opened=notes.get(CIRCUIT_OPEN) == ready.event_id,
        )
    if seen.image != ready.image:
        return Blocked(manual_change(seen.image, ready.image))
    if seen.rollout == "progressing":
        return Watch()
    if seen.rollout == "complete":
        reset = {FAILED_ROLLOUTS: None} if FAILED_ROLLOUTS in notes else None
        return Report("deployed" if not notes.get(PREVIOUS_COMMIT) else "upgraded", seen.image, annotations=reset)
    why = f"rollout of {ready.image} failed ({seen.progressing_reason or 'unknown reason'})"
    return _failed(ready, seen, max_failed_rollouts, why)


def timed_out(ready: Ready, seen: Observed, timeout_s: float, max_failed_rollouts: int = 3) -> Action:
    """The agent's rollout bound (AUTODEPLOY_ROLLOUT_TIMEOUT_S) passed with `seen` still progressing: a failure like
    ProgressDeadlineExceeded (as `helm upgrade --atomic --timeout`), rolled back and counted for the circuit breaker.
    A restore that does not settle is reported, since there is nothing older to go back to."""
    notes = seen.annotations
    if seen.rollout != "progressing" or notes.get(READINESS_EVENT) != ready.event_id:
        return decide(ready, seen, max_failed_rollouts)  # it settled meanwhile, or it is no longer ours
    if ROLLED_BACK_FROM in notes:
        why = f"the restored rollout of {seen.image} did not complete within {timeout_s:g} s"
        return Report("failed", seen.image, why, circuit_opened=notes.get(CIRCUIT_OPEN) == ready.event_id)
    if seen.image != ready.image:
        return Blocked(manual_change(seen.image, ready.image))
    why = f"rollout of {ready.image} did not complete within {timeout_s:g} s"
    return _failed(ready, seen, max_failed_rollouts, why)


def _failed(ready: Ready, seen: Observed, max_failed_rollouts: int, why: str) -> Action:
    """Our rollout failed: restore the previous image, counting the failure for the circuit breaker."""
    notes = seen.annotations
    previous = notes.get(PREVIOUS_IMAGE)
    if not previous:
        return Blocked(f"{why} and there is no previous image to restore")
    failures = failed_rollouts(notes) + 1
    annotations = {
        IMAGE: previous,
        ROLLED_BACK_FROM: ready.image,
        ROLLBACK_REASON: why,
        FAILED_ROLLOUTS: str(failures),
    }
    if failures >= max_failed_rollouts:
        annotations[CIRCUIT_OPEN] = ready.event_id
    return Rollback(previous, annotations, f"{why}; restored {previous}")


def verification_failed(ready: Ready, seen: Observed, why: str, max_failed_rollouts: int = 3) -> Action:
    """A verify query of the environment failed after our rollout completed: rolled back and counted for the circuit
    breaker like a failed rollout. A Deployment no longer at our image is decided afresh (not ours to roll back)."""
    if seen.annotations.get(READINESS_EVENT) != ready.event_id or seen.image != ready.image:
        return decide(ready, seen, max_failed_rollouts)
    return _failed(ready, seen, max_failed_rollouts, why)


def after_conflict(ready: Ready, before: Observed, fresh: Observed, max_failed_rollouts: int = 3) -> Action:
    """The compare-and-set lost: re-decide on the fresh read; an image changed meanwhile is someone else's to keep."""
    if fresh.annotations.get(READINESS_EVENT) != ready.event_id and fresh.image != before.image:
        return Blocked(manual_change(fresh.image, before.annotations.get(IMAGE, before.image)))
    return decide(ready, fresh, max_failed_rollouts)
