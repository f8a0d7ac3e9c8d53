"""What promotion remembers per service of a repository, and its JSON form. Pure data, no I/O.

Small by construction: only commits decided ready by the readiness rules become candidates, at most MAX_CANDIDATES per
service, and gate facts are a handful per commit and environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from streams.domain.event_ref_json import ref_from_json, ref_to_json
from streams.domain.facts import EventRef

__all__ = [
    "CommitGates",
    "PromotionKind",
    "ServicePromotion",
    "Verdict",
    "promotions_from_json",
    "promotions_to_json",
]

PromotionKind = Literal["ready", "superseded", "rejected"]


@dataclass(frozen=True)
class Verdict:
    kind: PromotionKind
    decided_at: datetime
    superseded_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CommitGates:
    """What is known of one commit of the service. `rank` is None until the readiness rules decided it ready (an
    approval may come first); the maps are per environment, the first fact of each kind counting."""

    rank: int | None = None
    image: str | None = None
    ready_facts: tuple[EventRef, ...] = ()
    completed: Mapping[str, EventRef] = field(default_factory=dict)
    verified: Mapping[str, EventRef] = field(default_factory=dict)
    rolled_back: Mapping[str, tuple[str, EventRef]] = field(default_factory=dict)
    approved: Mapping[str, tuple[str, EventRef]] = field(default_factory=dict)
    verdicts: Mapping[str, Verdict] = field(default_factory=dict)
    seen: int = 0  # first-seen order: the pruning order of commits never ranked


@dataclass(frozen=True)
class ServicePromotion:
    service: str
    repository: str
    commits: Mapping[str, CommitGates] = field(default_factory=dict)
    next_rank: int = 0
    next_seen: int = 0


def _verdict_json(v: Verdict) -> list[Any]:
    return [v.kind, v.decided_at.isoformat(), v.superseded_by, v.reason]


def _gates_json(g: CommitGates) -> dict[str, Any]:
    return {
        "rank": g.rank,
        "image": g.image,
        "seen": g.seen,
        "ready": [ref_to_json(r) for r in g.ready_facts],
        "completed": {e: ref_to_json(r) for e, r in g.completed.items()},
        "verified": {e: ref_to_json(r) for e, r in g.verified.items()},
        "rolled_back": {e: [why, ref_to_json(r)] for e, (why, r) in g.rolled_back.items()},
        "approved": {e: [who, ref_to_json(r)] for e, (who, r) in g.approved.items()},
        "verdicts": {e: _verdict_json(v) for e, v in g.verdicts.items()},
    }


def _gates(doc: dict[str, Any]) -> CommitGates:
    return CommitGates(
        rank=doc["rank"],
        image=doc["image"],
        ready_facts=tuple(ref_from_json(r) for r in doc["ready"]),
        completed={e: ref_from_json(r) for e, r in doc["completed"].items()},
        verified={e: ref_from_json(r) for e, r in doc["verified"].items()},
        rolled_back={e: (why, ref_from_json(r)) for e, (why, r) in doc["rolled_back"].items()},
        approved={e: (who, ref_from_json(r)) for e, (who, r) in doc["approved"].items()},
        verdicts={e: Verdict(v[0], datetime.fromisoformat(v[1]), v[2], v[3]) for e, v in doc["verdicts"].items()},
        seen=doc["seen"],
    )


def promotions_to_json(promotions: Mapping[str, ServicePromotion]) -> dict[str, Any]:
    return {
        service: {
            "repository": p.repository,
            "next_rank": p.next_rank,
            "next_seen": p.next_seen,
            "commits": {c: _gates_json(g) for c, g in p.commits.items()},
        }
        for service, p in promotions.items()
    }


def promotions_from_json(doc: Mapping[str, Any]) -> dict[str, ServicePromotion]:
    return {
        service: ServicePromotion(
            service,
            p["repository"],
            {c: _gates(g) for c, g in p["commits"].items()},
            p["next_rank"],
            p["next_seen"],
        )
        for service, p in doc.items()
    }
