"""Event refs in stored JSON: arrays [source, id, type, time, topic, partition, offset, received?] to stay small;
`received` is left out when unknown, so states written before it existed read as they were."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

from streams.domain.facts import EventRef

__all__ = ["ref_from_json", "ref_to_json"]


def ref_to_json(ref: EventRef) -> list[Any]:
    doc = [ref.source, ref.id, ref.type, ref.time.isoformat(), ref.topic, ref.partition, ref.offset]
    if ref.received is not None:
        doc.append(ref.received.isoformat())
    return doc


def ref_from_json(doc: list[Any]) -> EventRef:
    received = datetime.fromisoformat(doc[7]) if len(doc) > 7 else None
    # Sources, types and topics repeat in every commit of a repository: one copy of each, however many are decoded.
    source, type_, topic = sys.intern(doc[0]), sys.intern(doc[2]), sys.intern(doc[4])
    return EventRef(source, doc[1], type_, datetime.fromisoformat(doc[3]), topic, doc[5], doc[6], received)
