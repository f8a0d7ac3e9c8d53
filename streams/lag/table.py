"""Lag rows as a fixed-width terminal table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from streams.domain.lag import LagRow

HEADER = ("group", "topic", "partition", "committed", "end", "lag msgs", "lag s", "stalled")


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def render(rows: Sequence[LagRow], groups: Sequence[str], at: datetime) -> str:
    cells = [
        (
            r.group,
            r.topic,
            str(r.partition),
            str(r.committed),
            str(r.end),
            str(r.lag_messages),
            _seconds(r.lag_seconds),
            f"STALLED {r.unmoved_s:.0f}s" if r.stalled else "no",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADER)]
    right = {2, 3, 4, 5, 6}  # numbers align right

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    total = sum(r.lag_messages for r in rows)
    lines = [
        f"consumer lag at {at.strftime('%H:%M:%S')}: {len(rows)} partitions, {total} messages behind",
        line(HEADER),
        *(line(c) for c in cells),
    ]
    committed = {r.group for r in rows}
    missing = [g for g in groups if g not in committed]
    if missing:
        lines.append("no committed offsets: " + ", ".join(missing))
    return "\n".join(lines)
