"""Consumer lag over time from Prometheus (query_range), drawn as a PNG: messages and seconds per partition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.adapters.prometheus_api import PrometheusAPI

QUERIES = {
    "messages": "max by (group, topic, partition) (autodeploy_consumer_lag_messages)",
    "seconds": "max by (group, topic, partition) (autodeploy_consumer_lag_seconds)",
}
MAX_POINTS = 600  # per series: enough for a smooth line, few enough for one query per panel


class ReportUnavailable(RuntimeError):
    """The optional drawing library is not installed."""


@dataclass(frozen=True)
class Series:
    label: str  # group topic/partition
    times: tuple[datetime, ...]
    values: tuple[float, ...]


def _series(result: list[dict[str, Any]]) -> list[Series]:
    found = []
    for entry in result:
        m = entry["metric"]
        label = f"{m.get('group', '?')} {m.get('topic', '?')}/{m.get('partition', '?')}"
        points = [(datetime.fromtimestamp(float(t), UTC), float(v)) for t, v in entry["values"]]
        found.append(Series(label, tuple(t for t, _ in points), tuple(v for _, v in points)))
    return sorted(found, key=lambda s: s.label)


def fetch(api: PrometheusAPI, since: timedelta, end: datetime | None = None) -> dict[str, list[Series]]:
    end = end or datetime.now(UTC)
    start = end - since
    step = max(1.0, since.total_seconds() / MAX_POINTS)
    return {name: _series(api.query_range(expr, start, end, step)) for name, expr in QUERIES.items()}


def render(data: dict[str, list[Series]], out: Path, title: str) -> None:
    """Two panels sharing the time axis; a partition without lag is drawn too (a flat line says it kept up)."""
    try:
        import matplotlib  # noqa: PLC0415 - heavy, and an extra: only the report needs it
    except ImportError as e:
        raise ReportUnavailable("the lag report needs matplotlib: pip install 'autodeploy[report]'") from e

    matplotlib.use("Agg")  # no display: a file
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (messages, seconds) = plt.subplots(2, 1, sharex=True, figsize=(11, 7), constrained_layout=True)
    for axis, name, unit in ((messages, "messages", "records behind"), (seconds, "seconds", "oldest unconsumed, s")):
        for s in data[name]:
            axis.plot(s.times, s.values, label=s.label, linewidth=1.4)
        axis.set_ylabel(unit)
        axis.set_title(f"consumer lag ({name})", loc="left", fontsize=10)
        axis.grid(alpha=0.3)
        if not data[name]:
            axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center", va="center", color="grey")
    handles, labels = messages.get_legend_handles_labels()
    if handles:
        messages.legend(handles, labels, fontsize=7, loc="upper left", ncol=2)
    seconds.set_xlabel("time (UTC)")
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
