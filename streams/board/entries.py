"""What the board shows, read from the events it consumes: decisions (deploy.readiness), outcomes (deploy.events) and
pushes (github.events). Parsing only: the event's JSON as the contract (topics/) gives it, nothing of the processes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Stream = Literal["decision", "outcome"]
RUNNING_KINDS = frozenset({"deployed", "upgraded", "rolledback"})  # outcomes after which a known image runs


class NotForTheBoard(ValueError):
    """An event the board has nothing to show for (another type, or one without the fields it reads)."""


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class FactRef:
    """A fact a decision names: which event, and where in the log it is."""

    type: str
    event_id: str
    source: str
    time: datetime
    position: Position | None


@dataclass(frozen=True)
class Entry:
    """One decision or outcome."""

    stream: Stream
    kind: str  # decision: ready|superseded|expired|rejected; outcome: deployed|upgraded|rolledback|failed|...
    service: str
    environment: str
    repository: str
    commit: str
    event_id: str
    chain_id: str
    time: datetime
    image: str = ""  # decision: the image to run; outcome: the image running (a rollback's: the restored one)
    reason: str = ""
    superseded_by: str = ""
    missing: tuple[str, ...] = ()
    facts: tuple[FactRef, ...] = ()
    triggered_by: str = ""  # an outcome's decision
    signed_by: str | None = None  # the verified key id; None: accepted unsigned
    position: Position | None = None

    @property
    def target(self) -> tuple[str, str]:
        return self.service, self.environment


@dataclass(frozen=True)
class Push:
    repository: str  # github.com/<owner>/<name>
    branch: str
    commit: str
    time: datetime  # when autodeploy received it (the record's log time): what the readiness TTL counts from
    delivery_id: str


def _time(text: object) -> datetime:
    if not isinstance(text, str) or not text:
        return datetime.fromtimestamp(0, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _kind(event: dict[str, Any], prefixes: tuple[str, ...]) -> str:
    type_ = str(event.get("type", ""))
    if not type_.startswith(prefixes):
        raise NotForTheBoard(f"type {type_!r}")
    return type_.split(".")[3]


def fact(raw: dict[str, Any]) -> FactRef:
    """A fact as a decision lists it (`kind`, `event_id`) or as the worker's explanation does (`type`, `id`)."""
    position = None
    if raw.get("topic") and raw.get("partition") is not None and raw.get("offset") is not None:
        position = Position(str(raw["topic"]), int(raw["partition"]), int(raw["offset"]))
    return FactRef(
        str(raw.get("kind") or raw.get("type") or ""),
        str(raw.get("event_id") or raw.get("id") or ""),
        str(raw.get("source", "")),
        _time(raw.get("time")),
        position,
    )


def decision(event: dict[str, Any], signed_by: str | None, position: Position | None) -> Entry:
    """A readiness decision (`dev.cdeventsx.autodeploy-readiness.<kind>`)."""
    kind = _kind(event, ("dev.cdeventsx.autodeploy-readiness.",))
    data = event.get("data") or {}
    content = (data.get("subject") or {}).get("content") or {}
    context = data.get("context") or {}
    if not content.get("service") or not content.get("commit"):
        raise NotForTheBoard("a decision without service or commit")
    return Entry(
        "decision",
        kind,
        str(content["service"]),
        str(content.get("environment") or ""),
        str(content.get("repository") or ""),
        str(content["commit"]),
        str(event.get("id", "")),
        str(context.get("chainId") or ""),
        _time(event.get("time")),
        image=str(content.get("image") or ""),
        reason=str(content.get("reason") or ""),
        superseded_by=str(content.get("superseded_by") or ""),
        missing=tuple(str(m) for m in content.get("missing") or ()),
        facts=tuple(fact(f) for f in content.get("facts") or () if isinstance(f, dict)),
        signed_by=signed_by,
        position=position,
    )


def outcome(event: dict[str, Any], signed_by: str | None, position: Position | None) -> Entry:
    """A rollout outcome: a CDEvents service event (details in customData) or an autodeploy-deployment one."""
    kind = _kind(event, ("dev.cdevents.service.", "dev.cdeventsx.autodeploy-deployment."))
    data = event.get("data") or {}
    details = data.get("customData") or (data.get("subject") or {}).get("content") or {}
    context = data.get("context") or {}
    if not details.get("service"):
        raise NotForTheBoard("an outcome without a service")
    links = context.get("links") or []
    trigger = next(
        (str(link["target"]["contextId"]) for link in links if isinstance(link, dict) and "target" in link), ""
    )
    return Entry(
        "outcome",
        kind,
        str(details["service"]),
        str(details.get("environment") or ""),
        str(details.get("repository") or ""),
        str(details.get("commit") or ""),
        str(event.get("id", "")),
        str(context.get("chainId") or ""),
        _time(event.get("time")),
        image=str(details.get("image") or ""),
        reason=str(details.get("reason") or ""),
        triggered_by=str(details.get("readinessEvent") or trigger),
        signed_by=signed_by,
        position=position,
    )


def push(event: dict[str, Any], received: datetime) -> Push:
    """A GitHub push to a branch (`com.github.push`); its data is GitHub's payload as delivered."""
    if event.get("type") != "com.github.push":
        raise NotForTheBoard(f"type {event.get('type')!r}")
    data = event.get("data") or {}
    ref, after = str(data.get("ref", "")), str(data.get("after", ""))
    repository = (data.get("repository") or {}).get("full_name")
    if not ref.startswith("refs/heads/") or not repository or not after.strip("0"):
        raise NotForTheBoard("not a push of a branch head")
    return Push(
        f"github.com/{str(repository).lower()}",
        ref.removeprefix("refs/heads/"),
        after,
        received,
        str(event.get("id", "")),
    )
