"""A commit's page, as data: where it stands per service and environment, and its chain in time order (webhooks and
gate facts as the log holds them, decisions, outcomes), each with what identifies it and who signed it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.board.entries import Entry, FactRef
from streams.board.pages import KIND_STATES, lacking
from streams.board.records import Fetched


@dataclass(frozen=True)
class Target:
    service: str
    environment: str
    kind: str  # the decision's kind, "" while none
    outcome: Entry | None
    why: str
    superseded_by: str = ""


@dataclass(frozen=True)
class Step:
    time: datetime
    word: str
    tone: str
    title: str
    details: tuple[tuple[str, str, str | None], ...]  # (label, value, link)


def target(  # noqa: PLR0917 - where (service, environment, index) and what is known of it there
    service: str, environment: str, index: int, decided: Entry | None, outcome: Entry | None, doc: dict[str, Any] | None
) -> Target:
    if decided is not None:
        if decided.kind == "superseded":
            return Target(service, environment, "superseded", outcome, "superseded", decided.superseded_by)
        if decided.kind == "expired":
            return Target(service, environment, "expired", outcome, "waited for " + ", ".join(decided.missing))
        why = decided.reason or (f"image {decided.image}" if decided.image else "")
        if outcome is not None and outcome.reason:
            why = f"{why}; {KIND_STATES.get(outcome.kind, (outcome.kind, ''))[0]}: {outcome.reason}"
        return Target(service, environment, decided.kind, outcome, why)
    if doc is None:
        return Target(service, environment, "", outcome, "no decision yet (the worker was not asked or did not answer)")
    missing = lacking(doc, index, environment)
    settled = "complete" if index == 0 else "gates open"
    return Target(service, environment, "", outcome, "missing " + ", ".join(missing) if missing else settled)


def fact_step(fact: FactRef, fetched: Fetched) -> Step:
    details: list[tuple[str, str, str | None]] = [("type", fact.type, None), ("delivery id", fact.event_id, None)]
    details.append(("source", fact.source, None))
    if fetched.link:
        details.append(("provider's page", fetched.link, fetched.link))
    if fact.position is not None:
        where = f"{fact.position.topic} partition {fact.position.partition} offset {fact.position.offset}"
        details.append(("in the log", where, None))
    details.append(_signature(fetched.signed_by, fetched.problem if fetched.event is None else ""))
    word, title = _fact_title(fact.type)
    return Step(fact.time, word, "none", title, tuple(details))


GATE_TITLES = {
    "dev.cdevents.service.deployed": "rollout completed (first)",
    "dev.cdevents.service.upgraded": "rollout completed",
    "dev.cdevents.service.rolledback": "rolled back",
    "dev.cdevents.testsuiterun.finished": "verification finished",
    "dev.cdeventsx.autodeploy-approval.granted": "approved",
}


def _fact_title(type_: str) -> tuple[str, str]:
    """The kind of fact (webhook, gate, event) and what it says."""
    if type_.startswith("com.github."):
        return "webhook", "GitHub " + type_.removeprefix("com.github.").replace(".", " ")
    if type_.startswith("com.circleci."):
        return "webhook", "CircleCI " + type_.removeprefix("com.circleci.").replace("-", " ")
    gate = next((title for prefix, title in GATE_TITLES.items() if type_.startswith(prefix + ".")), None)
    if gate is not None:
        return "gate", gate
    return "event", type_


def _signature(signed_by: str | None, problem: str) -> tuple[str, str, str | None]:
    if problem:
        return ("signature", f"not shown: {problem}", None)
    if signed_by is None:
        return ("signature", "unsigned, accepted by the key directory's rules", None)
    return ("signature", f"verified: key {signed_by}", None)


def entry_step(entry: Entry) -> Step:
    word, tone = KIND_STATES.get(entry.kind, (entry.kind, "none"))
    where = f"{entry.service} / {entry.environment}" if entry.environment else entry.service
    details: list[tuple[str, str, str | None]] = [("event id", entry.event_id, None)]
    if entry.stream == "decision":
        title = f"decision for {where}"
        details.append(("chain id", entry.chain_id, None))
    else:
        title = f"rollout in {where}"
        details.append(("after decision", entry.triggered_by, None))
    if entry.image:
        details.append(("image", entry.image, None))
    if entry.superseded_by:
        details.append(("superseded by", entry.superseded_by, None))
    if entry.missing:
        details.append(("waited for", ", ".join(entry.missing), None))
    if entry.reason:
        details.append(("reason", entry.reason, None))
    if entry.facts:
        details.append(("from facts", str(len(entry.facts)), None))
    details.append(_signature(entry.signed_by, ""))
    return Step(entry.time, word, tone, title, tuple(details))
