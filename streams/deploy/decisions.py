"""What the deploy agent does about one ready decision, given what the Deployment shows. Pure: no Kafka, no Kubernetes.

The Deployment's own `autodeploy.dev/*` annotations are the agent's only state, so a restarted agent (or a redelivered
readiness event) re-derives where it was from the cluster instead of from a store that could disagree with it:

* `readiness-event` is the decision id of the last rollout autodeploy started: equal to this decision's id means the
  patch is done already (watch it, roll it back, or report it; never patch again);
* `image` is what autodeploy last set: a container image different from it means someone changed it by hand, and
  autodeploy stops rather than overwrite a hotfix;
* `previous-image` / `previous-commit` say what to roll back to and whether this was the first rollout (deployed) or
  not (upgraded); `rolled-back-from` marks a decision whose rollout failed and was undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

PREFIX: Final = "autodeploy.dev/"
COMMIT: Final = PREFIX + "commit"
READINESS_EVENT: Final = PREFIX + "readiness-event"
CHAIN_ID: Final = PREFIX + "chain-id"
IMAGE: Final = PREFIX + "image"
PREVIOUS_IMAGE: Final = PREFIX + "previous-image"
PREVIOUS_COMMIT: Final = PREFIX + "previous-commit"
ROLLED_BACK_FROM: Final = PREFIX + "rolled-back-from"

READY_TYPE: Final = "dev.cdeventsx.autodeploy-readiness.ready.0.1.0"

OutcomeKind = Literal["deployed", "upgraded", "rolledback", "failed", "blocked"]


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
        )
    except (KeyError, TypeError) as e:
        raise NotReady(f"ready decision without {e}") from e
    if not ready.image:
        raise NotReady("ready decision without an image")
    return ready


def manual_change(current: str, expected: str) -> str:
    return f"manual change detected: image {current} is not what autodeploy set ({expected})"


def decide(ready: Ready, seen: Observed) -> Action:
    """The next step for `ready` on a Deployment that looks like `seen`."""
    notes = seen.annotations
    if notes.get(READINESS_EVENT) == ready.event_id:
        return _ours(ready, seen)
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
        },
        first=not previous_commit,
    )


def _ours(ready: Ready, seen: Observed) -> Action:
    """This decision's patch was made already (by us, earlier, perhaps before a restart)."""
    notes = seen.annotations
    failed_image = notes.get(ROLLED_BACK_FROM)
    if failed_image is not None:
        return Report("rolledback", seen.image, f"rollout of {failed_image} failed; restored {seen.image}")
    if seen.image != ready.image:
        return Blocked(manual_change(seen.image, ready.image))
    if seen.rollout == "progressing":
        return Watch()
    if seen.rollout == "complete":
        return Report("deployed" if not notes.get(PREVIOUS_COMMIT) else "upgraded", seen.image)
    previous = notes.get(PREVIOUS_IMAGE)
    why = f"rollout of {ready.image} failed ({seen.progressing_reason or 'unknown reason'})"
    if not previous:
        return Blocked(f"{why} and there is no previous image to restore")
    return Rollback(previous, {IMAGE: previous, ROLLED_BACK_FROM: ready.image}, f"{why}; restored {previous}")


def after_conflict(ready: Ready, before: Observed, fresh: Observed) -> Action:
    """The compare-and-set lost: re-decide on the fresh read; an image changed meanwhile is someone else's to keep."""
    if fresh.annotations.get(READINESS_EVENT) != ready.event_id and fresh.image != before.image:
        return Blocked(manual_change(fresh.image, before.annotations.get(IMAGE, before.image)))
    return decide(ready, fresh)
