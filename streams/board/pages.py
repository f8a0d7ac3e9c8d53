"""The board's HTML: views built from the model, rendered by Jinja2 (autoescaped) templates in templates/.

Every state is said in words as well as by colour (colour-blind readers, screen readers); times are absolute UTC in
`<time>` with how long ago beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from streams.board.entries import Entry
from streams.board.model import Board, Cell

KINDS = (
    "ready",
    "superseded",
    "expired",
    "rejected",
    "deployed",
    "upgraded",
    "rolledback",
    "failed",
    "blocked",
    "skipped",
)
# kind -> (the word shown, its class: good, warn, bad, hold, none)
KIND_STATES: Mapping[str, tuple[str, str]] = {
    "ready": ("ready", "good"),
    "superseded": ("superseded", "none"),
    "expired": ("expired", "warn"),
    "rejected": ("rejected", "bad"),
    "deployed": ("deployed", "good"),
    "upgraded": ("upgraded", "good"),
    "rolledback": ("rolled back", "warn"),
    "failed": ("failed", "bad"),
    "blocked": ("blocked", "bad"),
    "skipped": ("skipped", "none"),
    "unblocked": ("unblocked", "good"),
}


def short(commit: str) -> str:
    return commit[:7]


def ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def commit_url(repository: str, commit: str) -> str:
    return f"/commits/{repository.removeprefix('github.com/')}/{commit}"


@dataclass(frozen=True)
class Waiting:
    commit: str
    since: datetime
    what: str  # what it is missing, or why that is not known


@dataclass(frozen=True)
class CellView:
    dom_id: str
    service: str
    environment: str
    repository: str
    state: str  # the word
    tone: str  # good|warn|bad|hold|none
    running: Entry | None
    newest_ready: Entry | None
    waiting: Sequence[Waiting] = ()
    notes: Sequence[str] = field(default_factory=tuple)  # circuit breaker, freeze


class Explanations:
    """What the worker said of waiting commits, kept by the server's refresher: (repository, commit) -> document."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}
        self.error = ""  # the last failure to ask the worker, until it answers again

    def missing(self, cell: Cell, commit: str) -> str:
        document = self.documents.get((cell.service.repository, commit))
        if document is None:
            return "worker unreachable: not known" if self.error else "asking the worker"
        service = next((s for s in document.get("services", []) if s.get("service") == cell.service.name), None)
        if service is None:
            return "not tracked by the worker"
        missing = lacking(service, cell.index, cell.environment)
        if missing:
            return "missing " + ", ".join(missing)
        return "complete: deciding" if cell.index == 0 else "gates open: deciding"


def lacking(service: Mapping[str, Any], index: int, environment: str) -> list[str]:
    """What the worker's document of one service says a commit lacks in the environment at `index`: the readiness
    rules' facts for the first, the gates for a later one."""
    if index == 0:
        return list(service.get("missing") or [])
    statuses = service.get("environments") or []
    status: Mapping[str, Any] = next((e for e in statuses if e.get("environment") == environment), {})
    return list(status.get("missing") or [])


def cell_view(board: Board, cell: Cell, explanations: Explanations, now: datetime) -> CellView:
    notes = []
    frozen = cell.service.frozen(now)
    state, tone = "nothing deployed yet", "none"
    last = cell.last_outcome
    if last is not None:
        state, tone = KIND_STATES.get(last.kind, (last.kind, "none"))
        if last.kind in ("deployed", "upgraded"):
            state = "running"
    if frozen is not None:
        state, tone = "frozen", "hold"
        notes.append(f"freeze {frozen.window} until {frozen.until:%Y-%m-%d %H:%M}Z")
    if cell.circuit_open:
        state, tone = "blocked", "bad"
        notes.append(cell.circuit_open)
    if cell.rolled_back is not None:
        # The reason up to the query it names: the commit page has all of it.
        reason = (cell.rolled_back.reason or "no reason given").split("; query:", 1)[0]
        notes.append(f"rolled back {cell.rolled_back.commit[:7]}: {reason}")
    waiting = [Waiting(commit, since, explanations.missing(cell, commit)) for commit, since in board.waiting(cell, now)]
    ready = cell.newest_ready
    acted = {e.commit for e in (cell.running, cell.last_outcome) if e is not None}
    if ready is not None and ready.commit in acted:
        ready = None  # it runs, or its rollout ended otherwise: the cell says so
    return CellView(
        cell.dom_id,
        cell.service.name,
        cell.environment,
        cell.service.repository,
        state,
        tone,
        cell.running,
        ready,
        tuple(waiting),
        tuple(notes),
    )


class Pages:
    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("streams.board", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["short"] = short
        self._env.globals.update(commit_url=commit_url, ago=ago, KIND_STATES=KIND_STATES, KINDS=KINDS)

    def render(self, template: str, **context: Any) -> str:
        return self._env.get_template(template).render(**context)

    def cell(self, view: CellView, now: datetime) -> str:
        return self._env.get_template("_cell.html").render(cell=view, now=now)

    def row(self, entry: Entry, now: datetime) -> str:
        return self._env.get_template("_row.html").render(entry=entry, now=now)
