"""Ready decisions held back by a freeze window, kept in the Deployment's `autodeploy.dev/waiting` annotation.

The cluster keeps the agent's state (as for the rest of decisions.py): a restarted agent reads what waits from the
annotation and deploys it when the window ends, so the readiness record's offset can be committed at once and other
services on the partition are not held up. One waits per service: a newer ready decision replaces it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from streams.deploy.decisions import Ready


@dataclass(frozen=True)
class Waiting:
    ready: Ready
    decided: datetime | None  # the readiness event's time
    pipeline_start: datetime | None  # the newest fact's time (see metrics.pipeline_start)


def to_annotation(waiting: Waiting) -> str:
    return json.dumps(
        {
            "ready": asdict(waiting.ready),
            "decided": waiting.decided.isoformat() if waiting.decided else None,
            "pipeline_start": waiting.pipeline_start.isoformat() if waiting.pipeline_start else None,
        },
        sort_keys=True,
    )


def from_annotation(text: str) -> Waiting:
    """ValueError when the annotation is not one this module wrote."""
    try:
        doc = json.loads(text)
        ready = Ready(**{k: str(v) for k, v in doc["ready"].items()})
        decided, start = doc.get("decided"), doc.get("pipeline_start")
        return Waiting(
            ready,
            datetime.fromisoformat(decided) if decided else None,
            datetime.fromisoformat(start) if start else None,
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"not a waiting decision: {e}") from e
